// The shapes of the hotchat API (see PRODUCT.md "Contract").

export interface User {
  id: string;
  name: string;
}

export interface Session {
  token: string;
  user: User;
}

export interface Room {
  id: string;
  name: string;
  created_at: string;
  hot?: boolean;
  /** The room's creator, who may moderate it (absent from servers before moderation). */
  owner?: User;
  /** Least seconds between two posts of one user (moderators exempt); 0 = off. */
  slow_mode_secs?: number;
  /** Distinct viewers now; null when the server does not know (absent from servers before presence). */
  online?: number | null;
}

export type RoomMode = 'normal' | 'throttled';

export interface RoomDetail extends Room {
  mode: RoomMode;
}

/** A message as the history API and the `message` SSE event carry it. */
export interface Message {
  id: string;
  room_id: string;
  user: User;
  text: string;
  at: string;
  /** Emoji → number of users who reacted with it. */
  reactions: Record<string, number>;
  /** When the author last changed the text (RFC 3339); absent if never edited. */
  edited_at?: string;
}

export interface MessagePage {
  messages: Message[];
  mode: RoomMode;
}

/** Data of the `reaction` SSE event: one user's reaction added or removed. */
export interface ReactionEvent {
  message_id: string;
  emoji: string;
  user: User;
  op: 'added' | 'removed';
  /** The emoji's new count; absent when the server does not know it exactly (apply `op` instead). */
  count?: number;
}

/**
 * Data of the `reaction` SSE event when a throttled room folded a batch's reactions on one message into one:
 * the message's complete counts (emojis with none left are absent), replacing its whole `reactions` map.
 * It names no user.
 */
export interface ReactionCountsEvent {
  message_id: string;
  counts: Record<string, number>;
}

/** Either shape of the `reaction` SSE event. */
export type LiveReaction = ReactionEvent | ReactionCountsEvent;

export interface ModeEvent {
  mode: RoomMode;
  /** The least time (ms) the server asks between history fetches; 0 or absent: no limit. */
  fetch_interval_ms?: number;
}

/** Data of the `presence` SSE event: `scope` "instance" when the count covers only the server we are connected to. */
export interface PresenceEvent {
  online: number;
  scope?: string;
}

export interface ResetEvent {
  reason?: string;
}

export interface ClientConfig {
  /** Base URL of the SSE API; "" means the app's own origin. */
  events_url: string;
}

/** Data of the `edit` SSE event: the message with its new text (reactions are not part of it). */
export interface EditEvent {
  id: string;
  room_id: string;
  user: User;
  text: string;
  at: string;
  edited_at: string;
}

/** Data of the `delete` SSE event, and the answer to a delete. */
export interface DeleteEvent {
  message_id: string;
  by: User;
}

export interface Moderator {
  user_id: string;
  since: string;
}

/** A ban: `until` null means until lifted. */
export interface Ban {
  user_id: string;
  until: string | null;
  reason: string;
  by: User;
  at: string;
}
