import { useRef, useState, type FormEvent, type KeyboardEvent } from 'react';

/** The server's limit on a message, in characters. */
const MAX_TEXT = 4000;

export function Composer({ onSend, disabled }: { onSend(text: string): void; disabled?: boolean }) {
  const [text, setText] = useState('');
  const input = useRef<HTMLTextAreaElement>(null);

  function send() {
    if (!text.trim() || disabled) return;
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
      <button className="button button--primary composer__send" type="submit" disabled={disabled || !text.trim()}>
        Send
      </button>
    </form>
  );
}
