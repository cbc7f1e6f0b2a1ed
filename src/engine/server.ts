/**
 * The Engine.IO v4 server: routes each request on its path to a handshake, a session's polling
 * transport or a WebSocket upgrade, and emits `connection` with each new session.
 *
 * @example
 * ```ts
 * import { Server } from "socket.io";
 * import { Engine } from "./mod.ts";
 *
 * const io = new Server();
 * const engine = new Engine({ path: "/socket.io/" });
 * io.bind(engine);
 * Deno.serve(engine.handler());
 * ```
 * @module
 */
import { EventEmitter } from "node:events";
import { Deadlines } from "../deadlines.ts";
import { applyCors, type CorsOptions } from "./cors.ts";
import {
  type ConnectionError,
  type EngineLogger,
  ERROR_CODES,
  errorResponse,
  RefusalLog,
  refusalReason,
  RequestError,
  transportMismatch,
} from "./refusals.ts";
import {
  BACKLOG_CEILING_FACTOR,
  EngineSocket,
  type HandshakeRequest,
  type SessionHost,
  type SessionOptions,
} from "./socket.ts";
import type { Transport } from "./transport.ts";
import { PollingTransport } from "./transports/polling.ts";
import { WebSocketTransport } from "./transports/websocket.ts";

/** Where a request came from (`Deno.ServeHandlerInfo` satisfies it). */
export interface ConnectionInfo {
  remoteAddr: { hostname?: string; transport?: string } | Deno.Addr;
}

/** Engine options; the defaults are in {@link ENGINE_DEFAULTS}. */
export interface EngineOptions extends Partial<SessionOptions> {
  /** Endpoint path (default `/engine.io/`; socket.io clients use `/socket.io/`). */
  path?: string;
  /** CORS for browsers on other origins; none by default. */
  cors?: CorsOptions;
  /**
   * Called on each handshake; throw (or reject) to refuse it with the error's message and 403,
   * or the error's numeric `status` property when it has one. A lower_snake `code` string on the
   * error names the refusal's reason (`context.reason` of `connection_error`).
   */
  allowRequest?: (request: Request, info: ConnectionInfo) => void | Promise<void>;
  /** The client's address for `handshake.address` (default: the TCP peer's). */
  clientAddress?: (request: Request, info: ConnectionInfo) => string;
  /**
   * The request headers a session keeps for socket.io's `handshake.headers` (lower-case names);
   * default: all, as engine.io. They live as long as the session: a browser's (cookies, user
   * agent, `Accept-*`) are often over 1 KB.
   */
  handshakeHeaders?: readonly string[];
  /** Accepts a WebSocket upgrade (default `Deno.upgradeWebSocket` without idle pings). */
  upgradeWebSocket?: (request: Request) => { socket: WebSocket; response: Response };
  /**
   * Logs refused requests, at most one line per reason per 10 s (see {@link RefusalLog});
   * none by default.
   */
  logger?: EngineLogger;
}

/** Defaults, as in engine.io. */
export const ENGINE_DEFAULTS = {
  path: "/engine.io/",
  pingInterval: 25_000,
  pingTimeout: 20_000,
  upgradeTimeout: 10_000,
  maxHttpBufferSize: 1_000_000,
  maxBufferedBytes: 1_000_000,
  maxBufferedPackets: 1_000,
  pollBodyTimeout: 10_000,
  maxPacketsPerSecond: 0,
} as const;

const TRANSPORTS = new Set(["polling", "websocket"]);

/** A polling session the server closed while no GET waited: its client is still owed the close. */
interface OwedClose {
  transport: PollingTransport;
  timer: ReturnType<typeof setTimeout>;
}

/** Random bytes in a session id: 120 bits, 20 base64url characters. */
const SESSION_ID_BYTES = 15;
/** Session ids' randomness, drawn for 256 sessions at a time: one runtime call, not one each. */
const sessionIdPool = new Uint8Array(SESSION_ID_BYTES * 256);
let sessionIdOffset = sessionIdPool.length;
const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

function generateSessionId(): string {
  if (sessionIdOffset === sessionIdPool.length) {
    crypto.getRandomValues(sessionIdPool);
    sessionIdOffset = 0;
  }
  let id = "";
  const end = sessionIdOffset + SESSION_ID_BYTES;
  for (; sessionIdOffset < end; sessionIdOffset += 3) {
    const bits = sessionIdPool[sessionIdOffset] << 16 | sessionIdPool[sessionIdOffset + 1] << 8 |
      sessionIdPool[sessionIdOffset + 2];
    id += BASE64URL[bits >> 18] + BASE64URL[bits >> 12 & 63] + BASE64URL[bits >> 6 & 63] +
      BASE64URL[bits & 63];
  }
  return id;
}

