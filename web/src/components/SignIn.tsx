import { useState, type FormEvent } from 'react';

import { ApiError, type Api } from '../api';
import type { Session } from '../types';

export function SignIn({ api, expired, onSignedIn }: { api: Api; expired: boolean; onSignedIn(session: Session): void }) {
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function submit(e: FormEvent) {
    e.preventDefault();
    const trimmed = name.trim();
    if (!trimmed || busy) return;
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await api.signIn(trimmed));
    } catch (err) {
      setError(err instanceof ApiError ? err.message : 'Could not sign in.');
      setBusy(false);
    }
  }

  return (
    <main className="signin">
      <form className="signin__card" onSubmit={submit}>
        <h1 className="signin__title">
          <span aria-hidden="true">🔥</span> hotchat
        </h1>
        <p className="signin__lead">Live rooms that stay up when everyone shows up.</p>
        {expired && <p className="signin__note">Your session ended. Please sign in again.</p>}
        <label className="field">
          <span className="field__label">Name</span>
          <input
            className="input"
            name="name"
            autoComplete="nickname"
            maxLength={32}
            autoFocus
            value={name}
            onChange={(e) => setName(e.target.value)}
          />
        </label>
        {error && (
          <p className="form-error" role="alert">
            {error}
          </p>
        )}
        <button className="button button--primary" type="submit" disabled={busy || !name.trim()}>
          Sign in
        </button>
      </form>
    </main>
  );
}
