// The room hook's delivery of live events: many arriving together are applied in one state update (one
// render), in the order they came, with the same result as applying them one by one.

import { act, cleanup, render, waitFor } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { createApi, type Api } from './api';
import {
  applyDelete,
  applyEdit,
  applyReaction,
  receiveMessage,
  type MessageState,
} from './messages';
import { FakeEventSource } from './testing/fakeEventSource';
import type { DeleteEvent, EditEvent, LiveReaction, Message, User } from './types';
import { useRoom, type RoomController } from './useRoom';

const ROOM = '0190a0a0-0000-7000-8000-0000000000aa';
const alice: User = { id: 'u-alice', name: 'alice' };
const bob: User = { id: 'u-bob', name: 'bob' };

function message(n: number, text = `message ${n}`, reactions: Record<string, number> = {}): Message {
  return {
    id: `0190b0b0-0000-7000-8000-${String(n).padStart(12, '0')}`,
    room_id: ROOM,
    user: bob,
    text,
    at: new Date(Date.UTC(2025, 0, 1, 9, 0, n)).toISOString(),
    reactions,
  };
}

/** An API whose server holds `history` and accepts every reaction. */
function fakeApi(history: Message[]): Api {
  const fetch = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const path = new URL(String(input), 'http://app.test').pathname;
    const reply = (body: unknown, status = 200) =>
      new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', 'x-room-mode': 'throttled' } });
    if (path === `/api/rooms/${ROOM}`) return reply({ id: ROOM, name: 'lobby', created_at: '2025-01-01T00:00:00Z', mode: 'throttled' });
    if (path === `/api/rooms/${ROOM}/moderators`) return reply({ moderators: [] });
    if (path === `/api/rooms/${ROOM}/messages` && (init?.method ?? 'GET') === 'GET') return reply({ messages: history, mode: 'throttled' });
    if (path.includes('/reactions/')) return reply({}, 202);
    return reply({ error: { code: 'not_found', message: 'not found' } }, 404);
  });
  return createApi({ fetch, getToken: () => 'token', sleep: async () => {} });
}

/** Renders the hook, keeping the controller of every render. */
function renderRoom(api: Api) {
  const renders: RoomController[] = [];
  function Probe() {
    renders.push(useRoom(api, ROOM, 'http://events.test', alice));
    return null;
  }
  render(<Probe />);
  return { renders, current: () => renders[renders.length - 1] };
}

/** Resolves after the next frame, when the hook has applied the live events queued so far. */
const nextFrame = () => new Promise<void>((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));

/** Resolves after the tasks queued so far (React renders in one of its own, outside `act`). */
const nextTask = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** Animation frames that come when the test says. */
function manualFrames() {
  let callbacks: FrameRequestCallback[] = [];
  vi.stubGlobal('requestAnimationFrame', (cb: FrameRequestCallback) => callbacks.push(cb));
  vi.stubGlobal('cancelAnimationFrame', (id: number) => {
    callbacks[id - 1] = () => {};
  });
  return {
    run() {
      const due = callbacks;
      callbacks = [];
      due.forEach((cb) => cb(performance.now()));
    },
  };
}

/** Runs `fn` as the browser would: React renders on its own schedule, not when an `act` scope ends. */
async function outsideAct(fn: () => Promise<void>) {
  const g = globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean };
  const was = g.IS_REACT_ACT_ENVIRONMENT;
  g.IS_REACT_ACT_ENVIRONMENT = false;
  try {
    await fn();
  } finally {
    g.IS_REACT_ACT_ENVIRONMENT = was;
  }
}

type Live =
  | { type: 'message'; data: Message }
  | { type: 'reaction'; data: LiveReaction }
  | { type: 'edit'; data: EditEvent }
  | { type: 'delete'; data: DeleteEvent };

/** What the hook does with each event, one at a time. */
function applyOne(s: MessageState, event: Live): MessageState {
  switch (event.type) {
    case 'message':
      return receiveMessage(s, event.data, alice.id);
    case 'reaction':
      return applyReaction(s, event.data, alice.id);
    case 'edit':
      return applyEdit(s, event.data);
    case 'delete':
      return applyDelete(s, event.data.message_id);
  }
}

