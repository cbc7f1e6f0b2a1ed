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
  type Chat,
  type ChatOptions,
  type ChatServer,
  ChatService,
  type ChatServiceOptions,
  deliverTo,
  disconnectEverywhere,
  mentionNotifier,
  missableBy,
  mostMissableBy,
  REACTION_LIMITS,
  reactionFeed,
  readFeed,
  roomKey,
  RoomPolicy,
  socketDirectory,
  threadFeed,
  userRoom,
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
import {
  type ApiOptions,
  createHttpHandler,
  type Readiness,
  withSecurityHeaders,
} from "./http/mod.ts";
import { type Logger, silentLogger } from "./ops/log.ts";
import { Metrics } from "./ops/metrics.ts";
import { ClusterPresence, LocalPresence, type Presence } from "./cluster/presence.ts";
import { PublishHook, type PushSettings, type WebhookDependencies, Webhooks } from "./hooks/mod.ts";
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
  /** The webhook sender's retry and poll timing (tests shorten it). */
  webhookTiming?: WebhookDependencies["sender"];
  /** How long the presence feed counts users at least once it started (tests shorten it). */
  presenceHoldMs?: number;
}

/** How long a webhook's question about a user's rooms waits for the other instances. */
const ROOM_CHECK_TIMEOUT_MS = 1000;

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
  // Behind trusted proxies the client is named by X-Forwarded-For: limits and logs key on it.
  const clientAddress = createClientAddress(config.trustedProxies);
  const engine = engineFor(config, log, clientAddress, () => shuttingDown);
  // Read at scrape time, once the chat below is attached.
  const attached: { chat?: Chat } = {};
  const metrics = metricsFor(engine, store, () => attached.chat);
  const io = socketIoFor(config, engine, options.cluster);
  const directory = options.cluster ? socketDirectory(io, log) : undefined;
  const presence = directory ? new ClusterPresence(directory) : new LocalPresence();
  const policy = new RoomPolicy(config.publicRooms);
  const webhooks = webhooksFor(config, { store, io, presence, policy, metrics, log, options });
  const parts = chatFor(config, {
    io,
    store,
    log,
    metrics,
    webhooks,
    presence,
    policy,
    directory,
    options,
  });
  attached.chat = parts.chat;
  const http = createHttpHandler({
    readiness: () => readinessOf(store, options.cluster, shuttingDown),
    metrics: {
      render: () => metrics.render(),
      contentType: metrics.contentType,
      token: config.metricsToken,
    },
    api: apiOptionsFor(config, { io, engine, metrics, clientAddress, ...parts }),
    routes: options.routes,
    tls: config.tls !== undefined,
    log,
  });
  return {
    io,
    engine,
    metrics,
    async handler(request, info) {
      const url = new URL(request.url);
      if (!engine.matches(url)) return http(request, info);
      const response = await engine.handleRequest(request, info, url);
      return withSecurityHeaders(response, { tls: config.tls !== undefined });
    },
    beginShutdown() {
      shuttingDown = true;
    },
    async close() {
      shuttingDown = true;
      await parts.close();
      // After every socket is gone: their users' offline events are enqueued, then sending stops.
      await webhooks?.close();
      metrics.stop();
    },
  };
}

/**
 * The headers a connection keeps for `socket.handshake.headers`: what the chat reads (a token in
 * `Authorization`) and socket.io (`Origin`, for `handshake.xdomain`). The rest were read at the
 * handshake (the client's address) or never.
 */
const HANDSHAKE_HEADERS = ["authorization", "origin"];

/** The Engine.IO server: its limits, CORS, and the handshakes it refuses. */
function engineFor(
  config: Config,
  log: Logger,
  clientAddress: (request: Request, info: ConnectionInfo) => string,
  shuttingDown: () => boolean,
): Engine {
  const handshakes = new RateLimiter({
    perMinute: config.handshakeLimitPerMinute,
    burst: Math.max(1, Math.ceil(config.handshakeLimitPerMinute / 4)),
  });
  return new Engine({
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
    handshakeHeaders: HANDSHAKE_HEADERS,
    logger: log,
    allowRequest(request, info) {
      if (shuttingDown()) {
        throw new HandshakeRefused("shutting_down", "server is shutting down", 503);
      }
      if (config.handshakeLimitPerMinute === 0) return;
      if (!handshakes.take(clientAddress(request, info)).ok) {
        const message = "too many connections from this address";
        throw new HandshakeRefused("handshake_limited", message, 403);
      }
    },
  });
}

/** The metrics registry, fed by the engine's handshakes and refusals. */
function metricsFor(engine: Engine, store: MessageStore, chat: () => Chat | undefined): Metrics {
  const metrics = new Metrics({
    socketsByTransport() {
      const counts: Record<string, number> = { polling: 0, websocket: 0 };
      for (const session of engine.clients.values()) counts[session.transport.name]++;
      return counts;
    },
    usersOnline: () => chat()?.usersOnline() ?? 0,
    roomsOccupied: () => chat()?.roomsOccupied() ?? 0,
    recentWindows: () => store.memory?.() ?? { rooms: 0, messages: 0 },
  }).start();
  engine.on("connection", () => metrics.handshake());
  engine.on("connection_error", (error) => metrics.requestRefused(refusalReason(error)));
  return metrics;
}

