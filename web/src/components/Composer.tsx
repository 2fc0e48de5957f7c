import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';

import { slowWaitText } from '../moderation';

/** The server's limit on a message, in characters. */
const MAX_TEXT = 4000;

export function Composer({
  onSend,
  disabled,
  waitSecs = 0,
  returnedDraft,
}: {
  onSend(text: string): void;
  disabled?: boolean;
  /** Slow mode: seconds until the user may post again. Typing goes on; sending waits. */
  waitSecs?: number;
  /** A post that was refused (slow mode), to put back in the box. */
  returnedDraft?: { text: string; seq: number } | null;
}) {
  const [text, setText] = useState('');
  const input = useRef<HTMLTextAreaElement>(null);
  const waiting = waitSecs > 0;

  // The refused text goes back in front of whatever was typed since (once: each return is a new object).
  useEffect(() => {
    if (!returnedDraft) return;
    setText((current) => (current.trim() ? `${returnedDraft.text}\n${current}` : returnedDraft.text));
  }, [returnedDraft]);

  function send() {
    if (!text.trim() || disabled || waiting) return;
    onSend(text);
    setText('');
    input.current?.focus();
  }

  function submit(e: FormEvent) {
    e.preventDefault();
    send();
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    // Enter sends; Shift+Enter is a new line; Enter that confirms an IME composition is not a send.
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      send();
    }
  }

  return (
    <form className="composer" onSubmit={submit}>
      {waiting && (
        // A timer is not announced every second (its live region is off by default).
        <p className="composer__wait" role="timer">
          {slowWaitText(waitSecs)}
        </p>
      )}
      <label className="visually-hidden" htmlFor="composer-input">
        Message
      </label>
      <textarea
        id="composer-input"
        ref={input}
        className="composer__input"
        rows={1}
        maxLength={MAX_TEXT}
        placeholder="Write a message…"
        value={text}
        disabled={disabled}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={onKeyDown}
        enterKeyHint="send"
      />
      <button className="button button--primary composer__send" type="submit" disabled={disabled || waiting || !text.trim()}>
        Send
      </button>
    </form>
  );
}
