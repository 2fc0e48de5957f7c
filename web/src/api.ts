// The chat-server's JSON API: one fetch wrapper that knows the error shape, authentication, and how to
// back off when the server says so (429 / 503 with `Retry-After`).

import type {
  Ban,
  ClientConfig,
  DeleteEvent,
  Message,
  MessagePage,
  Room,
  RoomDetail,
  RoomMode,
  Moderator,
  Session,
} from './types';

/** Rooms asked for per page of `GET /api/rooms` (the server allows 1–100). */
export const ROOM_PAGE = 100;
/** Pages the sidebar reads at most, so a server with very many rooms costs a bounded refresh. */
export const MAX_ROOM_PAGES = 20;

/** A page of `GET /api/rooms`. */
export interface RoomPage {
  rooms: Room[];
  /** The cursor of the next page; null on the last one. */
  nextCursor: string | null;
}

/** A failed call: the server's `{"error": {"code", "message"}}`, or a network failure (status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** Seconds the server asked us to wait (`Retry-After`), if it did. */
  readonly retryAfterSecs?: number;
  /** For `banned`: when the ban ends (RFC 3339), null for a ban until lifted; undefined otherwise. */
  readonly until?: string | null;

  constructor(status: number, code: string, message: string, retryAfterSecs?: number, until?: string | null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfterSecs = retryAfterSecs;
    this.until = until;
  }

  /** Worth trying again later: rate limited, a dependency down, or the network. */
  get retryable(): boolean {
    return this.status === 429 || this.status === 503 || this.status === 0;
  }
}

/**
 * `Retry-After` in seconds: either delta-seconds or an HTTP date. Undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (value == null) return undefined;
  const trimmed = value.trim();
  if (trimmed === '') return undefined;
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  // An HTTP date names its weekday and month; anything else (e.g. "-1", which Date.parse takes for a
  // year) is not one.
  if (!/[a-z]{3}/i.test(trimmed)) return undefined;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - now) / 1000));
}

/** Longest wait between two attempts, whatever the server says. */
export const MAX_BACKOFF_MS = 30_000;

/**
 * How long to wait before attempt `attempt + 1` (attempt counts from 0).
 *
 * With a `Retry-After` the server's wait is a floor: a little jitter (up to 20 %, at most 1 s) is added
 * so that the clients it throttled together do not all come back in the same millisecond. Without one,
 * exponential backoff from 500 ms (1 s in a throttled room), doubling, capped, with "equal jitter"
 * (half fixed, half random).
 */