/** socket.io on the engine, with the adapter for one instance or the cluster's. */
function socketIoFor(config: Config, engine: Engine, cluster: Cluster | undefined): ChatServer {
  const io: ChatServer = new Server({
    serveClient: false,
    adapter: cluster?.adapter ?? adapterFor({ recovery: config.connectionRecoveryMs > 0 }),
    // A recovered session skips the auth middleware: socket.io admits it by its private session
    // id, and running async middleware there would lose broadcasts made meanwhile. The chat lets
    // a session be restored only where a fresh connect would be admitted (ban, expiry, socket cap).
    connectionStateRecovery: config.connectionRecoveryMs > 0
      ? { maxDisconnectionDuration: config.connectionRecoveryMs, skipMiddlewares: true }
      : undefined,
  });
  io.bind(engine);
  return io;
}

/** What the builders below share. */
interface Parts {
  io: ChatServer;
  store: MessageStore;
  log: Logger;
  metrics: Metrics;
  presence: Presence;
  /** Who may read which room: the chat's rule, and the webhooks' for users away. */
  policy: RoomPolicy;
  options: AppOptions;
}

/**
 * The webhook sender, when `WEBHOOK_URL` or the VAPID keys are set (Web Push rides on the
 * missed-message outbox); without either the store writes nothing more.
 */
function webhooksFor(config: Config, parts: Parts): Webhooks | undefined {
  const push = pushSettingsOf(config);
  if (config.webhookUrls.length === 0 && push === undefined) return undefined;
  const { store, io, presence, policy, metrics, log, options } = parts;
  return new Webhooks({
    urls: config.webhookUrls,
    secret: config.webhookSecret,
    // Without URLs no event is written: push needs only the missed-message candidates.
    events: config.webhookUrls.length > 0 ? config.webhookEvents : [],
    push,
    timeoutMs: config.webhookTimeoutMs,
    maxAgeMs: config.webhookMaxAgeMs,
    outboxMax: config.webhookOutboxMax,
    missedAfterMs: config.missedAfterMs,
    debounceMs: config.webhookDebounceMs,
  }, {
    store,
    owner: `${config.instanceId}-${crypto.randomUUID().slice(0, 8)}`,
    isConnected: async (userId) => (await presence.connections(userId)) > 0,
    async inRoom(room, userId) {
      const sockets = await io.in(userRoom(userId)).timeout(ROOM_CHECK_TIMEOUT_MS).fetchSockets();
      return sockets.some((socket) => socket.rooms.has(roomKey(room)));
    },
    recipientsOf: (message) => missableBy(message, policy),
    mostRecipientsOf: mostMissableBy,
    async mayRead(userId, room) {
      if (!policy.isOpenTo(userId, room)) return false;
      return (await store.getBan(userId)) === undefined;
    },
    observer: metrics,
    log,
    now: options.now,
    sender: options.webhookTiming,
  });
}

/** Web Push's settings, when the three `VAPID_*` are set. */
function pushSettingsOf(config: Config): PushSettings | undefined {
  const { vapidPublicKey, vapidPrivateKey, vapidSubject } = config;
  if (vapidPublicKey === undefined || vapidPrivateKey === undefined) return undefined;
  if (vapidSubject === undefined) return undefined;
  return {
    publicKey: vapidPublicKey,
    privateKey: vapidPrivateKey,
    subject: vapidSubject,
    privateEndpoints: config.pushPrivateEndpoints,
  };
}

/** The publish hook, when `PUBLISH_HOOK_URL` is set: the service asks it before storing. */
function publishHookFor(
  config: Config,
  { metrics, log }: Parts,
): Partial<Pick<ChatServiceOptions, "publishHook">> {
  if (config.publishHookUrl === undefined) return {};
  const hook = new PublishHook(
    {
      url: config.publishHookUrl,
      secret: config.webhookSecret!,
      timeoutMs: config.publishHookTimeoutMs,
      onFailure: config.publishHookFailure,
    },
    metrics,
    log,
  );
  return { publishHook: { hook, maxMessageLength: config.maxMessageLength } };
}

/** The chat: its timeline, its live feeds, its rules (the service) and the socket side. */
interface ChatParts {
  timeline: Timeline;
  service: ChatService;
  chat: Chat;
  /** Stores what is queued, then disconnects every client. */
  close(): Promise<void>;
}