function remoteAddressOf(info: ConnectionInfo): string {
  const address = info.remoteAddr as { hostname?: string; path?: string };
  return address.hostname ?? address.path ?? "";
}

/** The refusal an error thrown by `allowRequest` stands for. */
function refusedBy(error: unknown): RequestError {
  const message = (error instanceof Error ? error.message : String(error)) || "Forbidden";
  const { status, code } = (error ?? {}) as { status?: unknown; code?: unknown };
  // An error may pick its HTTP status (503 while shutting down); 403 otherwise.
  const httpStatus = typeof status === "number" && status >= 400 && status < 600 ? status : 403;
  const context = typeof code === "string" ? { reason: code, message } : { message };
  return new RequestError(httpStatus, ERROR_CODES.FORBIDDEN, message, context);
}

function defaultUpgrade(request: Request): { socket: WebSocket; response: Response } {
  // Engine.IO runs its own heartbeat; Deno's idle pings would only duplicate it.
  return Deno.upgradeWebSocket(request, { idleTimeout: 0 });
}

/** What the engine reports; socket.io's server core listens to `connection`. */
export interface EngineEvents {
  /** A handshake opened this session. */
  connection: [socket: EngineSocket];
  /** A request was refused with an Engine.IO error. */
  connection_error: [error: ConnectionError];
}

