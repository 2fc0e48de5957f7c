// Everything about one open room: its history (first page once the live stream is open, older pages on
// demand), its live events through one EventSource, sending with optimistic messages, reactions, the
// room's mode, and the connection status.

import { useCallback, useEffect, useRef, useState } from 'react';

import { ApiError, type Api } from './api';
import { RoomStream, type ConnectionStatus } from './events';
import {
  addPending,
  applyPage,
  applyReaction,
  confirmPending,
  discardPending,
  emptyState,
  failPending,
  oldestId,
  reactOptimistically,
  receiveMessage,
  retryPending,
  settleReaction,
  type MessageState,
} from './messages';
import { ReactionMemory } from './reactionMemory';
import { RefetchScheduler } from './refetch';
import type { RoomDetail, RoomMode, User } from './types';

/** Messages per history page. */
export const PAGE_SIZE = 50;
/** How long an accepted reaction click waits for its event before it is taken as "no change". */
export const REACTION_SETTLE_MS = 5000;
/** If the live stream has not opened by then, the history is loaded without it. */
const HISTORY_WITHOUT_STREAM_MS = 1500;
/** Least time between two older-page fetches in a throttled room. */
const OLDER_PAGE_INTERVAL_THROTTLED_MS = 3000;

export interface RoomController {
  room: RoomDetail | null;
  messages: MessageState;
  status: ConnectionStatus;
  mode: RoomMode;
  /** A problem the user should see (load failure, message not sent, …). */
  error: string | null;
  /** A passing note, e.g. waiting out a rate limit. */
  notice: string | null;
  loadingOlder: boolean;
  send(text: string): void;
  retry(clientId: string): void;
  discard(clientId: string): void;
  toggleReaction(messageId: string, emoji: string): void;
  loadOlder(): void;
  dismissError(): void;
}

interface Live {
  signal: AbortSignal;
  memory: ReactionMemory;
  mode: RoomMode;
  applyMode(mode: RoomMode): void;
  lastOlderFetch: number;
  olderInFlight: boolean;
  olderTimer: ReturnType<typeof setTimeout> | null;
}

