/**
 * The chat message and its author: the shapes that pass between auth, the store, the timeline,
 * presence and the chat, owned by none of them.
 * @module
 */

/** Who wrote a message, as established by their token. */
export interface User {
  id: string;
  name: string;
}

/** A stored chat message. `createdAt` is an ISO-8601 string. */
export interface ChatMessage {
  id: string;
  /** The room (conversation) it belongs to. */
  room: string;
  user: User;
  /** The text; `""` once deleted. */
  message: string;
  createdAt: string;
  /** When the text was last edited (ISO-8601), if it was. */
  editedAt?: string;
  /** A deleted message, kept as a tombstone so clients that cached it can drop it. */
  deleted?: true;
  /** Its reactions, when it has any, in the order each emoji was first used. */
  reactions?: Reaction[];
  /** The message it answers (same room), as that message is now. */
  replyTo?: ReplyQuote;
  /** Its replies, when it has any. */
  thread?: ThreadSummary;
  /** The users it mentions (ids, each once), when it mentions any. */
  mentions?: string[];
}

/** The message a reply answers: who wrote it and how it begins. */
export interface ReplyQuote {
  id: string;
  user: User;
  /** Its first 100 characters (code points); `""` once deleted. */
  preview: string;
  /** It was deleted. */
  deleted: boolean;
}

/** A message's replies. */
export interface ThreadSummary {
  count: number;
  /** The newest reply's id. */
  lastId: string;
  /** Up to 10 users who replied, the latest first. */
  users: string[];
}

/** One emoji's reactions to a message. */
export interface Reaction {
  /** One emoji grapheme. */
  emoji: string;
  /** How many users reacted with it. */
  count: number;
  /** Up to 20 of them (the earliest), so a client can tell its own. */
  users: string[];
}

/** What may change in a stored message: its text, or that it is gone. */
export type MessageChange = { message: string } | { deleted: true };

/** A message before it is stored: the store assigns `id` and `createdAt`. */
export interface NewMessage {
  /** The room it goes to (default: the store's default room). */
  room?: string;
  user: User;
  message: string;
  /**
   * The sender's own id for this message (≤ 64 chars). A second append with the same user and
   * `clientId` stores nothing and returns the first message.
   */
  clientId?: string;
  /**
   * Who sent it: the server API's `clientId`s are a namespace of their own, so an API publish
   * never answers for a socket message of the same user (default: a socket).
   */
  source?: "socket" | "api";
  /** The message it answers, quoted as it was when this was sent; indexed in its thread. */
  replyTo?: ReplyQuote;
  /** The users it mentions (ids, each once); indexed for their unread mentions. */
  mentions?: string[];
}

/** The outcome of storing one message: the stored message, and whether this call created it. */
export interface AppendResult {
  message: ChatMessage;
  /** False when `clientId` matched an earlier message, which is returned instead. */
  created: boolean;
}

/** A user barred from connecting. */
export interface Ban {
  /** When it ends, in ms since epoch; a ban without it lasts until it is lifted. */
  until?: number;
  /** Why, for the operators (never shown to other users). */
  reason?: string;
  /** When it was set, in ms since epoch. */
  since: number;
}