function chatFor(
  config: Config,
  parts: Parts & {
    webhooks?: Webhooks;
    directory?: { elsewhere(userId: string): Promise<number> };
  },
): ChatParts {
  const { io, store, log, metrics, webhooks, policy, options } = parts;
  const timeline: Timeline = new Timeline(store, {
    historyLimit: config.historyLimit,
    deliver: deliverTo(io, metrics),
    onCommit: (created, seconds) => {
      metrics.messagesStored(created, seconds);
      if (created > 0) webhooks?.nudge();
    },
    gather: config.commitGather,
    annotate: (messages): Promise<ChatMessage[]> => service.annotate(messages),
    outbox: webhooks?.created,
  });
  const warn = (event: string) => (error: unknown) => log.warn(event, { error });
  const reactions = reactionFeed(
    io,
    timeline,
    (room, ids) => store.reactionsOf(room, ids, REACTION_LIMITS.listedUsers),
    warn("reactions.announce_failed"),
  );
  const threads = threadFeed(
    io,
    timeline,
    (room, ids) => store.threadsOf(room, ids),
    warn("threads.announce_failed"),
  );
  const receipts = readFeed(io);
  const service: ChatService = new ChatService({
    timeline,
    store,
    policy,
    editWindowMs: config.editWindowMs,
    canWrite: (identity) => !config.auth.requireWriteScope || hasScope(identity, WRITE_SCOPE),
    announceChange: (message) => {
      announceChange(io, message);
      webhooks?.nudge();
    },
    changeOutbox: webhooks?.changed,
    reactionsChanged: (room, id) => reactions.note(`${room}\n${id}`, { room, id }),
    threadChanged: (room, id) => threads.note(`${room}\n${id}`, { room, id }),
    mentioned: mentionNotifier(io, policy, warn("mentions.failed")),
    readReceipts: config.readReceipts,
    readChanged: (room, position) =>
      receipts.note(`${room}\n${position.user}`, { room, ...position }),
    disconnectUser: (userId) => disconnectEverywhere(io, userId, log),
    ...publishHookFor(config, parts),
    log,
    now: options.now,
  });
  const chat = attachChat(io, chatOptionsFor(config, { ...parts, timeline, service }));
  return {
    timeline,
    service,
    chat,
    async close() {
      await timeline.idle();
      reactions.close();
      threads.close();
      receipts.close();
      await io.close();
      chat.close();
    },
  };
}

/** What the socket side of the chat is told. */
function chatOptionsFor(
  config: Config,
  parts: Parts & {
    timeline: Timeline;
    service: ChatService;
    webhooks?: Webhooks;
    directory?: { elsewhere(userId: string): Promise<number> };
  },
): ChatOptions {
  const { store } = parts;
  return {
    service: parts.service,
    connectionRecovery: config.connectionRecoveryMs > 0,
    timeline: parts.timeline,
    store,
    policy: parts.policy,
    defaultRoom: config.defaultRoom,
    maxRoomsPerSocket: config.maxRoomsPerSocket,
    pushEnabled: pushSettingsOf(config) !== undefined,
    maxListedUsers: config.maxListedUsers,
    verifyToken: createTokenVerifier(config.auth),
    maxMessageLength: config.maxMessageLength,
    catchupLimit: config.catchupLimit,
    historyLimit: config.historyLimit,
    budgets: budgetsOf(config),
    maxSocketsPerUser: config.maxSocketsPerUser,
    banOf: (userId: string) => store.getBan(userId),
    errorEventsPerSecond: config.errorEventsPerSecond,
    connectionsElsewhere: parts.directory?.elsewhere,
    presence: parts.presence,
    hooks: parts.webhooks,
    clockToleranceMs: config.auth.clockToleranceSeconds * 1000,
    now: parts.options.now,
    presenceHoldMs: parts.options.presenceHoldMs,
    log: parts.log,
    observer: parts.metrics,
  };
}

/** Whether this instance takes work: its store answers, Redis is up, it is not shutting down. */
async function readinessOf(
  store: MessageStore,
  cluster: Cluster | undefined,
  shuttingDown: boolean,
): Promise<Readiness> {
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
  if (cluster) {
    checks.redis = cluster.healthy() ? "ok" : "unreachable";
    ready &&= cluster.healthy();
  }
  return { ready, checks };
}

/** The server API's options, when `API_KEY` is set. */
function apiOptionsFor(
  config: Config,
  parts: {
    io: ChatServer;
    engine: Engine;
    metrics: Metrics;
    timeline: Timeline;
    service: ChatService;
    chat: Chat;
    clientAddress: (request: Request, info: ConnectionInfo) => string;
  },
): ApiOptions | undefined {
  if (config.apiKey === undefined) return undefined;
  const { io, engine, metrics, chat } = parts;
  return {
    key: config.apiKey,
    io,
    timeline: parts.timeline,
    service: parts.service,
    maxMessageLength: config.maxMessageLength,
    membersOf: (room) => chat.membersOf(room),
    onRequest: (route, status) => metrics.apiRequest(route, status),
    stats: () => ({
      connections: engine.clients.size,
      sockets: io.of("/").sockets.size,
      rooms: [...io.of("/").adapter.rooms.keys()].filter((name) => name.startsWith("room:")).length,
    }),
    authFailuresPerMinute: config.apiAuthFailuresPerMinute,
    clientAddress: parts.clientAddress,
  };
}
