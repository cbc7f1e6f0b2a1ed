/**
 * Test helpers for the Engine.IO engine: a real server on 127.0.0.1 port 0 (optionally with
 * socket.io bound to it), raw polling and WebSocket clients, and an event wait with a timeout.
 * @module
 */
import assert from "node:assert/strict";
import { Server, type ServerOptions } from "socket.io";
import { Engine, type EngineOptions } from "../../src/engine/mod.ts";
import { RECORD_SEPARATOR } from "../../src/engine/parser.ts";
import { sleep, until, within } from "./time.ts";

export { sleep, until, within };

/** A running engine on an ephemeral port. */
export interface EngineServer {
  engine: Engine;
  server: Deno.HttpServer<Deno.NetAddr>;
  port: number;
  /** `http://127.0.0.1:PORT<path>?EIO=4&transport=…[&sid=…]` for this engine. */
  url(query?: Record<string, string>, protocol?: "http" | "ws"): string;
  /** Closes every session, then shuts the HTTP server down (idempotent). */
  close(): Promise<void>;
  /** As {@link close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts an engine on 127.0.0.1 port 0. */
export function startEngine(options: EngineOptions = {}): EngineServer {
  const engine = new Engine(options);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, engine.handler());
  const port = server.addr.port;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    engine.close();
    await server.shutdown();
  };
  return {
    engine,
    server,
    port,
    url(query = {}, protocol = "http") {
      const search = new URLSearchParams({ EIO: "4", transport: "polling", ...query });
      return `${protocol}://127.0.0.1:${port}${engine.options.path}?${search}`;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A running socket.io server bound to an engine on an ephemeral port. */
export interface SocketIoServer extends EngineServer {
  io: Server;
  /** `http://127.0.0.1:PORT`, for `io(origin, …)` from socket.io-client. */
  origin: string;
}

/** Starts socket.io (`io.bind(engine)`) on an engine at `/socket.io/`. */
export function startSocketIo(
  engineOptions: EngineOptions = {},
  ioOptions: Partial<ServerOptions> = {},
): SocketIoServer {
  const started = startEngine({ path: "/socket.io/", ...engineOptions });
  const io = new Server(ioOptions);
  io.bind(started.engine as never);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await io.close();
    await started.close();
  };
  return {
    ...started,
    io,
    origin: `http://127.0.0.1:${started.port}`,
    close,
    [Symbol.asyncDispose]: close,
  };
}

// deno-lint-ignore no-explicit-any
type Listener = (...args: any[]) => void;

/** Anything with Node-style `once`/`off`: node:events emitters and socket.io(-client) sockets. */
export interface Listenable {
  once(event: string, listener: Listener): unknown;
  off(event: string, listener: Listener): unknown;
}

/**
 * Resolves with the arguments of the next `event` on `emitter`, or rejects after `timeoutMs`.
 * @example
 * ```ts
 * import { EventEmitter } from "node:events";
 *
 * const session = new EventEmitter();
 * setTimeout(() => session.emit("close", "transport close"));
 * const [reason] = await waitFor<[string]>(session, "close"); // "transport close"
 * ```
 */
export function waitFor<T extends unknown[] = unknown[]>(
  emitter: Listenable,
  event: string,
  timeoutMs = 2_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const listener = (...args: unknown[]) => {
      clearTimeout(timer);
      resolve(args as T);
    };
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${event}"`));
    }, timeoutMs);
    emitter.once(event, listener);
  });
}

/** The open packet's JSON, as sent in the handshake. */
export interface OpenPacket {
  sid: string;
  upgrades: string[];
  pingInterval: number;
  pingTimeout: number;
  maxPayload: number;
}

/** An HTTP response read to the end. */
export interface ReadResponse {
  status: number;
  headers: Headers;
  body: string;
}

/** `fetch` that always reads the body, so no response stream is left open. */
export async function request(url: string, init?: RequestInit): Promise<ReadResponse> {
  const response = await fetch(url, init);
  return { status: response.status, headers: response.headers, body: await response.text() };
}

/** Parses an Engine.IO JSON error body (`{code, message}`). */
export function errorOf(response: ReadResponse): { code: number; message: string } {
  assert.match(response.headers.get("content-type") ?? "", /application\/json/);
  return JSON.parse(response.body);
}

/** Does a polling handshake and returns the open packet. */
export async function pollingHandshake(target: EngineServer): Promise<OpenPacket> {
  const response = await request(target.url());
  assert.equal(response.status, 200, response.body);
  assert.equal(response.body[0], "0", `not an open packet: ${response.body}`);
  return JSON.parse(response.body.slice(1));
}

/** A polling GET for `sid`; returns the raw payload. */
export async function poll(target: EngineServer, sid: string): Promise<string> {
  const response = await request(target.url({ sid }));
  assert.equal(response.status, 200, response.body);
  return response.body;
}

/** A polling GET for `sid`, split into its packets. */
export async function pollPackets(target: EngineServer, sid: string): Promise<string[]> {
  return (await poll(target, sid)).split(RECORD_SEPARATOR);
}

/** A polling POST of `body` for `sid`. */
export function post(target: EngineServer, sid: string, body: string): Promise<ReadResponse> {
  return request(target.url({ sid }), { method: "POST", body });
}

/** A raw WebSocket client that queues what it receives. */
export class RawWebSocket {
  readonly socket: WebSocket;
  readonly opened: Promise<void>;
  /** Settles with the close event once the socket is closed (never rejects). */
  readonly closed: Promise<CloseEvent>;
  #queue: (string | Uint8Array)[] = [];
  #waiters: ((data: string | Uint8Array) => void)[] = [];

  constructor(url: string) {
    this.socket = new WebSocket(url);
    this.socket.binaryType = "arraybuffer";
    this.opened = new Promise((resolve, reject) => {
      this.socket.addEventListener("open", () => resolve(), { once: true });
      this.socket.addEventListener("error", () => reject(new Error("WebSocket failed")), {
        once: true,
      });
    });
    // Callers that only await `closed` (refused upgrades) must not see an unhandled rejection.
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.socket.addEventListener("close", (event) => resolve(event), { once: true });
    });
    this.socket.addEventListener("message", (event: MessageEvent<string | ArrayBuffer>) => {
      const data = typeof event.data === "string" ? event.data : new Uint8Array(event.data);
      const waiter = this.#waiters.shift();
      if (waiter) waiter(data);
      else this.#queue.push(data);
    });
  }

  /** The next frame, or a rejection after `timeoutMs`. */
  next(timeoutMs = 2_000): Promise<string | Uint8Array> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    let waiter: (data: string | Uint8Array) => void;
    const received = new Promise<string | Uint8Array>((resolve) => {
      waiter = resolve;
      this.#waiters.push(waiter);
    });
    return within(received, timeoutMs, "WebSocket frame").catch((error) => {
      this.#waiters = this.#waiters.filter((pending) => pending !== waiter);
      throw error;
    });
  }

  /** The next frame, which must be text. */
  async nextText(timeoutMs?: number): Promise<string> {
    const data = await this.next(timeoutMs);
    assert.equal(typeof data, "string", "expected a text frame");
    return data as string;
  }

  send(data: string | Uint8Array): void {
    this.socket.send(data);
  }

  /** Closes the socket (if still open) and waits until it is closed. */
  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CONNECTING) await this.opened.catch(() => {});
    if (this.socket.readyState !== WebSocket.CLOSED) this.socket.close();
    await within(this.closed, 2_000, "WebSocket close");
  }
  /** As {@link close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
