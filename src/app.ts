/**
 * Builds the whole server from its parts: engine ← socket.io core ← chat rules ← timeline ← store,
 * plus the plain HTTP routes, behind one `Deno.serve` handler.
 *
 * @example
 * ```ts
 * const app = createApp(config, await openKvStore(config.kvPath));
 * const server = Deno.serve({ port: config.port }, app.handler);
 * // later
 * await app.close();
 * await server.shutdown();
 * ```
 * @module
 */
import { Server } from "socket.io";
import { createTokenVerifier, hasScope, WRITE_SCOPE } from "./auth.ts";
import { attachChat, type ChatServer, deliverTo } from "./chat.ts";
import type { Config } from "./config.ts";
import { type ConnectionInfo, Engine } from "./engine/mod.ts";
import { handleHttp } from "./http.ts";
import type { MessageStore } from "./store/mod.ts";
import { RateLimiter } from "./rate_limit.ts";
import { Timeline } from "./timeline.ts";

/** The Socket.IO endpoint path stock clients use. */
export const SOCKET_IO_PATH = "/socket.io/";

/** A built server: its request handler and what it owns. */
export interface App {
  handler: (request: Request, info: ConnectionInfo) => Response | Promise<Response>;
  io: ChatServer;
  engine: Engine;
  /** Disconnects every client and waits for queued messages to be stored. */
  close(): Promise<void>;
}

/** Wires config and a store into a ready-to-serve app. The caller owns and closes the store. */
export function createApp(config: Config, store: MessageStore): App {
  const handshakes = new RateLimiter({
    perMinute: config.handshakeLimitPerMinute,
    burst: Math.max(1, Math.ceil(config.handshakeLimitPerMinute / 4)),
  });
  const engine = new Engine({
    path: SOCKET_IO_PATH,
    pingInterval: config.pingInterval,
    pingTimeout: config.pingTimeout,
    maxHttpBufferSize: config.maxHttpBufferSize,
    cors: config.corsOrigin ? { origin: config.corsOrigin, credentials: true } : undefined,
    allowRequest(_request, info) {
      if (config.handshakeLimitPerMinute === 0) return;
      const address = (info.remoteAddr as { hostname?: string }).hostname ?? "";
      if (!handshakes.take(address).ok) throw new Error("too many connections from this address");
    },
  });
  const io: ChatServer = new Server({
    serveClient: false,
    connectionStateRecovery: config.connectionRecoveryMs > 0
      ? { maxDisconnectionDuration: config.connectionRecoveryMs, skipMiddlewares: false }
      : undefined,
  });
  io.bind(engine);
  const timeline = new Timeline(store, {
    historyLimit: config.historyLimit,
    deliver: deliverTo(io),
  });
  attachChat(io, {
    timeline,
    verifyToken: createTokenVerifier(config.auth),
    maxMessageLength: config.maxMessageLength,
    catchupLimit: config.catchupLimit,
    rateLimit: { perMinute: config.rateLimitPerMinute, burst: config.rateLimitBurst },
    maxSocketsPerUser: config.maxSocketsPerUser,
    canWrite: (identity) => !config.auth.requireWriteScope || hasScope(identity, WRITE_SCOPE),
  });
  return {
    io,
    engine,
    handler(request, info) {
      if (engine.matches(new URL(request.url))) return engine.handleRequest(request, info);
      return handleHttp(request);
    },
    async close() {
      await timeline.idle();
      await io.close();
    },
  };
}
