import { describe, expect, it, vi } from 'vitest';

import { ApiError, backoffDelayMs, createApi, MAX_BACKOFF_MS, parseRetryAfter } from './api';

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
}

describe('Retry-After', () => {
  it('reads delta-seconds and HTTP dates', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('3')).toBe(3);
    expect(parseRetryAfter(' 0 ')).toBe(0);
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:10 GMT', now)).toBe(10);
    expect(parseRetryAfter('Tue, 31 Dec 2024 23:59:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter('-1')).toBeUndefined();
  });
});

describe('backoff', () => {
  it('waits at least what Retry-After says, with a little jitter', () => {
    expect(backoffDelayMs({ attempt: 0, retryAfterSecs: 2, random: () => 0 })).toBe(2000);
    expect(backoffDelayMs({ attempt: 0, retryAfterSecs: 2, random: () => 1 })).toBe(2400);
    expect(backoffDelayMs({ attempt: 5, retryAfterSecs: 10, random: () => 1 })).toBe(11000);
    // Retry-After 0 still spreads clients a little.
    expect(backoffDelayMs({ attempt: 0, retryAfterSecs: 0, random: () => 1 })).toBe(100);
  });

  it('grows exponentially without Retry-After, slower in a throttled room, and is capped', () => {
    const max = (attempt: number, mode?: 'normal' | 'throttled') => backoffDelayMs({ attempt, mode, random: () => 1 });
    const min = (attempt: number) => backoffDelayMs({ attempt, random: () => 0 });
    expect([0, 1, 2, 3].map((a) => max(a))).toEqual([500, 1000, 2000, 4000]);
    expect(min(3)).toBe(2000);
    expect(max(0, 'throttled')).toBe(1000);
    expect(max(20)).toBe(MAX_BACKOFF_MS);
    expect(backoffDelayMs({ attempt: 0, retryAfterSecs: 3600, random: () => 0 })).toBe(MAX_BACKOFF_MS);
  });
});

