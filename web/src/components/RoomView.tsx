import { useEffect, useMemo } from 'react';

import type { Api } from '../api';
import { useSecondsLeft } from '../countdown';
import { banText, knownNames, slowModeText } from '../moderation';
import { navigate } from '../router';
import type { Room, RoomMode, User } from '../types';
import { useRoom } from '../useRoom';
import { Composer } from './Composer';
import { ConnectionBadge } from './ConnectionBadge';
import { MessageList } from './MessageList';
import { ModerationPanel } from './ModerationPanel';
import { SlowModeControl } from './SlowModeControl';
import { WatchingBadge } from './WatchingBadge';

export function RoomView({
  api,
  roomId,
  eventsBaseUrl,
  me,
  knownRoom,
  onModeChange,
}: {
  api: Api;
  roomId: string;
  eventsBaseUrl: string;
  me: User;
  knownRoom?: Room;
  onModeChange?(roomId: string, mode: RoomMode): void;
}) {
  const room = useRoom(api, roomId, eventsBaseUrl, me);
  useEffect(() => onModeChange?.(roomId, room.mode), [onModeChange, roomId, room.mode]);
  const name = room.room?.name ?? knownRoom?.name ?? '';
  // Hot and throttled go together; the mode is live (SSE), the list's flag is refreshed every few seconds.
  const hot = room.mode === 'throttled' || (knownRoom?.hot ?? false);
  const slowModeSecs = room.room?.slow_mode_secs ?? 0;
  const waitSecs = useSecondsLeft(room.slowUntil);
  const moderatorIds = useMemo(() => new Set(room.moderators.map((m) => m.user_id)), [room.moderators]);
  // The panel names users from what the client has seen; the rest get a short id.
  const { items } = room.messages;
  const owner = room.room?.owner;
  const names = useMemo(
    () => knownNames([...items.map((m) => m.user), ...(room.bans ?? []).map((b) => b.by), owner, me]),
    [items, room.bans, owner, me],
  );

  return (
    <section className="room" aria-label={name ? `Room ${name}` : 'Room'}>
      <header className="room__header">
        <a
          className="room__back"
          href="/"
          onClick={(e) => {
            e.preventDefault();
            navigate('/');
          }}
        >
          <span aria-hidden="true">‹</span> Rooms
        </a>
        <h1 className="room__name">
          <span className="rooms__hash" aria-hidden="true">
            #
          </span>
          {name || '…'}
        </h1>
        {hot && <span className="badge badge--hot">🔥 Hot</span>}
        <WatchingBadge presence={room.presence} />
        <ConnectionBadge status={room.status} />
      </header>
      {room.role !== 'member' && room.room && (
        <div className="room__tools">
          <SlowModeControl seconds={slowModeSecs} onChange={room.setSlowMode} />
          <ModerationPanel
            role={room.role}
            me={me.id}
            moderators={room.moderators}
            bans={room.bans}
            names={names}
            onOpen={room.reloadModeration}
            onLiftBan={room.liftBan}
            onRemoveModerator={(userId, name) => room.setModerator(userId, name, false)}
          />
        </div>
      )}
      {room.mode === 'throttled' && (
        <div className="notice notice--busy" role="status">
          <strong>This room is busy.</strong> New messages still arrive live; older history loads more slowly.
        </div>
      )}
      {slowModeSecs > 0 && (
        <div className="notice notice--slow" role="status">
          {slowModeText(slowModeSecs)}
        </div>
      )}
      {room.ban && (
        <div className="notice notice--error" role="alert">
          {banText(room.ban.until)}
        </div>
      )}
      {room.info && (
        <div className="notice" role="status">
          <span>{room.info}</span>
          <button type="button" className="link-button" onClick={room.dismissInfo} aria-label="Dismiss">
            ✕
          </button>
        </div>
      )}
      {room.notice && (
        <div className="notice" role="status">
          {room.notice}
        </div>
      )}
      {room.error && (
        <div className="notice notice--error" role="alert">
          <span>{room.error}</span>
          <button type="button" className="link-button" onClick={room.dismissError} aria-label="Dismiss">
            ✕
          </button>
        </div>
      )}
      <MessageList
        state={room.messages}
        me={me}
        loadingOlder={room.loadingOlder}
        onLoadOlder={room.loadOlder}
        onReact={room.toggleReaction}
        onRetry={room.retry}
        onDiscard={room.discard}
        role={room.role}
        ownerId={room.room?.owner?.id}
        onEdit={room.editMessage}
        onDelete={room.deleteMessage}
        onBan={room.banAuthor}
        moderatorIds={moderatorIds}
        onAppoint={room.appointAuthor}
      />
      <Composer
        onSend={room.send}
        disabled={room.error === 'This room does not exist.'}
        waitSecs={waitSecs}
        returnedDraft={room.returnedDraft}
      />
    </section>
  );
}
