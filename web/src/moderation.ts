// Who may do what to a message, and how the outcomes of moderation read to the people involved.
// The server checks every call; this only decides which controls to show and what to say.

import type { Moderator, Room } from './types';
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
}

/**
 * Authors edit and delete their own messages; owners and moderators delete any message (only the
 * owner deletes the owner's) and ban its author, except themselves and the owner. Messages not yet
 * sent have none of these.
 */
export function messageActions(
  message: { user: { id: string }; status: string },
  me: string,
  role: Role,
  ownerId: string | undefined,
): MessageActions {
  if (message.status !== 'sent') return { edit: false, delete: false, ban: false };
  const own = message.user.id === me;
  const moderates = role !== 'member';
  const byOwner = message.user.id === ownerId;
  return {
    edit: own,
    delete: own || (moderates && (!byOwner || role === 'owner')),
    ban: moderates && !own && !byOwner,
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
