// Everything about one open room: its history (first page once the live stream is open, older pages on
// demand), its live events through one EventSource, sending with optimistic messages, reactions, the
// room's mode, the connection status, and moderation (edits, deletes, bans, slow mode, moderators).

import { useCallback, useEffect, useRef, useState } from 'react';

import { ApiError, type Api } from './api';
import { RoomStream, type ConnectionStatus, type Presence } from './events';
import { ChangeQueue, type Change } from './liveQueue';
import {
  addPending,
  applyDelete,
  applyEdit,
  applyPage,
  applyReaction,
  confirmPending,
  discardPending,
  emptyState,
  failPending,
  isDeleted,
  oldestId,
  reactOptimistically,
  receiveMessage,
  retryPending,
  settleReaction,
  type MessageState,
} from './messages';
import { banReason, bannedText, moderatorText, roleOf, type Role } from './moderation';
import { ReactionMemory } from './reactionMemory';
import { RefetchScheduler } from './refetch';
import type { Ban, Moderator, RoomDetail, RoomMode, User } from './types';

/** Messages per history page. */
export const PAGE_SIZE = 50;
/** How long an accepted reaction click waits for its event before it is taken as "no change". */
export const REACTION_SETTLE_MS = 5000;
/** If the live stream has not opened by then, the history is loaded without it. */
const HISTORY_WITHOUT_STREAM_MS = 1500;
/** Least time between two older-page fetches in a throttled room. */
const OLDER_PAGE_INTERVAL_THROTTLED_MS = 3000;
/** Longest wait a timer can take (setTimeout's limit); a longer ban is simply not timed out. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface RoomController {
  room: RoomDetail | null;
  messages: MessageState;
  status: ConnectionStatus;
  mode: RoomMode;
  /** The room's audience: from the last `presence` event, else the room's `online`; null when unknown. */
  presence: Presence | null;
  /** A problem the user should see (load failure, message not sent, …). */
  error: string | null;
  /** A passing note, e.g. waiting out a rate limit. */
  notice: string | null;
  loadingOlder: boolean;
  /** The signed-in user's part in this room. */
  role: Role;
  /** Set when the server refused a write because the user is banned; `until` null = until lifted. */
  ban: { until: string | null } | null;
  /** In slow mode: when (ms since the epoch) the user may post again; null when they may now. */
  slowUntil: number | null;
  /** Text of a post slow mode refused, handed back to the composer (`seq` tells two apart). */
  returnedDraft: { text: string; seq: number } | null;
  /** The outcome of a moderator's action (e.g. who was banned). */
  info: string | null;
  /** The room's moderators (anyone may see them). */
  moderators: Moderator[];
  /** The bans in force, newest first, for the owner and moderators; null until loaded. */
  bans: Ban[] | null;
  send(text: string): void;
  retry(clientId: string): void;
  discard(clientId: string): void;
  toggleReaction(messageId: string, emoji: string): void;
  loadOlder(): void;
  dismissError(): void;
  dismissInfo(): void;
  /** Resolves true once saved, false when refused (the reason is shown). */
  editMessage(messageId: string, text: string): Promise<boolean>;
  deleteMessage(messageId: string): void;
  /** Bans the message's author for `seconds`, or until lifted when null. */
  banAuthor(messageId: string, seconds: number | null): void;
  /** Settles once the change is saved or refused (the reason is shown). */
  setSlowMode(seconds: number): Promise<void>;
  /** Reloads the moderators and bans: no event tells of a change, so this runs when the panel opens. */
  reloadModeration(): void;
  /** Lifts `userId`'s ban: resolves true once lifted (the row is gone), false when refused (the reason is shown). */
  liftBan(userId: string, name: string): Promise<boolean>;
  /** The owner appoints (`true`) or dismisses a moderator; resolves like `liftBan`. */
  setModerator(userId: string, name: string, appoint: boolean): Promise<boolean>;
  /** `setModerator` for the author of a message. */
  appointAuthor(messageId: string, appoint: boolean): void;
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

const isCode = (e: unknown, code: string) => e instanceof ApiError && e.code === code;

/**
 * Calls `call` until it stops answering 404 (a few tries): a message seen live may not be in the read
 * model yet (the projector is a separate consumer), and calls on it answer 404 until it is. `gone` stops
 * early when the message is known to be deleted.
 */
