import { useState } from 'react';

import { SLOW_MODE_CHOICES } from '../moderation';

/** The owner's and moderators' slow-mode select; shows the chosen value while the change is saved. */
export function SlowModeControl({ seconds, onChange }: { seconds: number; onChange(seconds: number): Promise<void> }) {
  // The choice being saved; once settled the room's own value shows (the old one if it was refused).
  const [chosen, setChosen] = useState<number | null>(null);
  const shown = chosen ?? seconds;
  // A value set through the API that the list does not offer is shown as it is.
  const choices = SLOW_MODE_CHOICES.some((c) => c.seconds === seconds)
    ? SLOW_MODE_CHOICES
    : [...SLOW_MODE_CHOICES, { seconds, label: `${seconds} s` }].sort((a, b) => a.seconds - b.seconds);
  return (
    <label className="slow-mode">
      <span className="slow-mode__label">Slow mode</span>
      <select
        className="slow-mode__select"
        value={shown}
        onChange={(e) => {
          const value = Number(e.target.value);
          setChosen(value);
          void onChange(value).finally(() => setChosen(null));
        }}
      >
        {choices.map((c) => (
          <option key={c.seconds} value={c.seconds}>
            {c.label}
          </option>
        ))}
      </select>
    </label>
  );
}
