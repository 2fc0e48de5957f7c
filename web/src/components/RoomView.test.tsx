import { act, cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { createApi, type Api } from '../api';
import { FakeEventSource } from '../testing/fakeEventSource';
import type { Ban, Message, User } from '../types';
import { formatTime } from '../time';
import { RoomView } from './RoomView';

const ROOM = '0190a0a0-0000-7000-8000-0000000000aa';
const alice: User = { id: 'u-alice', name: 'alice' };
const bob: User = { id: 'u-bob', name: 'bob' };
const carol: User = { id: 'u-carol', name: 'carol' };
const dave: User = { id: 'u-dave', name: 'dave' };
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

/**
 * A chat-server in memory: history, posts, reactions and moderation, with every call recorded.
 * `refusePost` makes the next posts fail with the given status, error and headers.
 */
function fakeServer() {
  const history: Message[] = [];
  const calls: { method: string; path: string }[] = [];
  const bodies: { method: string; path: string; body: unknown }[] = [];
  const room: { owner: User; slow_mode_secs: number; online?: number | null } = { owner: carol, slow_mode_secs: 0 };
  const moderators: { user_id: string; since: string }[] = [];
  // Bans in force, newest first.
  const bans: Ban[] = [];
  // `${method} ${path}` → the error that call answers from then on.
  const refusals = new Map<string, { status: number; error: Record<string, unknown> }>();
  const deleted = new Set<string>();
  let refusal: { status: number; error: Record<string, unknown>; headers?: Record<string, string> } | null = null;
  // Calls with this method on a message answer this error from then on.
  const messageErrors = new Map<string, { status: number; error: Record<string, unknown> }>();
  let mode = 'normal';
  let posted: ((m: Message) => void) | null = null;
  const fetch = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input), 'http://app.test');
    const method = init?.method ?? 'GET';
    calls.push({ method, path: url.pathname + url.search });
    const body = init?.body === undefined ? undefined : JSON.parse(String(init.body));
    if (method !== 'GET') bodies.push({ method, path: url.pathname, body });
    const reply = (status: number, body?: unknown, headers: Record<string, string> = {}) =>
      new Response(body === undefined ? null : JSON.stringify(body), {
        status,
        headers: { 'content-type': 'application/json', 'x-room-mode': mode, ...headers },
      });
    const roomJson = () => ({ id: ROOM, name: 'lobby', created_at: '2025-01-01T00:00:00Z', ...room });
    const messagePath = new RegExp(`^/api/rooms/${ROOM}/messages/([^/]+)$`).exec(url.pathname);
    const refused = refusals.get(`${method} ${url.pathname}`);
    if (refused) return reply(refused.status, { error: refused.error });
    const userPath = new RegExp(`^/api/rooms/${ROOM}/(moderators|bans)/([^/]+)$`).exec(url.pathname);
    const without = (list: { user_id: string }[], id: string) => {
      const at = list.findIndex((x) => x.user_id === id);
      if (at >= 0) list.splice(at, 1);
    };
    if (url.pathname === `/api/rooms/${ROOM}` && method === 'GET') return reply(200, { ...roomJson(), mode });
    if (url.pathname === `/api/rooms/${ROOM}` && method === 'PATCH') {
      room.slow_mode_secs = body.slow_mode_secs;
      return reply(200, roomJson());
    }
    if (url.pathname === `/api/rooms/${ROOM}/moderators`) return reply(200, { moderators: [...moderators] });
    if (url.pathname === `/api/rooms/${ROOM}/bans`) return reply(200, { bans: [...bans] });
    if (userPath?.[1] === 'moderators' && method === 'PUT') {
      moderators.push({ user_id: userPath[2], since: new Date().toISOString() });
      return reply(202, { user_id: userPath[2] });
    }
    if (userPath?.[1] === 'moderators' && method === 'DELETE') {
      without(moderators, userPath[2]);
      return reply(202, { user_id: userPath[2] });
    }
    if (userPath?.[1] === 'bans' && method === 'PUT') {
      const until = body.seconds === null ? null : new Date(Date.now() + body.seconds * 1000).toISOString();
      const ban = { user_id: userPath[2], until, reason: body.reason, by: alice, at: new Date().toISOString() };
      bans.unshift(ban);
      return reply(202, ban);
    }
    if (userPath?.[1] === 'bans' && method === 'DELETE') {
      without(bans, userPath[2]);
      return reply(202, { user_id: userPath[2] });
    }
    const messageError = messagePath && messageErrors.get(method);
    if (messageError) return reply(messageError.status, { error: messageError.error });
    if (messagePath && method === 'PATCH') {
      const m = history.find((h) => h.id === messagePath[1]);
      if (!m) return reply(404, { error: { code: 'not_found', message: 'no such message' } });
      Object.assign(m, { text: body.text, edited_at: '2025-01-01T10:00:00Z' });
      return reply(200, m);
    }
    if (messagePath && method === 'DELETE') {
      deleted.add(messagePath[1]);
      return reply(202, { message_id: messagePath[1], by: alice });
    }
    if (url.pathname === `/api/rooms/${ROOM}/messages` && method === 'GET') {
      return reply(200, { messages: history.slice(-50), mode });
    }
    if (url.pathname === `/api/rooms/${ROOM}/messages` && method === 'POST') {
      if (refusal) return reply(refusal.status, { error: refusal.error }, refusal.headers);
      const { text } = body;
      const m = message(alice, text);
      history.push(m);
      posted?.(m);
      return reply(201, m);
    }
    if (url.pathname.includes('/reactions/')) {
      if (deleted.has(url.pathname.split('/')[5])) return reply(404, { error: { code: 'not_found', message: 'no such message' } });
      return reply(202, {});
    }
    return reply(404, { error: { code: 'not_found', message: 'route not found' } });
  });
  return {
    history,
    calls,
    bodies,
    room,
    moderators,
    bans,
    fetch,
    refuse: (method: string, path: string, status: number, code: string) =>
      refusals.set(`${method} ${path}`, { status, error: { code, message: code } }),
    refusePost: (r: typeof refusal) => (refusal = r),
    refuseOnMessages: (method: string, status: number, code: string) => messageErrors.set(method, { status, error: { code, message: code } }),
    setMode: (m: string) => (mode = m),
    onPost: (f: (m: Message) => void) => (posted = f),
    messageFetches: () => calls.filter((c) => c.method === 'GET' && c.path.startsWith(`/api/rooms/${ROOM}/messages`)).length,
  };
}

