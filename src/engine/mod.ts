/**
 * Engine.IO protocol v4 for Deno: bind socket.io's server core to it with `io.bind(engine)`.
 *
 * @example
 * ```ts
 * import { Server } from "socket.io";
 * import { Engine } from "./mod.ts";
 *
 * const io = new Server();
 * const engine = new Engine({ path: "/socket.io/" });
 * io.bind(engine);
 * io.on("connection", (socket) => socket.emit("hello"));
 * Deno.serve({ port: 3000 }, engine.handler());
 * ```
 * @module
 */
export {
  type ConnectionInfo,
  Engine,
  ENGINE_DEFAULTS,
  type EngineEvents,
  type EngineOptions,
} from "./server.ts";
export {
  type ConnectionError,
  type EngineLogger,
  ERROR_CODES,
  type ErrorCode,
  REFUSAL_LOG_WINDOW_MS,
  refusalReason,
} from "./refusals.ts";
export type { CorsOptions } from "./cors.ts";
export {
  BACKLOG_CEILING_FACTOR,
  type CloseReason,
  EngineSocket,
  type EngineSocketEvents,
  type HandshakeRequest,
  PACKET_BURST_SECONDS,
} from "./socket.ts";
export * as parser from "./parser.ts";
