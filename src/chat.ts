/**
 * The chat rules on top of socket.io: who may connect, what `load`, `message` and `error` carry,
 * and what a client's ack receives. Knows nothing of transports or storage details.
 *
 * @example
 * ```ts
 * const io = new Server();
 * attachChat(io, { timeline, verifyToken, maxMessageLength: 2000 });
 * ```
 * @module
 */
import type { Server, Socket } from "socket.io";
import { AuthError, extractToken, type Identity, isExpired } from "./auth.ts";
import type { ChatMessage } from "./store/mod.ts";
import type { Timeline } from "./timeline.ts";

/** Stable codes of the `error` event and of failed acks. */
export type ChatErrorCode =
  | "invalid_payload"
  | "message_too_long"
  | "token_expired"
  | "internal";

/** The `error` event's payload, and a failed ack's `error`. */
export interface ChatError {
  code: ChatErrorCode;
  message?: string;
}

/** What a `message` ack receives. */
export type MessageAck = { ok: true; message: ChatMessage } | { ok: false; error: ChatError };

/** Events the server sends. */
export interface ServerToClientEvents {
  load: (messages: ChatMessage[]) => void;
  error: (error: ChatError) => void;
}

/** Events clients send. */
export interface ClientToServerEvents {
  message: (payload: unknown, ack?: (result: MessageAck) => void) => void;
}

/** Per-socket state set by the auth middleware. */
export interface SocketData {
  identity: Identity;
}

/** The socket.io server type the chat runs on. */
export type ChatServer = Server<ClientToServerEvents, ServerToClientEvents, never, SocketData>;
type ChatSocket = Socket<ClientToServerEvents, ServerToClientEvents, never, SocketData>;

/** What the chat needs. */
export interface ChatOptions {
  timeline: Timeline;
  verifyToken: (token: string) => Promise<Identity>;
  /** Longest accepted message in characters (Unicode code points), after trimming. */
  maxMessageLength: number;
}

/** Every connected, authenticated socket is in this room and receives live messages. */
export const CHAT_ROOM = "chat";

/** A message payload that failed the rules. */
class RuleViolation extends Error {
  constructor(readonly code: ChatErrorCode, message: string) {
    super(message);
  }
}

/** Validates a `message` payload and returns its trimmed text. */
export function readMessageText(payload: unknown, maxMessageLength: number): string {
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    throw new RuleViolation("invalid_payload", 'expected an object like { message: "hi" }');
  }
  const text = (payload as { message?: unknown }).message;
  if (typeof text !== "string") {
    throw new RuleViolation("invalid_payload", "`message` must be a string");
  }
  const trimmed = text.trim();
  if (trimmed.length === 0) throw new RuleViolation("invalid_payload", "`message` is empty");
  // Count code points, so an emoji is one character as a person reads it.
  let length = 0;
  for (const _ of trimmed) {
    if (++length > maxMessageLength) {
      throw new RuleViolation(
        "message_too_long",
        `\`message\` is longer than ${maxMessageLength} characters`,
      );
    }
  }
  return trimmed;
}

/** Builds the `connect_error` a refused client receives: `message` is the code. */
function connectError(error: unknown): Error {
  const { code, message } = error instanceof AuthError
    ? error
    : { code: "internal", message: "authentication failed unexpectedly" };
  return Object.assign(new Error(code), { data: { code, message } });
}

/** Attaches the chat rules to a socket.io server; live messages go to {@link CHAT_ROOM}. */
export function attachChat(io: ChatServer, options: ChatOptions): void {
  const { timeline, verifyToken, maxMessageLength } = options;

  io.use(async (socket, next) => {
    const token = extractToken(socket.handshake.auth, socket.handshake.headers);
    try {
      socket.data.identity = await verifyToken(token ?? "");
      next();
    } catch (error) {
      next(connectError(error));
    }
  });

  io.on("connection", (socket: ChatSocket) => {
    const sendError = (error: ChatError) => socket.emit("error", error);

    socket.use((_packet, next) => {
      if (!isExpired(socket.data.identity)) return next();
      sendError({ code: "token_expired", message: "token has expired; reconnect with a new one" });
      socket.disconnect(true);
    });

    socket.on("message", async (...args: unknown[]) => {
      const ack = typeof args.at(-1) === "function"
        ? args.pop() as (result: MessageAck) => void
        : undefined;
      const fail = (error: ChatError) => {
        sendError(error);
        ack?.({ ok: false, error });
      };
      let text: string;
      try {
        text = readMessageText(args[0], maxMessageLength);
      } catch (error) {
        const { code, message } = error as RuleViolation;
        return fail({ code, message });
      }
      try {
        const message = await timeline.publish({ user: socket.data.identity.user, message: text });
        ack?.({ ok: true, message });
      } catch {
        fail({ code: "internal", message: "the message could not be stored" });
      }
    });

    timeline.join((history) => {
      if (!socket.connected) return;
      socket.emit("load", history);
      socket.join(CHAT_ROOM);
    }).catch(() => sendError({ code: "internal", message: "history could not be loaded" }));
  });
}

/** Sends committed messages to every joined socket, each as a one-element `load`. */
export function deliverTo(io: ChatServer): (messages: ChatMessage[]) => void {
  return (messages) => {
    for (const message of messages) io.to(CHAT_ROOM).emit("load", [message]);
  };
}