function renderRoom(server: ReturnType<typeof fakeServer>, me: User = alice, wrap: (api: Api) => Api = (api) => api) {
  const api = wrap(createApi({ fetch: server.fetch, getToken: () => 'token', sleep: async () => {} }));
  return render(<RoomView api={api} roomId={ROOM} eventsBaseUrl="http://events.test" me={me} />);
}

async function openStream() {
  const es = FakeEventSource.latest();
  act(() => es.open());
  return es;
}

/** Resolves after the next frame, when the room has applied the live events queued so far (see liveQueue.ts). */
const nextFrame = () => new Promise<void>((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));

/** Emits live events (all of them as one network chunk) and lets the room apply them. */
async function deliver(emit: () => void) {
  await act(async () => {
    emit();
    await nextFrame();
  });
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
    // The session token goes in the query: EventSource cannot send an authorization header.
    expect(FakeEventSource.latest().url).toBe(`http://events.test/api/rooms/${ROOM}/events?token=token`);
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
    await deliver(() => es.emit('message', message(bob, 'second'), '0-1'));
    expect(items()).toHaveLength(2);
    await deliver(() => es.emit('reaction', { message_id: first.id, emoji: '🎉', user: bob, op: 'added', count: 1 }, '0-2'));
    expect(screen.getByRole('button', { name: 'React 🎉 1' })).toBeTruthy();
  });

  it('shows a throttled room’s complete counts in place of the message’s reactions', async () => {
    const server = fakeServer();
    const m = message(bob, 'busy', { '👍': 2, '😂': 1 });
    server.history.push(m);
    renderRoom(server);
    const es = await openStream();
    await waitFor(() => expect(items()).toHaveLength(1));
    await deliver(() => es.emit('reaction', { message_id: m.id, counts: { '👍': 12, '🎉': 3 } }, '0-5'));
    expect(screen.getByRole('button', { name: 'React 👍 12' })).toBeTruthy();
    expect(screen.getByRole('button', { name: 'React 🎉 3' })).toBeTruthy();
    expect(screen.queryByRole('button', { name: /React 😂 \d/ })).toBeNull();
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

  it('shows the audience from the room’s JSON until a presence event, which then updates it', async () => {
    const server = fakeServer();
    server.room.online = 1234;
    renderRoom(server);
    const header = () => screen.getByRole('banner');
    await waitFor(() => expect(within(header()).getByText('1,234 watching')).toBeTruthy());
    const es = await openStream();
    act(() => es.emit('presence', { online: 1 }));
    expect(within(header()).getByText('1 watching')).toBeTruthy();
    expect(within(header()).queryByText('1,234 watching')).toBeNull();
    act(() => es.emit('presence', { online: 5 }));
    expect(within(header()).getByText('5 watching').title).not.toContain('this server only');
  });

  it('marks a count from this server only as approximate', async () => {
    const server = fakeServer();
    renderRoom(server);
    const es = await openStream();
    act(() => es.emit('presence', { online: 2, scope: 'instance' }));
    const badge = within(screen.getByRole('banner')).getByText('≥ 2 watching');
    expect(badge.title).toBe('count from this server only');
  });

  it('shows no audience while the server does not know it', async () => {
    const server = fakeServer();
    server.room.online = null;
    renderRoom(server);
    await openStream();
    await waitFor(() => expect(screen.getByRole('heading', { name: /lobby/ })).toBeTruthy());
    expect(screen.queryByText(/watching/)).toBeNull();
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
    await deliver(() => es.emit('reaction', { message_id: m.id, emoji: '👍', user: alice, op: 'added', count: 3 }, '0-9'));
    expect(screen.getByRole('button', { name: 'React 👍 3' }).getAttribute('aria-pressed')).toBe('true');
    // A second click removes it.
    fireEvent.click(screen.getByRole('button', { name: 'React 👍 3' }));
    await waitFor(() => expect(server.calls.some((c) => c.method === 'DELETE')).toBe(true));
  });
});

