import { memo } from 'react';

import type { ChatMessage } from '../messages';

/** The reactions offered on every message (the server accepts any single emoji). */
export const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉', '😮'];

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function formatTime(at: string, now = new Date()): string {
  const date = new Date(at);
  if (Number.isNaN(date.getTime())) return '';
  return date.toDateString() === now.toDateString() ? timeFormat.format(date) : dateTimeFormat.format(date);
}

/** The reactions to show: the quick ones, then any others the message has. */
export function reactionChoices(reactions: Record<string, number>): string[] {
  return [...QUICK_REACTIONS, ...Object.keys(reactions).filter((e) => !QUICK_REACTIONS.includes(e))];
}

export const MessageItem = memo(function MessageItem({
  message,
  own,
  continued,
  onReact,
  onRetry,
  onDiscard,
}: {
  message: ChatMessage;
  own: boolean;
  continued: boolean;
  onReact(messageId: string, emoji: string): void;
  onRetry(clientId: string): void;
  onDiscard(clientId: string): void;
}) {
  const sent = message.status === 'sent';
  const choices = reactionChoices(message.reactions);
  // Reactions someone used (or we did) are shown with their counts; the others are a picker.
  const isUsed = (emoji: string) => (message.reactions[emoji] ?? 0) > 0 || message.mine.includes(emoji);
  const used = choices.filter(isUsed);
  const unused = choices.filter((e) => !isUsed(e));
  const classes = ['msg', own ? 'msg--own' : '', continued ? 'msg--continued' : '', `msg--${message.status}`];
  return (
    <li className={classes.filter(Boolean).join(' ')} aria-busy={message.status === 'pending' || undefined}>
      {!own && !continued && <span className="msg__author">{message.user.name}</span>}
      <div className="msg__bubble">
        <p className="msg__text">{message.text}</p>
        <span className="msg__meta">
          <time dateTime={message.at} title={new Date(message.at).toLocaleString()}>
            {formatTime(message.at)}
          </time>
          {message.status === 'pending' && <span> · Sending…</span>}
          {message.status === 'failed' && <span className="msg__failed"> · Not sent</span>}
        </span>
      </div>
      {message.status === 'failed' && message.clientId && (
        <span className="msg__actions">
          <button type="button" className="link-button" onClick={() => onRetry(message.clientId!)}>
            Retry
          </button>
          <button type="button" className="link-button" onClick={() => onDiscard(message.clientId!)}>
            Discard
          </button>
        </span>
      )}
      {sent && (
        <div className={`reactions ${used.length ? 'reactions--used' : ''}`}>
          {used.map((emoji) => (
            <ReactionButton key={emoji} message={message} emoji={emoji} onReact={onReact} />
          ))}
          {unused.length > 0 && (
            <span className="reaction-picker">
              {unused.map((emoji) => (
                <ReactionButton key={emoji} message={message} emoji={emoji} onReact={onReact} />
              ))}
            </span>
          )}
        </div>
      )}
    </li>
  );
});

function ReactionButton({
  message,
  emoji,
  onReact,
}: {
  message: ChatMessage;
  emoji: string;
  onReact(messageId: string, emoji: string): void;
}) {
  const count = message.reactions[emoji] ?? 0;
  const mine = message.mine.includes(emoji);
  return (
    <button
      type="button"
      className={`reaction ${mine ? 'reaction--mine' : ''}`}
      aria-label={`React ${emoji}${count > 0 ? ` ${count}` : ''}`}
      aria-pressed={mine}
      onClick={() => onReact(message.id, emoji)}
    >
      <span className="reaction__emoji">{emoji}</span>
      {count > 0 && <span className="reaction__count">{count}</span>}
    </button>
  );
}
