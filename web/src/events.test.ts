import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { eventsUrl, isCursor, RoomStream, type ConnectionStatus, type RoomStreamHandlers } from './events';
import { FakeEventSource } from './testing/fakeEventSource';

const ROOM = '0190a0a0-0000-7000-8000-000000000001';

describe('cursors', () => {
  it('recognises partition-offset cursors only', () => {
    expect(isCursor('2-41')).toBe(true);
    expect(isCursor('0-0')).toBe(true);
    for (const bad of ['', '2', '2-', '-1', 'a-1', '1-2-3', ' 1-2', null, undefined]) {
      expect(isCursor(bad)).toBe(false);
    }
  });

  it('builds the events URL, resuming with a valid cursor only', () => {
    expect(eventsUrl('', ROOM)).toBe(`/api/rooms/${ROOM}/events`);
    expect(eventsUrl('http://127.0.0.1:8081/', ROOM, '1-7')).toBe(
      `http://127.0.0.1:8081/api/rooms/${ROOM}/events?last_event_id=1-7`,
    );
    expect(eventsUrl('', ROOM, 'garbage')).toBe(`/api/rooms/${ROOM}/events`);
  });

  it('sends the session token in the query, with the cursor when resuming', () => {
    expect(eventsUrl('', ROOM, null, 'tok')).toBe(`/api/rooms/${ROOM}/events?token=tok`);
    expect(eventsUrl('http://e.test', ROOM, '1-7', 'a+b/c=')).toBe(
      `http://e.test/api/rooms/${ROOM}/events?token=a%2Bb%2Fc%3D&last_event_id=1-7`,
    );
    expect(eventsUrl('', ROOM, '1-7', null)).toBe(`/api/rooms/${ROOM}/events?last_event_id=1-7`);
    expect(eventsUrl('', ROOM, undefined, '')).toBe(`/api/rooms/${ROOM}/events`);
  });
});

