/**
 * What clients receive: every server-to-client event and every ack, each with exactly one
 * argument, so a one-argument handler in any language gets the whole payload. No server types
 * here: the project's `client.ts` exports these to TypeScript clients.
 * @module
 */
import type { WireError } from "../errors.ts";
import type { ChatMessage, Reaction, ThreadSummary, User } from "../types.ts";

/** The `error` event's payload, and a failed ack's `error`. */
export type ChatError = WireError;

/** A failed ack. */
export type Failure = { ok: false; error: ChatError };
/** What a `message` ack receives. */
export type MessageAck = { ok: true; message: ChatMessage; duplicate: boolean } | Failure;
/** What a `history` ack receives. */
export type HistoryAck = { ok: true; messages: ChatMessage[]; hasMore: boolean } | Failure;
/** What an `auth:refresh` ack receives. */
/**
 * The `auth:refresh` ack: the new token's expiry, and the rooms the connection left because the
 * new token no longer opens them.
 */
export type RefreshAck = { ok: true; expiresAt: number | null; left: string[] } | Failure;
/** A user's read marker in a room: the last message they have seen there. */
export interface ReadPosition {
  user: string;
  lastId: string;
}

/**
 * What a `join` ack receives: the room's latest history, who is in it, and its members' read
 * positions (empty with read receipts off).
 */
export type JoinAck =
  | {
    ok: true;
    room: string;
    messages: ChatMessage[];
    hasMore: boolean;
    online: User[];
    reads: ReadPosition[];
  }
  | Failure;

/** The `room:read` event: members of a room you are in moved their read markers. */
export interface RoomReadEvent {
  room: string;
  reads: ReadPosition[];
}

/** The `room:presence` event: who came into or left a room since the last one. */
export interface RoomPresenceEvent {
  room: string;
  joined: User[];
  left: User[];
}
/** What `message:edit` and `message:delete` acks receive: the message as stored now. */
export type ChangeAck = { ok: true; message: ChatMessage } | Failure;
/** The `message:deleted` event: a message is gone (its tombstone is in history from now on). */
export interface DeletedEvent {
  id: string;
  room: string;
}
/** What `leave` and `read` acks receive. */
export type OkAck = { ok: true } | Failure;
/** One room in the `rooms` ack. */
export interface RoomSummary {
  room: string;
  /** Messages after the user's read marker (all, without one), counted up to 100. */
  unread: number;
  /** Of those, the messages that mention the user (not their own), counted up to 100. */
  mentions: number;
  /** The newest message, when the room has any. */
  lastMessage?: ChatMessage;
}
/** What a `rooms` ack receives. */
export type RoomsAck = { ok: true; rooms: RoomSummary[] } | Failure;

/** One room in the `rooms:browse` ack: a room the user may join. */
export interface BrowsedRoom {
  room: string;
}
/**
 * What a `rooms:browse` ack receives: a page of the rooms this user may join, in name order;
 * `next`, when set, is the `after` of the next page. `patterns` are the ids and `prefix-*`
 * patterns the user may join at all (a new room is created by its first message under one).
 */
export type BrowseAck =
  | { ok: true; rooms: BrowsedRoom[]; next?: string; patterns: string[] }
  | Failure;

/** What a `react` ack receives: the message's reactions as stored now. */
export type ReactAck = { ok: true; room: string; id: string; reactions: Reaction[] } | Failure;

/** The `message:reactions` event: a message's reactions changed; these are all of them now. */
export interface ReactionsEvent {
  room: string;
  id: string;
  reactions: Reaction[];
}

/** What a `thread` ack receives: a page of a message's replies, oldest first. */
export type ThreadAck =
  | { ok: true; room: string; id: string; messages: ChatMessage[]; hasMore: boolean }
  | Failure;

/** The `message:thread` event: a message got a reply; its thread as it is now. */
export interface ThreadEvent {
  room: string;
  id: string;
  thread: ThreadSummary;
}

/** The `mention` event: a new message mentions you, in a room you may read (joined or not). */
export interface MentionEvent {
  room: string;
  message: ChatMessage;
}

/** The `loaded` event: the history `load`s sent on connect for one room are complete. */
export interface LoadedInfo {
  room: string;
  /** Messages older than the first one loaded exist (with `lastId`: the gap was not covered). */
  hasMore: boolean;
  /** Whether this was a catch-up after `auth.lastId` rather than the latest history. */
  catchUp: boolean;
  /**
   * The room's members' read positions, as a join's ack lists them (empty with
   * `READ_RECEIPTS=false`); `room:read` events move them on from here.
   */
  reads: ReadPosition[];
}

/**
 * The `presence:count` event: how many users are online, and whether the client's list of them is
 * kept current. `listed: false`: more are online than a `presence` snapshot lists
 * (`MAX_LISTED_USERS`), and `user:joined` / `user:left` stop until `listed: true`, which a fresh
 * `presence` follows.
 */
export interface PresenceCount {
  online: number;
  listed: boolean;
}

/** A typing change of another user. */
export interface TypingEvent {
  room: string;
  user: User;
  typing: boolean;
}

/** Events the server sends; each carries exactly one argument. */
export interface ServerToClientEvents {
  load: (messages: ChatMessage[]) => void;
  loaded: (info: LoadedInfo) => void;
  presence: (users: User[]) => void;
  "user:joined": (users: User[]) => void;
  "user:left": (users: User[]) => void;
  "presence:count": (count: PresenceCount) => void;
  typing: (event: TypingEvent) => void;
  "room:presence": (event: RoomPresenceEvent) => void;
  "message:updated": (message: ChatMessage) => void;
  "message:deleted": (event: DeletedEvent) => void;
  "message:reactions": (event: ReactionsEvent) => void;
  "message:thread": (event: ThreadEvent) => void;
  mention: (event: MentionEvent) => void;
  "room:read": (event: RoomReadEvent) => void;
  error: (error: ChatError) => void;
}

/** An acknowledgement callback. */
export type Ack<T> = (result: T) => void;
