/**
 * Raw Engine.IO sessions for tests that speak the wire protocol themselves, over WebSocket or
 * long-polling: every packet the server sends is read in order, and the server's close is seen
 * as `null`.
 *
 * @example
 * ```ts ignore
 * await using session = await PollingSession.open(`${url}/socket.io/`);
 * await session.sendPackets(["40", BARRIER]);
 * const packet = await session.next(Date.now() + 5_000, "an answer"); // null once closed
 * ```
 * @module
 */

/** Whether a session is engine-open only, or connected to `/` as a user. */
export type SessionState = "open" | "connected";

/** A connect to a namespace nobody serves, refused at once: proves a session still reads. */
export const BARRIER = "40/fuzz-barrier,{}";
/** How the answer to {@link BARRIER} starts; it follows whatever was sent before the barrier. */
export const BARRIER_REPLY = "44/fuzz-barrier,";

/** A raw Engine.IO session over either transport. */
export interface PacketSession extends AsyncDisposable {
  readonly closed: boolean;
  /** Sends text packets: a frame each over WebSocket, all in one POST over polling. */
  sendPackets(packets: string[]): Promise<void>;
  /** The next packet the server sent, `null` once closed; throws after the deadline. */
  next(deadline: number, what: string): Promise<string | Uint8Array | null>;
  close(): Promise<void>;
}

/** How many `error` event arrival times a session remembers. */
const MAX_ERROR_EVENT_TIMES = 32;

/** A raw WebSocket whose frames are read in order, with the close seen as `null`. */
export class RawSession implements PacketSession {
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

  sendPackets(packets: string[]): Promise<void> {
    for (const packet of packets) this.send(packet);
    return Promise.resolve();
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

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The Engine.IO packet separator of a polling payload. */
const SEPARATOR = "\x1e";

/**
 * A raw long-polling session: one GET at a time reads what the server sends, each
 * {@link sendPackets} is one POST. Pings go unanswered: a case lasts seconds, the ping timeout
 * far longer.
 */
export class PollingSession implements PacketSession {
  #queue: string[] = [];
  #closed = false;
  #poll?: Promise<void>;

  private constructor(readonly url: string) {}

  /** Opens a session at `base` (the `/socket.io/` URL); its open packet is read here. */
  static async open(base: string): Promise<PollingSession> {
    const response = await fetch(`${base}?EIO=4&transport=polling`);
    const body = await response.text();
    if (response.status !== 200 || !body.startsWith("0{")) {
      throw new Error(`no polling session: ${response.status} ${body.slice(0, 200)}`);
    }
    const { sid } = JSON.parse(body.slice(1));
    return new PollingSession(`${base}?EIO=4&transport=polling&sid=${sid}`);
  }

  get closed(): boolean {
    return this.#closed;
  }

  async sendPackets(packets: string[]): Promise<void> {
    const response = await fetch(this.url, { method: "POST", body: packets.join(SEPARATOR) });
    const body = await response.text();
    if (response.status !== 200) throw new Error(`POST refused: ${response.status} ${body}`);
  }

  async next(deadline: number, what: string): Promise<string | null> {
    while (true) {
      const queued = this.#queue.shift();
      if (queued !== undefined) return queued;
      if (this.#closed) return null;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`timed out waiting for ${what}`);
      this.#poll ??= this.#get().finally(() => this.#poll = undefined);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#poll,
        new Promise((resolve) => timer = setTimeout(resolve, remaining)),
      ]);
      clearTimeout(timer);
    }
  }

  /** Ends the session with a close packet, which also answers a waiting GET. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      const response = await fetch(this.url, { method: "POST", body: "1" });
      await response.body?.cancel();
    }
    await this.#poll;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #get(): Promise<void> {
    const response = await fetch(this.url);
    const body = await response.text();
    if (response.status !== 200) {
      this.#closed = true;
      return;
    }
    for (const packet of body.split(SEPARATOR)) {
      if (packet === "1") this.#closed = true;
      else if (packet !== "2" && packet !== "6") this.#queue.push(packet);
    }
  }
}
