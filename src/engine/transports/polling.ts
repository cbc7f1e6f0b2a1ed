/**
 * HTTP long-polling transport: a pending GET carries server → client packets, POSTs carry
 * client → server packets. Speaks web-standard `Request`/`Response` only.
 * @module
 */
import { decodePayload, encodePayload, type Packet, PacketParseError } from "../parser.ts";
import { ERROR_CODES, errorResponse, type RequestError, transportMismatch } from "../refusals.ts";
import { Transport, type TransportName } from "../transport.ts";

/** Options the polling transport needs. */
export interface PollingOptions {
  /** Largest accepted POST body, in bytes. */
  maxHttpBufferSize: number;
  /** Most milliseconds a POST body may take to arrive (a slow drip would hold the session). */
  pollBodyTimeout: number;
}

interface PendingPoll {
  request: Request;
  headers: Headers;
  resolve: (response: Response) => void;
  /** Refuses the GET as the engine refuses a request (`connection_error`, error body). */
  reject: (refusal: RequestError) => void;
}

/** Thrown by {@link readBodyWithin} when a body exceeds the limit. */
class BodyTooLargeError extends Error {}

/** Thrown by {@link readBodyWithin} when a body does not arrive in time. */
class BodyTimeoutError extends Error {}

/**
 * Reads a request body as UTF-8 text, stopping as soon as it exceeds `limit` bytes or takes
 * longer than `timeoutMs`.
 */
async function readBodyWithin(request: Request, limit: number, timeoutMs: number): Promise<string> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > limit) throw new BodyTooLargeError();
  if (request.body === null) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    // Cancelling settles the pending read as done.
    reader.cancel().catch(() => {});
  }, timeoutMs);
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (timedOut) throw new BodyTimeoutError();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel();
        throw new BodyTooLargeError();
      }
      chunks.push(value);
    }
  } finally {
    clearTimeout(timer);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder("utf-8", { fatal: true }).decode(body);
}

const { BAD_REQUEST } = ERROR_CODES;

const UPGRADES: readonly TransportName[] = Object.freeze(["websocket"]);

/** The long-polling transport of one session. */
export class PollingTransport extends Transport {
  readonly name = "polling";
  get upgradesTo(): readonly TransportName[] {
    return UPGRADES;
  }
  #pending?: PendingPoll;
  #postInFlight = false;
  #closeUndelivered = false;

  constructor(private readonly options: PollingOptions) {
    super();
  }

  /** Whether the transport closed while no GET waited, so the close packet is still owed. */
  get closeUndelivered(): boolean {
    return this.#closeUndelivered;
  }

  /** Handles one HTTP request of this session (GET polls, POST sends). */
  onRequest(request: Request, headers: Headers): Promise<Response> {
    if (request.method === "GET") return this.#onPoll(request, headers);
    if (request.method === "POST") return this.#onData(request, headers);
    return Promise.resolve(errorResponse(400, BAD_REQUEST, "Bad request method", headers));
  }

  #onPoll(request: Request, headers: Headers): Promise<Response> {
    if (this.#pending) {
      this.onError("poll_overlap", "a second GET arrived while one was pending");
      return Promise.resolve(errorResponse(400, BAD_REQUEST, "Overlapping poll request", headers));
    }
    if (this.readyState !== "open") {
      // The close owed to the client (engine.io sends it after a noop, so do we).
      this.#closeUndelivered = false;
      headers.set("Content-Type", "text/plain; charset=UTF-8");
      const payload = encodePayload([{ type: "noop" }, { type: "close" }]);
      return Promise.resolve(new Response(payload, { headers }));
    }
    return new Promise((resolve, reject) => {
      const pending = { request, headers, resolve, reject };
      this.#pending = pending;
      request.signal.addEventListener("abort", () => {
        if (this.#pending === pending) {
          this.#pending = undefined;
          this.writable = false;
          // Nobody reads this, but an unsettled handler would hold up Deno.serve's shutdown.
          resolve(new Response(null, { headers }));
          this.onError("poll_aborted", "the poll request closed before it was answered");
        }
      }, { once: true });
      this.writable = true;
      this.onDrain();
    });
  }

  async #onData(request: Request, headers: Headers): Promise<Response> {
    if (this.#postInFlight) {
      this.onError("post_overlap", "a second POST arrived while one was being read");
      return errorResponse(400, BAD_REQUEST, "Overlapping data request", headers);
    }
    this.#postInFlight = true;
    let payload: string;
    try {
      payload = await readBodyWithin(
        request,
        this.options.maxHttpBufferSize,
        this.options.pollBodyTimeout,
      );
    } catch (error) {
      if (error instanceof BodyTooLargeError) {
        this.onError("payload_too_large", "the request body was refused");
        return errorResponse(413, BAD_REQUEST, "Payload too large", headers);
      }
      if (error instanceof BodyTimeoutError) {
        this.onError("body_timeout", "the request body did not arrive in time");
        return errorResponse(408, BAD_REQUEST, "Request body timed out", headers);
      }
      this.onError("bad_body", "the request body was refused");
      return errorResponse(400, BAD_REQUEST, "Body is not valid UTF-8", headers);
    } finally {
      this.#postInFlight = false;
    }
    let packets: Packet[];
    try {
      packets = decodePayload(payload);
    } catch (error) {
      const message = error instanceof PacketParseError ? error.message : "invalid payload";
      this.onError("parse_error", message);
      return errorResponse(400, BAD_REQUEST, `Invalid payload: ${message}`, headers);
    }
    for (const packet of packets) {
      if (this.readyState !== "open") break;
      this.onPacket(packet);
    }
    headers.set("Content-Type", "text/html");
    return new Response("ok", { headers });
  }

  send(packets: Packet[]): void {
    const pending = this.#pending;
    if (!pending) return;
    this.#pending = undefined;
    this.writable = false;
    pending.headers.set("Content-Type", "text/plain; charset=UTF-8");
    pending.resolve(new Response(encodePayload(packets), { headers: pending.headers }));
  }

  /**
   * Dropped after an upgrade; nothing is lost, the session's buffer moves to the WebSocket. A
   * client's poll has returned (to the upgrade's noops) before it sends the upgrade packet, so a
   * GET still waiting was sent after that packet and read first (it came on another connection;
   * Deno reads a WebSocket's frames one event-loop turn each): it is refused as a poll arriving
   * after the upgrade is.
   */
  override discard(): void {
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.reject(transportMismatch(this.name, "websocket"));
    super.discard();
  }

  /** As engine.io: the client that sent close needs no close back; its waiting GET gets a noop. */
  protected override onClosePacket(): void {
    this.send([{ type: "noop" }]);
    this.onClose();
  }

  protected doClose(): void {
    if (this.#pending) this.send([{ type: "close" }]);
    else this.#closeUndelivered = true;
    this.onClose();
  }
}
