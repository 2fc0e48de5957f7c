import { describe, expect, it } from 'vitest';

import {
  addPending,
  applyDelete,
  applyEdit,
  applyPage,
  applyReaction,
  confirmPending,
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
import type { EditEvent, Message, ReactionEvent, User } from './types';

const alice: User = { id: 'u-alice', name: 'alice' };
const bob: User = { id: 'u-bob', name: 'bob' };
const ROOM = 'room-1';

/** Message n: ids and times increase with n. */
function msg(n: number, over: Partial<Message> = {}): Message {
  const id = `0190${String(n).padStart(4, '0')}-0000-7000-8000-000000000000`;
  return {
    id,
    room_id: ROOM,
    user: bob,
    text: `message ${n}`,
    at: new Date(Date.UTC(2025, 0, 1, 12, 0, n)).toISOString(),
    reactions: {},
    ...over,
  };
}

const ids = (s: MessageState) => s.items.map((m) => m.id);
const texts = (s: MessageState) => s.items.map((m) => m.text);
const latest = (s: MessageState, page: Message[], limit = 3, fetchRev = s.rev) =>
  applyPage(s, page, { kind: 'latest', limit, fetchRev });

describe('history pages', () => {
  it('loads the first page oldest to newest and knows whether older pages exist', () => {
    const full = latest(emptyState(), [msg(4), msg(5), msg(6)]);
    expect(ids(full)).toEqual([msg(4).id, msg(5).id, msg(6).id]);
    expect(full.loaded).toBe(true);
    expect(full.hasOlder).toBe(true);
    expect(oldestId(full)).toBe(msg(4).id);

    const short = latest(emptyState(), [msg(1)]);
    expect(short.hasOlder).toBe(false);
  });

  it('prepends an older page, skipping messages it already has', () => {
    let s = latest(emptyState(), [msg(4), msg(5), msg(6)]);
    s = applyPage(s, [msg(2), msg(3), msg(4)], { kind: 'older', limit: 3, fetchRev: s.rev });
    expect(ids(s)).toEqual([2, 3, 4, 5, 6].map((n) => msg(n).id));
    expect(s.hasOlder).toBe(true);
    s = applyPage(s, [msg(1)], { kind: 'older', limit: 3, fetchRev: s.rev });
    expect(texts(s)[0]).toBe('message 1');
    expect(s.hasOlder).toBe(false);
  });

  it('keeps order oldest to newest whatever order pages and live events come in', () => {
    let s = receiveMessage(emptyState(), msg(7));
    s = latest(s, [msg(5), msg(6), msg(7)]);
    s = receiveMessage(s, msg(8));
    s = receiveMessage(s, msg(8));
    expect(ids(s)).toEqual([5, 6, 7, 8].map((n) => msg(n).id));
  });

  it('takes the remembered reactions of the user for fetched messages', () => {
    const s = applyPage(emptyState(), [msg(1, { reactions: { '👍': 1 } })], {
      kind: 'latest',
      limit: 50,
      fetchRev: 0,
      mineOf: (id) => (id === msg(1).id ? ['👍'] : []),
    });
    expect(s.items[0].mine).toEqual(['👍']);
  });
});

describe('reset (refetch of the newest page)', () => {
  it('fills in what was missed and updates counts when the page overlaps', () => {
    let s = latest(emptyState(), [msg(1), msg(2), msg(3)], 3);
    s = applyPage(s, [msg(0)], { kind: 'older', limit: 3, fetchRev: s.rev });
    // Missed: 4 and a reaction on 3.
    s = latest(s, [msg(2), msg(3, { reactions: { '🎉': 2 } }), msg(4)], 3);
    expect(ids(s)).toEqual([0, 1, 2, 3, 4].map((n) => msg(n).id));
    expect(s.items.find((m) => m.id === msg(3).id)?.reactions).toEqual({ '🎉': 2 });
    expect(s.hasOlder).toBe(false);
  });

  it('drops messages that are no longer contiguous when more than a page was missed', () => {
    let s = latest(emptyState(), [msg(1), msg(2), msg(3)], 3);
    s = latest(s, [msg(10), msg(11), msg(12)], 3);
    expect(ids(s)).toEqual([10, 11, 12].map((n) => msg(n).id));
    expect(s.hasOlder).toBe(true); // scrolling up fetches the gap
  });

  it('keeps live messages newer than the page and pending messages across a reset', () => {
    let s = latest(emptyState(), [msg(1), msg(2), msg(3)], 3);
    s = addPending(s, { clientId: 'local-1', roomId: ROOM, user: alice, text: 'typing fast' });
    const fetchRev = s.rev;
    s = receiveMessage(s, msg(13)); // arrives while the refetch is in flight
    s = latest(s, [msg(10), msg(11), msg(12)], 3, fetchRev);
    expect(texts(s)).toEqual(['message 10', 'message 11', 'message 12', 'message 13', 'typing fast']);
  });

  it('keeps live reaction counts that are newer than the fetch', () => {
    let s = latest(emptyState(), [msg(1), msg(2)], 3);
    const fetchRev = s.rev;
    s = applyReaction(s, reaction(msg(2).id, '👍', bob, 'added', 3));
    // The page was read before that event was projected.
    s = latest(s, [msg(1, { reactions: { '👍': 1 } }), msg(2, { reactions: { '👍': 2 } })], 3, fetchRev);
    expect(s.items[0].reactions).toEqual({ '👍': 1 });
    expect(s.items[1].reactions).toEqual({ '👍': 3 });
  });
});

describe('own messages: optimistic and reconciled', () => {
  const sendHello = () =>
    addPending(latest(emptyState(), [msg(1)], 3), { clientId: 'local-1', roomId: ROOM, user: alice, text: 'hello' });
  const server = msg(2, { user: alice, text: 'hello' });

  it('shows a pending message at once, after the sent ones', () => {
    const s = sendHello();
    expect(texts(s)).toEqual(['message 1', 'hello']);
    expect(s.items[1].status).toBe('pending');
  });

  it('replaces it with the server copy when the POST answers first, then ignores the live copy', () => {
    let s = confirmPending(sendHello(), 'local-1', server);
    expect(s.items.map((m) => [m.id, m.status])).toEqual([
      [msg(1).id, 'sent'],
      [server.id, 'sent'],
    ]);
    s = receiveMessage(s, server, alice.id);
    expect(ids(s)).toEqual([msg(1).id, server.id]);
    expect(s.items[1].clientId).toBe('local-1'); // same React key throughout
  });

  it('matches the live copy to the pending message when the event comes first', () => {
    let s = receiveMessage(sendHello(), server, alice.id);
    expect(ids(s)).toEqual([msg(1).id, server.id]);
    expect(s.items[1].status).toBe('sent');
    s = confirmPending(s, 'local-1', server);
    expect(ids(s)).toEqual([msg(1).id, server.id]);
  });

  it('does not take someone else’s message with the same text for ours', () => {
    const s = receiveMessage(sendHello(), msg(2, { user: bob, text: 'hello' }), alice.id);
    expect(s.items.map((m) => m.status)).toEqual(['sent', 'sent', 'pending']);
  });

  it('shows both of two identical messages whatever order the answers come in', () => {
    let s = addPending(sendHello(), { clientId: 'local-2', roomId: ROOM, user: alice, text: 'hello' });
    const first = msg(2, { user: alice, text: 'hello' });
    const second = msg(3, { user: alice, text: 'hello' });
    // The second POST's live event, then both answers in reverse order.
    s = receiveMessage(s, second, alice.id);
    s = confirmPending(s, 'local-2', second);
    s = confirmPending(s, 'local-1', first);
    s = receiveMessage(s, first, alice.id);
    expect(ids(s)).toEqual([msg(1).id, first.id, second.id]);
    expect(s.items.every((m) => m.status === 'sent')).toBe(true);
  });

  it('replaces the placeholder when a refetch brought the message before the POST answered', () => {
    let s = sendHello();
    s = latest(s, [msg(1), server], 3);
    s = confirmPending(s, 'local-1', server);
    expect(ids(s)).toEqual([msg(1).id, server.id]);
  });

  it('keeps a failed message so it can be retried', () => {
    let s = failPending(sendHello(), 'local-1');
    expect(s.items[1].status).toBe('failed');
    s = receiveMessage(s, msg(3), alice.id);
    s = retryPending(s, 'local-1');
    expect(s.items.map((m) => [m.text, m.status])).toEqual([
      ['message 1', 'sent'],
      ['message 3', 'sent'],
      ['hello', 'pending'],
    ]);
  });
});

function reaction(messageId: string, emoji: string, user: User, op: 'added' | 'removed', count?: number): ReactionEvent {
  return { message_id: messageId, emoji, user, op, count };
}

describe('reactions', () => {
  const base = () => latest(emptyState(), [msg(1, { reactions: { '👍': 1 } })], 3);

  it('applies the op to the shown count when the event has no count', () => {
    let s = applyReaction(base(), reaction(msg(1).id, '👍', bob, 'added'));
    expect(s.items[0].reactions).toEqual({ '👍': 2 });
    s = applyReaction(s, reaction(msg(1).id, '🎉', bob, 'added'));
    expect(s.items[0].reactions).toEqual({ '👍': 2, '🎉': 1 });
    s = applyReaction(s, reaction(msg(1).id, '🎉', bob, 'removed'));
    s = applyReaction(s, reaction(msg(1).id, '🎉', bob, 'removed'));
    expect(s.items[0].reactions).toEqual({ '👍': 2 });
  });

  it('does not count our own click twice when its event has no count', () => {
    let s = reactOptimistically(base(), msg(1).id, '👍', 'added');
    expect(s.items[0].reactions).toEqual({ '👍': 2 });
    s = applyReaction(s, reaction(msg(1).id, '👍', alice, 'added'), alice.id);
    expect(s.items[0].reactions).toEqual({ '👍': 2 });
    expect(s.items[0].pendingReactions).toBeUndefined();
  });

  it('takes the count from the live event and removes emojis that reach zero', () => {
    let s = applyReaction(base(), reaction(msg(1).id, '👍', bob, 'added', 2));
    expect(s.items[0].reactions).toEqual({ '👍': 2 });
    s = applyReaction(s, reaction(msg(1).id, '👍', bob, 'removed', 0));
    expect(s.items[0].reactions).toEqual({});
  });

  it('ignores reactions to messages it does not hold', () => {
    const s = base();
    expect(applyReaction(s, reaction('unknown', '👍', bob, 'added', 5))).toBe(s);
  });

  it('shows a click at once and lets the event settle it', () => {
    let s = reactOptimistically(base(), msg(1).id, '❤️', 'added');
    expect(s.items[0].reactions).toEqual({ '👍': 1, '❤️': 1 });
    expect(s.items[0].mine).toEqual(['❤️']);
    s = applyReaction(s, reaction(msg(1).id, '❤️', alice, 'added', 3), alice.id);
    expect(s.items[0].reactions['❤️']).toBe(3);
    expect(s.items[0].pendingReactions).toBeUndefined();
    // Settling later changes nothing once the event came.
    expect(settleReaction(s, msg(1).id, '❤️', 'unchanged')).toBe(s);
  });

  it('rolls a failed click back', () => {
    let s = reactOptimistically(base(), msg(1).id, '👍', 'added');
    expect(s.items[0].reactions['👍']).toBe(2);
    s = settleReaction(s, msg(1).id, '👍', 'failed');
    expect(s.items[0].reactions['👍']).toBe(1);
    expect(s.items[0].mine).toEqual([]);
  });

  it('takes an accepted click with no event as "we had reacted already"', () => {
    // After a reload the client did not know the 👍 was ours; the add changes nothing on the server.
    let s = reactOptimistically(base(), msg(1).id, '👍', 'added');
    s = settleReaction(s, msg(1).id, '👍', 'unchanged');
    expect(s.items[0].reactions['👍']).toBe(1);
    expect(s.items[0].mine).toEqual(['👍']);
  });

  it('tracks own reactions from live events (e.g. from another tab)', () => {
    let s = applyReaction(base(), reaction(msg(1).id, '🎉', alice, 'added', 1), alice.id);
    expect(s.items[0].mine).toEqual(['🎉']);
    s = applyReaction(s, reaction(msg(1).id, '🎉', alice, 'removed', 0), alice.id);
    expect(s.items[0].mine).toEqual([]);
  });

  it('replaces the whole map with a counts event, and ignores one for a message it does not hold', () => {
    let s = applyReaction(base(), reaction(msg(1).id, '🎉', bob, 'added', 1));
    const rev = s.rev;
    s = applyReaction(s, { message_id: msg(1).id, counts: { '👍': 12, '😂': 3 } });
    expect(s.items[0].reactions).toEqual({ '👍': 12, '😂': 3 });
    // A live change: a page fetched before it does not bring back the old counts.
    expect(s.rev).toBe(rev + 1);
    expect(s.items[0].rev).toBe(s.rev);
    s = applyReaction(s, { message_id: msg(1).id, counts: {} });
    expect(s.items[0].reactions).toEqual({});
    expect(applyReaction(s, { message_id: 'unknown', counts: { '👍': 1 } })).toBe(s);
  });

  it('keeps a pending click pressed through a counts event, showing the server’s count', () => {
    let s = reactOptimistically(base(), msg(1).id, '❤️', 'added');
    // The batch was cut before the server saw the click: no ❤️ in it yet.
    s = applyReaction(s, { message_id: msg(1).id, counts: { '👍': 4 } }, alice.id);
    expect(s.items[0].reactions).toEqual({ '👍': 4 });
    expect(s.items[0].mine).toEqual(['❤️']);
    expect(s.items[0].pendingReactions?.['❤️']).toBeDefined();
    // The next batch has it.
    s = applyReaction(s, { message_id: msg(1).id, counts: { '👍': 4, '❤️': 1 } }, alice.id);
    expect(s.items[0].reactions).toEqual({ '👍': 4, '❤️': 1 });
    // No own event comes (it was folded): the settle timer ends the click on the server's count.
    s = settleReaction(s, msg(1).id, '❤️', 'unchanged');
    expect(s.items[0].reactions).toEqual({ '👍': 4, '❤️': 1 });
    expect(s.items[0].mine).toEqual(['❤️']);
    expect(s.items[0].pendingReactions).toBeUndefined();
  });

  it('rolls a failed click back to the server’s count once a counts event came', () => {
    let s = reactOptimistically(base(), msg(1).id, '👍', 'added');
    s = applyReaction(s, { message_id: msg(1).id, counts: { '👍': 7 } }, alice.id);
    expect(s.items[0].reactions['👍']).toBe(7);
    expect(s.items[0].mine).toEqual(['👍']);
    s = settleReaction(s, msg(1).id, '👍', 'failed');
    expect(s.items[0].reactions['👍']).toBe(7);
    expect(s.items[0].mine).toEqual([]);
  });

  it('lets its own event settle a click after a counts event', () => {
    let s = reactOptimistically(base(), msg(1).id, '👍', 'added');
    s = applyReaction(s, { message_id: msg(1).id, counts: { '👍': 2 } }, alice.id);
    s = applyReaction(s, reaction(msg(1).id, '👍', alice, 'added', 2), alice.id);
    expect(s.items[0]).toMatchObject({ reactions: { '👍': 2 }, mine: ['👍'] });
    expect(s.items[0].pendingReactions).toBeUndefined();
  });

  it('takes an emoji with no reactions left in a counts event as not ours, unless a click on it is pending', () => {
    let s = applyPage(emptyState(), [msg(1, { reactions: { '👍': 1, '🎉': 1 } })], {
      kind: 'latest',
      limit: 3,
      fetchRev: 0,
      mineOf: () => ['👍', '🎉'],
    });
    s = reactOptimistically(s, msg(1).id, '❤️', 'added');
    s = applyReaction(s, { message_id: msg(1).id, counts: { '🎉': 1 } }, alice.id);
    expect(s.items[0].mine).toEqual(['🎉', '❤️']);
  });

  it('does not let a live message event wipe counts', () => {
    let s = applyReaction(base(), reaction(msg(1).id, '👍', bob, 'added', 2));
    s = receiveMessage(s, msg(1));
    expect(s.items[0].reactions).toEqual({ '👍': 2 });
  });
});

/** The `edit` event of message n, edited `secs` seconds after the hour. */
function edit(n: number, text: string, secs = 30): EditEvent {
  const m = msg(n);
  return { id: m.id, room_id: ROOM, user: m.user, text, at: m.at, edited_at: new Date(Date.UTC(2025, 0, 1, 13, 0, secs)).toISOString() };
}

describe('edits', () => {
  it('changes the text and marks the message edited, keeping its reactions', () => {
    let s = latest(emptyState(), [msg(1, { reactions: { '👍': 2 } }), msg(2)]);
    s = reactOptimistically(s, msg(1).id, '🎉', 'added');
    s = applyEdit(s, edit(1, 'fixed typo'));
    expect(s.items[0]).toMatchObject({ text: 'fixed typo', edited_at: edit(1, '').edited_at, reactions: { '👍': 2, '🎉': 1 } });
    expect(s.items[0].pendingReactions?.['🎉']).toBeDefined();
    expect(s.items[1].edited_at).toBeUndefined();
  });

  it('ignores an edit older than the text shown', () => {
    let s = applyEdit(latest(emptyState(), [msg(1)]), edit(1, 'second', 40));
    s = applyEdit(s, edit(1, 'first', 20));
    expect(texts(s)).toEqual(['second']);
  });

  it('keeps the edited text when a page or replayed event read before the edit brings the old copy', () => {
    let s = latest(emptyState(), [msg(1), msg(2)]);
    const fetchRev = s.rev;
    s = applyEdit(s, edit(1, 'fixed'));
    s = latest(s, [msg(1), msg(2)], 3, fetchRev);
    s = receiveMessage(s, msg(1));
    expect(texts(s)).toEqual(['fixed', 'message 2']);
    // A page read after an even newer edit wins.
    s = latest(s, [msg(1, { text: 'fixed again', edited_at: edit(1, '', 50).edited_at }), msg(2)]);
    expect(texts(s)).toEqual(['fixed again', 'message 2']);
  });

  it('remembers an edit of a message not loaded yet and applies it when the message arrives', () => {
    let s = applyEdit(emptyState(), edit(5, 'edited before we saw it'));
    expect(s.items).toEqual([]);
    // The first page was read before the edit.
    s = latest(s, [msg(4), msg(5)]);
    expect(texts(s)).toEqual(['message 4', 'edited before we saw it']);
    expect(s.items[1].edited_at).toBeDefined();
    // Likewise for a message that only arrives live (e.g. replayed after the edit).
    s = applyEdit(s, edit(6, 'live, edited'));
    s = receiveMessage(s, msg(6));
    expect(texts(s)).toEqual(['message 4', 'edited before we saw it', 'live, edited']);
  });

  it('applies our own edit’s answer like the event, whichever comes first', () => {
    const answer: Message = { ...msg(1, { user: alice, text: 'mine, fixed' }), edited_at: edit(1, '').edited_at };
    let s = latest(emptyState(), [msg(1, { user: alice })]);
    s = applyEdit(s, answer);
    s = applyEdit(s, { ...edit(1, 'mine, fixed'), user: alice });
    expect(texts(s)).toEqual(['mine, fixed']);
  });

  it('ignores a copy without edited_at (not an edit)', () => {
    const s = latest(emptyState(), [msg(1)]);
    expect(applyEdit(s, msg(1, { text: 'other' }))).toBe(s);
  });
});

describe('deletes', () => {
  it('removes the message and its reactions', () => {
    let s = latest(emptyState(), [msg(1, { reactions: { '👍': 3 } }), msg(2)]);
    s = applyDelete(s, msg(1).id);
    expect(ids(s)).toEqual([msg(2).id]);
    expect(isDeleted(s, msg(1).id)).toBe(true);
    expect(applyDelete(s, msg(1).id)).toBe(s);
  });

  it('does not bring a deleted message back from a page read before the delete, or a replayed event', () => {
    let s = latest(emptyState(), [msg(1), msg(2)]);
    const fetchRev = s.rev;
    s = applyDelete(s, msg(2).id);
    s = latest(s, [msg(1), msg(2)], 3, fetchRev);
    s = receiveMessage(s, msg(2));
    s = applyEdit(s, edit(2, 'too late'));
    expect(ids(s)).toEqual([msg(1).id]);
  });

  it('never shows a message deleted before it was loaded', () => {
    let s = applyDelete(emptyState(), msg(3).id);
    s = latest(s, [msg(2), msg(3), msg(4)]);
    s = applyPage(s, [msg(3)], { kind: 'older', limit: 3, fetchRev: s.rev });
    expect(ids(s)).toEqual([msg(2).id, msg(4).id]);
  });

  it('drops a reaction racing the delete, before or after it', () => {
    let s = latest(emptyState(), [msg(1, { reactions: { '👍': 1 } })]);
    // Our click is in flight when the delete comes; the other user's reaction event comes after it.
    s = reactOptimistically(s, msg(1).id, '👍', 'added');
    s = applyDelete(s, msg(1).id);
    const afterDelete = s;
    s = applyReaction(s, reaction(msg(1).id, '👍', bob, 'added', 3));
    s = settleReaction(s, msg(1).id, '👍', 'failed');
    expect(s).toBe(afterDelete);
    expect(s.items).toEqual([]);
  });

  it('drops our own message when the delete comes before the POST’s answer', () => {
    let s = addPending(emptyState(), { clientId: 'local-1', roomId: ROOM, user: alice, text: 'spam' });
    const server = msg(1, { user: alice, text: 'spam' });
    s = applyDelete(s, server.id);
    s = confirmPending(s, 'local-1', server);
    expect(s.items).toEqual([]);
  });

  it('takes a held message missing from inside a fetched page as deleted (a delete missed before a reset)', () => {
    let s = latest(emptyState(), [msg(1), msg(2), msg(3), msg(4)], 10);
    s = addPending(s, { clientId: 'local-1', roomId: ROOM, user: alice, text: 'unsent' });
    const fetchRev = s.rev;
    s = receiveMessage(s, msg(5)); // came live while the refetch was in flight
    s = latest(s, [msg(1), msg(3), msg(4)], 10, fetchRev);
    expect(texts(s)).toEqual(['message 1', 'message 3', 'message 4', 'message 5', 'unsent']);
  });
});