export function backoffDelayMs(opts: {
  attempt: number;
  retryAfterSecs?: number;
  mode?: RoomMode;
  random?: () => number;
}): number {
  const random = opts.random ?? Math.random;
  if (opts.retryAfterSecs !== undefined) {
    const floor = opts.retryAfterSecs * 1000;
    const jitter = random() * Math.min(1000, Math.max(100, floor * 0.2));
    return Math.min(MAX_BACKOFF_MS, Math.round(floor + jitter));
  }
  const base = opts.mode === 'throttled' ? 1000 : 500;
  const ceiling = Math.min(MAX_BACKOFF_MS, base * 2 ** Math.max(0, opts.attempt));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** A wait that ends early (rejecting) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RetryNotice {
  /** The error that made us wait. */
  error: ApiError;
  /** How long we wait before the next attempt. */
  delayMs: number;
  attempt: number;
}

export interface ApiOptions {
  /** Base URL of the chat API; "" means the page's origin. */
  baseUrl?: string;
  getToken?: () => string | null;
  /** Called on any 401 from an authenticated call (expired or foreign token). */
  onUnauthorized?: () => void;
  fetch?: typeof fetch;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
}

interface RequestOptions {
  body?: unknown;
  auth?: boolean;
  signal?: AbortSignal;
  /** Retries for 429/503/network failures (GETs only by default). */
  retries?: number;
  /**
   * Sent as `Idempotency-Key`: the server answers a retry with the first attempt's result, so a
   * keyed POST is retried (on 503 and network failures) with the same key.
   */
  idempotencyKey?: string;
  mode?: RoomMode;
  onRetry?: (notice: RetryNotice) => void;
}

export interface FetchMessagesOptions {
  limit?: number;
  before?: string;
  signal?: AbortSignal;
  mode?: RoomMode;
  onRetry?: (notice: RetryNotice) => void;
}

/** Attempts for an idempotent GET before the error is shown. */
export const GET_RETRIES = 4;
/** Retries of a POST sent with an `Idempotency-Key` (safe: the server applies it once). */
export const POST_RETRIES = 3;

/** A fresh `Idempotency-Key`: random, 32 hex characters. */
export function newIdempotencyKey(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export type Api = ReturnType<typeof createApi>;

export function createApi(options: ApiOptions = {}) {
  const baseUrl = (options.baseUrl ?? '').replace(/\/+$/, '');
  const doFetch = options.fetch ?? ((input, init) => fetch(input, init));
  const wait = options.sleep ?? sleep;

  async function once<T>(method: string, path: string, opts: RequestOptions): Promise<{ data: T; headers: Headers }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    if (opts.idempotencyKey) headers['idempotency-key'] = opts.idempotencyKey;
    if (opts.auth) {
      const token = options.getToken?.();
      if (token) headers.authorization = `Bearer ${token}`;
    }
    let response: Response;
    try {
      response = await doFetch(`${baseUrl}${path}`, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: opts.signal,
      });
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection.');
    }
    const text = await response.text();
    let data: unknown = undefined;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = undefined;
      }
    }
    if (!response.ok) {
      const error = (data as { error?: { code?: string; message?: string; until?: unknown } } | undefined)?.error;
      const until = typeof error?.until === 'string' || error?.until === null ? error.until : undefined;
      const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
      if (response.status === 401 && opts.auth) options.onUnauthorized?.();
      throw new ApiError(
        response.status,
        error?.code ?? `http_${response.status}`,
        error?.message ?? (response.status === 429 ? 'Too many requests' : `Request failed (${response.status})`),
        retryAfter,
        until,
      );
    }
    return { data: data as T, headers: response.headers };
  }

  async function request<T>(method: string, path: string, opts: RequestOptions = {}) {
    const retries = opts.retries ?? (method === 'GET' ? GET_RETRIES : opts.idempotencyKey ? POST_RETRIES : 0);
    for (let attempt = 0; ; attempt++) {
      try {
        return await once<T>(method, path, opts);
      } catch (e) {
        if (!(e instanceof ApiError) || attempt >= retries) throw e;
        // A write is retried only when its outcome is unknown: a 429 (too fast, slow mode) is the
        // user's to see, not to be hidden behind a wait.
        const retryable = method === 'GET' ? e.retryable : e.status === 503 || e.status === 0;
        if (!retryable) throw e;
        const delayMs = backoffDelayMs({
          attempt,
          retryAfterSecs: e.retryAfterSecs,
          mode: e.status === 429 ? 'throttled' : opts.mode,
          random: options.random,
        });
        opts.onRetry?.({ error: e, delayMs, attempt });
        await wait(delayMs, opts.signal);
      }
    }
  }

  /** One page of rooms in creation order; pass its `nextCursor` for the next one (null: the last). */
  async function listRoomPage(cursor?: string | null, signal?: AbortSignal): Promise<RoomPage> {
    const query = new URLSearchParams({ limit: String(ROOM_PAGE) });
    if (cursor) query.set('cursor', cursor);
    const { data } = await request<{ rooms: Room[]; next_cursor?: string | null }>(
      'GET',
      `/api/rooms?${query.toString()}`,
      { signal },
    );
    return { rooms: data.rooms, nextCursor: data.next_cursor ?? null };
  }

  const room = (id: string) => `/api/rooms/${encodeURIComponent(id)}`;
  const messagePath = (roomId: string, id: string) => `${room(roomId)}/messages/${encodeURIComponent(id)}`;

  return {
    /** The session token, for what cannot send an `authorization` header (the event stream's `?token=`). */
    token(): string | null {
      return options.getToken?.() ?? null;
    },
    async config(signal?: AbortSignal): Promise<ClientConfig> {
      return (await request<ClientConfig>('GET', '/api/config', { signal })).data;
    },
    async signIn(name: string): Promise<Session> {
      return (await request<Session>('POST', '/api/sessions', { body: { name } })).data;
    },
    listRoomPage,
    /** Every room (the sidebar): page after page, at most `MAX_ROOM_PAGES` of them. */
    async listRooms(signal?: AbortSignal): Promise<Room[]> {
      const rooms: Room[] = [];
      let cursor: string | null = null;
      for (let page = 0; page < MAX_ROOM_PAGES; page++) {
        const next: RoomPage = await listRoomPage(cursor, signal);
        rooms.push(...next.rooms);
        cursor = next.nextCursor;
        if (!cursor) break;
      }
      return rooms;
    },
    async createRoom(name: string): Promise<Room> {
      return (
        await request<Room>('POST', '/api/rooms', { body: { name }, auth: true, idempotencyKey: newIdempotencyKey() })
      ).data;
    },
    async getRoom(id: string, signal?: AbortSignal): Promise<RoomDetail> {
      return (await request<RoomDetail>('GET', room(id), { signal })).data;
    },
    async fetchMessages(roomId: string, opts: FetchMessagesOptions = {}): Promise<MessagePage> {
      const query = new URLSearchParams();
      if (opts.limit !== undefined) query.set('limit', String(opts.limit));
      if (opts.before) query.set('before', opts.before);
      const qs = query.toString();
      const { data, headers } = await request<{ messages: Message[]; mode?: RoomMode }>(
        'GET',
        `${room(roomId)}/messages${qs ? `?${qs}` : ''}`,
        // Signed in, a busy room's rate limit counts this user rather than everyone behind one address.
        { signal: opts.signal, mode: opts.mode, onRetry: opts.onRetry, auth: true },
      );
      const mode = (data.mode ?? headers.get('x-room-mode') ?? 'normal') === 'throttled' ? 'throttled' : 'normal';
      return { messages: data.messages, mode };
    },
    async postMessage(roomId: string, text: string): Promise<Message> {
      // One key for every attempt of this post: a retry after a lost answer is not a second message.
      return (
        await request<Message>('POST', `${room(roomId)}/messages`, {
          body: { text },
          auth: true,
          idempotencyKey: newIdempotencyKey(),
        })
      ).data;
    },
    async addReaction(roomId: string, messageId: string, emoji: string): Promise<void> {
      await request('PUT', `${room(roomId)}/messages/${encodeURIComponent(messageId)}/reactions/${encodeURIComponent(emoji)}`, {
        auth: true,
      });
    },
    async removeReaction(roomId: string, messageId: string, emoji: string): Promise<void> {
      await request('DELETE', `${room(roomId)}/messages/${encodeURIComponent(messageId)}/reactions/${encodeURIComponent(emoji)}`, {
        auth: true,
      });
    },
    // Moderation. Edits, deletes, roles and bans set a state rather than add to one, so a retry after a lost
    // answer (503, network) cannot do anything twice.
    async editMessage(roomId: string, messageId: string, text: string): Promise<Message> {
      return (await request<Message>('PATCH', messagePath(roomId, messageId), { body: { text }, auth: true, retries: POST_RETRIES }))
        .data;
    },
    async deleteMessage(roomId: string, messageId: string): Promise<DeleteEvent> {
      return (await request<DeleteEvent>('DELETE', messagePath(roomId, messageId), { auth: true, retries: POST_RETRIES })).data;
    },
    async listModerators(roomId: string, signal?: AbortSignal): Promise<Moderator[]> {
      return (await request<{ moderators: Moderator[] }>('GET', `${room(roomId)}/moderators`, { signal })).data.moderators;
    },
    /** Makes `userId` a moderator of the room (the owner only). */
    async addModerator(roomId: string, userId: string): Promise<void> {
      await request('PUT', `${room(roomId)}/moderators/${encodeURIComponent(userId)}`, { auth: true, retries: POST_RETRIES });
    },
    async removeModerator(roomId: string, userId: string): Promise<void> {
      await request('DELETE', `${room(roomId)}/moderators/${encodeURIComponent(userId)}`, { auth: true, retries: POST_RETRIES });
    },
    /** Bans `userId` from writing in the room for `seconds`, or until lifted when null. */
    async banUser(roomId: string, userId: string, seconds: number | null, reason: string): Promise<Ban> {
      return (
        await request<Ban>('PUT', `${room(roomId)}/bans/${encodeURIComponent(userId)}`, {
          body: { seconds, reason },
          auth: true,
          retries: POST_RETRIES,
        })
      ).data;
    },
    async unbanUser(roomId: string, userId: string): Promise<void> {
      await request('DELETE', `${room(roomId)}/bans/${encodeURIComponent(userId)}`, { auth: true, retries: POST_RETRIES });
    },
    async listBans(roomId: string, signal?: AbortSignal): Promise<Ban[]> {
      return (await request<{ bans: Ban[] }>('GET', `${room(roomId)}/bans`, { signal, auth: true })).data.bans;
    },
    /** Least seconds between two posts of one user (0 = off); answers the updated room. */
    async setSlowMode(roomId: string, seconds: number): Promise<Room> {
      return (await request<Room>('PATCH', room(roomId), { body: { slow_mode_secs: seconds }, auth: true, retries: POST_RETRIES })).data;
    },
  };
}