describe('RoomView moderation', () => {
  beforeEach(() => {
    FakeEventSource.instances = [];
    vi.stubGlobal('EventSource', FakeEventSource);
    localStorage.clear();
  });
  afterEach(() => {
    cleanup();
    vi.unstubAllGlobals();
    // The slow-mode test moves the clock.
    vi.useRealTimers();
  });

  const item = (text: string) => items().find((li) => li.textContent?.includes(text))!;
  const actionsOf = (text: string) => within(item(text)).queryByRole('button', { name: 'Message actions' });
  const menuItems = () => screen.getAllByRole('menuitem').map((el) => el.textContent);

  /** Opens the room as `me` with `texts` by their authors, waits for the history and the room (its owner). */
  async function open(server: ReturnType<typeof fakeServer>, me: User, ...posts: [User, string][]) {
    return openWith(server, me, (api) => api, ...posts);
  }

  async function openWith(server: ReturnType<typeof fakeServer>, me: User, wrap: (api: Api) => Api, ...posts: [User, string][]) {
    for (const [user, text] of posts) server.history.push(message(user, text));
    renderRoom(server, me, wrap);
    const es = await openStream();
    await waitFor(() => expect(items()).toHaveLength(posts.length));
    await waitFor(() => expect(server.calls.some((c) => c.path === `/api/rooms/${ROOM}/moderators`)).toBe(true));
    await waitFor(() => expect(screen.getByRole('heading', { name: /lobby/ })).toBeTruthy());
    return es;
  }

  it('gives a member Edit and Delete on their own messages and no menu on others’', async () => {
    const server = fakeServer();
    await open(server, alice, [bob, 'from bob'], [alice, 'from alice']);
    expect(actionsOf('from bob')).toBeNull();
    fireEvent.click(actionsOf('from alice')!);
    expect(menuItems()).toEqual(['Edit', 'Delete']);
    expect(screen.queryByRole('combobox', { name: 'Slow mode' })).toBeNull();
  });

  it('gives the owner Delete and Ban on others’ messages, but no ban on their own', async () => {
    const server = fakeServer();
    server.room.owner = alice;
    await open(server, alice, [bob, 'from bob'], [alice, 'from alice']);
    await waitFor(() => expect(actionsOf('from bob')).not.toBeNull());
    fireEvent.click(actionsOf('from bob')!);
    expect(menuItems()).toEqual(['Delete', 'Ban author for 10 minutes', 'Ban author for 1 hour', 'Ban author for good', 'Make moderator']);
    fireEvent.click(actionsOf('from bob')!);
    fireEvent.click(actionsOf('from alice')!);
    expect(menuItems()).toEqual(['Edit', 'Delete']);
    expect(screen.getByRole('combobox', { name: 'Slow mode' })).toBeTruthy();
  });

  it('gives a moderator no actions on the owner’s messages, and Delete and ban on others’', async () => {
    const server = fakeServer();
    server.moderators.push({ user_id: alice.id, since: '2025-01-01T00:00:00Z' });
    await open(server, alice, [carol, 'from the owner'], [bob, 'from bob']);
    await waitFor(() => expect(actionsOf('from bob')).not.toBeNull());
    expect(actionsOf('from the owner')).toBeNull();
    fireEvent.click(actionsOf('from bob')!);
    expect(menuItems()).toContain('Delete');
    expect(menuItems()).toContain('Ban author for 10 minutes');
  });

  it('opens the menu from the keyboard and closes it with Escape, focus back on the button', async () => {
    const server = fakeServer();
    await open(server, alice, [alice, 'mine']);
    const button = actionsOf('mine')!;
    expect(button.getAttribute('aria-haspopup')).toBe('menu');
    expect(button.getAttribute('aria-expanded')).toBe('false');
    fireEvent.keyDown(button, { key: 'ArrowDown' });
    expect(button.getAttribute('aria-expanded')).toBe('true');
    await waitFor(() => expect(document.activeElement?.textContent).toBe('Edit'));
    fireEvent.keyDown(document.activeElement!, { key: 'ArrowDown' });
    expect(document.activeElement?.textContent).toBe('Delete');
    fireEvent.keyDown(document.activeElement!, { key: 'ArrowDown' });
    expect(document.activeElement?.textContent).toBe('Edit');
    fireEvent.keyDown(document.activeElement!, { key: 'Escape' });
    expect(screen.queryByRole('menu')).toBeNull();
    expect(button.getAttribute('aria-expanded')).toBe('false');
    expect(document.activeElement).toBe(button);
  });

  it('edits a message in place and marks it edited; an edit event does the same for others', async () => {
    const server = fakeServer();
    const es = await open(server, alice, [bob, 'bob said'], [alice, 'helo']);
    fireEvent.click(actionsOf('helo')!);
    fireEvent.click(screen.getByRole('menuitem', { name: 'Edit' }));
    const editor = screen.getByRole('textbox', { name: 'Edit message' });
    fireEvent.change(editor, { target: { value: 'hello' } });
    fireEvent.keyDown(editor, { key: 'Enter' });
    await waitFor(() => expect(item('hello').textContent).toContain('(edited)'));
    expect(screen.queryByRole('textbox', { name: 'Edit message' })).toBeNull();
    const mine = server.history[1];
    expect(server.bodies).toContainEqual({ method: 'PATCH', path: `/api/rooms/${ROOM}/messages/${mine.id}`, body: { text: 'hello' } });

    const bobs = server.history[0];
    await deliver(() => es.emit('edit', { ...bobs, text: 'bob meant this', edited_at: '2025-01-01T10:00:05Z', reactions: undefined }, '0-20'));
    expect(item('bob meant this').textContent).toContain('(edited)');
    expect(items()).toHaveLength(2);
  });

  it('deletes through the menu, and a delete event removes a message for everyone', async () => {
    const server = fakeServer();
    server.room.owner = alice;
    const es = await open(server, alice, [bob, 'spam'], [bob, 'also spam'], [alice, 'ok']);
    await waitFor(() => expect(actionsOf('also spam')).not.toBeNull());
    fireEvent.click(actionsOf('also spam')!);
    fireEvent.click(screen.getByRole('menuitem', { name: 'Delete' }));
    await waitFor(() => expect(items()).toHaveLength(2));
    expect(server.calls).toContainEqual({ method: 'DELETE', path: `/api/rooms/${ROOM}/messages/${server.history[1].id}` });
    await deliver(() => es.emit('delete', { message_id: server.history[0].id, by: alice }, '0-21'));
    expect(items().map((li) => li.querySelector('.msg__text')?.textContent)).toEqual(['ok']);
  });

  it('bans the author and says so to the moderator', async () => {
    const server = fakeServer();
    server.room.owner = alice;
    await open(server, alice, [bob, 'buy my stuff']);
    await waitFor(() => expect(actionsOf('buy my stuff')).not.toBeNull());
    fireEvent.click(actionsOf('buy my stuff')!);
    fireEvent.click(screen.getByRole('menuitem', { name: 'Ban author for 10 minutes' }));
    await waitFor(() => expect(screen.getByText('bob is banned from this room for 10 minutes.')).toBeTruthy());
    const ban = server.bodies.find((b) => b.method === 'PUT');
    expect(ban?.path).toBe(`/api/rooms/${ROOM}/bans/${bob.id}`);
    expect(ban?.body).toMatchObject({ seconds: 600, reason: expect.stringContaining('buy my stuff') });
  });

  it('tells a banned user until when, or that it is for good, instead of a generic error', async () => {
    const server = fakeServer();
    await open(server, alice);
    const until = new Date(Date.now() + 10 * 60_000).toISOString();
    server.refusePost({ status: 403, error: { code: 'banned', message: 'you are banned', until } });
    const box = screen.getByRole('textbox', { name: 'Message' });
    fireEvent.change(box, { target: { value: 'let me in' } });
    fireEvent.keyDown(box, { key: 'Enter' });
    const alert = await screen.findByText(`You are banned from this room until ${formatTime(until)}.`);
    expect(alert.closest('[role="alert"]')).toBeTruthy();
    expect(screen.queryByText(/Message not sent/)).toBeNull();
    expect(item('let me in').textContent).toContain('Not sent');

    server.refusePost({ status: 403, error: { code: 'banned', message: 'you are banned', until: null } });
    fireEvent.click(within(item('let me in')).getByRole('button', { name: 'Retry' }));
    await screen.findByText('You are banned from this room for good.');
  });

  it('explains a refusal for want of a role, and reloads the moderators (no longer one)', async () => {
    const server = fakeServer();
    server.moderators.push({ user_id: alice.id, since: '2025-01-01T00:00:00Z' });
    await open(server, alice, [bob, 'rude']);
    await waitFor(() => expect(actionsOf('rude')).not.toBeNull());
    // The owner removed alice as a moderator meanwhile.
    server.moderators.length = 0;
    server.refuseOnMessages('DELETE', 403, 'forbidden');
    fireEvent.click(actionsOf('rude')!);
    fireEvent.click(screen.getByRole('menuitem', { name: 'Delete' }));
    expect((await screen.findByRole('alert')).textContent).toContain('You are not allowed to do that in this room.');
    await waitFor(() => expect(actionsOf('rude')).toBeNull());
    expect(items()).toHaveLength(1);
  });

  it('explains an edit of a message deleted meanwhile', async () => {
    const server = fakeServer();
    const es = await open(server, alice, [alice, 'about to go']);
    // A moderator deleted it: the edit answers 404 (as for a message not projected yet, so it is
    // tried again) until the delete event comes.
    server.refuseOnMessages('PATCH', 404, 'not_found');
    fireEvent.click(actionsOf('about to go')!);
    fireEvent.click(screen.getByRole('menuitem', { name: 'Edit' }));
    const editor = screen.getByRole('textbox', { name: 'Edit message' });
    fireEvent.change(editor, { target: { value: 'changed my mind' } });
    fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(server.calls.some((c) => c.method === 'PATCH')).toBe(true));
    await deliver(() => es.emit('delete', { message_id: server.history[0].id, by: carol }, '0-50'));
    expect(items()).toHaveLength(0);
    expect((await screen.findByRole('alert')).textContent).toContain('This message was deleted.');
  });

  it('in slow mode, keeps the draft and counts down until the user may post again', async () => {
    const server = fakeServer();
    server.room.slow_mode_secs = 30;
    await open(server, alice);
    expect(screen.getByText('Slow mode: one message every 30 s')).toBeTruthy();
    server.refusePost({ status: 429, error: { code: 'slow_mode', message: 'slow mode' }, headers: { 'retry-after': '30' } });
    const box = screen.getByRole('textbox', { name: 'Message' }) as HTMLTextAreaElement;
    fireEvent.change(box, { target: { value: 'too soon' } });
    fireEvent.keyDown(box, { key: 'Enter' });
    await screen.findByText('Slow mode: you can post again in 30 s');
    await waitFor(() => expect(box.value).toBe('too soon'));
    expect(items()).toHaveLength(0);
    expect(screen.getByRole('button', { name: 'Send' }).hasAttribute('disabled')).toBe(true);
    // Enter does not send while waiting.
    fireEvent.keyDown(box, { key: 'Enter' });
    expect(server.calls.filter((c) => c.method === 'POST')).toHaveLength(1);
    // The clock moves on: the countdown follows, and ends.
    vi.setSystemTime(Date.now() + 12_000);
    await screen.findByText('Slow mode: you can post again in 18 s');
    vi.setSystemTime(Date.now() + 18_000);
    await waitFor(() => expect(screen.queryByText(/you can post again/)).toBeNull());
    expect(screen.getByRole('button', { name: 'Send' }).hasAttribute('disabled')).toBe(false);
  });

  it('in slow mode, counts down after a post of a member but not of the owner (exempt)', async () => {
    const server = fakeServer();
    server.room.slow_mode_secs = 10;
    await open(server, alice);
    const box = screen.getByRole('textbox', { name: 'Message' });
    fireEvent.change(box, { target: { value: 'first' } });
    fireEvent.keyDown(box, { key: 'Enter' });
    await screen.findByText('Slow mode: you can post again in 10 s');
    expect(screen.getByRole('button', { name: 'Send' }).hasAttribute('disabled')).toBe(true);
    cleanup();

    const owned = fakeServer();
    owned.room.owner = alice;
    owned.room.slow_mode_secs = 10;
    await open(owned, alice);
    await screen.findByRole('combobox', { name: 'Slow mode' });
    const ownerBox = screen.getByRole('textbox', { name: 'Message' });
    fireEvent.change(ownerBox, { target: { value: 'from the owner' } });
    fireEvent.keyDown(ownerBox, { key: 'Enter' });
    await waitFor(() => expect(item('from the owner').textContent).not.toContain('Sending'));
    expect(screen.queryByText(/you can post again/)).toBeNull();
  });

  it('lets the owner set slow mode, and shows everyone the notice from the room event', async () => {
    const server = fakeServer();
    server.room.owner = alice;
    const es = await open(server, alice);
    const select = await screen.findByRole('combobox', { name: 'Slow mode' });
    expect(screen.queryByText(/Slow mode: one message every/)).toBeNull();
    fireEvent.change(select, { target: { value: '10' } });
    await screen.findByText('Slow mode: one message every 10 s');
    expect(server.bodies).toContainEqual({ method: 'PATCH', path: `/api/rooms/${ROOM}`, body: { slow_mode_secs: 10 } });
    expect((select as HTMLSelectElement).value).toBe('10');
    act(() => es.emit('room', { id: ROOM, name: 'lobby', created_at: '2025-01-01T00:00:00Z', owner: alice, slow_mode_secs: 0 }, '0-30'));
    expect(screen.queryByText(/Slow mode: one message every/)).toBeNull();
    expect((select as HTMLSelectElement).value).toBe('0');
  });

  describe('the moderation panel and roles', () => {
    const moderator = (user: User) => ({ user_id: user.id, since: '2025-01-01T00:00:00Z' });
    const toggle = () => screen.queryByRole('button', { name: 'Moderation' });
    const panelList = (name: string) => within(screen.getByRole('region', { name: 'Moderation' })).queryByRole('list', { name });
    const rows = (name: string) => (panelList(name) ? within(panelList(name)!).getAllByRole('listitem') : []);
    const fetches = (server: ReturnType<typeof fakeServer>, list: string) =>
      server.calls.filter((c) => c.method === 'GET' && c.path === `/api/rooms/${ROOM}/${list}`).length;

    it('is shown to the owner and moderators only', async () => {
      const member = fakeServer();
      await open(member, alice, [bob, 'hi']);
      expect(toggle()).toBeNull();
      cleanup();

      const owned = fakeServer();
      owned.room.owner = alice;
      await open(owned, alice);
      await waitFor(() => expect(toggle()).not.toBeNull());
      cleanup();

      const moderated = fakeServer();
      moderated.moderators.push(moderator(alice));
      await open(moderated, alice);
      await waitFor(() => expect(toggle()).not.toBeNull());
      expect(toggle()!.getAttribute('aria-expanded')).toBe('false');
    });

    it('loads the bans on opening, and lifting one calls the API and removes its row', async () => {
      const server = fakeServer();
      server.room.owner = alice;
      const until = new Date(Date.now() + 3600_000).toISOString();
      const stranger = '0190a0a0-0000-7000-8000-00000000c0de';
      server.bans.push(
        { user_id: bob.id, until: null, reason: 'Banned for the message: "spam"', by: alice, at: '2025-01-01T09:00:00Z' },
        { user_id: stranger, until, reason: 'rude', by: carol, at: '2025-01-01T08:00:00Z' },
      );
      await open(server, alice, [bob, 'spam']);
      await waitFor(() => expect(toggle()).not.toBeNull());
      expect(fetches(server, 'bans')).toBe(0);
      fireEvent.click(toggle()!);
      expect(toggle()!.getAttribute('aria-expanded')).toBe('true');
      await waitFor(() => expect(rows('Banned users')).toHaveLength(2));
      const [first, second] = rows('Banned users');
      expect(first.textContent).toContain('bob');
      expect(first.textContent).toContain('Banned for the message: "spam"');
      expect(first.textContent).toContain('Banned by alice, until lifted');
      // Not in view: a short id; when the ban ends.
      expect(second.textContent).toContain('user 0000c0de');
      expect(second.textContent).toContain(`Banned by carol, until ${formatTime(until)}`);

      fireEvent.click(screen.getByRole('button', { name: 'Lift ban for bob' }));
      await waitFor(() => expect(rows('Banned users')).toHaveLength(1));
      expect(server.calls).toContainEqual({ method: 'DELETE', path: `/api/rooms/${ROOM}/bans/${bob.id}` });
      expect(rows('Banned users')[0].textContent).toContain('user 0000c0de');
      expect(document.activeElement?.textContent).toBe('Banned users');
    });

    it('reloads the lists each time it opens (no event tells of changes)', async () => {
      const server = fakeServer();
      server.moderators.push(moderator(alice));
      await open(server, alice);
      await waitFor(() => expect(toggle()).not.toBeNull());
      fireEvent.click(toggle()!);
      await screen.findByText('Nobody is banned.');
      fireEvent.click(toggle()!);
      // Another moderator banned dave meanwhile.
      server.bans.push({ user_id: dave.id, until: null, reason: 'r', by: carol, at: '2025-01-01T09:00:00Z' });
      fireEvent.click(toggle()!);
      await waitFor(() => expect(rows('Banned users')).toHaveLength(1));
      expect(fetches(server, 'bans')).toBe(2);
      // A moderator sees the moderators, but may not remove them.
      expect(rows('Moderators').map((li) => li.textContent)).toEqual([expect.stringContaining('alice (you)')]);
      expect(screen.queryByRole('button', { name: /^Remove moderator/ })).toBeNull();
    });

    it('lets the owner make the author of a message a moderator, and remove them again', async () => {
      const server = fakeServer();
      server.room.owner = alice;
      await open(server, alice, [bob, 'helpful']);
      await waitFor(() => expect(actionsOf('helpful')).not.toBeNull());
      fireEvent.click(actionsOf('helpful')!);
      fireEvent.click(screen.getByRole('menuitem', { name: 'Make moderator' }));
      await screen.findByText('bob is now a moderator.');
      expect(server.calls).toContainEqual({ method: 'PUT', path: `/api/rooms/${ROOM}/moderators/${bob.id}` });
      // The list reloaded: bob moderates now, so nobody bans him, and the owner may remove him.
      fireEvent.click(actionsOf('helpful')!);
      await waitFor(() => expect(menuItems()).toEqual(['Delete', 'Remove moderator']));
      fireEvent.click(screen.getByRole('menuitem', { name: 'Remove moderator' }));
      await screen.findByText('bob is no longer a moderator.');
      expect(server.calls).toContainEqual({ method: 'DELETE', path: `/api/rooms/${ROOM}/moderators/${bob.id}` });
      fireEvent.click(actionsOf('helpful')!);
      await waitFor(() => expect(menuItems()).toContain('Make moderator'));
      expect(menuItems()).toContain('Ban author for 10 minutes');
    });

    it('lets the owner remove a moderator from the panel', async () => {
      const server = fakeServer();
      server.room.owner = alice;
      server.moderators.push(moderator(bob), moderator(dave));
      await open(server, alice, [bob, 'hello']);
      await waitFor(() => expect(toggle()).not.toBeNull());
      fireEvent.click(toggle()!);
      await waitFor(() => expect(rows('Moderators')).toHaveLength(2));
      fireEvent.click(screen.getByRole('button', { name: 'Remove moderator bob' }));
      await waitFor(() => expect(rows('Moderators')).toHaveLength(1));
      expect(server.calls).toContainEqual({ method: 'DELETE', path: `/api/rooms/${ROOM}/moderators/${bob.id}` });
      // dave wrote nothing in view: a short id.
      expect(rows('Moderators')[0].textContent).toContain('user udave');
    });

    it('gives a moderator no ban on another moderator’s message', async () => {
      const server = fakeServer();
      server.moderators.push(moderator(alice), moderator(dave));
      await open(server, alice, [dave, 'from dave'], [bob, 'from bob']);
      await waitFor(() => expect(actionsOf('from bob')).not.toBeNull());
      fireEvent.click(actionsOf('from dave')!);
      expect(menuItems()).toEqual(['Delete']);
      fireEvent.click(actionsOf('from dave')!);
      fireEvent.click(actionsOf('from bob')!);
      expect(menuItems()).toEqual(['Delete', 'Ban author for 10 minutes', 'Ban author for 1 hour', 'Ban author for good']);
    });

    it('explains a refused lift and reloads the lists (no longer a moderator: the panel goes)', async () => {
      const server = fakeServer();
      server.moderators.push(moderator(alice));
      server.bans.push({ user_id: bob.id, until: null, reason: 'r', by: carol, at: '2025-01-01T09:00:00Z' });
      await open(server, alice, [bob, 'hi']);
      await waitFor(() => expect(toggle()).not.toBeNull());
      fireEvent.click(toggle()!);
      await waitFor(() => expect(rows('Banned users')).toHaveLength(1));
      const moderatorFetches = fetches(server, 'moderators');
      // The owner dismissed alice meanwhile.
      server.moderators.length = 0;
      server.refuse('DELETE', `/api/rooms/${ROOM}/bans/${bob.id}`, 403, 'forbidden');
      fireEvent.click(screen.getByRole('button', { name: 'Lift ban for bob' }));
      expect((await screen.findByRole('alert')).textContent).toContain('You are not allowed to do that in this room.');
      await waitFor(() => expect(toggle()).toBeNull());
      expect(fetches(server, 'moderators')).toBeGreaterThan(moderatorFetches);
    });
  });

  it('shows no error when a reaction races the message’s deletion, but does for another failure', async () => {
    const server = fakeServer();
    // Each reaction call's outcome, to know when the room has had it.
    const outcomes: Promise<unknown>[] = [];
    const es = await openWith(
      server,
      alice,
      (api) => ({
        ...api,
        addReaction: (...args) => {
          const call = api.addReaction(...args);
          outcomes.push(call.catch(() => {}));
          return call;
        },
      }),
      [bob, 'going away'],
      [bob, 'staying'],
    );
    const target = server.history[0];
    // The delete lands on the server first: the click's PUT answers 404, and the event follows.
    await server.fetch(`/api/rooms/${ROOM}/messages/${target.id}`, { method: 'DELETE' });
    fireEvent.click(within(item('going away')).getByRole('button', { name: 'React 👍' }));
    await deliver(() => es.emit('delete', { message_id: target.id, by: carol }, '0-40'));
    await act(async () => {
      await outcomes[0];
    });
    expect(items()).toHaveLength(1);
    expect(server.calls.filter((c) => c.method === 'PUT')).toHaveLength(1);
    expect(screen.queryByRole('alert')).toBeNull();

    // A reaction refused for another reason is reported.
    server.fetch.mockImplementationOnce(async () =>
      new Response(JSON.stringify({ error: { code: 'internal', message: 'boom' } }), { status: 500 }),
    );
    fireEvent.click(within(item('staying')).getByRole('button', { name: 'React 👍' }));
    await act(async () => {
      await outcomes[1];
    });
    expect(screen.getByRole('alert').textContent).toContain('Reaction not saved: boom');
  });
});
