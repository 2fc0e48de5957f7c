import { memo, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';

import type { ChatMessage } from '../messages';
import { BAN_CHOICES } from '../moderation';
import { formatTime } from '../time';
import { MessageMenu, type MenuItem } from './MessageMenu';

/** The reactions offered on every message (the server accepts any single emoji). */
export const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉', '😮'];


/** The reactions to show: the quick ones, then any others the message has. */
export function reactionChoices(reactions: Record<string, number>): string[] {
  return [...QUICK_REACTIONS, ...Object.keys(reactions).filter((e) => !QUICK_REACTIONS.includes(e))];
}

/** The server's limit on a message, in characters. */
const MAX_TEXT = 4000;

export const MessageItem = memo(function MessageItem({
  message,
  own,
  continued,
  canEdit = false,
  canDelete = false,
  canBan = false,
  appoint = null,
  onReact,
  onRetry,
  onDiscard,
  onEdit,
  onDelete,
  onBan,
  onAppoint,
}: {
  message: ChatMessage;
  own: boolean;
  continued: boolean;
  canEdit?: boolean;
  canDelete?: boolean;
  canBan?: boolean;
  /** The owner's item on this message's author: make them a moderator, or remove them as one. */
  appoint?: 'make' | 'remove' | null;
  onReact(messageId: string, emoji: string): void;
  onRetry(clientId: string): void;
  onDiscard(clientId: string): void;
  /** Resolves true once the new text is saved. */
  onEdit?(messageId: string, text: string): Promise<boolean>;
  onDelete?(messageId: string): void;
  onBan?(messageId: string, seconds: number | null): void;
  onAppoint?(messageId: string, appoint: boolean): void;
}) {
  const [editing, setEditing] = useState(false);
  const menuButton = useRef<HTMLButtonElement>(null);
  const actions: MenuItem[] = [];
  if (canEdit && onEdit) actions.push({ label: 'Edit', onSelect: () => setEditing(true) });
  if (canDelete && onDelete) actions.push({ label: 'Delete', danger: true, onSelect: () => onDelete(message.id) });
  if (canBan && onBan) {
    for (const choice of BAN_CHOICES) {
      actions.push({ label: choice.label, danger: true, onSelect: () => onBan(message.id, choice.seconds) });
    }
  }
  if (appoint && onAppoint) {
    const make = appoint === 'make';
    actions.push({ label: make ? 'Make moderator' : 'Remove moderator', onSelect: () => onAppoint(message.id, make) });
  }
  const stopEditing = () => {
    setEditing(false);
    // Back where the user started from (after the editor's own controls are gone).
    requestAnimationFrame(() => menuButton.current?.focus());
  };

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
      <div className="msg__row">
        {editing && onEdit ? (
          <MessageEditor
            text={message.text}
            onSave={async (text) => {
              if (text === message.text || (await onEdit(message.id, text))) stopEditing();
            }}
            onCancel={stopEditing}
          />
        ) : (
          <div className="msg__bubble">
            <p className="msg__text">{message.text}</p>
            <span className="msg__meta">
              <time dateTime={message.at} title={new Date(message.at).toLocaleString()}>
                {formatTime(message.at)}
              </time>
              {message.edited_at && (
                <span className="msg__edited" title={`Edited ${new Date(message.edited_at).toLocaleString()}`}>
                  {' '}
                  (edited)
                </span>
              )}
              {message.status === 'pending' && <span> · Sending…</span>}
              {message.status === 'failed' && <span className="msg__failed"> · Not sent</span>}
            </span>
          </div>
        )}
        {actions.length > 0 && !editing && <MessageMenu items={actions} buttonRef={menuButton} />}
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

/** Edits a message in place: Enter saves, Shift+Enter is a new line, Escape cancels. */
function MessageEditor({ text, onSave, onCancel }: { text: string; onSave(text: string): Promise<void>; onCancel(): void }) {
  const [draft, setDraft] = useState(text);
  const [saving, setSaving] = useState(false);

  async function save() {
    if (!draft.trim() || saving) return;
    setSaving(true);
    try {
      await onSave(draft);
    } finally {
      setSaving(false);
    }
  }

  function submit(e: FormEvent) {
    e.preventDefault();
    void save();
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.key === 'Escape') {
      e.preventDefault();
      onCancel();
    } else if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void save();
    }
  }

  return (
    <form className="msg__editor" onSubmit={submit}>
      <textarea
        className="msg__editor-input"
        aria-label="Edit message"
        rows={2}
        maxLength={MAX_TEXT}
        autoFocus
        value={draft}
        disabled={saving}
        onChange={(e) => setDraft(e.target.value)}
        onKeyDown={onKeyDown}
      />
      <span className="msg__editor-actions">
        <button type="button" className="link-button" onClick={onCancel} disabled={saving}>
          Cancel
        </button>
        <button type="submit" className="button button--primary button--small" disabled={saving || !draft.trim()}>
          {saving ? 'Saving…' : 'Save'}
        </button>
      </span>
    </form>
  );
}