let localIds = 0;
const newClientId = () => `local-${Date.now().toString(36)}-${(localIds++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

function describe(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  return 'Something went wrong.';
}

export function useRoom(api: Api, roomId: string, eventsBaseUrl: string, me: User): RoomController {
  const [messages, setMessages] = useState<MessageState>(emptyState);
  const stateRef = useRef(messages);
  const [room, setRoom] = useState<RoomDetail | null>(null);
  const [status, setStatus] = useState<ConnectionStatus>('connecting');
  const [mode, setModeState] = useState<RoomMode>('normal');
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const live = useRef<Live | null>(null);
  const reactionClicks = useRef(new Map<string, number>());

  const update = useCallback((change: (s: MessageState) => MessageState) => {
    setMessages((prev) => {
      const next = change(prev);
      stateRef.current = next;
      return next;
    });
  }, []);

  useEffect(() => {
    const abort = new AbortController();
    const signal = abort.signal;
    const memory = new ReactionMemory(me.id);
    const ctx: Live = {
      signal,
      memory,
      mode: 'normal',
      applyMode: (next) => applyMode(next),
      lastOlderFetch: -Infinity,
      olderInFlight: false,
      olderTimer: null,
    };
    live.current = ctx;
    stateRef.current = emptyState();
    setMessages(stateRef.current);
    setRoom(null);
    setError(null);
    setNotice(null);
    setModeState('normal');
    setLoadingOlder(false);

    const applyMode = (next: RoomMode) => {
      ctx.mode = next;
      scheduler.setMode(next);
      setModeState(next);
    };

    const fetchLatest = async () => {
      const fetchRev = stateRef.current.rev;
      try {
        const page = await api.fetchMessages(roomId, {
          limit: PAGE_SIZE,
          signal,
          mode: ctx.mode,
          onRetry: ({ error: e, delayMs }) => {
            if (e.status === 429) applyMode('throttled');
            setNotice(`${e.status === 429 ? 'This room is busy' : 'Connection trouble'}: retrying in ${Math.ceil(delayMs / 1000)} s…`);
          },
        });
        if (signal.aborted) return;
        applyMode(page.mode);
        update((s) => applyPage(s, page.messages, { kind: 'latest', limit: PAGE_SIZE, fetchRev, mineOf: (id) => memory.mine(id) }));
        setNotice(null);
        setError((e) => (e?.startsWith('Could not load') ? null : e));
      } catch (e) {
        if (signal.aborted) return;
        setNotice(null);
        if (e instanceof ApiError && e.status === 404) {
          setError('This room does not exist.');
          return;
        }
        setError(`Could not load the messages: ${describe(e)}`);
        // Try again later (spaced by the scheduler's interval for the room's mode).
        if (e instanceof ApiError && e.retryable) scheduler.request();
      }
    };
    const scheduler = new RefetchScheduler(fetchLatest);

    api.getRoom(roomId, signal).then(
      (r) => {
        if (signal.aborted) return;
        setRoom(r);
        applyMode(r.mode);
      },
      (e) => {
        if (signal.aborted) return;
        if (e instanceof ApiError && e.status === 404) setError('This room does not exist.');
      },
    );

    const stream = new RoomStream({
      baseUrl: eventsBaseUrl,
      roomId,
      handlers: {
        onMessage: (m) => update((s) => receiveMessage(s, m, me.id)),
        onReaction: (r) => {
          if (r.user.id === me.id) memory.set(r.message_id, r.emoji, r.op === 'added');
          update((s) => applyReaction(s, r, me.id));
        },
        onMode: applyMode,
        onReset: () => scheduler.request(),
        onStatus: setStatus,
        // The first page is fetched once the stream is open, so nothing falls between the two.
        onOpen: (first) => {
          if (first) scheduler.request();
        },
      },
    });
    stream.start();
    const fallback = setTimeout(() => {
      if (!stateRef.current.loaded && !scheduler.busy) scheduler.request();
    }, HISTORY_WITHOUT_STREAM_MS);

    return () => {
      abort.abort();
      clearTimeout(fallback);
      if (ctx.olderTimer) clearTimeout(ctx.olderTimer);
      scheduler.dispose();
      stream.close();
      if (live.current === ctx) live.current = null;
    };
  }, [api, roomId, eventsBaseUrl, me.id, update]);

  const post = useCallback(
    async (clientId: string, text: string) => {
      const ctx = live.current;
      try {
        const message = await api.postMessage(roomId, text);
        if (ctx?.signal.aborted) return;
        update((s) => confirmPending(s, clientId, message));
      } catch (e) {
        if (ctx?.signal.aborted) return;
        update((s) => failPending(s, clientId));
        setError(`Message not sent: ${describe(e)}`);
      }
    },
    [api, roomId, update],
  );

  const send = useCallback(
    (text: string) => {
      if (!text.trim()) return;
      const clientId = newClientId();
      update((s) => addPending(s, { clientId, roomId, user: me, text }));
      void post(clientId, text);
    },
    [me, roomId, post, update],
  );

  const retry = useCallback(
    (clientId: string) => {
      const message = stateRef.current.items.find((m) => m.clientId === clientId && m.status === 'failed');
      if (!message) return;
      update((s) => retryPending(s, clientId));
      setError(null);
      void post(clientId, message.text);
    },
    [post, update],
  );

  const discard = useCallback((clientId: string) => update((s) => discardPending(s, clientId)), [update]);

  const toggleReaction = useCallback(
    (messageId: string, emoji: string) => {
      const ctx = live.current;
      const message = stateRef.current.items.find((m) => m.id === messageId && m.status === 'sent');
      if (!ctx || !message) return;
      const op = message.mine.includes(emoji) ? 'removed' : 'added';
      const key = `${messageId} ${emoji}`;
      const click = (reactionClicks.current.get(key) ?? 0) + 1;
      reactionClicks.current.set(key, click);
      update((s) => reactOptimistically(s, messageId, emoji, op));
      ctx.memory.set(messageId, emoji, op === 'added');

      const call = op === 'added' ? api.addReaction : api.removeReaction;
      void (async () => {
        // A message seen live may not be in the read model yet (the projector is a separate consumer),
        // and the reaction call answers 404 until it is: try a few times before giving up.
        for (let attempt = 0; ; attempt++) {
          try {
            await call(roomId, messageId, emoji);
            break;
          } catch (e) {
            if (ctx.signal.aborted) return;
            if (e instanceof ApiError && e.status === 404 && attempt < 5) {
              await new Promise((resolve) => setTimeout(resolve, 200 * (attempt + 1)));
              continue;
            }
            if (reactionClicks.current.get(key) === click) {
              update((s) => settleReaction(s, messageId, emoji, 'failed'));
              ctx.memory.set(messageId, emoji, op !== 'added');
            }
            setError(`Reaction not saved: ${describe(e)}`);
            return;
          }
        }
        setTimeout(() => {
          if (ctx.signal.aborted || reactionClicks.current.get(key) !== click) return;
          const pending = stateRef.current.items.find((m) => m.id === messageId)?.pendingReactions?.[emoji];
          if (!pending) return;
          update((s) => settleReaction(s, messageId, emoji, 'unchanged'));
          ctx.memory.set(messageId, emoji, op === 'added');
        }, REACTION_SETTLE_MS);
      })();
    },
    [api, roomId, update],
  );

  const loadOlder = useCallback(() => {
    const ctx = live.current;
    const state = stateRef.current;
    if (!ctx || ctx.olderInFlight || ctx.olderTimer || !state.loaded || !state.hasOlder) return;
    const before = oldestId(state);
    if (!before) return;
    if (ctx.mode === 'throttled') {
      const wait = ctx.lastOlderFetch + OLDER_PAGE_INTERVAL_THROTTLED_MS - Date.now();
      if (wait > 0) {
        ctx.olderTimer = setTimeout(() => {
          ctx.olderTimer = null;
          loadOlder();
        }, wait);
        return;
      }
    }
    ctx.olderInFlight = true;
    ctx.lastOlderFetch = Date.now();
    setLoadingOlder(true);
    const fetchRev = state.rev;
    api
      .fetchMessages(roomId, {
        limit: PAGE_SIZE,
        before,
        signal: ctx.signal,
        mode: ctx.mode,
        onRetry: ({ error: e, delayMs }) => {
          if (e.status === 429) ctx.applyMode('throttled');
          setNotice(`Loading older messages: retrying in ${Math.ceil(delayMs / 1000)} s…`);
        },
      })
      .then(
        (page) => {
          if (ctx.signal.aborted) return;
          setNotice(null);
          update((s) =>
            applyPage(s, page.messages, { kind: 'older', limit: PAGE_SIZE, fetchRev, mineOf: (id) => ctx.memory.mine(id) }),
          );
        },
        (e) => {
          if (ctx.signal.aborted) return;
          setNotice(null);
          setError(`Could not load older messages: ${describe(e)}`);
        },
      )
      .finally(() => {
        ctx.olderInFlight = false;
        if (!ctx.signal.aborted) setLoadingOlder(false);
      });
  }, [api, roomId, update]);

  const dismissError = useCallback(() => setError(null), []);

  return { room, messages, status, mode, error, notice, loadingOlder, send, retry, discard, toggleReaction, loadOlder, dismissError };
}
