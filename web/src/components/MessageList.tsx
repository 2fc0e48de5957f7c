import { useLayoutEffect, useRef } from 'react';

import type { MessageState } from '../messages';
import { messageActions, type Role } from '../moderation';
import type { User } from '../types';
import { MessageItem } from './MessageItem';

/** Within this many pixels of the bottom, new messages keep the view pinned to the bottom. */
const STICK_PX = 80;
/** Within this many pixels of the top, older messages are loaded. */
const LOAD_OLDER_PX = 150;

export function MessageList({
  state,
  me,
  loadingOlder,
  onLoadOlder,
  onReact,
  onRetry,
  onDiscard,
  role = 'member',
  ownerId,
  onEdit,
  onDelete,
  onBan,
  moderatorIds,
  onAppoint,
}: {
  state: MessageState;
  me: User;
  loadingOlder: boolean;
  onLoadOlder(): void;
  onReact(messageId: string, emoji: string): void;
  onRetry(clientId: string): void;
  onDiscard(clientId: string): void;
  role?: Role;
  ownerId?: string;
  onEdit?(messageId: string, text: string): Promise<boolean>;
  onDelete?(messageId: string): void;
  onBan?(messageId: string, seconds: number | null): void;
  /** Who moderates the room: nobody bans them, and the owner may remove them. */
  moderatorIds?: ReadonlySet<string>;
  onAppoint?(messageId: string, appoint: boolean): void;
}) {
  const scroller = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const previous = useRef<{ first?: string; last?: string; count: number; height: number }>({ count: 0, height: 0 });

  // After each change: keep the reading position when older messages were put above, follow new ones
  // when the reader was at the bottom (or just sent one), and fill a short screen with older pages.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const items = state.items;
    const first = items[0]?.id;
    const last = items[items.length - 1];
    const before = previous.current;
    const prepended = before.first !== undefined && first !== before.first && items.some((m) => m.id === before.first);
    if (prepended) {
      el.scrollTop += el.scrollHeight - before.height;
    } else if (atBottom.current || (last && last.id !== before.last && last.user.id === me.id && last.status === 'pending')) {
      el.scrollTop = el.scrollHeight;
      atBottom.current = true;
    }
    previous.current = { first, last: last?.id, count: items.length, height: el.scrollHeight };
    if (state.hasOlder && !loadingOlder && el.scrollHeight <= el.clientHeight + LOAD_OLDER_PX) onLoadOlder();
  }, [state.items, state.hasOlder, loadingOlder, me.id, onLoadOlder]);

  function onScroll() {
    const el = scroller.current;
    if (!el) return;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight <= STICK_PX;
    if (el.scrollTop <= LOAD_OLDER_PX && state.hasOlder && !loadingOlder) onLoadOlder();
  }

  return (
    <div className="scroller" ref={scroller} onScroll={onScroll}>
      <div className="history-edge">
        {state.hasOlder ? (
          <button type="button" className="link-button" onClick={onLoadOlder} disabled={loadingOlder}>
            {loadingOlder ? 'Loading older messages…' : 'Load older messages'}
          </button>
        ) : state.loaded && state.items.length > 0 ? (
          <span className="muted">Beginning of the room</span>
        ) : null}
      </div>
      {!state.loaded && state.items.length === 0 && <p className="muted centered">Loading messages…</p>}
      {state.loaded && state.items.length === 0 && <p className="muted centered">No messages yet. Say hello!</p>}
      <ol className="messages" aria-label="Messages">
        {state.items.map((message, i) => {
          const may = messageActions(message, me.id, role, ownerId, moderatorIds?.has(message.user.id));
          return (
            <MessageItem
              key={message.clientId ?? message.id}
              message={message}
              own={message.user.id === me.id}
              continued={i > 0 && state.items[i - 1].user.id === message.user.id}
              canEdit={may.edit}
              canDelete={may.delete}
              canBan={may.ban}
              appoint={may.appoint}
              onReact={onReact}
              onRetry={onRetry}
              onDiscard={onDiscard}
              onEdit={onEdit}
              onDelete={onDelete}
              onBan={onBan}
              onAppoint={onAppoint}
            />
          );
        })}
      </ol>
    </div>
  );
}
