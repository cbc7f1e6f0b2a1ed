/**
 * The chat rules on top of socket.io: who may connect, what `load`, `message`, `history`,
 * presence, typing and `error` carry, and what acks receive. Knows nothing of transports or of
 * how history is stored.
 *
 * @example
 * ```ts
 * const io = new Server();
 * attachChat(io, { timeline, verifyToken, maxMessageLength: 2000, ... });
 * ```
 * @module
 */
import type { Server, Socket } from "socket.io";
import { AuthError, extractToken, type Identity, isExpired } from "./auth.ts";
import {
  checkEventArguments,
  PayloadError,
  readHistoryQuery,
  readLastId,
  readMessage,
  readRefresh,
  readTyping,
} from "./payloads.ts";
import type { Logger } from "./log.ts";
import type { ChatObserver } from "./metrics.ts";
import { type ConnectionDirectory, type Presence, PresenceFeed } from "./presence.ts";
import { type RateLimit, RateLimiter } from "./rate_limit.ts";
import type { ChatMessage, User } from "./store/mod.ts";
import type { HistoryInfo, Timeline } from "./timeline.ts";

/** Stable codes of the `error` event and of failed acks. */
export type ChatErrorCode =
  | "invalid_payload"
  | "message_too_long"
  | "rate_limited"
  | "forbidden"
  | "invalid_token"
  | "token_expired"
  | "auth_unavailable"
  | "internal";

/** The `error` event's payload, and a failed ack's `error`. */
export interface ChatError {
  code: ChatErrorCode;
  message?: string;
  /** With `rate_limited`: when the next message will be accepted. */
  retryAfterMs?: number;
}

/** A failed ack. */
export type Failure = { ok: false; error: ChatError };
/** What a `message` ack receives. */
export type MessageAck = { ok: true; message: ChatMessage; duplicate: boolean } | Failure;
/** What a `history` ack receives. */
export type HistoryAck = { ok: true; messages: ChatMessage[]; hasMore: boolean } | Failure;
/** What an `auth:refresh` ack receives. */
export type RefreshAck = { ok: true; expiresAt: number | null } | Failure;

/** Events the server sends. */
export interface ServerToClientEvents {
  load: (messages: ChatMessage[], info?: HistoryInfo) => void;
  presence: (users: User[]) => void;
  "user:joined": (users: User[]) => void;
  "user:left": (users: User[]) => void;
  typing: (event: { user: User; typing: boolean }) => void;
  error: (error: ChatError) => void;
}

type Ack<T> = (result: T) => void;

/** Events clients send. */
export interface ClientToServerEvents {
  message: (payload: unknown, ack?: Ack<MessageAck>) => void;
  history: (payload: unknown, ack?: Ack<HistoryAck>) => void;
  typing: (payload: unknown) => void;
  "auth:refresh": (payload: unknown, ack?: Ack<RefreshAck>) => void;
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
  /** Most messages a reconnecting client's catch-up `load` carries. */
  catchupLimit: number;
  /** Messages per user: a token bucket. */
  rateLimit: RateLimit;
  /** Most simultaneous connections per user. */
  maxSocketsPerUser: number;
  /** Whether this identity may send messages (scopes); everyone may read. */
  canWrite: (identity: Identity) => boolean;
  /** Who is online: this process's connections, or every instance's. */
  presence: Presence;
  /** How long joins and leaves are gathered before they are announced (default 100 ms). */
  presenceBatchMs?: number;
  log: Logger;
  observer: Pick<ChatObserver, "connectRefused" | "errorSent">;
}

/** Every connected, authenticated socket is in this room and receives live messages. */
export const CHAT_ROOM = "chat";

/** A user's typing state is forwarded at most this often unless it changes. */
export const TYPING_THROTTLE_MS = 1000;

/** Builds the `connect_error` a refused client receives: `message` is the code. */
function connectError(code: string, message: string): Error {
  return Object.assign(new Error(code), { data: { code, message } });
}

function describeAuthError(error: unknown): ChatError {
  return error instanceof AuthError
    ? { code: error.code as ChatErrorCode, message: error.message }
    : { code: "internal", message: "authentication failed unexpectedly" };
}

/** Splits socket.io event arguments into the payload and the ack callback, if any. */
function splitAck<T>(args: unknown[]): [unknown, Ack<T> | undefined] {
  const last = args.at(-1);
  return typeof last === "function"
    ? [args.length > 1 ? args[0] : undefined, last as Ack<T>]
    : [args[0], undefined];
}

/** What {@link attachChat} leaves running. */
export interface Chat {
  /** Stops pending presence announcements (call on shutdown). */
  close(): void;
}