describe('useRoom live delivery', () => {
  beforeEach(() => {
    FakeEventSource.instances = [];
    vi.stubGlobal('EventSource', FakeEventSource);
    localStorage.clear();
  });
  afterEach(() => {
    cleanup();
    vi.unstubAllGlobals();
  });

  async function openRoom(history: Message[]) {
    const room = renderRoom(fakeApi(history));
    const es = FakeEventSource.latest();
    act(() => es.open());
    await waitFor(() => expect(room.current().messages.items).toHaveLength(history.length));
    await waitFor(() => expect(room.current().mode).toBe('throttled'));
    return { ...room, es };
  }

  it('applies a burst of events delivered together in one update, equal to applying them one by one', async () => {
    const { renders, current, es } = await openRoom([message(1, 'first', { '👍': 1 }), message(2, 'second')]);
    const before = current().messages;
    const rendersBefore = renders.length;

    const events: Live[] = [];
    for (let n = 10; n < 40; n++) events.push({ type: 'message', data: message(n) });
    events.push(
      { type: 'reaction', data: { message_id: message(1).id, emoji: '🎉', user: bob, op: 'added' } },
      { type: 'reaction', data: { message_id: message(1).id, counts: { '👍': 12, '🎉': 3 } } },
      { type: 'reaction', data: { message_id: message(2).id, emoji: '👍', user: bob, op: 'added', count: 1 } },
      // An edit of a message in this very burst, then its delete, then a reaction that comes too late.
      { type: 'edit', data: { ...message(12), text: 'edited', edited_at: '2025-01-01T10:00:00Z' } },
      { type: 'reaction', data: { message_id: message(13).id, counts: { '😂': 2 } } },
      { type: 'delete', data: { message_id: message(11).id, by: bob } },
      { type: 'reaction', data: { message_id: message(11).id, counts: { '👍': 5 } } },
      // An edit before its message, which then comes with the old text.
      { type: 'edit', data: { ...message(50), text: 'edited first', edited_at: '2025-01-01T10:00:00Z' } },
      { type: 'message', data: message(50) },
    );

    const frames = manualFrames();
    await outsideAct(async () => {
      // One network chunk: the browser dispatches each event as its own task (React could render between).
      for (const [i, e] of events.entries()) {
        es.emit(e.type, e.data, `0-${100 + i}`);
        await nextTask();
      }
      expect(renders.length).toBe(rendersBefore);
      frames.run();
      await waitFor(() => expect(renders.length).toBeGreaterThan(rendersBefore));
      await nextTask();
    });

    expect(renders.length).toBe(rendersBefore + 1);
    const after = current().messages;
    expect(after).toEqual(events.reduce(applyOne, before));
    // It did get them all.
    expect(after.items).toHaveLength(2 + 30 - 1 + 1);
    expect(after.items[0].reactions).toEqual({ '👍': 12, '🎉': 3 });
    expect(after.items.find((m) => m.id === message(12).id)?.text).toBe('edited');
    expect(after.items.find((m) => m.id === message(50).id)?.text).toBe('edited first');
    expect(after.items.some((m) => m.id === message(11).id)).toBe(false);
  });

  it('applies a click after the events received before it, in the same update', async () => {
    const { renders, current, es } = await openRoom([message(1, 'first', { '👍': 1 })]);
    const rendersBefore = renders.length;
    act(() => {
      es.emit('reaction', { message_id: message(1).id, counts: { '👍': 5 } }, '0-1');
      current().toggleReaction(message(1).id, '👍');
    });
    // The click counts from the server's 5, not from the 1 shown when the event came.
    expect(renders.length).toBe(rendersBefore + 1);
    expect(current().messages.items[0]).toMatchObject({ reactions: { '👍': 6 }, mine: ['👍'] });
    // Nothing is left for the frame.
    await act(nextFrame);
    expect(renders.length).toBe(rendersBefore + 1);
  });

  it('keeps a pending click pressed through counts events, showing the server’s counts', async () => {
    const { current, es } = await openRoom([message(1, 'first', { '👍': 1 })]);
    act(() => current().toggleReaction(message(1).id, '👍'));
    expect(current().messages.items[0]).toMatchObject({ reactions: { '👍': 2 }, mine: ['👍'] });
    // A batch cut before the server saw the click, then one with it.
    await act(async () => {
      es.emit('reaction', { message_id: message(1).id, counts: { '👍': 1, '🎉': 4 } }, '0-1');
      await nextFrame();
    });
    expect(current().messages.items[0]).toMatchObject({ reactions: { '👍': 1, '🎉': 4 }, mine: ['👍'] });
    await act(async () => {
      es.emit('reaction', { message_id: message(1).id, counts: { '👍': 2, '🎉': 4 } }, '0-2');
      await nextFrame();
    });
    expect(current().messages.items[0]).toMatchObject({ reactions: { '👍': 2, '🎉': 4 }, mine: ['👍'] });
    expect(current().messages.items[0].pendingReactions?.['👍']).toMatchObject({ prevCount: 2 });
  });

  it('drops the events of a room left before they were applied', async () => {
    const { current, es } = await openRoom([message(1)]);
    act(() => es.emit('message', message(2), '0-1'));
    cleanup();
    await act(nextFrame);
    // Unmounted: the last render still shows only what was applied.
    expect(current().messages.items).toHaveLength(1);
  });
});
