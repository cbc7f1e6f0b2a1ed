/**
 * The chat's contract with clients — every event in each direction, its payload and its ack — and
 * what the chat reports to whoever observes it. Server-to-client events carry exactly one argument,
 * so a one-argument handler in any client language receives the whole payload.
 * @module
 */
import type { Server, Socket } from "socket.io";
import type { Identity } from "../auth/token.ts";
import type { User } from "../types.ts";
import type { ClientToServerEvents } from "./client_events.ts";
import type { ServerToClientEvents } from "./contract.ts";

export type * from "./contract.ts";
/** Events clients send, as the table of client events declares them. */
export type { ClientToServerEvents } from "./client_events.ts";

/** Per-socket state set at admission. */
export interface SocketData {
  identity: Identity;
}

/** What instances ask each other (socket.io server-side events, through the adapter). */
export interface ServerSideEvents {
  /** Every other instance answers with up to `limit` of its connected users, each once. */
  "presence:users": (limit: number, answer: (users: User[]) => void) => void;
  /** Every other instance answers with how many distinct users it has connected. */
  "presence:count": (answer: (count: number) => void) => void;
  /** Every other instance answers whether its presence feed names users (true) or counts them. */
  "presence:listed": (answer: (listed: boolean) => void) => void;
  /** An instance's presence feed switched between naming users and counting them. */
  "presence:listing": (listed: boolean) => void;
}

/** The socket.io server type the chat runs on. */
export type ChatServer = Server<
  ClientToServerEvents,
  ServerToClientEvents,
  ServerSideEvents,
  SocketData
>;
/** One chat connection. */
export type ChatSocket = Socket<
  ClientToServerEvents,
  ServerToClientEvents,
  ServerSideEvents,
  SocketData
>;

/** What the chat reports as it runs; every method is cheap. Metrics implement it. */
export interface ChatObserver {
  /** A connection was refused by auth or limits, with the `connect_error` code. */
  connectRefused(code: string): void;
  /** An `error` event or failed ack with this code was sent to a client. */
  errorSent(code: string): void;
  /** A message was broadcast to its room, `seconds` after the server received it. */
  broadcast(seconds: number): void;
}