/** Attaches the chat rules to a socket.io server; live messages go to {@link CHAT_ROOM}. */
export function attachChat(io: ChatServer, options: ChatOptions): Chat {
  const { timeline, verifyToken, log, observer, presence } = options;
  // Batches are announced in order, each after the snapshot its newcomers get: a slow snapshot
  // (asked across instances) must not let a later batch overtake an earlier one.
  let announced = Promise.resolve();
  const feed = new PresenceFeed((joined, left, welcomed) => {
    announced = announced.then(async () => {
      if (welcomed.length > 0) {
        try {
          io.to(welcomed).emit("presence", await presence.online());
        } catch (error) {
          log.warn("presence.failed", { sockets: welcomed.length, error });
        }
      }
      if (joined.length > 0) io.to(CHAT_ROOM).emit("user:joined", joined);
      if (left.length > 0) io.to(CHAT_ROOM).emit("user:left", left);
    });
  }, options.presenceBatchMs);
  const limiter = new RateLimiter(options.rateLimit);

  io.use(async (socket, next) => {
    const refuse = (code: string, message: string, user?: string) => {
      observer.connectRefused(code);
      log.info("connection.refused", { code, user, address: socket.handshake.address });
      next(connectError(code, message));
    };
    const token = extractToken(socket.handshake.auth, socket.handshake.headers);
    let identity: Identity;
    try {
      identity = await verifyToken(token ?? "");
    } catch (error) {
      const { code, message = "" } = describeAuthError(error);
      return refuse(code, message);
    }
    if (await presence.connections(identity.user.id) >= options.maxSocketsPerUser) {
      const limit = options.maxSocketsPerUser;
      return refuse(
        "too_many_connections",
        `at most ${limit} connections per user`,
        identity.user.id,
      );
    }
    socket.data.identity = identity;
    next();
  });

  io.on("connection", (socket: ChatSocket) => {
    const user = socket.data.identity.user;
    const sendError = (error: ChatError) => {
      observer.errorSent(error.code);
      const level = error.code === "internal" ? "warn" : "info";
      log[level]("error.sent", { code: error.code, socket: socket.id, user: user.id });
      socket.emit("error", error);
    };
    log.info("socket.connected", {
      socket: socket.id,
      user: user.id,
      transport: socket.conn.transport.name,
      address: socket.handshake.address,
      recovered: socket.recovered,
    });
    const fail = (ack: Ack<Failure> | undefined, error: ChatError) => {
      sendError(error);
      ack?.({ ok: false, error });
    };
    const payloadFailure = (error: unknown): ChatError => {
      if (error instanceof PayloadError) return { code: error.code, message: error.message };
      throw error;
    };

    socket.use((event, next) => {
      try {
        checkEventArguments(event);
      } catch (error) {
        sendError(payloadFailure(error));
        return next(error as Error);
      }
      next();
    });
    socket.use((_packet, next) => {
      if (!isExpired(socket.data.identity)) return next();
      sendError({ code: "token_expired", message: "token has expired; reconnect with a new one" });
      socket.disconnect(true);
    });

    socket.on("message", async (...args: unknown[]) => {
      const [payload, ack] = splitAck<MessageAck>(args);
      let input;
      try {
        input = readMessage(payload, options.maxMessageLength);
      } catch (error) {
        return fail(ack, payloadFailure(error));
      }
      if (!options.canWrite(socket.data.identity)) {
        return fail(ack, { code: "forbidden", message: "this token may read but not write" });
      }
      const verdict = limiter.take(user.id);
      if (!verdict.ok) {
        return fail(ack, {
          code: "rate_limited",
          message: "too many messages; wait before sending again",
          retryAfterMs: verdict.retryAfterMs,
        });
      }
      try {
        const { message, created } = await timeline.publish({
          user: socket.data.identity.user,
          message: input.text,
          clientId: input.clientId,
        });
        ack?.({ ok: true, message, duplicate: !created });
      } catch {
        fail(ack, { code: "internal", message: "the message could not be stored" });
      }
    });

    socket.on("history", async (...args: unknown[]) => {
      const [payload, ack] = splitAck<HistoryAck>(args);
      try {
        const query = readHistoryQuery(payload);
        const [messages, { hasMore }] = await timeline.page(query.before, query.limit);
        ack?.({ ok: true, messages, hasMore });
      } catch (error) {
        fail(
          ack,
          error instanceof PayloadError ? payloadFailure(error) : {
            code: "internal",
            message: "history could not be read",
          },
        );
      }
    });

    let lastTyping: { typing: boolean; at: number } | undefined;
    socket.on("typing", (...args: unknown[]) => {
      let typing: boolean;
      try {
        typing = readTyping(splitAck(args)[0]);
      } catch (error) {
        return sendError(payloadFailure(error));
      }
      const now = Date.now();
      if (lastTyping?.typing === typing && now - lastTyping.at < TYPING_THROTTLE_MS) return;
      lastTyping = { typing, at: now };
      socket.to(CHAT_ROOM).emit("typing", { user, typing });
    });

    socket.on("auth:refresh", async (...args: unknown[]) => {
      const [payload, ack] = splitAck<RefreshAck>(args);
      let identity: Identity;
      try {
        identity = await verifyToken(readRefresh(payload));
      } catch (error) {
        return fail(
          ack,
          error instanceof PayloadError ? payloadFailure(error) : describeAuthError(error),
        );
      }
      if (identity.user.id !== user.id) {
        return fail(ack, { code: "forbidden", message: "the new token is for another user" });
      }
      socket.data.identity = { ...identity, user };
      ack?.({ ok: true, expiresAt: identity.expiresAt ?? null });
    });

    const connection = { socketId: socket.id, user, since: socket.handshake.issued };
    socket.on("disconnect", (reason) => {
      log.info("socket.disconnected", { socket: socket.id, user: user.id, reason });
      presence.depart(connection).then((wentOffline) => {
        if (wentOffline) feed.left(user);
      }).catch((error) => log.warn("presence.failed", { socket: socket.id, error }));
    });
    socket.join(userRoom(user.id));

    const admit = async () => {
      if (await presence.arrive(connection)) feed.joined(user);
      // A socket.io session recovery replays what was missed and restores the rooms.
      if (socket.recovered) return void feed.welcome(socket.id);
      let afterId: string | undefined;
      try {
        afterId = readLastId(socket.handshake.auth);
      } catch (error) {
        sendError({
          ...payloadFailure(error),
          message: "`lastId` is not a message id; sent the latest history",
        });
      }
      const limit = afterId === undefined ? undefined : options.catchupLimit;
      await timeline.join((history, info) => {
        if (!socket.connected) return;
        socket.emit("load", history, info);
        socket.join(CHAT_ROOM);
        feed.welcome(socket.id);
      }, { afterId, limit });
    };
    admit().catch((error) => {
      log.warn("admit.failed", { socket: socket.id, error });
      sendError({ code: "internal", message: "history could not be loaded" });
    });
  });
  return { close: () => feed.close() };
}

