import type { Presence } from '../events';

const count = new Intl.NumberFormat('en-US');

/** "1 watching", "1,234 watching"; "≥ N watching" when the count covers only one server. */
export function watchingText(online: number, approximate = false): string {
  return `${approximate ? '≥ ' : ''}${count.format(online)} watching`;
}

export function WatchingBadge({ presence }: { presence: Presence | null }) {
  if (!presence) return null;
  return (
    <span className="watching" title={presence.approximate ? 'count from this server only' : 'People in this room now'}>
      {watchingText(presence.online, presence.approximate)}
    </span>
  );
}
