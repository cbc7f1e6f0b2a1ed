/**
 * Builds the whole server from its parts: engine ← socket.io core ← chat rules ← timeline ← store,
 * plus the plain HTTP routes and metrics, behind one `Deno.serve` handler.
 *
 * @example
 * ```ts
 * import { createApp } from "./app.ts";
 * import { loadConfig } from "./config.ts";
 * import { openKvStore } from "./store/mod.ts";
 *
 * const config = loadConfig(Deno.env.toObject());
 * const app = createApp(config, await openKvStore(config.kvPath));
 * const server = Deno.serve({ port: config.port }, app.handler);
 * // on SIGTERM
 * app.beginShutdown();
 * await app.close();
 * await server.shutdown();
 * ```
 * @module
 */
import type { Hono } from "hono";
import { Server } from "socket.io";
import { adapterFor } from "./cluster/adapter.ts";
import { createTokenVerifier, hasScope, WRITE_SCOPE } from "./auth/token.ts";
import {
  announceChange,
  attachChat,
  budgetsOf,
  type ChatServer,
  ChatService,
  deliverTo,
  disconnectEverywhere,
  mentionNotifier,
  REACTION_LIMITS,
  reactionFeed,
  readFeed,
  RoomPolicy,
  socketDirectory,
  threadFeed,
} from "./chat/mod.ts";
import { createClientAddress } from "./http/client_address.ts";
import type { Cluster } from "./cluster/redis.ts";
import { type Config, largestHistoryBytes } from "./config.ts";
import {
  BACKLOG_CEILING_FACTOR,
  type ConnectionInfo,
  Engine,
  ENGINE_DEFAULTS,
  refusalReason,
} from "./engine/mod.ts";
import { createHttpHandler, type Readiness, withSecurityHeaders } from "./http/mod.ts";
import { type Logger, silentLogger } from "./ops/log.ts";
import { Metrics } from "./ops/metrics.ts";
import { ClusterPresence, LocalPresence } from "./cluster/presence.ts";
import { RateLimiter } from "./rate_limit.ts";
import type { MessageStore } from "./store/mod.ts";
import type { ChatMessage } from "./types.ts";
import { Timeline } from "./chat/timeline.ts";

/** The Socket.IO endpoint path stock clients use. */
export const SOCKET_IO_PATH = "/socket.io/";

/** How long the readiness probe waits for the store. */
const STORE_PROBE_TIMEOUT_MS = 1000;

/** A built server: its request handler and what it owns. */
export interface App {
  handler: (request: Request, info: ConnectionInfo) => Response | Promise<Response>;
  io: ChatServer;
  engine: Engine;
  metrics: Metrics;
  /** Stops taking new work: `/readyz` turns 503 and new handshakes are refused. */
  beginShutdown(): void;
  /** Waits for queued messages to be stored, then disconnects every client. */
  close(): Promise<void>;
}

/** Optional collaborators of {@link createApp}. */
export interface AppOptions {
  log?: Logger;
  /** Redis fan-out to other instances; without it the chat is this process alone. */
  cluster?: Cluster;
  /** Extra HTTP routes (the demo page), mounted at `/`. */
  routes?: Hono;
  /** The chat's clock: token expiry, budgets, edit windows (tests move it). */
  now?: () => number;
}

