import { useCallback, useEffect, useMemo, useRef, useState } from 'react';

import { createApi } from '../api';
import { chatBaseUrl, resolveEventsBaseUrl } from '../config';
import { navigate, useRoute } from '../router';
import { clearSession, loadSession, saveSession } from '../session';
import type { Room, RoomMode, Session } from '../types';
import { RoomList } from './RoomList';
import { RoomView } from './RoomView';
import { SignIn } from './SignIn';

export function App() {
  const [session, setSession] = useState<Session | null>(() => loadSession());
  const sessionRef = useRef(session);
  sessionRef.current = session;
  const [expired, setExpired] = useState(false);

  const signOut = useCallback(() => {
    clearSession();
    setSession(null);
  }, []);

  const api = useMemo(
    () =>
      createApi({
        baseUrl: chatBaseUrl,
        getToken: () => sessionRef.current?.token ?? null,
        onUnauthorized: () => {
          setExpired(true);
          clearSession();
          setSession(null);
        },
      }),
    [],
  );

  const [eventsBaseUrl, setEventsBaseUrl] = useState<string | null>(null);
  useEffect(() => {
    const abort = new AbortController();
    resolveEventsBaseUrl(api, abort.signal).then(setEventsBaseUrl, () => {});
    return () => abort.abort();
  }, [api]);

  const route = useRoute();
  // Rooms we know names for, so the room view can show a name before its own fetch answers.
  const [rooms, setRooms] = useState<Room[]>([]);
  // The open room's live mode, so the list marks it hot at once rather than at its next refresh.
  const [liveMode, setLiveMode] = useState<{ roomId: string; mode: RoomMode } | null>(null);
  const onModeChange = useCallback((roomId: string, mode: RoomMode) => setLiveMode({ roomId, mode }), []);

  if (!session) {
    return (
      <SignIn
        api={api}
        expired={expired}
        onSignedIn={(s) => {
          saveSession(s);
          setExpired(false);
          setSession(s);
        }}
      />
    );
  }

  const roomId = route.name === 'room' ? route.roomId : null;
  return (
    <div className={`app ${roomId ? 'app--room-open' : ''}`}>
      <header className="topbar">
        <a
          className="brand"
          href="/"
          onClick={(e) => {
            e.preventDefault();
            navigate('/');
          }}
        >
          <span aria-hidden="true">🔥</span> hotchat
        </a>
        <div className="topbar__user">
          <span className="avatar" aria-hidden="true">
            {session.user.name.slice(0, 1).toUpperCase()}
          </span>
          <span className="topbar__name">{session.user.name}</span>
          <button type="button" className="link-button" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <div className="layout">
        <aside className="sidebar">
          <RoomList api={api} currentRoomId={roomId} onRooms={setRooms} liveMode={liveMode} />
        </aside>
        <main className="main">
          {roomId && eventsBaseUrl !== null ? (
            <RoomView
              key={roomId}
              api={api}
              roomId={roomId}
              eventsBaseUrl={eventsBaseUrl}
              me={session.user}
              knownRoom={rooms.find((r) => r.id === roomId)}
              onModeChange={onModeChange}
            />
          ) : roomId ? (
            <p className="placeholder">Connecting…</p>
          ) : (
            <div className="placeholder">
              <p className="placeholder__title">Pick a room or create one</p>
              <p>Messages and reactions show up live for everyone in the room.</p>
            </div>
          )}
        </main>
      </div>
    </div>
  );
}
