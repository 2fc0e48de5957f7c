// Who may do what to a message, and how the outcomes of moderation read to the people involved.
// The server checks every call; this only decides which controls to show and what to say.

import type { Moderator, Room, User } from './types';
import { formatTime } from './time';

export type Role = 'owner' | 'moderator' | 'member';

export function roleOf(room: Pick<Room, 'owner'> | null, moderators: Moderator[], userId: string): Role {
  if (room?.owner?.id === userId) return 'owner';
  return moderators.some((m) => m.user_id === userId) ? 'moderator' : 'member';
}

export interface MessageActions {
  edit: boolean;
  delete: boolean;
  ban: boolean;
  /** The owner's "Make moderator" / "Remove moderator" on another user's message; null: neither. */
  appoint: 'make' | 'remove' | null;
}

/**
 * Authors edit and delete their own messages; owners and moderators delete any message (only the
 * owner deletes the owner's) and ban its author, except themselves, the owner and moderators (the
 * server refuses those: the owner dismisses a moderator first). The owner appoints or dismisses the
 * author of another's message. Messages not yet sent have none of these.
 */
export function messageActions(
  message: { user: { id: string }; status: string },
  me: string,
  role: Role,
  ownerId: string | undefined,
  authorModerates = false,
): MessageActions {
  if (message.status !== 'sent') return { edit: false, delete: false, ban: false, appoint: null };
  const own = message.user.id === me;
  const moderates = role !== 'member';
  const byOwner = message.user.id === ownerId;
  return {
    edit: own,
    delete: own || (moderates && (!byOwner || role === 'owner')),
    ban: moderates && !own && !byOwner && !authorModerates,
    appoint: role === 'owner' && !own && !byOwner ? (authorModerates ? 'remove' : 'make') : null,
  };
}

/** The slow-mode intervals offered to moderators, in seconds (0 = off). */
export const SLOW_MODE_CHOICES: { seconds: number; label: string }[] = [
  { seconds: 0, label: 'Off' },
  { seconds: 5, label: '5 s' },
  { seconds: 10, label: '10 s' },
  { seconds: 30, label: '30 s' },
  { seconds: 60, label: '1 min' },
  { seconds: 300, label: '5 min' },
];

/** The ban lengths offered on a message; `null` bans until lifted. */
export const BAN_CHOICES: { seconds: number | null; label: string; length: string }[] = [
  { seconds: 600, label: 'Ban author for 10 minutes', length: 'for 10 minutes' },
  { seconds: 3600, label: 'Ban author for 1 hour', length: 'for 1 hour' },
  { seconds: null, label: 'Ban author for good', length: 'for good' },
];

/** What a banned user is told; `until` null is a ban until lifted. */
export function banText(until: string | null, now = new Date()): string {
  if (until === null) return 'You are banned from this room for good.';
  return `You are banned from this room until ${formatTime(until, now)}.`;
}

/** What the moderator is told after banning someone. */
export function bannedText(name: string, seconds: number | null): string {
  const length = BAN_CHOICES.find((c) => c.seconds === seconds)?.length ?? `for ${seconds} s`;
  return `${name} is banned from this room ${length}.`;
}

export function slowModeText(seconds: number): string {
  return `Slow mode: one message every ${seconds} s`;
}

export function slowWaitText(secondsLeft: number): string {
  return `Slow mode: you can post again in ${secondsLeft} s`;
}

/**
 * The reason recorded with a ban made from a message: which message it was, on one line and shortened
 * (the server takes at most 200 characters, none of them control characters).
 */
export function banReason(text: string): string {
  // Code points, so that an emoji is never cut in half.
  const chars = Array.from(text.replace(/[\s\p{Cc}]+/gu, ' ').trim());
  const excerpt = chars.length > 120 ? `${chars.slice(0, 119).join('')}…` : chars.join('');
  return `Banned for the message: "${excerpt}"`;
}

/** Who the client can name: authors of the messages in view, the owner, whoever made a ban. */
export function knownNames(users: Iterable<User | undefined>): Map<string, string> {
  const names = new Map<string, string>();
  for (const user of users) if (user) names.set(user.id, user.name);
  return names;
}

/**
 * A user's name when the client knows it, else a short form of the id: its last 8 hex digits, since
 * the first ones of a UUIDv7 are a timestamp that users made around the same time share.
 */
export function nameOf(userId: string, names: ReadonlyMap<string, string>): string {
  return names.get(userId) ?? `user ${userId.replace(/-/g, '').slice(-8)}`;
}

/** How long a ban in the moderation panel lasts. */
export function banLengthText(until: string | null, now = new Date()): string {
  return until === null ? 'until lifted' : `until ${formatTime(until, now)}`;
}

export function moderatorText(name: string, appointed: boolean): string {
  return appointed ? `${name} is now a moderator.` : `${name} is no longer a moderator.`;
}
