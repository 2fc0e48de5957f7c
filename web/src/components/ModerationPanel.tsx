import { useId, useRef, useState, type RefObject } from 'react';

import { banLengthText, nameOf, type Role } from '../moderation';
import { formatTime } from '../time';
import type { Ban, Moderator } from '../types';

/**
 * The owner's and moderators' "Moderation" disclosure: the bans in force (each can be lifted) and the
 * moderators (the owner may remove them). No event tells of changes to either, so opening it reloads
 * both.
 */
export function ModerationPanel({
  role,
  me,
  moderators,
  bans,
  names,
  onOpen,
  onLiftBan,
  onRemoveModerator,
}: {
  role: Role;
  me: string;
  moderators: Moderator[];
  /** Null until loaded. */
  bans: Ban[] | null;
  names: ReadonlyMap<string, string>;
  onOpen(): void;
  onLiftBan(userId: string, name: string): Promise<boolean>;
  onRemoveModerator(userId: string, name: string): Promise<boolean>;
}) {
  const [open, setOpen] = useState(false);
  const id = useId();
  const bansHeading = useRef<HTMLHeadingElement>(null);
  const moderatorsHeading = useRef<HTMLHeadingElement>(null);
  // The button pressed goes with its row: focus moves to the list's heading rather than the page.
  const thenFocus = (heading: RefObject<HTMLHeadingElement | null>) => (done: boolean) => {
    if (done) heading.current?.focus();
  };

  return (
    <div className="moderation">
      <button
        type="button"
        className="link-button moderation__toggle"
        aria-expanded={open}
        aria-controls={open ? id : undefined}
        onClick={() => {
          if (!open) onOpen();
          setOpen(!open);
        }}
      >
        Moderation
      </button>
      {open && (
        <section className="moderation__panel" id={id} aria-label="Moderation">
          <h2 className="moderation__heading" ref={bansHeading} tabIndex={-1}>
            Banned users
          </h2>
          {bans === null ? (
            <p className="muted">Loading…</p>
          ) : bans.length === 0 ? (
            <p className="muted">Nobody is banned.</p>
          ) : (
            <ul className="moderation__list" aria-label="Banned users">
              {bans.map((ban) => {
                const name = nameOf(ban.user_id, names);
                return (
                  <li key={ban.user_id} className="moderation__row">
                    <span className="moderation__who">
                      <strong>{name}</strong>
                      {ban.reason && <span className="moderation__reason">{ban.reason}</span>}
                      <span className="muted">
                        Banned by {ban.by.name}, {banLengthText(ban.until)}
                      </span>
                    </span>
                    <RowAction label="Lift ban" name={`Lift ban for ${name}`} run={() => onLiftBan(ban.user_id, name).then(thenFocus(bansHeading))} />
                  </li>
                );
              })}
            </ul>
          )}
          <h2 className="moderation__heading" ref={moderatorsHeading} tabIndex={-1}>
            Moderators
          </h2>
          {moderators.length === 0 ? (
            <p className="muted">No moderators yet.</p>
          ) : (
            <ul className="moderation__list" aria-label="Moderators">
              {moderators.map((m) => {
                const name = nameOf(m.user_id, names);
                return (
                  <li key={m.user_id} className="moderation__row">
                    <span className="moderation__who">
                      <strong>
                        {name}
                        {m.user_id === me && ' (you)'}
                      </strong>
                      <span className="muted">since {formatTime(m.since)}</span>
                    </span>
                    {role === 'owner' && (
                      <RowAction
                        label="Remove moderator"
                        name={`Remove moderator ${name}`}
                        run={() => onRemoveModerator(m.user_id, name).then(thenFocus(moderatorsHeading))}
                      />
                    )}
                  </li>
                );
              })}
            </ul>
          )}
        </section>
      )}
    </div>
  );
}

/** A row's button, disabled while its call is on its way: the press shows it was taken. */
function RowAction({ label, name, run }: { label: string; name: string; run(): Promise<void> }) {
  const [busy, setBusy] = useState(false);
  return (
    <button
      type="button"
      className="link-button"
      aria-label={name}
      disabled={busy}
      onClick={() => {
        setBusy(true);
        void run().finally(() => setBusy(false));
      }}
    >
      {label}
    </button>
  );
}
