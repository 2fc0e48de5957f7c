// One room's live events over one EventSource: parses the events, remembers the last cursor, reports the
// connection state, and reconnects with that cursor.
//
// Reconnection has two paths. While the EventSource is CONNECTING after an error, the browser retries by
// itself and sends the last `id:` it saw as `Last-Event-ID`. When it gives up (CLOSED: an HTTP error, a
// wrong content type), a new EventSource is made after a backoff, with `?last_event_id=<cursor>`. Either
// way the server replays what was missed or answers `event: reset`, and the caller refetches.
//
// `EventSource` cannot send headers, so the session token goes in the query (`?token=`): the server counts
// a signed-in viewer once however many tabs they have open (`event: presence`).

import { backoffDelayMs } from './api';
import type {
  DeleteEvent,
  EditEvent,
  LiveReaction,
  Message,
  ModeEvent,
  PresenceEvent,
  ReactionCountsEvent,
  ResetEvent,
  Room,
  RoomMode,
} from './types';

export type ConnectionStatus = 'connecting' | 'live' | 'reconnecting' | 'closed';

/** A cursor is `<partition>-<offset>`, both whole numbers. */
export function isCursor(value: string | null | undefined): value is string {
  return typeof value === 'string' && /^\d+-\d+$/.test(value);
}

/**
 * The events URL of a room under `base` ("" = this origin), sending the session `token` when given and
 * resuming after `cursor` when given.
 */
export function eventsUrl(base: string, roomId: string, cursor?: string | null, token?: string | null): string {
  const url = `${base.replace(/\/+$/, '')}/api/rooms/${encodeURIComponent(roomId)}/events`;
  const query = new URLSearchParams();
  if (token) query.set('token', token);
  if (isCursor(cursor)) query.set('last_event_id', cursor);
  const qs = query.toString();
  return qs ? `${url}?${qs}` : url;
}

/** The room's audience: `approximate` when the count covers only the server we are connected to. */
export interface Presence {
  online: number;
  approximate: boolean;
}

/**
 * A `reaction` event's data as one of its two shapes: with `counts` (an object), the counts shape with
 * only whole positive counts kept (an emoji with none left is absent anyway); otherwise as it came.
 */
export function parseReaction(data: unknown): LiveReaction | null {
  if (typeof data !== 'object' || data === null) return null;
  const { message_id, counts } = data as Partial<ReactionCountsEvent>;
  if (typeof counts !== 'object' || counts === null || Array.isArray(counts)) return data as LiveReaction;
  const kept: Record<string, number> = {};
  for (const [emoji, n] of Object.entries(counts)) {
    if (typeof n === 'number' && Number.isFinite(n) && n >= 1) kept[emoji] = Math.floor(n);
  }
  return { message_id: message_id as string, counts: kept };
}

export interface RoomStreamHandlers {
  onMessage?(message: Message): void;
  /** One user's reaction, or (throttled rooms) a message's complete counts. */
  onReaction?(reaction: LiveReaction): void;
  /** The room's mode changed; `fetchIntervalMs` is the least time the server asks between fetches. */
  onMode?(mode: RoomMode, fetchIntervalMs: number): void;
  /** A message's text changed (its reactions did not). */
  onEdit?(edit: EditEvent): void;
  /** A message was removed, and its reactions with it. */
  onDelete?(deletion: DeleteEvent): void;
  /** The room's settings changed (e.g. slow mode). */
  onRoom?(room: Room): void;
  /** How many distinct viewers the room has now (sent on subscribing, then when it changes). */
  onPresence?(presence: Presence): void;
  /** The server cannot continue from our cursor: refetch the history. */
  onReset?(reason: string | undefined): void;
  onStatus?(status: ConnectionStatus): void;
  /** The stream is open; `first` for the very first connection of this RoomStream. */
  onOpen?(first: boolean): void;
}

/** The part of `EventSource` we use (so tests can pass a fake). */
export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((this: never, ev: Event) => unknown) | null;
  onerror: ((this: never, ev: Event) => unknown) | null;
  addEventListener(type: string, listener: (ev: MessageEvent) => void): void;
  close(): void;
}

export type EventSourceFactory = (url: string) => EventSourceLike;

const CLOSED = 2;

export interface RoomStreamOptions {
  baseUrl: string;
  roomId: string;
  handlers: RoomStreamHandlers;
  /** Resume after this cursor on the first connection (e.g. kept from an earlier stream). */
  cursor?: string | null;
  /** The session token, read for each new EventSource (sent as `?token=`); none: the server counts our address. */
  getToken?: () => string | null;
  createEventSource?: EventSourceFactory;
  /** Delay before making a new EventSource after the browser gave up (attempt counts from 0). */
  reconnectDelayMs?: (attempt: number) => number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (timer: unknown) => void;
}

