import { act, cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { createApi } from '../api';
import { FakeEventSource } from '../testing/fakeEventSource';
import type { Message, User } from '../types';
import { RoomView } from './RoomView';

const ROOM = '0190a0a0-0000-7000-8000-0000000000aa';
const alice: User = { id: 'u-alice', name: 'alice' };
const bob: User = { id: 'u-bob', name: 'bob' };
const slow = { timeout: 3000 };

let seq = 0;
function message(user: User, text: string, reactions: Record<string, number> = {}): Message {
  seq += 1;
  return {
    id: `0190b0b0-0000-7000-8000-${String(seq).padStart(12, '0')}`,
    room_id: ROOM,
    user,
    text,
    at: new Date(Date.UTC(2025, 0, 1, 9, 0, seq)).toISOString(),
    reactions,
  };
}

/** A chat-server in memory: history, posts and reactions, with every call recorded. */
function fakeServer() {
  const history: Message[] = [];
  const calls: { method: string; path: string }[] = [];
  let mode = 'normal';
  let posted: ((m: Message) => void) | null = null;
  const fetch = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input), 'http://app.test');
    const method = init?.method ?? 'GET';
    calls.push({ method, path: url.pathname + url.search });
    const reply = (status: number, body?: unknown) =>
      new Response(body === undefined ? null : JSON.stringify(body), {
        status,
        headers: { 'content-type': 'application/json', 'x-room-mode': mode },
      });
    if (url.pathname === `/api/rooms/${ROOM}` && method === 'GET') {
      return reply(200, { id: ROOM, name: 'lobby', created_at: '2025-01-01T00:00:00Z', mode });
    }
    if (url.pathname === `/api/rooms/${ROOM}/messages` && method === 'GET') {
      return reply(200, { messages: history.slice(-50), mode });
    }
    if (url.pathname === `/api/rooms/${ROOM}/messages` && method === 'POST') {
      const { text } = JSON.parse(String(init?.body));
      const m = message(alice, text);
      history.push(m);
      posted?.(m);
      return reply(201, m);
    }
    if (url.pathname.includes('/reactions/')) return reply(202, {});
    return reply(404, { error: { code: 'not_found', message: 'route not found' } });
  });
  return {
    history,
    calls,
    fetch,
    setMode: (m: string) => (mode = m),
    onPost: (f: (m: Message) => void) => (posted = f),
    messageFetches: () => calls.filter((c) => c.method === 'GET' && c.path.startsWith(`/api/rooms/${ROOM}/messages`)).length,
  };
}

function renderRoom(server: ReturnType<typeof fakeServer>) {
  const api = createApi({ fetch: server.fetch, getToken: () => 'token', sleep: async () => {} });
  return render(<RoomView api={api} roomId={ROOM} eventsBaseUrl="http://events.test" me={alice} />);
}

async function openStream() {
  const es = FakeEventSource.latest();
  act(() => es.open());
  return es;
}

const items = () => within(screen.getByRole('list', { name: 'Messages' })).queryAllByRole('listitem');

