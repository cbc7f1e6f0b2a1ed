/**
 * The chat's contract for TypeScript clients: every event in each direction with its payload and
 * ack, so a misspelled event or a wrong payload is a type error. Types only: it pulls in no code,
 * and no server types.
 *
 * @example
 * ```ts
 * import { io, type Socket } from "socket.io-client";
 * import type { AuthPayload, ClientToServerEvents, ServerToClientEvents } from "./client.ts";
 *
 * const auth: AuthPayload = { token: "<a JWT>" };
 * const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io("http://localhost:3000", {
 *   auth,
 *   autoConnect: false,
 * });
 * socket.on("load", (messages) => messages.forEach((m) => console.log(m.room, m.message)));
 * socket.on("error", (error) => console.error(error.code, error.message));
 * socket.on("connect", async () => {
 *   const joined = await socket.emitWithAck("join", { room: "general" });
 *   if (joined.ok) console.log(`${joined.online.length} online`);
 *   const sent = await socket.emitWithAck("message", { room: "general", message: "hi" });
 *   if (!sent.ok) console.error(sent.error.code);
 * });
 * ```
 * @module
 */
import type {
  BrowseAck,
  ChangeAck,
  HistoryAck,
  JoinAck,
  MessageAck,
  OkAck,
  ReactAck,
  RefreshAck,
  RoomsAck,
  ThreadAck,
} from "./src/chat/contract.ts";

export type * from "./src/chat/contract.ts";
export type { ChatMessage, Reaction, ReplyQuote, ThreadSummary, User } from "./src/types.ts";
export type { ErrorCode } from "./src/errors.ts";

/** What a client passes as socket.io's `auth` when it connects. */
export interface AuthPayload {
  /** The JWT (or send `Authorization: Bearer <jwt>` as a header). */
  token: string;
  /** The last message seen in the default room: the first `load` is then what came after it. */
  lastId?: string;
  /** The last message seen per room: each is joined and caught up the same way. */
  lastIds?: Record<string, string>;
}

/** `message`: `room` defaults to the default room; `clientId` makes retries store one message. */
export interface MessagePayload {
  room?: string;
  message: string;
  clientId?: string;
  /** The id of a message of the same room this answers (a reply, in its thread). */
  replyTo?: string;
  /** Up to 20 user ids it mentions: those who may read the room get a `mention` event. */
  mentions?: string[];
}

/** `thread`: up to `limit` (1–100, default 50) replies to message `id` before `before`. */
export interface ThreadPayload {
  room?: string;
  id: string;
  before?: string;
  limit?: number;
}

/** `history`: up to `limit` (1–100, default 50) messages before `before` (or the latest). */
export interface HistoryPayload {
  room?: string;
  before?: string;
  limit?: number;
}

/** `typing`: this user started or stopped typing. */
export interface TypingPayload {
  room?: string;
  typing: boolean;
}

/** `join` and `leave`. */
export interface RoomPayload {
  room: string;
}

/** `read`: the last message this user has seen in `room`. */
export interface ReadPayload {
  room: string;
  lastId: string;
}

/** `rooms:browse`: a page of the rooms this user may join, those starting with `prefix`. */
export interface BrowsePayload {
  prefix?: string;
  /** The previous page's `next`. */
  after?: string;
}

/** `react`: adds `emoji` (one emoji) to a message, or with `on: false` takes it back. */
export interface ReactPayload {
  /** The message's room (default: the default room). */
  room?: string;
  id: string;
  emoji: string;
  /** Default true. */
  on?: boolean;
}

/** A browser's push subscription (`PushSubscription.toJSON()`), for `push:subscribe`. */
export interface PushSubscribePayload {
  /** An `https://` URL of at most 1024 characters. */
  endpoint: string;
  /** base64url: a P-256 public key (65 bytes) and 16 bytes. */
  keys: { p256dh: string; auth: string };
}

/** Events a client sends, with their acks. */
export interface ClientToServerEvents {
  message: (payload: MessagePayload, ack: (result: MessageAck) => void) => void;
  history: (payload: HistoryPayload, ack: (result: HistoryAck) => void) => void;
  typing: (payload: TypingPayload) => void;
  "auth:refresh": (payload: { token: string }, ack: (result: RefreshAck) => void) => void;
  join: (payload: RoomPayload, ack: (result: JoinAck) => void) => void;
  leave: (payload: RoomPayload, ack: (result: OkAck) => void) => void;
  read: (payload: ReadPayload, ack: (result: OkAck) => void) => void;
  rooms: (ack: (result: RoomsAck) => void) => void;
  "rooms:browse": (payload: BrowsePayload, ack: (result: BrowseAck) => void) => void;
  "message:edit": (
    payload: { id: string; message: string },
    ack: (result: ChangeAck) => void,
  ) => void;
  "message:delete": (payload: { id: string }, ack: (result: ChangeAck) => void) => void;
  react: (payload: ReactPayload, ack: (result: ReactAck) => void) => void;
  thread: (payload: ThreadPayload, ack: (result: ThreadAck) => void) => void;
  /** With Web Push on: the browser's `PushSubscription.toJSON()`. */
  "push:subscribe": (payload: PushSubscribePayload, ack: (result: OkAck) => void) => void;
  "push:unsubscribe": (payload: { endpoint: string }, ack: (result: OkAck) => void) => void;
}
