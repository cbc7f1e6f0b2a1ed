/**
 * Raw Engine.IO sessions for tests that speak the wire protocol themselves: every packet the
 * server sends is read in order, and the server's close is seen as `null`.
 * @module
 */
import type { SessionState } from "./fuzz.ts";

/** How many `error` event arrival times a session remembers. */
const MAX_ERROR_EVENT_TIMES = 32;

/** A raw WebSocket whose frames are read in order, with the close seen as `null`. */
export class RawSession {
  readonly ws: WebSocket;
  readonly born = Date.now();
  state: SessionState = "open";
  #queue: (string | Uint8Array)[] = [];
  /** When the latest socket.io `error` events arrived, newest last. */
  #errorEventTimes: number[] = [];
  #closed = false;
  #wake?: () => void;
  readonly #closedPromise: Promise<void>;

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.binaryType = "arraybuffer";
    this.ws.onmessage = (event: MessageEvent<string | ArrayBuffer>) => {
      if (typeof event.data === "string" && event.data.startsWith('42["error",')) {
        this.#errorEventTimes.push(Date.now());
        if (this.#errorEventTimes.length > MAX_ERROR_EVENT_TIMES) this.#errorEventTimes.shift();
      }
      this.#queue.push(typeof event.data === "string" ? event.data : new Uint8Array(event.data));
      this.#wake?.();
    };
    this.#closedPromise = new Promise((resolve) => {
      this.ws.onclose = () => {
        this.#closed = true;
        this.#wake?.();
        resolve();
      };
    });
    this.ws.onerror = () => {};
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** How many `error` events arrived in the last `ms` (counting at most the latest 32). */
  errorEventsWithin(ms: number): number {
    const since = Date.now() - ms;
    return this.#errorEventTimes.filter((time) => time > since).length;
  }

  /** The next frame, `null` once closed; throws after the deadline. */
  async next(deadline: number, what: string): Promise<string | Uint8Array | null> {
    while (true) {
      const queued = this.#queue.shift();
      if (queued !== undefined) return queued;
      if (this.#closed) return null;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`timed out waiting for ${what}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, remaining);
      });
      clearTimeout(timer);
      this.#wake = undefined;
    }
  }

  /** Sends unless the server already closed the socket; false when it did. */
  send(data: string | Uint8Array): boolean {
    if (this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(data);
    return true;
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CONNECTING) {
      await new Promise((resolve) => this.ws.addEventListener("open", resolve, { once: true }))
        .catch(() => {});
    }
    if (!this.#closed) this.ws.close();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#closedPromise,
      new Promise((resolve) => timer = setTimeout(resolve, 2_000)),
    ]);
    clearTimeout(timer);
  }
}