/** An Engine.IO v4 server for web-standard `Request`/`Response` runtimes. */
export class Engine extends EventEmitter<EngineEvents> {
  readonly options: SessionOptions & { path: string };
  readonly clients = new Map<string, EngineSocket>();
  readonly #owedCloses = new Map<string, OwedClose>();
  /** What every session shares: the heartbeats on one timer, and its leaving `clients`. */
  readonly #sessionHost: SessionHost = {
    heartbeats: new Deadlines<EngineSocket>((session) => session.heartbeatDue()),
    sessionClosed: (session, reason) => {
      this.clients.delete(session.id);
      if (reason === "forced close") this.#oweClose(session.id, session.transport);
    },
  };
  #cors?: CorsOptions;
  #allowRequest?: EngineOptions["allowRequest"];
  #clientAddress: NonNullable<EngineOptions["clientAddress"]>;
  #upgradeWebSocket: NonNullable<EngineOptions["upgradeWebSocket"]>;
  #handshakeHeaders?: readonly string[];
  #refusalLog?: RefusalLog;

  constructor(options: EngineOptions = {}) {
    super();
    const path = options.path ?? ENGINE_DEFAULTS.path;
    const pingTimeout = options.pingTimeout ?? ENGINE_DEFAULTS.pingTimeout;
    const maxBufferedBytes = options.maxBufferedBytes ?? ENGINE_DEFAULTS.maxBufferedBytes;
    this.options = {
      path: path.endsWith("/") ? path : `${path}/`,
      pingInterval: options.pingInterval ?? ENGINE_DEFAULTS.pingInterval,
      pingTimeout,
      upgradeTimeout: options.upgradeTimeout ?? ENGINE_DEFAULTS.upgradeTimeout,
      maxHttpBufferSize: options.maxHttpBufferSize ?? ENGINE_DEFAULTS.maxHttpBufferSize,
      maxBufferedBytes,
      backlogCeilingBytes: options.backlogCeilingBytes ?? maxBufferedBytes * BACKLOG_CEILING_FACTOR,
      maxBufferedPackets: options.maxBufferedPackets ?? ENGINE_DEFAULTS.maxBufferedPackets,
      backlogGraceMs: options.backlogGraceMs ?? pingTimeout,
      pollBodyTimeout: options.pollBodyTimeout ?? ENGINE_DEFAULTS.pollBodyTimeout,
      maxPacketsPerSecond: options.maxPacketsPerSecond ?? ENGINE_DEFAULTS.maxPacketsPerSecond,
    };
    this.#cors = options.cors;
    this.#allowRequest = options.allowRequest;
    this.#clientAddress = options.clientAddress ?? ((_request, info) => remoteAddressOf(info));
    this.#upgradeWebSocket = options.upgradeWebSocket ?? defaultUpgrade;
    this.#handshakeHeaders = options.handshakeHeaders?.map((name) => name.toLowerCase());
    if (options.logger) this.#refusalLog = new RefusalLog(options.logger);
  }

  /** Number of open sessions. */
  get clientsCount(): number {
    return this.clients.size;
  }

  /** Whether `url` is on this engine's path. */
  matches(url: URL): boolean {
    return url.pathname === this.options.path || `${url.pathname}/` === this.options.path;
  }

  /** A `Deno.serve` handler: the engine's path, and 404 everywhere else. */
  handler(): (request: Request, info: ConnectionInfo) => Promise<Response> {
    return (request, info) => {
      const url = new URL(request.url);
      if (this.matches(url)) return this.handleRequest(request, info, url);
      return Promise.resolve(new Response("Not Found", { status: 404 }));
    };
  }

  /** Handles one request on the engine's path; `url` is `request.url`, when already parsed. */
  async handleRequest(
    request: Request,
    info: ConnectionInfo,
    url = new URL(request.url),
  ): Promise<Response> {
    const headers = new Headers();
    if (this.#cors && !applyCors(this.#cors, request, headers)) {
      return this.#refuse(
        request,
        info,
        headers,
        new RequestError(403, ERROR_CODES.FORBIDDEN, "Origin not allowed", {
          reason: "cors",
          origin: request.headers.get("origin"),
        }),
      );
    }
    if (request.method === "OPTIONS" && this.#cors) {
      return new Response(null, { status: 204, headers });
    }
    try {
      const sid = url.searchParams.get("sid");
      const transport = this.#verify(request, url, sid);
      // Awaited: a poll still waiting when its session upgrades is refused from there.
      if (sid !== null) return await this.#onSessionRequest(request, headers, sid, transport);
      if (this.#allowRequest) {
        try {
          await this.#allowRequest(request, info);
        } catch (refusal) {
          throw refusedBy(refusal);
        }
      }
      return this.#handshake(request, url, info, headers, transport);
    } catch (error) {
      if (error instanceof RequestError) return this.#refuse(request, info, headers, error);
      throw error;
    }
  }

  /** Closes every session (socket.io's `io.close()` calls this) and logs suppressed refusals. */
  close(): this {
    for (const socket of [...this.clients.values()]) socket.close(true);
    for (const sid of [...this.#owedCloses.keys()]) this.#forgetOwedClose(sid);
    this.#refusalLog?.close();
    return this;
  }

  #verify(request: Request, url: URL, sid: string | null): string {
    const query = url.searchParams;
    if (query.get("EIO") !== "4") {
      throw new RequestError(
        400,
        ERROR_CODES.UNSUPPORTED_PROTOCOL_VERSION,
        "Unsupported protocol version",
        {
          protocol: query.get("EIO"),
        },
      );
    }
    const transport = query.get("transport") ?? "";
    if (!TRANSPORTS.has(transport)) {
      throw new RequestError(400, ERROR_CODES.UNKNOWN_TRANSPORT, "Transport unknown", {
        transport,
      });
    }
    const isUpgrade = request.headers.get("upgrade")?.toLowerCase() === "websocket";
    if (transport === "websocket" && !isUpgrade) {
      throw new RequestError(400, ERROR_CODES.BAD_REQUEST, "WebSocket transport needs an upgrade");
    }
    if (sid === null) {
      if (request.method !== "GET") {
        throw new RequestError(400, ERROR_CODES.BAD_HANDSHAKE_METHOD, "Bad handshake method", {
          method: request.method,
        });
      }
      return transport;
    }
    let session = this.clients.get(sid);
    // Closed now if its pong is overdue, however late its timer runs: then the sid is unknown.
    if (session?.expireIfOverdue()) session = undefined;
    if (!session) {
      if (transport === "polling" && this.#owedCloses.has(sid)) return transport;
      throw new RequestError(400, ERROR_CODES.UNKNOWN_SID, "Session ID unknown", { sid });
    }
    const current = session.transport;
    if (transport === "polling" && current.name !== "polling") {
      // Late polls of an upgraded session are refused; its WebSocket carries on.
      throw transportMismatch(transport, current.name);
    }
    if (transport === "polling" && request.method !== "GET" && request.method !== "POST") {
      throw new RequestError(400, ERROR_CODES.BAD_REQUEST, "Bad request method", {
        method: request.method,
      });
    }
    return transport;
  }

  #onSessionRequest(
    request: Request,
    headers: Headers,
    sid: string,
    transport: string,
  ): Promise<Response> {
    const owed = this.#owedCloses.get(sid);
    if (owed) {
      // The GET that collects the close ends the sid; a racing POST is answered and dropped.
      if (request.method === "GET") this.#forgetOwedClose(sid);
      return owed.transport.onRequest(request, headers);
    }
    const session = this.clients.get(sid)!;
    if (transport === "websocket") {
      const { socket, response } = this.#acceptWebSocket(request);
      if (session.upgradeState === "none" && session.transport.upgradesTo.includes("websocket")) {
        session.upgrade(new WebSocketTransport(socket, this.options));
      } else {
        // Already on (or moving to) a WebSocket: as the protocol asks, this one is closed at once
        // and never takes the session over.
        socket.onopen = () => socket.close();
      }
      return Promise.resolve(response);
    }
    return (session.transport as PollingTransport).onRequest(request, headers);
  }

  #handshake(
    request: Request,
    url: URL,
    info: ConnectionInfo,
    headers: Headers,
    transportName: string,
  ): Promise<Response> {
    const id = generateSessionId();
    // Read the request before an upgrade: Deno.upgradeWebSocket takes it over.
    const described = this.#describe(request, url, info);
    let transport: Transport;
    let upgradeResponse: Response | undefined;
    if (transportName === "websocket") {
      const { socket, response } = this.#acceptWebSocket(request);
      transport = new WebSocketTransport(socket, this.options);
      upgradeResponse = response;
    } else {
      transport = new PollingTransport(this.options);
    }
    const session = new EngineSocket(id, transport, described, this.options, this.#sessionHost);
    this.clients.set(id, session);
    session.open();
    const response = upgradeResponse
      ? Promise.resolve(upgradeResponse)
      : (transport as PollingTransport).onRequest(request, headers);
    this.emit("connection", session);
    return response;
  }

  /**
   * Keeps the sid of a polling session the server closed while no GET waited, so that the next
   * GET delivers the close (as engine.io does) instead of "Session ID unknown". A client that
   * does not poll within pingTimeout is forgotten.
   */
  #oweClose(sid: string, transport: Transport): void {
    if (!(transport instanceof PollingTransport) || !transport.closeUndelivered) return;
    const timer = setTimeout(() => this.#owedCloses.delete(sid), this.options.pingTimeout);
    this.#owedCloses.set(sid, { transport, timer });
  }

  #forgetOwedClose(sid: string): void {
    clearTimeout(this.#owedCloses.get(sid)?.timer);
    this.#owedCloses.delete(sid);
  }

  #acceptWebSocket(request: Request): { socket: WebSocket; response: Response } {
    try {
      return this.#upgradeWebSocket(request);
    } catch (error) {
      // A malformed upgrade (say, no Sec-WebSocket-Key) is the client's fault, not a 500.
      throw new RequestError(400, ERROR_CODES.BAD_REQUEST, "Bad WebSocket upgrade", {
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  #describe(request: Request, url: URL, info: ConnectionInfo): HandshakeRequest {
    const headers: Record<string, string> = {};
    if (this.#handshakeHeaders) {
      for (const name of this.#handshakeHeaders) {
        const value = request.headers.get(name);
        if (value !== null) headers[name] = value;
      }
    } else {
      request.headers.forEach((value, name) => headers[name] = value);
    }
    return {
      url: url.pathname + url.search,
      method: request.method,
      headers,
      _query: Object.fromEntries(url.searchParams),
      connection: {
        encrypted: url.protocol === "https:",
        remoteAddress: this.#clientAddress(request, info),
      },
    };
  }

  #refuse(
    request: Request,
    info: ConnectionInfo,
    headers: Headers,
    error: RequestError,
  ): Response {
    const refused: ConnectionError = {
      req: request,
      code: error.code,
      message: error.message,
      context: error.context,
    };
    this.emit("connection_error", refused);
    this.#refusalLog?.record(refusalReason(refused), () => {
      // Never the sid: whoever reads the log could poll that session with it.
      const { sid: _sid, reason: _reason, message: _message, ...details } = error.context;
      return {
        status: error.status,
        code: error.code,
        message: error.message,
        address: this.#clientAddress(request, info),
        ...details,
      };
    });
    return errorResponse(error.status, error.code, error.message, headers);
  }
}