describe('API client', () => {
  it('returns the server’s error shape as an ApiError', async () => {
    const api = createApi({ fetch: async () => json(400, { error: { code: 'empty_text', message: 'text is empty' } }) });
    const error = await api.postMessage('r', ' ').catch((e) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 400, code: 'empty_text', message: 'text is empty' });
  });

  it('sends the bearer token and JSON body, under the base URL', async () => {
    const fetch = vi.fn(async (_url: RequestInfo | URL, _init?: RequestInit) =>
      json(201, { id: 'm', room_id: 'r', user: { id: 'u', name: 'a' }, text: 'hi', at: '', reactions: {} }),
    );
    const api = createApi({ baseUrl: 'http://chat.test/', fetch, getToken: () => 'tok' });
    await api.postMessage('r 1', 'hi');
    const [url, init] = fetch.mock.calls[0];
    expect(url).toBe('http://chat.test/api/rooms/r%201/messages');
    expect(init?.method).toBe('POST');
    expect((init?.headers as Record<string, string>).authorization).toBe('Bearer tok');
    expect(init?.body).toBe('{"text":"hi"}');
  });

  it('URL-encodes the emoji of a reaction', async () => {
    const fetch = vi.fn(async (_url: RequestInfo | URL, _init?: RequestInit) => new Response(null, { status: 202 }));
    const api = createApi({ fetch, getToken: () => 'tok' });
    await api.addReaction('r', 'm', '👍');
    await api.removeReaction('r', 'm', '❤️');
    expect(fetch.mock.calls[0][0]).toBe('/api/rooms/r/messages/m/reactions/%F0%9F%91%8D');
    expect(fetch.mock.calls[0][1]?.method).toBe('PUT');
    expect(fetch.mock.calls[1][0]).toBe('/api/rooms/r/messages/m/reactions/%E2%9D%A4%EF%B8%8F');
    expect(fetch.mock.calls[1][1]?.method).toBe('DELETE');
  });

  it('waits out a 429 as Retry-After says and tries again', async () => {
    const responses = [
      json(429, { error: { code: 'rate_limited', message: 'slow down' } }, { 'retry-after': '2' }),
      json(200, { messages: [], mode: 'throttled' }, { 'x-room-mode': 'throttled' }),
    ];
    const sleep = vi.fn(async () => {});
    const onRetry = vi.fn();
    const api = createApi({ fetch: async () => responses.shift()!, sleep, random: () => 0 });
    const page = await api.fetchMessages('r', { limit: 50, before: 'm1', onRetry });
    expect(page).toEqual({ messages: [], mode: 'throttled' });
    expect(sleep).toHaveBeenCalledWith(2000, undefined);
    expect(onRetry).toHaveBeenCalledWith(expect.objectContaining({ delayMs: 2000, attempt: 0 }));
  });

  it('gives up after a few attempts with the last error', async () => {
    const sleep = vi.fn(async () => {});
    const api = createApi({
      fetch: async () => json(429, { error: { code: 'rate_limited', message: 'slow down' } }, { 'retry-after': '1' }),
      sleep,
    });
    await expect(api.fetchMessages('r')).rejects.toMatchObject({ status: 429, retryAfterSecs: 1 });
    expect(sleep).toHaveBeenCalledTimes(4);
  });

  it('retries a post after a 503 or a lost answer with the same Idempotency-Key', async () => {
    const answers = [
      () => json(503, { error: { code: 'unavailable', message: 'broker down' } }, { 'retry-after': '1' }),
      () => {
        throw new TypeError('Failed to fetch');
      },
      () => json(201, { id: 'm1', text: 'hi' }),
    ];
    const fetch = vi.fn(async (_input: RequestInfo | URL, _init?: RequestInit) => answers.shift()!());
    const api = createApi({ fetch, sleep: async () => {} });
    expect(await api.postMessage('r', 'hi')).toMatchObject({ id: 'm1' });
    expect(fetch).toHaveBeenCalledTimes(3);
    const keys = fetch.mock.calls.map(([, init]) => (init?.headers as Record<string, string>)['idempotency-key']);
    expect(keys[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(new Set(keys).size).toBe(1);
  });

  it('gives every post a key of its own', async () => {
    const fetch = vi.fn(async (_input: RequestInfo | URL, _init?: RequestInit) => json(201, { id: 'm' }));
    const api = createApi({ fetch });
    await api.postMessage('r', 'one');
    await api.postMessage('r', 'two');
    await api.createRoom('room');
    const keys = fetch.mock.calls.map(([, init]) => (init?.headers as Record<string, string>)['idempotency-key']);
    expect(new Set(keys).size).toBe(3);
  });

  it('does not retry a post refused for going too fast', async () => {
    const fetch = vi.fn(async () => json(429, { error: { code: 'rate_limited', message: 'slow down' } }, { 'retry-after': '1' }));
    const api = createApi({ fetch, sleep: async () => {} });
    await expect(api.postMessage('r', 'hi')).rejects.toMatchObject({ status: 429 });
    expect(fetch).toHaveBeenCalledTimes(1);
  });

  it('reads the mode from the header when the body has none', async () => {
    const api = createApi({ fetch: async () => json(200, { messages: [] }, { 'x-room-mode': 'throttled' }) });
    expect((await api.fetchMessages('r')).mode).toBe('throttled');
  });

  it('reports a 401 on an authenticated call', async () => {
    const onUnauthorized = vi.fn();
    const api = createApi({
      fetch: async () => json(401, { error: { code: 'unauthorized', message: 'token expired' } }),
      getToken: () => 'old',
      onUnauthorized,
    });
    await expect(api.createRoom('x')).rejects.toMatchObject({ status: 401 });
    expect(onUnauthorized).toHaveBeenCalledOnce();
  });

  it('lists every room by following next_cursor', async () => {
    const room = (id: string) => ({ id, name: id, created_at: '' });
    const fetch = vi.fn(async (url: RequestInfo | URL) => {
      const cursor = new URL(String(url), 'http://chat.test').searchParams.get('cursor');
      if (!cursor) return json(200, { rooms: [room('a'), room('b')], next_cursor: 'c1' });
      if (cursor === 'c1') return json(200, { rooms: [room('c')], next_cursor: null });
      return json(400, { error: { code: 'invalid_cursor', message: 'no' } });
    });
    const api = createApi({ fetch });
    expect((await api.listRooms()).map((r) => r.id)).toEqual(['a', 'b', 'c']);
    expect(fetch).toHaveBeenCalledTimes(2);
    expect(String(fetch.mock.calls[0][0])).toBe('/api/rooms?limit=100');
    expect(String(fetch.mock.calls[1][0])).toBe('/api/rooms?limit=100&cursor=c1');
  });

  it('turns a network failure into a retryable error', async () => {
    const api = createApi({
      fetch: async () => {
        throw new TypeError('Failed to fetch');
      },
      sleep: async () => {},
    });
    await expect(api.listRooms()).rejects.toMatchObject({ status: 0, code: 'network', retryable: true });
  });
});

describe('moderation calls', () => {
  const calls = () => {
    const fetch = vi.fn(async (_url: RequestInfo | URL, init?: RequestInit) => {
      const method = init?.method ?? 'GET';
      if (method === 'GET') return json(200, { moderators: [{ user_id: 'u2', since: 't' }], bans: [] });
      if (method === 'PATCH') return json(200, { id: 'm 1', text: 'fixed', edited_at: '2025-01-01T00:00:00Z' });
      return json(202, { message_id: 'm 1', by: { id: 'u', name: 'a' }, user_id: 'u2', until: null, reason: 'spam' });
    });
    const api = createApi({ fetch, getToken: () => 'tok', sleep: async () => {} });
    const sent = (i: number) => {
      const [url, init] = fetch.mock.calls[i];
      const headers = init?.headers as Record<string, string>;
      return { url, method: init?.method ?? 'GET', body: init?.body === undefined ? undefined : JSON.parse(String(init.body)), auth: headers.authorization };
    };
    return { api, sent };
  };

  it('edits and deletes a message at its own path, with the token', async () => {
    const { api, sent } = calls();
    expect(await api.editMessage('r', 'm 1', 'fixed')).toMatchObject({ text: 'fixed', edited_at: '2025-01-01T00:00:00Z' });
    expect(sent(0)).toEqual({ url: '/api/rooms/r/messages/m%201', method: 'PATCH', body: { text: 'fixed' }, auth: 'Bearer tok' });
    expect(await api.deleteMessage('r', 'm 1')).toMatchObject({ message_id: 'm 1', by: { id: 'u' } });
    expect(sent(1)).toEqual({ url: '/api/rooms/r/messages/m%201', method: 'DELETE', body: undefined, auth: 'Bearer tok' });
  });

  it('bans for a time or until lifted, lifts, and lists bans and moderators', async () => {
    const { api, sent } = calls();
    await api.banUser('r', 'u2', 600, 'spam');
    expect(sent(0)).toEqual({ url: '/api/rooms/r/bans/u2', method: 'PUT', body: { seconds: 600, reason: 'spam' }, auth: 'Bearer tok' });
    await api.banUser('r', 'u2', null, 'spam');
    expect(sent(1).body).toEqual({ seconds: null, reason: 'spam' });
    await api.unbanUser('r', 'u2');
    expect(sent(2)).toMatchObject({ url: '/api/rooms/r/bans/u2', method: 'DELETE' });
    expect(await api.listBans('r')).toEqual([]);
    expect(sent(3)).toMatchObject({ url: '/api/rooms/r/bans', method: 'GET', auth: 'Bearer tok' });
    expect(await api.listModerators('r')).toEqual([{ user_id: 'u2', since: 't' }]);
    expect(sent(4)).toMatchObject({ url: '/api/rooms/r/moderators', method: 'GET' });
  });

  it('appoints and dismisses a moderator at the user’s path, with the token', async () => {
    const { api, sent } = calls();
    await api.addModerator('r', 'u 2');
    expect(sent(0)).toEqual({ url: '/api/rooms/r/moderators/u%202', method: 'PUT', body: undefined, auth: 'Bearer tok' });
    await api.removeModerator('r', 'u 2');
    expect(sent(1)).toEqual({ url: '/api/rooms/r/moderators/u%202', method: 'DELETE', body: undefined, auth: 'Bearer tok' });
  });

  it('sets slow mode by patching the room', async () => {
    const { api, sent } = calls();
    await api.setSlowMode('r', 30);
    expect(sent(0)).toEqual({ url: '/api/rooms/r', method: 'PATCH', body: { slow_mode_secs: 30 }, auth: 'Bearer tok' });
  });

  it('reads when a ban ends from a banned error, null for a ban until lifted', async () => {
    const until = '2025-01-01T10:00:00Z';
    let answer = json(403, { error: { code: 'banned', message: 'banned', until } });
    const api = createApi({ fetch: async () => answer });
    await expect(api.postMessage('r', 'hi')).rejects.toMatchObject({ status: 403, code: 'banned', until });
    answer = json(403, { error: { code: 'banned', message: 'banned', until: null } });
    await expect(api.postMessage('r', 'hi')).rejects.toMatchObject({ code: 'banned', until: null });
    answer = json(403, { error: { code: 'forbidden', message: 'no' } });
    const other = await api.deleteMessage('r', 'm').catch((e) => e);
    expect(other).toMatchObject({ code: 'forbidden' });
    expect(other.until).toBeUndefined();
  });

  it('does not retry a post refused by slow mode, and keeps its Retry-After', async () => {
    const fetch = vi.fn(async () => json(429, { error: { code: 'slow_mode', message: 'slow mode' } }, { 'retry-after': '7' }));
    const api = createApi({ fetch, sleep: async () => {} });
    await expect(api.postMessage('r', 'hi')).rejects.toMatchObject({ status: 429, code: 'slow_mode', retryAfterSecs: 7 });
    expect(fetch).toHaveBeenCalledTimes(1);
  });

  it('retries an edit whose answer was lost (it sets a state, so twice is once)', async () => {
    const answers = [
      () => {
        throw new TypeError('Failed to fetch');
      },
      () => json(200, { id: 'm', text: 'x', edited_at: 't' }),
    ];
    const fetch = vi.fn(async () => answers.shift()!());
    const api = createApi({ fetch, sleep: async () => {} });
    expect(await api.editMessage('r', 'm', 'x')).toMatchObject({ edited_at: 't' });
    expect(fetch).toHaveBeenCalledTimes(2);
  });
});