async function whenProjected<T>(call: () => Promise<T>, signal: AbortSignal, gone: () => boolean): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (e) {
      if (signal.aborted || gone() || !(e instanceof ApiError && e.status === 404) || attempt >= 5) throw e;
      await new Promise((resolve) => setTimeout(resolve, 200 * (attempt + 1)));
    }
  }
}

export function useRoom(api: Api, roomId: string, eventsBaseUrl: string, me: User): RoomController {
  const [messages, setMessages] = useState<MessageState>(emptyState);
  const stateRef = useRef(messages);
  const [room, setRoom] = useState<RoomDetail | null>(null);
  const [status, setStatus] = useState<ConnectionStatus>('connecting');
  const [mode, setModeState] = useState<RoomMode>('normal');
  const [livePresence, setLivePresence] = useState<Presence | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const [moderators, setModerators] = useState<Moderator[]>([]);
  const [bans, setBans] = useState<Ban[] | null>(null);
  // Each reload of a list counts up; an answer to an older one, arriving late, is dropped.
  const listLoads = useRef({ moderators: 0, bans: 0 });
  const [ban, setBan] = useState<{ until: string | null } | null>(null);
  const [slowUntil, setSlowUntil] = useState<number | null>(null);
  const [returnedDraft, setReturnedDraft] = useState<{ text: string; seq: number } | null>(null);
  const [info, setInfo] = useState<string | null>(null);
  const roomRef = useRef(room);
  roomRef.current = room;
  const role = roleOf(room, moderators, me.id);
  const roleRef = useRef(role);
  roleRef.current = role;
  const live = useRef<Live | null>(null);
  const reactionClicks = useRef(new Map<string, number>());
  // The open room's live message events not applied yet (see liveQueue.ts).
  const liveQueue = useRef<ChangeQueue<MessageState> | null>(null);

  const commit = useCallback((change: Change<MessageState>) => {
    setMessages((prev) => {
      const next = change(prev);
      stateRef.current = next;
      return next;
    });
  }, []);

  /** A change now, after the live events received before it (in the same update): their order is kept. */
  const update = useCallback(
    (change: Change<MessageState>) => {
      const queued = liveQueue.current?.take();
      commit(queued ? (s) => change(queued(s)) : change);
    },
    [commit],
  );

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
    const queue = new ChangeQueue<MessageState>(commit);
    liveQueue.current = queue;
    stateRef.current = emptyState();
    setMessages(stateRef.current);
    setRoom(null);
    setError(null);
    setNotice(null);
    setModeState('normal');
    setLivePresence(null);
    setLoadingOlder(false);
    setModerators([]);
    setBans(null);
    setBan(null);
    setSlowUntil(null);
    setReturnedDraft(null);
    setInfo(null);

    const applyMode = (next: RoomMode, fetchIntervalMs?: number) => {
      ctx.mode = next;
      scheduler.setMode(next, fetchIntervalMs);
      setModeState(next);
    };

    const fetchLatest = async () => {
      // Events received before the fetch starts are older than its page: apply them, so its rev counts them.
      queue.flush();
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
    // Without the list (e.g. an older server) nobody shows as a moderator; the server decides anyway.
    const load = ++listLoads.current.moderators;
    api.listModerators(roomId, signal).then(
      (list) => {
        if (!signal.aborted && load === listLoads.current.moderators) setModerators(list);
      },
      () => {},
    );

    const stream = new RoomStream({
      baseUrl: eventsBaseUrl,
      roomId,
      getToken: () => api.token(),
      handlers: {
        // Message events are queued, to be applied together once per frame (see liveQueue.ts).
        onMessage: (m) => queue.push((s) => receiveMessage(s, m, me.id)),
        onReaction: (r) => {
          // Complete counts name nobody: only our own events tell the memory what is ours.
          if (!('counts' in r) && r.user.id === me.id) memory.set(r.message_id, r.emoji, r.op === 'added');
          queue.push((s) => applyReaction(s, r, me.id));
        },
        onMode: applyMode,
        onEdit: (e) => queue.push((s) => applyEdit(s, e)),
        onDelete: (d) => queue.push((s) => applyDelete(s, d.message_id)),
        // The event has no `mode` (that has its own event): keep ours.
        onRoom: (r) => setRoom((prev) => ({ ...prev, ...r, mode: ctx.mode })),
        onPresence: setLivePresence,
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
      // Events of the room being left are not applied to the next one's list.
      queue.dispose();
      if (liveQueue.current === queue) liveQueue.current = null;
      clearTimeout(fallback);
      if (ctx.olderTimer) clearTimeout(ctx.olderTimer);
      scheduler.dispose();
      stream.close();
      if (live.current === ctx) live.current = null;
    };
  }, [api, roomId, eventsBaseUrl, me.id, commit, update]);

  // A ban the server told us of lapses at its `until`.
  useEffect(() => {
    if (!ban || ban.until === null) return;
    const wait = Date.parse(ban.until) - Date.now();
    if (!(wait < MAX_TIMER_MS)) return;
    const timer = setTimeout(() => setBan(null), Math.max(0, wait));
    return () => clearTimeout(timer);
  }, [ban]);

  /** Reloads the moderators, and the bans for the owner and moderators (only they may see them). */
  const reloadModeration = useCallback(() => {
    const signal = live.current?.signal;
    if (!signal) return;
    const loads = listLoads.current;
    const moderatorsLoad = ++loads.moderators;
    api.listModerators(roomId, signal).then(
      (list) => !signal.aborted && moderatorsLoad === loads.moderators && setModerators(list),
      () => {},
    );
    if (roleRef.current === 'member') return;
    const bansLoad = ++loads.bans;
    api.listBans(roomId, signal).then(
      (list) => !signal.aborted && bansLoad === loads.bans && setBans(list),
      (e) => {
        if (signal.aborted || bansLoad !== loads.bans) return;
        // No longer a moderator: the panel goes once the moderators are reloaded.
        if (isCode(e, 'forbidden')) setBans(null);
        else setError(`Could not load the bans: ${describe(e)}`);
      },
    );
  }, [api, roomId]);

  /** Explains a refused write: a ban or a missing role say so; anything else is `prefix: message`. */
  const refused = useCallback(
    (e: unknown, prefix: string) => {
      if (isCode(e, 'banned')) {
        setBan({ until: (e as ApiError).until ?? null });
      } else if (isCode(e, 'forbidden')) {
        setError('You are not allowed to do that in this room.');
        // Our role, or the target's, may have changed since we loaded them.
        reloadModeration();
      } else {
        setError(`${prefix}: ${describe(e)}`);
      }
    },
    [reloadModeration],
  );

  const post = useCallback(
    async (clientId: string, text: string) => {
      const ctx = live.current;
      try {
        const message = await api.postMessage(roomId, text);
        if (ctx?.signal.aborted) return;
        update((s) => confirmPending(s, clientId, message));
        setBan(null);
        // Slow mode counts from the post; the owner and moderators are exempt.
        const interval = roomRef.current?.slow_mode_secs ?? 0;
        if (interval > 0 && roleRef.current === 'member') setSlowUntil(Date.now() + interval * 1000);
      } catch (e) {
        if (ctx?.signal.aborted) return;
        if (isCode(e, 'slow_mode')) {
          // Not a failed message: the text goes back to the composer until the wait is over.
          const wait = (e as ApiError).retryAfterSecs ?? roomRef.current?.slow_mode_secs ?? 1;
          update((s) => discardPending(s, clientId));
          setSlowUntil(Date.now() + wait * 1000);
          setReturnedDraft((prev) => ({ text, seq: (prev?.seq ?? 0) + 1 }));
          return;
        }
        update((s) => failPending(s, clientId));
        refused(e, 'Message not sent');
      }
    },
    [api, roomId, update, refused],
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
        const gone = () => isDeleted(stateRef.current, messageId);
        try {
          await whenProjected(() => call(roomId, messageId, emoji), ctx.signal, gone);
        } catch (e) {
          if (ctx.signal.aborted) return;
          if (reactionClicks.current.get(key) === click) {
            update((s) => settleReaction(s, messageId, emoji, 'failed'));
            ctx.memory.set(messageId, emoji, op !== 'added');
          }
          // Deleted while the click was on its way: the message is gone, and so is the reaction.
          if (!gone()) refused(e, 'Reaction not saved');
          return;
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
    [api, roomId, update, refused],
  );

  const editMessage = useCallback(
    async (messageId: string, text: string) => {
      const ctx = live.current;
      if (!ctx) return false;
      const gone = () => isDeleted(stateRef.current, messageId);
      try {
        const edited = await whenProjected(() => api.editMessage(roomId, messageId, text), ctx.signal, gone);
        if (!ctx.signal.aborted) update((s) => applyEdit(s, edited));
        return true;
      } catch (e) {
        if (ctx.signal.aborted) return false;
        if (gone() || (e instanceof ApiError && e.status === 404)) {
          update((s) => applyDelete(s, messageId));
          setError('This message was deleted.');
        } else {
          refused(e, 'Message not edited');
        }
        return false;
      }
    },
    [api, roomId, update, refused],
  );

  const deleteMessage = useCallback(
    (messageId: string) => {
      const ctx = live.current;
      if (!ctx) return;
      const gone = () => isDeleted(stateRef.current, messageId);
      void whenProjected(() => api.deleteMessage(roomId, messageId), ctx.signal, gone).then(
        () => !ctx.signal.aborted && update((s) => applyDelete(s, messageId)),
        (e) => {
          if (ctx.signal.aborted) return;
          // Already deleted (by someone else, or our own first attempt): what we wanted.
          if (gone() || (e instanceof ApiError && e.status === 404)) update((s) => applyDelete(s, messageId));
          else refused(e, 'Message not deleted');
        },
      );
    },
    [api, roomId, update, refused],
  );

  const banAuthor = useCallback(
    (messageId: string, seconds: number | null) => {
      const ctx = live.current;
      const message = stateRef.current.items.find((m) => m.id === messageId);
      if (!ctx || !message) return;
      api.banUser(roomId, message.user.id, seconds, banReason(message.text)).then(
        () => {
          if (ctx.signal.aborted) return;
          setInfo(bannedText(message.user.name, seconds));
          reloadModeration();
        },
        (e) => !ctx.signal.aborted && refused(e, `${message.user.name} not banned`),
      );
    },
    [api, roomId, refused, reloadModeration],
  );

  const liftBan = useCallback(
    async (userId: string, name: string) => {
      const ctx = live.current;
      if (!ctx) return false;
      try {
        await api.unbanUser(roomId, userId);
      } catch (e) {
        if (!ctx.signal.aborted) refused(e, `Ban on ${name} not lifted`);
        return false;
      }
      if (ctx.signal.aborted) return false;
      setBans((prev) => prev && prev.filter((b) => b.user_id !== userId));
      reloadModeration();
      return true;
    },
    [api, roomId, refused, reloadModeration],
  );

  const setModerator = useCallback(
    async (userId: string, name: string, appoint: boolean) => {
      const ctx = live.current;
      if (!ctx) return false;
      try {
        await (appoint ? api.addModerator : api.removeModerator)(roomId, userId);
      } catch (e) {
        if (!ctx.signal.aborted) refused(e, appoint ? `${name} not made a moderator` : `${name} not removed as a moderator`);
        return false;
      }
      if (ctx.signal.aborted) return false;
      setInfo(moderatorText(name, appoint));
      // The server answers once the change is in the read model, so the list has it.
      reloadModeration();
      return true;
    },
    [api, roomId, refused, reloadModeration],
  );

  const appointAuthor = useCallback(
    (messageId: string, appoint: boolean) => {
      const message = stateRef.current.items.find((m) => m.id === messageId);
      if (message) void setModerator(message.user.id, message.user.name, appoint);
    },
    [setModerator],
  );

  const setSlowMode = useCallback(
    async (seconds: number) => {
      const ctx = live.current;
      if (!ctx) return;
      await api.setSlowMode(roomId, seconds).then(
        (r) => !ctx.signal.aborted && setRoom((prev) => ({ ...prev, ...r, mode: ctx.mode })),
        (e) => !ctx.signal.aborted && refused(e, 'Slow mode not changed'),
      );
    },
    [api, roomId, refused],
  );

  const loadOlder = useCallback(() => {
    const ctx = live.current;
    // As for the latest page: events received before the fetch are older than the page.
    liveQueue.current?.flush();
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

  // Before the first event, the count the room's JSON carried (a number, or null when the server does not know).
  const online = room?.online;
  const presence = livePresence ?? (typeof online === 'number' ? { online, approximate: false } : null);

  const dismissError = useCallback(() => setError(null), []);
  const dismissInfo = useCallback(() => setInfo(null), []);

  return {
    room,
    messages,
    status,
    mode,
    presence,
    error,
    notice,
    loadingOlder,
    role,
    ban,
    slowUntil,
    returnedDraft,
    info,
    moderators,
    bans,
    send,
    retry,
    discard,
    toggleReaction,
    loadOlder,
    dismissError,
    dismissInfo,
    editMessage,
    deleteMessage,
    banAuthor,
    setSlowMode,
    reloadModeration,
    liftBan,
    setModerator,
    appointAuthor,
  };
}
