// A room's message list as pure functions: merging history pages and live events, deduplicated by id,
// kept oldest → newest, with optimistic (pending) messages reconciled against the server's copy and
// optimistic reactions settled by the live `reaction` events (in a throttled room, counts may come as a
// message's complete map instead). Edits and deletes may arrive before the message they name (or while a
// page that still has the old copy is in flight): they are remembered, so that a later or staler copy
// never brings back an old text or a deleted message.
//
// Every function returns a new state and never mutates its input, so React can compare by reference.

import type { EditEvent, LiveReaction, Message, ReactionCountsEvent, ReactionEvent, User } from './types';

export type DeliveryStatus = 'sent' | 'pending' | 'failed';

/** A reaction click whose outcome we have not seen yet. */
export interface PendingReaction {
  op: 'added' | 'removed';
  /** Count and membership before the click, to roll back to (the count: the server's, once a counts event came). */
  prevCount: number;
  prevMine: boolean;
}

export interface ChatMessage extends Message {
  status: DeliveryStatus;
  /** Local id of a message this client sent; stays set after the server copy replaced it. */
  clientId?: string;
  /** Emojis the signed-in user reacted with, as far as this client knows. */
  mine: string[];
  /** Reaction clicks waiting for their event. */
  pendingReactions?: Record<string, PendingReaction>;
  /** Local revision at which a live event last changed this message's counts. */
  rev: number;
}

export interface MessageState {
  /** Sent messages oldest → newest, then this client's pending and failed ones in send order. */
  items: ChatMessage[];
  /** Whether older messages may exist on the server (a page was full). */
  hasOlder: boolean;
  /** Whether any page has been loaded. */
  loaded: boolean;
  /** Local clock: bumped by every live change, so a fetch can tell which counts are newer than it. */
  rev: number;
  /** Ids of deleted messages: no page or replayed event shows them again. */
  deleted: ReadonlySet<string>;
  /** The newest edit seen of each message that was not loaded when its edit arrived. */
  edits: Readonly<Record<string, Edit>>;
}

export interface Edit {
  text: string;
  edited_at: string;
}

export const emptyState = (): MessageState => ({
  items: [],
  hasOlder: false,
  loaded: false,
  rev: 0,
  deleted: new Set(),
  edits: {},
});

/** Whether an edit made at `a` is newer than the text a copy edited at `b` (undefined: never edited) has. */
function editIsNewer(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined) return false;
  return b === undefined || Date.parse(a) > Date.parse(b);
}

/** A server copy with the newest edit we know of applied (a copy fetched before the edit has the old text). */
function withKnownEdit(state: MessageState, message: Message): Message {
  const edit = state.edits[message.id];
  return edit && editIsNewer(edit.edited_at, message.edited_at) ? { ...message, ...edit } : message;
}

/** Which emojis the user reacted with on a message (from local memory); [] when unknown. */
export type MineLookup = (messageId: string) => string[];

const noMine: MineLookup = () => [];

function fromServer(message: Message, mineOf: MineLookup): ChatMessage {
  return { ...message, reactions: { ...message.reactions }, status: 'sent', mine: mineOf(message.id), rev: 0 };
}

