import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';

import { ApiError, type Api } from '../api';
import { navigate, roomPath } from '../router';
import type { Room, RoomMode } from '../types';
import { watchingText } from './WatchingBadge';

/** How often the list (and its hot badges) is refreshed while the page is visible. */
const REFRESH_MS = 10_000;

export function RoomList({
  api,
  currentRoomId,
  onRooms,
  liveMode,
}: {
  api: Api;
  currentRoomId: string | null;
  onRooms(rooms: Room[]): void;
  /** The open room's mode as its live stream tells it (fresher than the list's `hot`). */
  liveMode?: { roomId: string; mode: RoomMode } | null;
}) {
  const [rooms, setRooms] = useState<Room[] | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [name, setName] = useState('');
  const [creating, setCreating] = useState(false);
  const [createError, setCreateError] = useState<string | null>(null);

  const reload = useRef<() => void>(() => {});
  // A mode change in the open room changes its hot flag: refresh the list now.
  const openMode = liveMode?.mode;
  const openRoom = liveMode?.roomId;
  useEffect(() => {
    if (openMode) reload.current();
  }, [openMode, openRoom]);

  const show = useCallback(
    (list: Room[]) => {
      setRooms(list);
      onRooms(list);
    },
    [onRooms],
  );

  useEffect(() => {
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      if (document.visibilityState === 'visible') {
        try {
          show(await api.listRooms(abort.signal));
          setLoadError(null);
        } catch (e) {
          if (abort.signal.aborted) return;
          setLoadError(e instanceof ApiError ? e.message : 'Could not load the rooms.');
        }
      }
      if (abort.signal.aborted) return;
      // One timer at a time, however many loads overlapped.
      clearTimeout(timer);
      timer = setTimeout(load, REFRESH_MS);
    };
    void load();
    reload.current = () => {
      clearTimeout(timer);
      void load();
    };
    const onVisible = () => {
      if (document.visibilityState === 'visible') {
        clearTimeout(timer);
        void load();
      }
    };
    document.addEventListener('visibilitychange', onVisible);
    return () => {
      abort.abort();
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, [api, show]);

  async function create(e: FormEvent) {
    e.preventDefault();
    const trimmed = name.trim();
    if (!trimmed || creating) return;
    setCreating(true);
    setCreateError(null);
    try {
      const room = await api.createRoom(trimmed);
      setName('');
      show([...(rooms ?? []).filter((r) => r.id !== room.id), { ...room, hot: false }]);
      navigate(roomPath(room.id));
    } catch (err) {
      setCreateError(err instanceof ApiError ? err.message : 'Could not create the room.');
    } finally {
      setCreating(false);
    }
  }

  return (
    <nav className="rooms" aria-label="Rooms">
      <h2 className="rooms__title">Rooms</h2>
      {loadError && (
        <p className="form-error" role="alert">
          {loadError}
        </p>
      )}
      {rooms === null && !loadError && <p className="muted">Loading rooms…</p>}
      {rooms !== null && rooms.length === 0 && <p className="muted">No rooms yet. Create the first one.</p>}
      {rooms !== null && rooms.length > 0 && (
        <ul className="rooms__list">
          {rooms.map((room) => (
            <li key={room.id} className={`rooms__item ${room.id === currentRoomId ? 'rooms__item--current' : ''}`}>
              <a
                className="rooms__link"
                href={roomPath(room.id)}
                aria-current={room.id === currentRoomId ? 'page' : undefined}
                onClick={(e) => {
                  e.preventDefault();
                  navigate(roomPath(room.id));
                }}
              >
                <span className="rooms__hash" aria-hidden="true">
                  #
                </span>
                {room.name}
              </a>
              {(room.hot || (liveMode?.roomId === room.id && liveMode.mode === 'throttled')) && (
                <span className="badge badge--hot" title="Lots of people are here right now">
                  🔥 Hot
                </span>
              )}
              {typeof room.online === 'number' && <span className="rooms__watching">{watchingText(room.online)}</span>}
            </li>
          ))}
        </ul>
      )}
      <form className="rooms__create" onSubmit={create}>
        <label className="field">
          <span className="field__label">Room name</span>
          <input
            className="input"
            value={name}
            maxLength={80}
            placeholder="e.g. concert-night"
            onChange={(e) => setName(e.target.value)}
          />
        </label>
        {createError && (
          <p className="form-error" role="alert">
            {createError}
          </p>
        )}
        <button className="button" type="submit" disabled={creating || !name.trim()}>
          Create room
        </button>
      </form>
    </nav>
  );
}
