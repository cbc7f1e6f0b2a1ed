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
import { createTokenVerifier } from "./auth.ts";
import { attachChat, type ChatServer, deliverTo } from "./chat.ts";
import type { Config } from "./config.ts";
import { type ConnectionInfo, Engine } from "./engine/mod.ts";
import { handleHttp } from "./http.ts";
import type { MessageStore } from "./store/mod.ts";
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
  const engine = new Engine({
    path: SOCKET_IO_PATH,
    pingInterval: config.pingInterval,
    pingTimeout: config.pingTimeout,
    maxHttpBufferSize: config.maxHttpBufferSize,
    cors: config.corsOrigin ? { origin: config.corsOrigin, credentials: true } : undefined,
  });
  const io: ChatServer = new Server({ serveClient: false });
  io.bind(engine);
  const timeline = new Timeline(store, {
    historyLimit: config.historyLimit,
    deliver: deliverTo(io),
  });
  attachChat(io, {
    timeline,
    verifyToken: createTokenVerifier({ secret: config.jwtSecret }),
    maxMessageLength: config.maxMessageLength,
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