/** A handshake the app refuses: `code` is the reason the engine logs and counts it under. */
class HandshakeRefused extends Error {
  constructor(
    readonly code: "shutting_down" | "handshake_limited",
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** Wires config and a store into a ready-to-serve app. The caller owns and closes the store. */
export function createApp(config: Config, store: MessageStore, options: AppOptions = {}): App {
  const log = options.log ?? silentLogger;
  let shuttingDown = false;
  const handshakes = new RateLimiter({
    perMinute: config.handshakeLimitPerMinute,
    burst: Math.max(1, Math.ceil(config.handshakeLimitPerMinute / 4)),
  });
  // Behind trusted proxies the client is named by X-Forwarded-For: limits and logs key on it.
  const clientAddress = createClientAddress(config.trustedProxies);
  const engine = new Engine({
    path: SOCKET_IO_PATH,
    pingInterval: config.pingInterval,
    pingTimeout: config.pingTimeout,
    maxHttpBufferSize: config.maxHttpBufferSize,
    maxPacketsPerSecond: config.maxPacketsPerSecond,
    // A full history is queued at once: it must fit under the backlog a client may have.
    backlogCeilingBytes: Math.max(
      ENGINE_DEFAULTS.maxBufferedBytes * BACKLOG_CEILING_FACTOR,
      largestHistoryBytes(config) + ENGINE_DEFAULTS.maxBufferedBytes,
    ),
    cors: config.corsOrigin ? { origin: config.corsOrigin, credentials: true } : undefined,
    clientAddress,
    logger: log,
    allowRequest(request, info) {
      if (shuttingDown) throw new HandshakeRefused("shutting_down", "server is shutting down", 503);
      if (config.handshakeLimitPerMinute === 0) return;
      if (!handshakes.take(clientAddress(request, info)).ok) {
        const message = "too many connections from this address";
        throw new HandshakeRefused("handshake_limited", message, 403);
      }
    },
  });
  const metrics = new Metrics({
    socketsByTransport() {
      const counts: Record<string, number> = { polling: 0, websocket: 0 };
      for (const session of engine.clients.values()) counts[session.transport.name]++;
      return counts;
    },
    // Read at scrape time, once the chat below is attached.
    usersOnline: () => chat.usersOnline(),
    roomsOccupied: () => chat.roomsOccupied(),
    recentWindows: () => store.memory?.() ?? { rooms: 0, messages: 0 },
  }).start();
  engine.on("connection", () => metrics.handshake());
  engine.on("connection_error", (error) => metrics.requestRefused(refusalReason(error)));

  const io: ChatServer = new Server({
    serveClient: false,
    adapter: options.cluster?.adapter ?? adapterFor({ recovery: config.connectionRecoveryMs > 0 }),
    // A recovered session skips the auth middleware: socket.io admits it by its private session
    // id, and running async middleware there would lose broadcasts made meanwhile. The chat lets
    // a session be restored only where a fresh connect would be admitted (ban, expiry, socket cap).
    connectionStateRecovery: config.connectionRecoveryMs > 0
      ? { maxDisconnectionDuration: config.connectionRecoveryMs, skipMiddlewares: true }
      : undefined,
  });
  io.bind(engine);
  const timeline = new Timeline(store, {
    historyLimit: config.historyLimit,
    deliver: deliverTo(io, metrics),
    onCommit: (created, seconds) => metrics.messagesStored(created, seconds),
    gatherMs: config.commitGatherMs,
    annotate: (messages): Promise<ChatMessage[]> => service.annotate(messages),
  });
  const reactions = reactionFeed(
    io,
    timeline,
    (room, ids) => store.reactionsOf(room, ids, REACTION_LIMITS.listedUsers),
    (error) => log.warn("reactions.announce_failed", { error }),
  );
  const threads = threadFeed(
    io,
    timeline,
    (room, ids) => store.threadsOf(room, ids),
    (error) => log.warn("threads.announce_failed", { error }),
  );
  const receipts = readFeed(io);
  const directory = options.cluster ? socketDirectory(io, log) : undefined;
  const policy = new RoomPolicy(config.publicRooms);
  const service = new ChatService({
    timeline,
    store,
    policy,
    editWindowMs: config.editWindowMs,
    canWrite: (identity) => !config.auth.requireWriteScope || hasScope(identity, WRITE_SCOPE),
    announceChange: (message) => announceChange(io, message),
    reactionsChanged: (room, id) => reactions.note(`${room}\n${id}`, { room, id }),
    threadChanged: (room, id) => threads.note(`${room}\n${id}`, { room, id }),
    mentioned: mentionNotifier(io, policy, (error) => log.warn("mentions.failed", { error })),
    readReceipts: config.readReceipts,
    readChanged: (room, position) =>
      receipts.note(`${room}\n${position.user}`, { room, ...position }),
    disconnectUser: (userId) => disconnectEverywhere(io, userId, log),
    log,
    now: options.now,
  });
  const chat = attachChat(io, {
    service,
    connectionRecovery: config.connectionRecoveryMs > 0,
    timeline,
    store,
    policy,
    defaultRoom: config.defaultRoom,
    maxRoomsPerSocket: config.maxRoomsPerSocket,
    maxListedUsers: config.maxListedUsers,
    verifyToken: createTokenVerifier(config.auth),
    maxMessageLength: config.maxMessageLength,
    catchupLimit: config.catchupLimit,
    historyLimit: config.historyLimit,
    budgets: budgetsOf(config),
    maxSocketsPerUser: config.maxSocketsPerUser,
    banOf: (userId) => store.getBan(userId),
    errorEventsPerSecond: config.errorEventsPerSecond,
    connectionsElsewhere: directory?.elsewhere,
    presence: directory ? new ClusterPresence(directory) : new LocalPresence(),
    clockToleranceMs: config.auth.clockToleranceSeconds * 1000,
    now: options.now,
    log,
    observer: metrics,
  });

  const readiness = async (): Promise<Readiness> => {
    let storeCheck = "ok";
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        store.ping(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error("timeout")), STORE_PROBE_TIMEOUT_MS);
        }),
      ]);
    } catch (error) {
      storeCheck = error instanceof Error && error.message === "timeout" ? "timeout" : "error";
    } finally {
      clearTimeout(timer);
    }
    const checks: Record<string, string> = {
      store: storeCheck,
      shutdown: shuttingDown ? "in progress" : "no",
    };
    let ready = storeCheck === "ok" && !shuttingDown;
    if (options.cluster) {
      checks.redis = options.cluster.healthy() ? "ok" : "unreachable";
      ready &&= options.cluster.healthy();
    }
    return { ready, checks };
  };
  const api = config.apiKey === undefined ? undefined : {
    key: config.apiKey,
    io,
    timeline,
    service,
    maxMessageLength: config.maxMessageLength,
    membersOf: (room: string) => chat.membersOf(room),
    onRequest: (route: string, status: number) => metrics.apiRequest(route, status),
    stats: () => ({
      connections: engine.clients.size,
      sockets: io.of("/").sockets.size,
      rooms: [...io.of("/").adapter.rooms.keys()].filter((name) => name.startsWith("room:")).length,
    }),
    authFailuresPerMinute: config.apiAuthFailuresPerMinute,
    clientAddress,
  };
  const http = createHttpHandler({
    readiness,
    metrics: {
      render: () => metrics.render(),
      contentType: metrics.contentType,
      token: config.metricsToken,
    },
    api,
    routes: options.routes,
    tls: config.tls !== undefined,
    log,
  });

  return {
    io,
    engine,
    metrics,
    async handler(request, info) {
      if (!engine.matches(new URL(request.url))) return http(request, info);
      const response = await engine.handleRequest(request, info);
      return withSecurityHeaders(response, { tls: config.tls !== undefined });
    },
    beginShutdown() {
      shuttingDown = true;
    },
    async close() {
      shuttingDown = true;
      await timeline.idle();
      reactions.close();
      threads.close();
      receipts.close();
      await io.close();
      chat.close();
      metrics.stop();
    },
  };
}
