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
}

export interface MessagePage {
  messages: Message[];
  mode: RoomMode;
}

/** Data of the `reaction` SSE event. */
export interface ReactionEvent {
  message_id: string;
  emoji: string;
  user: User;
  op: 'added' | 'removed';
  /** The emoji's new count; absent when the server does not know it exactly (apply `op` instead). */
  count?: number;
}

export interface ModeEvent {
  mode: RoomMode;
}

export interface ResetEvent {
  reason?: string;
}

export interface ClientConfig {
  /** Base URL of the SSE API; "" means the app's own origin. */
  events_url: string;
}