/** The room holding every connection of one user, on every instance. */
export function userRoom(userId: string): string {
  return `user:${userId}`;
}

/** How long a cluster-wide socket query waits for the other instances. */
const DIRECTORY_TIMEOUT_MS = 1000;

/**
 * Every instance's connections, found through the socket.io adapter (`fetchSockets`). When an
 * instance does not answer in time (it just died), this instance's own connections are used.
 */
export function socketDirectory(io: ChatServer, log: Logger): ConnectionDirectory {
  type Found = { id: string; data: SocketData; handshake: { issued: number } };
  const toConnections = (sockets: Found[]) =>
    sockets.map((socket) => ({
      socketId: socket.id,
      user: socket.data.identity.user,
      since: socket.handshake.issued,
    }));
  const fetch = async (room?: string): Promise<Found[]> => {
    const everywhere = room === undefined ? io : io.in(room);
    try {
      return await everywhere.timeout(DIRECTORY_TIMEOUT_MS).fetchSockets();
    } catch (error) {
      log.warn("presence.partial", { error });
      return await (room === undefined ? io.local : io.local.in(room)).fetchSockets();
    }
  };
  return {
    ofUser: async (userId) => toConnections(await fetch(userRoom(userId))),
    all: async () => toConnections(await fetch()),
  };
}

/** Most message text in one live `load`: a bigger commit is split over several frames. */
export const LIVE_LOAD_MAX_CHARS = 32 * 1024;

/**
 * Sends committed messages to every joined socket as live `load` events, oldest first. Messages
 * stored by one commit share a frame (up to {@link LIVE_LOAD_MAX_CHARS} of text each): under load,
 * one socket write per recipient carries several messages instead of one.
 */
export function deliverTo(
  io: ChatServer,
  observer: Pick<ChatObserver, "broadcast">,
): (messages: ChatMessage[]) => void {
  return (messages) => {
    if (messages.length === 0) return;
    let start = 0;
    let chars = 0;
    for (let end = 0; end < messages.length; end++) {
      chars += messages[end].message.length;
      if (end > start && chars > LIVE_LOAD_MAX_CHARS) {
        io.to(CHAT_ROOM).emit("load", messages.slice(start, end));
        [start, chars] = [end, messages[end].message.length];
      }
    }
    io.to(CHAT_ROOM).emit("load", start === 0 ? messages : messages.slice(start));
    for (let i = 0; i < messages.length; i++) observer.broadcast();
  };
}