/** Oldest first by server time, ties broken by id (UUIDv7 ids sort by creation time). */
export function compareMessages(a: Message, b: Message): number {
  const ta = Date.parse(a.at);
  const tb = Date.parse(b.at);
  if (ta !== tb) return ta - tb;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Sent messages in order, then unsent ones in the order they were written. */
function normalise(items: ChatMessage[]): ChatMessage[] {
  const sent = items.filter((m) => m.status === 'sent').sort(compareMessages);
  const unsent = items.filter((m) => m.status !== 'sent');
  return [...sent, ...unsent];
}

/** Server copy over local copy, keeping what only the client knows (and live counts newer than the copy). */
function mergeOne(local: ChatMessage, server: Message, fetchRev: number | null): ChatMessage {
  // A fetched copy is older than any live change after the fetch started; a live `message` event has
  // no counts at all (reactions come as their own events), so neither may overwrite newer counts.
  const keepCounts = fetchRev === null || local.rev > fetchRev || local.pendingReactions !== undefined;
  // Texts only change by edits: the copy edited last has the current one.
  const keepText = editIsNewer(local.edited_at, server.edited_at);
  return {
    ...local,
    ...server,
    ...(keepText ? { text: local.text, edited_at: local.edited_at } : {}),
    reactions: keepCounts ? local.reactions : { ...server.reactions },
    status: 'sent',
    clientId: local.clientId,
    mine: local.mine,
    pendingReactions: local.pendingReactions,
    rev: local.rev,
  };
}

export type PageKind =
  /** The newest page: first load, or a refetch after `reset`. */
  | 'latest'
  /** A page before the oldest message we hold (`before`). */
  | 'older';

/**
 * Merges one history page (oldest → newest) into the list.
 *
 * `fetchRev` is `state.rev` when the fetch was started: counts changed by live events after that are
 * newer than the page and are kept. A `latest` page that shares no message with what we hold, while we
 * hold sent messages, means we missed more than a page: the old messages are no longer contiguous with
 * the new ones, so they are dropped and loading older pages on scroll-up brings the gap back.
 *
 * History leaves deleted messages out: a message we hold that falls between the page's first and last
 * but is not on it was deleted (a `delete` we missed, e.g. before a `reset`), unless it came live after
 * the fetch started.
 */
export function applyPage(
  state: MessageState,
  page: Message[],
  opts: { kind: PageKind; limit: number; fetchRev: number; mineOf?: MineLookup },
): MessageState {
  const mineOf = opts.mineOf ?? noMine;
  const full = page.length >= opts.limit;
  let items = state.items;
  if (page.length > 1) {
    const pageIds = new Set(page.map((m) => m.id));
    const [first, last] = [page[0], page[page.length - 1]];
    const gone = (m: ChatMessage) =>
      m.status === 'sent' &&
      !pageIds.has(m.id) &&
      m.rev <= opts.fetchRev &&
      compareMessages(m, first) > 0 &&
      compareMessages(m, last) < 0;
    if (items.some(gone)) items = items.filter((m) => !gone(m));
  }
  let hasOlder: boolean;

  if (opts.kind === 'latest') {
    const pageIds = new Set(page.map((m) => m.id));
    const held = items.filter((m) => m.status === 'sent');
    const overlaps = held.some((m) => pageIds.has(m.id));
    const oldestOfPage = page[0];
    if (!state.loaded || held.length === 0) {
      hasOlder = full;
    } else if (overlaps || !full) {
      hasOlder = state.hasOlder;
    } else {
      // A full page with nothing in common: a gap. Keep only what is newer than the page's start
      // (live events that raced the fetch) and what was never sent.
      items = items.filter((m) => m.status !== 'sent' || compareMessages(m, oldestOfPage) >= 0);
      hasOlder = true;
    }
  } else {
    hasOlder = full;
  }

  const byId = new Map(items.map((m, i) => [m.id, i]));
  const next = items.slice();
  for (const fetched of page) {
    if (state.deleted.has(fetched.id)) continue;
    const message = withKnownEdit(state, fetched);
    const at = byId.get(message.id);
    if (at === undefined) {
      byId.set(message.id, next.length);
      next.push(fromServer(message, mineOf));
    } else {
      next[at] = mergeOne(next[at], message, opts.fetchRev);
    }
  }
  return { ...state, items: normalise(next), hasOlder, loaded: true };
}

/** The id to pass as `before` for the next older page. */
export function oldestId(state: MessageState): string | undefined {
  return state.items.find((m) => m.status === 'sent')?.id;
}

/** Adds a message this client is sending, before the server has answered. */
export function addPending(
  state: MessageState,
  pending: { clientId: string; roomId: string; user: User; text: string; at?: string },
): MessageState {
  const message: ChatMessage = {
    id: pending.clientId,
    clientId: pending.clientId,
    room_id: pending.roomId,
    user: pending.user,
    text: pending.text,
    at: pending.at ?? new Date().toISOString(),
    reactions: {},
    status: 'pending',
    mine: [],
    rev: 0,
  };
  return { ...state, items: [...state.items, message] };
}

/**
 * A live `message` event. Known ids are merged (counts kept). An unknown message from the signed-in user
 * whose text matches a pending message is taken as that message's server copy (it may arrive before
 * the POST's answer): the contract has no client-chosen id to match on, so text is the best key.
 */
export function receiveMessage(state: MessageState, live: Message, myUserId?: string): MessageState {
  // A replayed event of a message deleted since.
  if (state.deleted.has(live.id)) return state;
  const message = withKnownEdit(state, live);
  const rev = state.rev + 1;
  const existing = state.items.findIndex((m) => m.id === message.id);
  let items: ChatMessage[];
  if (existing >= 0) {
    items = state.items.slice();
    items[existing] = mergeOne(items[existing], message, null);
  } else {
    const pending =
      message.user.id === myUserId
        ? state.items.findIndex((m) => m.status !== 'sent' && m.user.id === myUserId && m.text === message.text)
        : -1;
    items = state.items.slice();
    if (pending >= 0) {
      items[pending] = { ...mergeOne(items[pending], message, null), reactions: { ...message.reactions } };
    } else {
      items.push({ ...fromServer(message, noMine), rev });
    }
  }
  return { ...state, items: normalise(items), rev };
}

/** The POST answered 201 with the server's copy of the message we sent as `clientId`. */
export function confirmPending(state: MessageState, clientId: string, answer: Message): MessageState {
  // Deleted before the answer came (by a moderator, quickly): nothing to show.
  if (state.deleted.has(answer.id)) return discardPending(state, clientId);
  const message = withKnownEdit(state, answer);
  const local = state.items.findIndex((m) => m.clientId === clientId);
  const server = state.items.findIndex((m) => m.id === message.id);
  let items = state.items.slice();
  if (local < 0) {
    // Nothing to reconcile (e.g. the list was cleared): make sure the message is shown.
    if (server < 0) items.push(fromServer(message, noMine));
  } else if (items[local].id === message.id) {
    // The live event got here first and was matched to this very message.
    items[local] = mergeOne(items[local], message, null);
  } else if (items[local].status === 'sent') {
    // The live event matched our text to another of our messages with the same text. Both are real
    // messages: keep that one (it is no longer ours to reconcile) and make sure this one is shown.
    items[local] = { ...items[local], clientId: undefined };
    if (server < 0) items.push({ ...fromServer(message, noMine), clientId });
  } else if (server >= 0) {
    // Already shown from the live event (not matched): drop the placeholder.
    items[server] = { ...items[server], clientId };
    items = items.filter((_, i) => i !== local);
  } else {
    items[local] = { ...mergeOne(items[local], message, null), reactions: { ...message.reactions } };
  }
  return { ...state, items: normalise(items) };
}

/** The POST failed: the message stays, marked, so it can be sent again. */
export function failPending(state: MessageState, clientId: string): MessageState {
  return mapMessage(state, (m) => m.clientId === clientId && m.status === 'pending', (m) => ({ ...m, status: 'failed' }));
}

/** Sending again: the failed message is pending again (and moves to the end, as it is sent now). */
export function retryPending(state: MessageState, clientId: string): MessageState {
  const message = state.items.find((m) => m.clientId === clientId && m.status === 'failed');
  if (!message) return state;
  return {
    ...state,
    items: [...state.items.filter((m) => m !== message), { ...message, status: 'pending' }],
  };
}

/** Drops a failed message the user gave up on. */
export function discardPending(state: MessageState, clientId: string): MessageState {
  return { ...state, items: state.items.filter((m) => !(m.clientId === clientId && m.status !== 'sent')) };
}

/**
 * A message's new text (the `edit` event, or the answer to our own edit). Its reactions are unchanged.
 * An edit older than the text we show is ignored; an edit of a message we do not hold is remembered
 * for when it arrives.
 */
export function applyEdit(state: MessageState, edit: EditEvent | Message): MessageState {
  if (state.deleted.has(edit.id) || edit.edited_at === undefined) return state;
  const change = { text: edit.text, edited_at: edit.edited_at };
  const held = state.items.some((m) => m.id === edit.id && m.status === 'sent');
  if (!held) {
    if (!editIsNewer(edit.edited_at, state.edits[edit.id]?.edited_at)) return state;
    return { ...state, edits: { ...state.edits, [edit.id]: change } };
  }
  return mapMessage(
    state,
    (m) => m.id === edit.id && m.status === 'sent' && !editIsNewer(m.edited_at, edit.edited_at),
    (m) => ({ ...m, ...change }),
  );
}

/** A message was deleted (the `delete` event, or our own delete): it goes, with its reactions, for good. */
export function applyDelete(state: MessageState, messageId: string): MessageState {
  if (state.deleted.has(messageId)) return state;
  const deleted = new Set(state.deleted).add(messageId);
  const { [messageId]: _forgotten, ...edits } = state.edits;
  return { ...state, items: state.items.filter((m) => m.id !== messageId), deleted, edits };
}

/** Whether a message was deleted (e.g. so a failed call on it needs no error). */
export function isDeleted(state: MessageState, messageId: string): boolean {
  return state.deleted.has(messageId);
}

function mapMessage(
  state: MessageState,
  match: (m: ChatMessage) => boolean,
  change: (m: ChatMessage) => ChatMessage,
): MessageState {
  let changed = false;
  const items = state.items.map((m) => {
    if (!match(m)) return m;
    changed = true;
    return change(m);
  });
  return changed ? { ...state, items } : state;
}

function withCount(reactions: Record<string, number>, emoji: string, count: number): Record<string, number> {
  const next = { ...reactions };
  if (count > 0) next[emoji] = count;
  else delete next[emoji];
  return next;
}

function withMine(mine: string[], emoji: string, on: boolean): string[] {
  const without = mine.filter((e) => e !== emoji);
  return on ? [...without, emoji] : without;
}

function withoutPending(pending: Record<string, PendingReaction> | undefined, emoji: string) {
  if (!pending || !(emoji in pending)) return pending;
  const { [emoji]: _settled, ...rest } = pending;
  return Object.keys(rest).length ? rest : undefined;
}

/**
 * The count after `event`: the server's when it sent one (authoritative), else the one we show with
 * the event's `op` applied — unless it is our own click, which is shown already.
 */
function countAfter(m: ChatMessage, event: ReactionEvent, own: boolean): number {
  if (event.count !== undefined) return event.count;
  const shown = m.reactions[event.emoji] ?? 0;
  if (own && m.pendingReactions?.[event.emoji]) return shown;
  return Math.max(0, shown + (event.op === 'added' ? 1 : -1));
}

/** A live `reaction` event, of either shape: its count is authoritative; our own events settle our clicks. */
export function applyReaction(state: MessageState, event: LiveReaction, myUserId?: string): MessageState {
  return 'counts' in event ? applyCounts(state, event) : applyOne(state, event, myUserId);
}

function applyOne(state: MessageState, event: ReactionEvent, myUserId?: string): MessageState {
  const rev = state.rev + 1;
  const next = mapMessage(
    state,
    (m) => m.id === event.message_id && m.status === 'sent',
    (m) => {
      const own = event.user.id === myUserId;
      return {
        ...m,
        reactions: withCount(m.reactions, event.emoji, countAfter(m, event, own)),
        mine: own ? withMine(m.mine, event.emoji, event.op === 'added') : m.mine,
        pendingReactions: own ? withoutPending(m.pendingReactions, event.emoji) : m.pendingReactions,
        rev,
      };
    },
  );
  return next === state ? state : { ...next, rev };
}

/**
 * A message's complete counts (a throttled room's batch folded its reactions): they replace the map.
 *
 * The event names no user, so it cannot tell whether it includes a click of ours still pending (the
 * batch may have been cut before the server saw it). Such a click keeps its optimistic `mine` and stays
 * pending, so a failed request still rolls `mine` back; it is settled as before by its own event, its
 * failure, or the settle timer, which are all bounded. What it rolls back to is now the server's count,
 * not the one from before the click: that is the newest count we know, and the one shown meanwhile.
 * An emoji we took for ours that has no reactions left, with no click pending, is not ours.
 */
function applyCounts(state: MessageState, event: ReactionCountsEvent): MessageState {
  const rev = state.rev + 1;
  const next = mapMessage(
    state,
    (m) => m.id === event.message_id && m.status === 'sent',
    (m) => ({
      ...m,
      reactions: { ...event.counts },
      mine: m.mine.filter((e) => (event.counts[e] ?? 0) > 0 || m.pendingReactions?.[e] !== undefined),
      pendingReactions: rebased(m.pendingReactions, event.counts),
      rev,
    }),
  );
  return next === state ? state : { ...next, rev };
}

/** Pending clicks rolling back to `counts` (the server's) instead of the counts from before the clicks. */
function rebased(
  pending: Record<string, PendingReaction> | undefined,
  counts: Record<string, number>,
): Record<string, PendingReaction> | undefined {
  if (!pending) return pending;
  const next: Record<string, PendingReaction> = {};
  for (const [emoji, click] of Object.entries(pending)) next[emoji] = { ...click, prevCount: counts[emoji] ?? 0 };
  return next;
}

/** A click on a reaction: shown at once (count ±1, pressed or not) until its event arrives. */
export function reactOptimistically(
  state: MessageState,
  messageId: string,
  emoji: string,
  op: 'added' | 'removed',
): MessageState {
  return mapMessage(
    state,
    (m) => m.id === messageId && m.status === 'sent',
    (m) => {
      const count = m.reactions[emoji] ?? 0;
      const mine = m.mine.includes(emoji);
      const pending = m.pendingReactions?.[emoji];
      return {
        ...m,
        reactions: withCount(m.reactions, emoji, Math.max(0, count + (op === 'added' ? 1 : -1))),
        mine: withMine(m.mine, emoji, op === 'added'),
        pendingReactions: {
          ...m.pendingReactions,
          // A second click before the first settled rolls back to the state before the first.
          [emoji]: pending ? { ...pending, op } : { op, prevCount: count, prevMine: mine },
        },
      };
    },
  );
}

/**
 * A reaction click that got no event: `failed` (the request failed) restores the state before the
 * click; `unchanged` (accepted, but no event came in time) means the server already had it that way:
 * an add that changes nothing means we had reacted already, a remove that changes nothing means we
 * had not, and the count was right before the click.
 */
export function settleReaction(
  state: MessageState,
  messageId: string,
  emoji: string,
  outcome: 'failed' | 'unchanged',
): MessageState {
  return mapMessage(
    state,
    (m) => m.id === messageId && m.pendingReactions?.[emoji] !== undefined,
    (m) => {
      const pending = m.pendingReactions![emoji];
      const mine = outcome === 'failed' ? pending.prevMine : pending.op === 'added';
      return {
        ...m,
        reactions: withCount(m.reactions, emoji, pending.prevCount),
        mine: withMine(m.mine, emoji, mine),
        pendingReactions: withoutPending(m.pendingReactions, emoji),
      };
    },
  );
}
