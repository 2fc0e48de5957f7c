import type { ConnectionStatus } from '../events';

const LABELS: Record<ConnectionStatus, string> = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  closed: 'Offline',
};

export function ConnectionBadge({ status }: { status: ConnectionStatus }) {
  return (
    <span className={`conn conn--${status}`} role="status" aria-live="polite" title="Live updates">
      <span className="conn__dot" aria-hidden="true" />
      {LABELS[status]}
    </span>
  );
}