describe('RoomStream', () => {
  let statuses: ConnectionStatus[];
  let handlers: Required<RoomStreamHandlers>;

  beforeEach(() => {
    vi.useFakeTimers();
    FakeEventSource.instances = [];
    statuses = [];
    handlers = {
      onMessage: vi.fn(),
      onReaction: vi.fn(),
      onMode: vi.fn(),
      onEdit: vi.fn(),
      onDelete: vi.fn(),
      onRoom: vi.fn(),
      onPresence: vi.fn(),
      onReset: vi.fn(),
      onOpen: vi.fn(),
      onStatus: (s) => statuses.push(s),
    };
  });
  afterEach(() => vi.useRealTimers());

  const start = (cursor?: string, getToken?: () => string | null) => {
    const stream = new RoomStream({
      baseUrl: 'http://events.test',
      roomId: ROOM,
      handlers,
      cursor,
      getToken,
      createEventSource: (url) => new FakeEventSource(url),
      reconnectDelayMs: (attempt) => 1000 * 2 ** attempt,
    });
    stream.start();
    return stream;
  };

  it('opens one EventSource and reports connecting, then live', () => {
    start();
    expect(FakeEventSource.instances).toHaveLength(1);
    expect(FakeEventSource.latest().url).toBe(`http://events.test/api/rooms/${ROOM}/events`);
    FakeEventSource.latest().open();
    expect(statuses).toEqual(['connecting', 'live']);
    expect(handlers.onOpen).toHaveBeenCalledWith(true);
  });

  it('parses events and tracks the last cursor', () => {
    const stream = start();
    const es = FakeEventSource.latest();
    es.open();
    es.emit('message', { id: 'm1', text: 'hi' }, '0-5');
    es.emit('reaction', { message_id: 'm1', emoji: '👍', count: 1 }, '0-6');
    es.emit('mode', { mode: 'throttled', fetch_interval_ms: 200 }, '0-7');
    expect(handlers.onMessage).toHaveBeenCalledWith({ id: 'm1', text: 'hi' });
    expect(handlers.onReaction).toHaveBeenCalledWith({ message_id: 'm1', emoji: '👍', count: 1 });
    expect(handlers.onMode).toHaveBeenCalledWith('throttled', 200);
    expect(stream.cursor).toBe('0-7');
    // An older server says no interval: no floor.
    es.emit('mode', { mode: 'normal' }, '0-8');
    expect(handlers.onMode).toHaveBeenLastCalledWith('normal', 0);
  });

  it('parses both reaction shapes, keeping only whole positive counts of the counts shape', () => {
    const stream = start();
    const es = FakeEventSource.latest();
    es.open();
    const one = { message_id: 'm1', emoji: '👍', user: { id: 'u1', name: 'bob' }, op: 'added' };
    es.emit('reaction', one, '0-1');
    expect(handlers.onReaction).toHaveBeenLastCalledWith(one);
    es.emit('reaction', { message_id: 'm1', counts: { '👍': 12, '🎉': 3, '😂': 0, '❤️': 'x', '🔥': 2.5 } }, '0-2');
    expect(handlers.onReaction).toHaveBeenLastCalledWith({ message_id: 'm1', counts: { '👍': 12, '🎉': 3, '🔥': 2 } });
    // Data that is neither shape's object is skipped, but moves the cursor.
    es.emit('reaction', 'null', '0-3');
    expect(handlers.onReaction).toHaveBeenCalledTimes(2);
    expect(stream.cursor).toBe('0-3');
  });

  it('parses edit, delete and room events, which move the cursor like the others', () => {
    const stream = start();
    const es = FakeEventSource.latest();
    es.open();
    const edit = { id: 'm1', room_id: ROOM, user: { id: 'u', name: 'a' }, text: 'fixed', at: 't', edited_at: 't2' };
    es.emit('edit', edit, '0-8');
    expect(handlers.onEdit).toHaveBeenCalledWith(edit);
    es.emit('delete', { message_id: 'm1', by: { id: 'u2', name: 'mod' } }, '0-9');
    expect(handlers.onDelete).toHaveBeenCalledWith({ message_id: 'm1', by: { id: 'u2', name: 'mod' } });
    es.emit('room', { id: ROOM, name: 'lobby', slow_mode_secs: 30 }, '0-10');
    expect(handlers.onRoom).toHaveBeenCalledWith({ id: ROOM, name: 'lobby', slow_mode_secs: 30 });
    expect(handlers.onMessage).not.toHaveBeenCalled();
    expect(stream.cursor).toBe('0-10');
  });

  it('skips events whose data is not JSON but still moves the cursor', () => {
    const stream = start();
    FakeEventSource.latest().emit('message', 'not json', '3-1');
    expect(handlers.onMessage).not.toHaveBeenCalled();
    expect(stream.cursor).toBe('3-1');
  });

  it('asks for a refetch on reset and keeps its cursor', () => {
    const stream = start();
    const es = FakeEventSource.latest();
    es.emit('message', { id: 'm1' }, '1-9');
    es.emit('reset', { reason: 'resume_unavailable' });
    expect(handlers.onReset).toHaveBeenCalledWith('resume_unavailable');
    es.emit('reset', 'garbage');
    expect(handlers.onReset).toHaveBeenCalledTimes(2);
    expect(stream.cursor).toBe('1-9');
  });

  it('shows reconnecting while the browser retries by itself, and does not make a second EventSource', () => {
    start();
    const es = FakeEventSource.latest();
    es.open();
    es.fail(false);
    expect(statuses.at(-1)).toBe('reconnecting');
    vi.advanceTimersByTime(60_000);
    expect(FakeEventSource.instances).toHaveLength(1);
    es.open();
    expect(statuses.at(-1)).toBe('live');
    expect(handlers.onOpen).toHaveBeenLastCalledWith(false);
  });

  it('makes a new EventSource with ?last_event_id after the browser gave up, backing off', () => {
    start();
    let es = FakeEventSource.latest();
    es.open();
    es.emit('message', { id: 'm1' }, '2-40');
    es.fail(true);
    expect(es.closed).toBe(true);
    expect(statuses.at(-1)).toBe('reconnecting');
    vi.advanceTimersByTime(999);
    expect(FakeEventSource.instances).toHaveLength(1);
    vi.advanceTimersByTime(1);
    es = FakeEventSource.latest();
    expect(FakeEventSource.instances).toHaveLength(2);
    expect(es.url).toBe(`http://events.test/api/rooms/${ROOM}/events?last_event_id=2-40`);
    // Fails again: the next wait is longer.
    es.fail(true);
    vi.advanceTimersByTime(1999);
    expect(FakeEventSource.instances).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(FakeEventSource.instances).toHaveLength(3);
    FakeEventSource.latest().open();
    expect(statuses.at(-1)).toBe('live');
  });

  it('sends the current token on every new EventSource, with the cursor once it has one', () => {
    let token = 'first';
    start(undefined, () => token);
    let es = FakeEventSource.latest();
    expect(es.url).toBe(`http://events.test/api/rooms/${ROOM}/events?token=first`);
    es.open();
    es.emit('message', { id: 'm1' }, '2-40');
    token = 'second';
    es.fail(true);
    vi.advanceTimersByTime(1000);
    es = FakeEventSource.latest();
    expect(FakeEventSource.instances).toHaveLength(2);
    expect(es.url).toBe(`http://events.test/api/rooms/${ROOM}/events?token=second&last_event_id=2-40`);
  });

  it('reports presence, approximate when it covers one server, and it does not move the cursor', () => {
    const stream = start();
    const es = FakeEventSource.latest();
    es.open();
    es.emit('message', { id: 'm1' }, '0-3');
    es.emit('presence', { online: 1234 });
    expect(handlers.onPresence).toHaveBeenLastCalledWith({ online: 1234, approximate: false });
    es.emit('presence', { online: 2, scope: 'instance' });
    expect(handlers.onPresence).toHaveBeenLastCalledWith({ online: 2, approximate: true });
    for (const bad of [{}, { online: null }, { online: '3' }, { online: -1 }, 'garbage']) es.emit('presence', bad);
    expect(handlers.onPresence).toHaveBeenCalledTimes(2);
    expect(stream.cursor).toBe('0-3');
  });

  it('resumes from a given cursor on its first connection', () => {
    start('4-100');
    expect(FakeEventSource.latest().url).toContain('?last_event_id=4-100');
  });

  it('ignores events from a closed source and stops reconnecting once closed', () => {
    const stream = start();
    const es = FakeEventSource.latest();
    es.fail(true);
    stream.close();
    vi.advanceTimersByTime(60_000);
    expect(FakeEventSource.instances).toHaveLength(1);
    es.emit('message', { id: 'late' }, '0-1');
    expect(handlers.onMessage).not.toHaveBeenCalled();
    expect(statuses.at(-1)).toBe('closed');
  });
});