export class RoomStream {
  private source: EventSourceLike | null = null;
  private lastCursor: string | null;
  private status: ConnectionStatus = 'closed';
  private attempt = 0;
  private opened = false;
  private timer: unknown = null;
  private stopped = true;
  private readonly create: EventSourceFactory;
  private readonly delay: (attempt: number) => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (timer: unknown) => void;

  constructor(private readonly options: RoomStreamOptions) {
    this.lastCursor = isCursor(options.cursor) ? options.cursor : null;
    this.create = options.createEventSource ?? ((url) => new EventSource(url) as unknown as EventSourceLike);
    this.delay = options.reconnectDelayMs ?? ((attempt) => backoffDelayMs({ attempt: attempt + 1 }));
    this.setTimer = options.setTimeout ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = options.clearTimeout ?? ((t) => clearTimeout(t as ReturnType<typeof setTimeout>));
  }

  /** The id of the last event received: where a new connection resumes. */
  get cursor(): string | null {
    return this.lastCursor;
  }

  get connectionStatus(): ConnectionStatus {
    return this.status;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  close(): void {
    this.stopped = true;
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
    this.source?.close();
    this.source = null;
    this.setStatus('closed');
  }

  private setStatus(status: ConnectionStatus) {
    if (status === this.status) return;
    this.status = status;
    this.options.handlers.onStatus?.(status);
  }

  private connect() {
    this.timer = null;
    if (this.stopped) return;
    this.setStatus(this.opened ? 'reconnecting' : 'connecting');
    const token = this.options.getToken?.() ?? null;
    const source = this.create(eventsUrl(this.options.baseUrl, this.options.roomId, this.lastCursor, token));
    this.source = source;
    const { handlers } = this.options;

    source.onopen = () => {
      if (source !== this.source) return;
      this.attempt = 0;
      const first = !this.opened;
      this.opened = true;
      this.setStatus('live');
      handlers.onOpen?.(first);
    };
    source.onerror = () => {
      if (source !== this.source) return;
      if (source.readyState === CLOSED) {
        // The browser gave up: make a new EventSource later, resuming from our cursor.
        source.close();
        this.source = null;
        this.setStatus('reconnecting');
        this.timer = this.setTimer(() => this.connect(), this.delay(this.attempt++));
      } else {
        // The browser retries by itself, sending Last-Event-ID.
        this.setStatus('reconnecting');
      }
    };

    // `orElse`: what to do with data that is not JSON (by default, nothing: the event is skipped).
    const listen = <T>(type: string, handle: (data: T) => void, orElse?: () => void) => {
      source.addEventListener(type, (event: MessageEvent) => {
        if (source !== this.source) return;
        if (isCursor(event.lastEventId)) this.lastCursor = event.lastEventId;
        let data: T;
        try {
          data = JSON.parse(event.data as string) as T;
        } catch {
          orElse?.();
          return;
        }
        handle(data);
      });
    };
    listen<Message>('message', (m) => handlers.onMessage?.(m));
    listen<unknown>('reaction', (data) => {
      const reaction = parseReaction(data);
      if (reaction) handlers.onReaction?.(reaction);
    });
    listen<EditEvent>('edit', (e) => handlers.onEdit?.(e));
    listen<DeleteEvent>('delete', (d) => handlers.onDelete?.(d));
    listen<Room>('room', (r) => handlers.onRoom?.(r));
    listen<ModeEvent>('mode', (m) =>
      handlers.onMode?.(
        m.mode === 'throttled' ? 'throttled' : 'normal',
        Number.isFinite(m.fetch_interval_ms) && (m.fetch_interval_ms ?? 0) > 0 ? m.fetch_interval_ms! : 0,
      ),
    );
    // No `id:` of its own: the browser's lastEventId is still the last event's, so the cursor stays.
    listen<PresenceEvent>('presence', (p) => {
      const online = p?.online;
      if (typeof online !== 'number' || !Number.isFinite(online) || online < 0) return;
      handlers.onPresence?.({ online: Math.floor(online), approximate: p.scope === 'instance' });
    });
    listen<ResetEvent>(
      'reset',
      (r) => handlers.onReset?.(r?.reason),
      () => handlers.onReset?.(undefined),
    );
  }
}