describe('RoomView', () => {
  beforeEach(() => {
    FakeEventSource.instances = [];
    vi.stubGlobal('EventSource', FakeEventSource);
    localStorage.clear();
  });
  afterEach(() => {
    cleanup();
    vi.unstubAllGlobals();
  });

  it('loads the history once the stream is open and shows messages, counts and the status', async () => {
    const server = fakeServer();
    server.history.push(message(bob, 'hi there', { '👍': 2 }), message(alice, 'hello bob'));
    renderRoom(server);
    expect(FakeEventSource.instances).toHaveLength(1);
    expect(FakeEventSource.latest().url).toBe(`http://events.test/api/rooms/${ROOM}/events`);
    expect(screen.getByText('Connecting…')).toBeTruthy();
    await openStream();
    await waitFor(() => expect(items()).toHaveLength(2));
    expect(screen.getByText('Live')).toBeTruthy();
    expect(items()[0].textContent).toContain('hi there');
    expect(screen.getAllByRole('button', { name: 'React 👍 2' })).toHaveLength(1);
    expect(screen.getByRole('heading', { name: /lobby/ })).toBeTruthy();
  });

  it('shows live messages and reactions from others', async () => {
    const server = fakeServer();
    const first = message(bob, 'first');
    server.history.push(first);
    renderRoom(server);
    const es = await openStream();
    await waitFor(() => expect(items()).toHaveLength(1));
    act(() => es.emit('message', message(bob, 'second'), '0-1'));
    expect(items()).toHaveLength(2);
    act(() => es.emit('reaction', { message_id: first.id, emoji: '🎉', user: bob, op: 'added', count: 1 }, '0-2'));
    expect(screen.getByRole('button', { name: 'React 🎉 1' })).toBeTruthy();
  });

  it('sends with Enter, shows the message at once, and shows it once after both copies arrive', async () => {
    const server = fakeServer();
    renderRoom(server);
    const es = await openStream();
    await waitFor(() => expect(screen.getByText('No messages yet. Say hello!')).toBeTruthy());
    // The live copy arrives before the POST's answer.
    server.onPost((m) => es.emit('message', m, '0-3'));
    const box = screen.getByRole('textbox', { name: 'Message' });
    fireEvent.change(box, { target: { value: 'hello room' } });
    fireEvent.keyDown(box, { key: 'Enter' });
    expect(items()).toHaveLength(1);
    expect(items()[0].textContent).toContain('hello room');
    await waitFor(() => expect(server.calls.some((c) => c.method === 'POST')).toBe(true));
    await waitFor(() => expect(items()[0].textContent).not.toContain('Sending'));
    expect(items()).toHaveLength(1);
    expect((box as HTMLTextAreaElement).value).toBe('');
  });

  it('does not send on Shift+Enter', async () => {
    const server = fakeServer();
    renderRoom(server);
    await openStream();
    const box = screen.getByRole('textbox', { name: 'Message' });
    fireEvent.change(box, { target: { value: 'line one' } });
    fireEvent.keyDown(box, { key: 'Enter', shiftKey: true });
    expect(items()).toHaveLength(0);
    fireEvent.click(screen.getByRole('button', { name: 'Send' }));
    expect(items()).toHaveLength(1);
  });

  it('refetches the history on reset', async () => {
    const server = fakeServer();
    server.history.push(message(bob, 'before'));
    renderRoom(server);
    const es = await openStream();
    await waitFor(() => expect(items()).toHaveLength(1));
    const fetches = server.messageFetches();
    // Missed while disconnected:
    server.history.push(message(bob, 'missed one'), message(bob, 'missed two'));
    act(() => es.emit('reset', { reason: 'resume_unavailable' }));
    await waitFor(() => expect(items()).toHaveLength(3), slow);
    expect(server.messageFetches()).toBe(fetches + 1);
    expect(items().map((li) => li.querySelector('.msg__text')?.textContent)).toEqual(['before', 'missed one', 'missed two']);
  });

  it('shows reconnecting, and the busy notice in throttled mode', async () => {
    const server = fakeServer();
    renderRoom(server);
    const es = await openStream();
    act(() => es.fail(false));
    expect(screen.getByText('Reconnecting…')).toBeTruthy();
    act(() => es.open());
    expect(screen.getByText('Live')).toBeTruthy();
    expect(screen.queryByText(/This room is busy/)).toBeNull();
    act(() => es.emit('mode', { mode: 'throttled' }, '1-1'));
    expect(screen.getByText(/This room is busy/)).toBeTruthy();
    act(() => es.emit('mode', { mode: 'normal' }, '1-2'));
    expect(screen.queryByText(/This room is busy/)).toBeNull();
  });

  it('reacts optimistically and takes the count from the event', async () => {
    const server = fakeServer();
    const m = message(bob, 'react to me', { '👍': 1 });
    server.history.push(m);
    renderRoom(server);
    const es = await openStream();
    await waitFor(() => expect(items()).toHaveLength(1));
    fireEvent.click(screen.getByRole('button', { name: 'React 👍 1' }));
    const pressed = screen.getByRole('button', { name: 'React 👍 2' });
    expect(pressed.getAttribute('aria-pressed')).toBe('true');
    await waitFor(() =>
      expect(server.calls).toContainEqual({ method: 'PUT', path: `/api/rooms/${ROOM}/messages/${m.id}/reactions/%F0%9F%91%8D` }),
    );
    act(() => es.emit('reaction', { message_id: m.id, emoji: '👍', user: alice, op: 'added', count: 3 }, '0-9'));
    expect(screen.getByRole('button', { name: 'React 👍 3' }).getAttribute('aria-pressed')).toBe('true');
    // A second click removes it.
    fireEvent.click(screen.getByRole('button', { name: 'React 👍 3' }));
    await waitFor(() => expect(server.calls.some((c) => c.method === 'DELETE')).toBe(true));
  });
});
