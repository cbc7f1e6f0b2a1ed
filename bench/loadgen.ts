/**
 * The load generator: N WebSocket clients against one chat server, S of them sending R messages
 * a second in total, and one stock `socket.io-client` among them checking that it gets every
 * message exactly once. The raw clients speak just enough Engine.IO v4 / Socket.IO v5 and read
 * only the send time out of each `load` frame, so they cost less per message than any server.
 *
 * Modes: `traffic` (everyone in the default room), `rooms` (client i joins room `bench-<i % K>`
 * first and senders write to their own room; the probe checks it gets its room's messages once
 * and no other room's), `rooms-storm` (every raw client joins a random `bench-*` room and leaves
 * it, as fast as the acks come back), `connect` (connects only) and `fanout` (one sender sends
 * `--messages` messages `--interval` seconds apart; each is timed until the last client has it).
 *
 * `--react-every K` (traffic and rooms): after one of every K messages a sender sends, it reacts
 * (`react`, 👍) to the last message it received; every client counts the `message:reactions`
 * events it gets, and CPU per delivery divides by message and reaction deliveries together.
 * `--webhook-receiver URL` (a `bench/webhook_receiver.ts` the server's `WEBHOOK_URL` points at):
 * once sending stops, times until the server's outbox depth (`/metrics`) is 0 and the receiver
 * has one `message.created` per message sent (the seeded history included).
 *
 * Before any client connects, `--seed N` has a separate client send N messages to every server
 * (acked one by one), so each connect carries an N-message history; the probe reports the history
 * length it got. `--url` and `--pid` take comma-separated lists (several instances sharing one
 * Redis): clients are dealt out to the URLs in turn, and server CPU and memory are summed over the
 * pids; `--redis-pid` samples redis-server's CPU separately.
 *
 * Prints one JSON line (the {@link LoadResult}) on stdout; progress goes to stderr.
 *
 * ```sh
 * deno run -A bench/loadgen.ts --url http://127.0.0.1:3000 --secret s3cr3t \
 *   --clients 100 --senders 10 --rate 500 --warmup 3 --duration 10 [--pid 1234] [--metrics]
 * deno run -A bench/loadgen.ts --url … --secret … --mode rooms --rooms 10 --clients 1000 \
 *   --senders 100 --rate 500
 * deno run -A bench/loadgen.ts --url … --secret … --mode rooms-storm --rooms 10 --clients 500
 * deno run -A bench/loadgen.ts --url … --secret … --mode connect --clients 1000 --seed 50
 * deno run -A bench/loadgen.ts --url http://127.0.0.1:3000,http://127.0.0.1:3001 --pid 11,12 \
 *   --redis-pid 10 --secret … --clients 1000 --senders 10 --rate 50 --seed 50
 * deno run -A bench/loadgen.ts --url … --secret … --mode fanout --clients 10000 --messages 5
 * deno run -A bench/loadgen.ts --url … --secret … --clients 1000 --rate 50 --react-every 10
 * deno run -A bench/loadgen.ts --url … --secret … --clients 1000 --rate 50 --metrics \
 *   --webhook-receiver http://127.0.0.1:4000
 * ```
 * @module
 */
import { SignJWT } from "jose";
import { io, type Socket } from "socket.io-client";
import { cpuMicros, machineBusyMicros, rssKb, treeCpuMicros } from "./proc.ts";

/** Load generator options; defaults in {@link LOADGEN_DEFAULTS}. */
export interface LoadOptions {
  /** One server, or several (comma-separated): clients are dealt out to them in turn. */
  url: string;
  secret: string;
  mode: "traffic" | "rooms" | "rooms-storm" | "connect" | "fanout";
  /** Connected clients, the probe included. */
  clients: number;
  /** Rooms `bench-0` … `bench-<rooms - 1>` of the `rooms` and `rooms-storm` modes. */
  rooms: number;
  /** How many of the raw clients send. */
  senders: number;
  /** Messages per second, all senders together. */
  rate: number;
  warmupSeconds: number;
  durationSeconds: number;
  /** Characters of filler after the send time and message key. */
  payloadSize: number;
  /** Connects in flight at once. */
  concurrency: number;
  /** The servers' pids (comma-separated), to sample their CPU time and RSS ("" or 0: don't). */
  pid: string;
  /** redis-server's pid, to sample its CPU time apart from the servers' (0: don't). */
  redisPid: number;
  /** PostgreSQL's postmaster pid: its and its backends' CPU time, apart (0: don't). */
  postgresPid: number;
  /** Messages a separate client sends to every server before the clients connect (the history). */
  seed: number;
  /** `fanout` only: messages sent, and seconds between them. */
  messages: number;
  intervalSeconds: number;
  /** Scrape `chat_kv_write_seconds_count` from the server's `/metrics`. */
  metrics: boolean;
  /** Longest wait for late deliveries after the window, in seconds. */
  drainSeconds: number;
  /** A sender reacts after one of every this many messages it sends (0: never). */
  reactEvery: number;
  /** The webhook receiver's URL, to time the outbox's drain after the load ("": no webhooks). */
  webhookReceiver: string;
}

export const LOADGEN_DEFAULTS: Omit<LoadOptions, "url" | "secret"> = {
  mode: "traffic",
  clients: 100,
  rooms: 10,
  senders: 10,
  rate: 500,
  warmupSeconds: 3,
  durationSeconds: 10,
  payloadSize: 64,
  concurrency: 100,
  pid: "",
  redisPid: 0,
  postgresPid: 0,
  seed: 0,
  messages: 5,
  intervalSeconds: 2,
  metrics: false,
  drainSeconds: 10,
  reactEvery: 0,
  webhookReceiver: "",
};

/** What one load generator run measured. */
export interface LoadResult {
  mode: LoadOptions["mode"];
  clients: number;
  rate: number;
  connectMs: number;
  connectsPerSecond: number;
  connectP50Ms: number;
  connectP99Ms: number;
  /** Messages in the probe's history `load` on connect (after `--seed`). */
  historyLength: number;
  /** Messages sent in the measured window, and deliveries expected (sent × clients). */
  sent: number;
  expected: number;
  delivered: number;
  lost: number;
  /** Live messages received during the window, per second of window. */
  deliveriesPerSecond: number;
  /** Live messages per live `load` frame received during the window (1 = no batching). */
  messagesPerFrame: number;
  acks: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  /** `foreign`: messages of rooms the probe is not in (`rooms` mode). */
  probe: { received: number; lost: number; duplicates: number; foreign: number };
  /** `rooms-storm` only: joins acked in the window, and join → ack latency. */
  storm?: {
    joins: number;
    joinsPerSecond: number;
    /** Joins acked with `ok: false`. */
    refused: number;
    p50Ms: number;
    p99Ms: number;
    cpuMicrosPerJoin?: number;
  };
  /** `fanout` only: per message, when the median and the last client had it (ms after sending). */
  fanout?: {
    p50Ms: number[];
    lastMs: number[];
    /** Clients that had each message. */
    reached: number[];
  };
  /** `--react-every` only: reactions sent in the window, and the events they gave. */
  reactions?: {
    sent: number;
    /** Acked with `ok: false`. */
    refused: number;
    /** `message:reactions` events received by all clients in the window. */
    deliveries: number;
    deliveriesPerSecond: number;
  };
  /** `--webhook-receiver` only: the outbox's drain after the load (ms after sending stopped). */
  webhooks?: WebhookDrain;
  /** Clients whose connection closed before the end. */
  disconnects: number;
  windowSeconds: number;
  server?: {
    cpuMicros: number;
    /** Per delivery of a message or of a `message:reactions` event. */
    cpuMicrosPerDelivery: number;
    cpuMicrosPerConnect: number;
    /** Summed over the server processes. */
    rssWithClientsKb: number;
    /** The same with one client on each server, after the seeding (summed). */
    rssBeforeClientsKb?: number;
    /** Clients connected before `rssBeforeClientsKb` was read (one per server). */
    warmClients?: number;
    kvCommitsPerSecond?: number;
    /** Server processes sampled. */
    processes?: number;
    /** redis-server's CPU over the window (not in `cpuMicros`), with `--redis-pid`. */
    redisCpuMicros?: number;
    /** PostgreSQL's CPU over the window, backends included (not in `cpuMicros`). */
    postgresCpuMicros?: number;
  };
  loadgenCpuPercent: number;
  /** The load generator's own RSS with every client connected, in KB. */
  loadgenRssKb: number;
  /** CPU used by everything else on the machine during the window (100 = one core). */
  otherCpuPercent: number;
}

/** How the outbox drained after the load, in ms after the senders stopped (NaN: not in time). */
export interface WebhookDrain {
  /** `message.created` events due: the seeded history and every message sent. */
  expected: number;
  /** Distinct `message.created` events the receiver had at the end of the wait. */
  received: number;
  /** POSTs of an event the receiver already had. */
  duplicates: number;
  /** The receiver had every event. */
  receivedAllMs: number;
  /** The receiver had every event and `/metrics` said the outbox was empty. */
  drainMs: number;
  /** The outbox depth `/metrics` showed last. */
  depth: number;
}

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const MESSAGE_FIELD = '"message":"';
const MESSAGE_FIELD_BYTES = new TextEncoder().encode(MESSAGE_FIELD);
const LETTER_M = MESSAGE_FIELD_BYTES[1];

/** The index just after the next `"message":"` in `bytes[from, end)`, or -1. */
function findMessageField(bytes: Uint8Array, from: number, end: number): number {
  const last = end - MESSAGE_FIELD_BYTES.length;
  // `m` is rare in these frames: let the native byte search find candidates.
  for (
    let m = bytes.indexOf(LETTER_M, from + 1);
    m >= 0 && m - 1 <= last;
    m = bytes.indexOf(LETTER_M, m + 1)
  ) {
    let i = 0;
    while (i < MESSAGE_FIELD_BYTES.length && bytes[m - 1 + i] === MESSAGE_FIELD_BYTES[i]) i++;
    if (i === MESSAGE_FIELD_BYTES.length) return m - 1 + i;
  }
  return -1;
}

/** Reads an unsigned decimal number (`123.456`) starting at `at`. */
function readNumber(bytes: Uint8Array, at: number, end: number): number {
  let value = 0;
  let i = at;
  while (i < end && bytes[i] >= 48 && bytes[i] <= 57) value = value * 10 + bytes[i++] - 48;
  if (bytes[i] === 46) {
    let scale = 0.1;
    for (i++; i < end && bytes[i] >= 48 && bytes[i] <= 57; i++, scale /= 10) {
      value += (bytes[i] - 48) * scale;
    }
  }
  return value;
}

/** Everything the clients record; one instance per run. */
class Recorder {
  windowStart = Infinity;
  windowEnd = Infinity;
  /** Live deliveries (messages) received while the window was open. */
  receivedInWindow = 0;
  /** Live `load` frames received while the window was open (a frame may carry several messages). */
  framesInWindow = 0;
  /** `message:reactions` events received while the window was open. */
  reactionsInWindow = 0;
  /** Reactions sent while the window was open, and those refused. */
  reactsInWindow = 0;
  reactsRefused = 0;
  /** Deliveries of messages sent in the window. */
  delivered = 0;
  sentInWindow = 0;
  acks = 0;
  disconnects = 0;
  #latencies = new Float64Array(1 << 16);

  record(sentAt: number): void {
    const at = now();
    if (at >= this.windowStart && at < this.windowEnd) this.receivedInWindow++;
    if (sentAt < this.windowStart) return;
    if (this.delivered === this.#latencies.length) {
      const grown = new Float64Array(this.#latencies.length * 2);
      grown.set(this.#latencies);
      this.#latencies = grown;
    }
    this.#latencies[this.delivered++] = at - sentAt;
  }

  /** Counts one live `load` frame. */
  frame(): void {
    const at = now();
    if (at >= this.windowStart && at < this.windowEnd) this.framesInWindow++;
  }

  /** Counts one `message:reactions` event. */
  reaction(): void {
    const at = now();
    if (at >= this.windowStart && at < this.windowEnd) this.reactionsInWindow++;
  }

  latencies(): Float64Array {
    return this.#latencies.subarray(0, this.delivered).sort();
  }

  /** A sorted copy of the latencies recorded since the `from`-th. */
  latenciesSince(from: number): Float64Array {
    return this.#latencies.slice(from, this.delivered).sort();
  }
}

function percentile(sorted: Float64Array | number[], fraction: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)];
}

/** Whether `bytes[at…]` starts with `prefix`. */
function startsWith(bytes: Uint8Array, at: number, prefix: Uint8Array): boolean {
  for (let i = 0; i < prefix.length; i++) if (bytes[at + i] !== prefix[i]) return false;
  return true;
}

/** Engine.IO / Socket.IO frame heads the raw client tells apart, as char codes. */
const CHAR = { "0": 48, "2": 50, "3": 51, "4": 52 } as const;
const LOAD_EVENT = new TextEncoder().encode('["load",');
const REACTIONS_EVENT = new TextEncoder().encode('["message:reactions",');
/** What the bench reacts with. */
const REACTION_EMOJI = "👍";
/** How a successful ack's body starts (`43<id>[{"ok":true,…}]`). */
const ACK_OK = new TextEncoder().encode('[{"ok":true');
const encoder = new TextEncoder();
/** Frames are ASCII here; latin1 decodes fastest. */
const decoder = new TextDecoder("latin1");

/**
 * A client speaking raw Engine.IO / Socket.IO over a hand-rolled WebSocket on a TCP connection:
 * one read drains many frames, and only `load` frames are decoded (to find the send time).
 * Client frames use an all-zero mask key, which servers accept and which needs no XOR.
 */
class RawClient {
  #conn?: Deno.Conn;
  #nextAckId = 0;
  #closing = false;
  #writes: Uint8Array[] = [];
  #writing = false;
  /** Acks awaited by {@link request}, by ack id: each settles with whether it said `ok: true`. */
  #pending = new Map<number, { resolve: (ok: boolean) => void; reject: (error: Error) => void }>();
  /** Set by senders that react: then live `load` frames are parsed for {@link latestId}. */
  trackLatest = false;
  /** The id of the last live message received (with {@link trackLatest}). */
  latestId?: string;

  /**
   * @param bufferSize the read buffer's first size (it grows to fit a frame): small when there
   * are thousands of clients.
   */
  constructor(private readonly recorder: Recorder, private readonly bufferSize = 1 << 16) {}

  /** Resolves once the history `load` arrived. */
  async connect(url: URL, token: string): Promise<void> {
    const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
    conn.setNoDelay(true);
    this.#conn = conn;
    await conn.write(encoder.encode(
      `GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: ${url.host}\r\n` +
        "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ));
    let buffer = new Uint8Array(this.bufferSize);
    let filled = 0;
    const read = async () => {
      if (filled === buffer.length) {
        const grown = new Uint8Array(buffer.length * 2);
        grown.set(buffer);
        buffer = grown;
      }
      const count = await conn.read(buffer.subarray(filled));
      if (count === null) throw new Error("connection closed");
      filled += count;
    };
    // The HTTP 101 response.
    let headerEnd = -1;
    while (headerEnd < 0) {
      await read();
      headerEnd = decoder.decode(buffer.subarray(0, filled)).indexOf("\r\n\r\n");
    }
    if (decoder.decode(buffer.subarray(9, 12)) !== "101") throw new Error("upgrade refused");
    buffer.copyWithin(0, headerEnd + 4, filled);
    filled -= headerEnd + 4;

    const { promise: loaded, resolve, reject } = Promise.withResolvers<void>();
    let isLoaded = false;
    const onFrame = (start: number, end: number) => {
      const type = buffer[start];
      if (type === CHAR["4"]) {
        const kind = buffer[start + 1];
        if (kind === CHAR["2"]) {
          if (!startsWith(buffer, start + 2, LOAD_EVENT)) {
            if (startsWith(buffer, start + 2, REACTIONS_EVENT)) this.recorder.reaction();
            return;
          }
          if (!isLoaded) {
            isLoaded = true;
            return resolve();
          }
          // A live `load` carries one or more messages (those stored by one commit). Only the send
          // time at the head of each message text is read, straight from the bytes: decoding the
          // whole frame would make the generator's cost grow with the server's frame size.
          this.recorder.frame();
          if (this.trackLatest) {
            const [, messages] = JSON.parse(decoder.decode(buffer.subarray(start + 2, end)));
            this.latestId = messages.at(-1)?.id ?? this.latestId;
          }
          for (let at = findMessageField(buffer, start + 2, end); at >= 0;) {
            this.recorder.record(readNumber(buffer, at, end));
            at = findMessageField(buffer, at, end);
          }
        } else if (kind === CHAR["3"]) {
          this.recorder.acks++;
          if (this.#pending.size > 0) this.#settle(buffer, start + 2, end);
        } else if (kind === CHAR["4"]) {
          reject(new Error(`connect_error ${decoder.decode(buffer.subarray(start, end))}`));
        }
      } else if (type === CHAR["2"]) {
        this.#sendText("3");
      } else if (type === CHAR["0"]) {
        this.#sendText(`40${JSON.stringify({ token })}`);
      }
    };
    (async () => {
      while (true) {
        let offset = 0;
        while (filled - offset >= 2) {
          const opcode = buffer[offset] & 0x0f;
          let length = buffer[offset + 1] & 0x7f;
          let head = 2;
          if (length === 126) {
            if (filled - offset < 4) break;
            length = (buffer[offset + 2] << 8) | buffer[offset + 3];
            head = 4;
          } else if (length === 127) {
            if (filled - offset < 10) break;
            length = Number(new DataView(buffer.buffer, offset + 2, 8).getBigUint64(0));
            head = 10;
          }
          if (filled - offset < head + length) break;
          if (opcode === 0x1) onFrame(offset + head, offset + head + length);
          else if (opcode === 0x8) throw new Error("closed by the server");
          offset += head + length;
        }
        buffer.copyWithin(0, offset, filled);
        filled -= offset;
        // A large frame (a history, ours' online list at thousands of clients) grew the buffer:
        // give the memory back once it is read, or 10,000 clients keep 10,000 large buffers.
        if (buffer.length > this.bufferSize && filled <= this.bufferSize) {
          buffer = buffer.slice(0, this.bufferSize);
        }
        await read();
      }
    })().catch((error) => {
      if (!this.#closing) this.recorder.disconnects++;
      reject(error);
      for (const pending of this.#pending.values()) pending.reject(error);
      this.#pending.clear();
    });
    return loaded;
  }

  /** Sends a message, to `room` or else the default room; its ack is only counted. */
  send(text: string, room?: string): void {
    const to = room === undefined ? "" : `"room":"${room}",`;
    this.#sendText(`42${this.#nextAckId++}["message",{${to}"message":"${text}"}]`);
  }

  /** Sends `event` with an ack; resolves with whether the ack said `ok: true`. */
  request(event: string, payload: unknown): Promise<boolean> {
    const id = this.#nextAckId++;
    const { promise, resolve, reject } = Promise.withResolvers<boolean>();
    this.#pending.set(id, { resolve, reject });
    this.#sendText(`42${id}${JSON.stringify([event, payload])}`);
    return promise;
  }

  /** Settles the awaited ack whose id starts at `bytes[at]`, if any. */
  #settle(bytes: Uint8Array, at: number, end: number): void {
    let id = 0;
    while (at < end && bytes[at] >= 48 && bytes[at] <= 57) id = id * 10 + bytes[at++] - 48;
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    let i = 0;
    while (i < ACK_OK.length && bytes[at + i] === ACK_OK[i]) i++;
    pending.resolve(i === ACK_OK.length);
  }

  /** Queues one masked text frame; writes go out in order, partial writes resumed. */
  #sendText(text: string): void {
    const payload = encoder.encode(text);
    const head = payload.length < 126 ? 2 : 4;
    const frame = new Uint8Array(head + 4 + payload.length);
    frame[0] = 0x81;
    if (head === 2) frame[1] = 0x80 | payload.length;
    else [frame[1], frame[2], frame[3]] = [0x80 | 126, payload.length >> 8, payload.length & 0xff];
    frame.set(payload, head + 4);
    this.#writes.push(frame);
    if (!this.#writing) this.#flush();
  }

  async #flush(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#writes.length > 0) {
        let chunk = this.#writes.shift()!;
        while (chunk.length > 0) chunk = chunk.subarray(await this.#conn!.write(chunk));
      }
    } catch {
      // The read loop reports the broken connection.
    } finally {
      this.#writing = false;
    }
  }

  close(): void {
    this.#closing = true;
    try {
      this.#conn?.close();
    } catch {
      // Already closed by the server.
    }
  }
}

/** The stock socket.io-client: counts every live message of its room it gets, by key. */
class Probe {
  #socket?: Socket;
  #closing = false;
  /** The room it joined; without one, it is in the default room only. */
  #room?: string;
  readonly seen = new Map<string, number>();
  received = 0;
  /** Messages in the history `load` on connect. */
  historyLength = NaN;
  /** Live messages of rooms it is not in. */
  foreign = 0;

  constructor(private readonly recorder: Recorder) {}

  connect(url: string, token: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = io(url, {
        transports: ["websocket"],
        auth: { token },
        reconnection: false,
        forceNew: true,
      });
      this.#socket = socket;
      let loaded = false;
      socket.on("load", (messages: { room: string; message: string }[]) => {
        if (!loaded) {
          loaded = true;
          this.historyLength = messages.length;
          return resolve();
        }
        for (const { room, message } of messages) {
          if (this.#room !== undefined && room !== this.#room) {
            this.foreign++;
            continue;
          }
          const sentAt = parseFloat(message);
          this.recorder.record(sentAt);
          if (sentAt < this.recorder.windowStart) continue;
          this.received++;
          const key = message.split(" ", 2)[1];
          this.seen.set(key, (this.seen.get(key) ?? 0) + 1);
        }
      });
      socket.on("message:reactions", () => this.recorder.reaction());
      socket.on("connect_error", (error) => reject(error));
      socket.on("disconnect", () => {
        if (!this.#closing) this.recorder.disconnects++;
      });
    });
  }

  async join(room: string): Promise<void> {
    this.#room = room;
    const ack = await this.#socket!.emitWithAck("join", { room });
    if (!ack.ok) throw new Error(`probe: join ${room} refused: ${JSON.stringify(ack.error)}`);
  }

  close(): void {
    this.#closing = true;
    this.#socket?.close();
  }
}

function signTokens(secret: string, count: number, prefix = "u"): Promise<string[]> {
  const key = new TextEncoder().encode(secret);
  return Promise.all(
    Array.from({ length: count }, (_, index) =>
      new SignJWT({ name: `${prefix}${index}` })
        .setProtectedHeader({ alg: "HS256" })
        .setSubject(`${prefix}${index}`)
        .setIssuedAt()
        .setExpirationTime("2h")
        .sign(key)),
  );
}

/**
 * Gives every server an N-message history before the clients connect: a separate client (user
 * `seed0`) sends `count` messages, each after the previous one's ack, then leaves.
 */
async function seedHistory(
  urls: URL[],
  secret: string,
  count: number,
  payloadSize: number,
): Promise<void> {
  const [token] = await signTokens(secret, 1, "seed");
  const filler = "x".repeat(payloadSize);
  for (const url of urls) {
    const client = new RawClient(new Recorder());
    await client.connect(url, token);
    for (let i = 0; i < count; i++) {
      if (!await client.request("message", { message: `seed ${i} ${filler}` })) {
        throw new Error(`seed message ${i} refused by ${url}`);
      }
    }
    client.close();
  }
  console.error(`loadgen: seeded ${count} messages on ${urls.length} server(s)`);
}

/** Longest wait for one `fanout` message to reach every client. */
const FANOUT_TIMEOUT_MS = 30_000;
/** A `fanout` message that reached no further client for this long is counted as done. */
const FANOUT_QUIET_MS = 5_000;

/**
 * `fanout`: `sender` sends `messages` messages `intervalSeconds` apart (each after the previous one
 * reached every client, or stopped arriving); returns when the median and the last client had
 * each one, and how many clients did.
 */
async function fanOut(
  sender: RawClient,
  clients: number,
  options: LoadOptions,
  recorder: Recorder,
): Promise<NonNullable<LoadResult["fanout"]>> {
  const result = { p50Ms: [] as number[], lastMs: [] as number[], reached: [] as number[] };
  const filler = "x".repeat(options.payloadSize);
  for (let k = 0; k < options.messages; k++) {
    const from = recorder.delivered;
    const sentAt = now();
    recorder.sentInWindow++;
    sender.send(`${sentAt.toFixed(3)} ${k} ${filler}`);
    const deadline = performance.now() + FANOUT_TIMEOUT_MS;
    let last = from;
    let quietSince = performance.now();
    while (recorder.delivered - from < clients && performance.now() < deadline) {
      if (recorder.delivered !== last) [last, quietSince] = [recorder.delivered, performance.now()];
      if (performance.now() - quietSince > FANOUT_QUIET_MS) break;
      await sleep(5);
    }
    const latencies = recorder.latenciesSince(from);
    result.p50Ms.push(percentile(latencies, 0.5));
    result.lastMs.push(latencies.length ? latencies[latencies.length - 1] : NaN);
    result.reached.push(latencies.length);
    console.error(
      `loadgen: message ${k} reached ${latencies.length} of ${clients}, ` +
        `last after ${result.lastMs[k].toFixed(1)} ms`,
    );
    const wait = sentAt + options.intervalSeconds * 1000 - now();
    if (k < options.messages - 1 && wait > 0) await sleep(wait);
  }
  return result;
}

async function scrapeKvCommits(url: string): Promise<number> {
  const text = await (await fetch(new URL("/metrics", url))).text();
  const match = text.match(/^chat_kv_write_seconds_count(?:\{[^}]*\})? (\S+)$/m);
  return match ? Number(match[1]) : NaN;
}

async function scrapeOutboxDepth(url: string): Promise<number> {
  const text = await (await fetch(new URL("/metrics", url))).text();
  const match = text.match(/^chat_webhook_outbox_depth(?:\{[^}]*\})? (\S+)$/m);
  return match ? Number(match[1]) : NaN;
}

/** Longest wait for the outbox to drain after the load. */
const WEBHOOK_DRAIN_TIMEOUT_MS = 30_000;

/**
 * From `stoppedAt` (when sending stopped), polls the receiver's counts and the server's outbox
 * depth every 50 ms until the receiver has `expected` `message.created` events and the depth is 0.
 */
async function watchOutbox(
  serverUrl: string,
  receiverUrl: string,
  expected: number,
  stoppedAt: number,
): Promise<WebhookDrain> {
  const drain: WebhookDrain = {
    expected,
    received: 0,
    duplicates: 0,
    receivedAllMs: NaN,
    drainMs: NaN,
    depth: NaN,
  };
  while (performance.now() - stoppedAt < WEBHOOK_DRAIN_TIMEOUT_MS) {
    const [counts, depth] = await Promise.all([
      fetch(new URL("/count", receiverUrl)).then((response) => response.json()),
      scrapeOutboxDepth(serverUrl),
    ]);
    const at = performance.now() - stoppedAt;
    drain.received = counts.types["message.created"] ?? 0;
    drain.duplicates = counts.duplicates;
    drain.depth = depth;
    if (drain.received >= expected && Number.isNaN(drain.receivedAllMs)) drain.receivedAllMs = at;
    if (drain.received >= expected && depth === 0) {
      drain.drainMs = at;
      break;
    }
    await sleep(50);
  }
  return drain;
}

/** Runs every task (a connect, a join), at most `concurrency` at a time; returns their durations. */
async function runLimited(
  tasks: (() => Promise<void>)[],
  concurrency: number,
): Promise<number[]> {
  const durations: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const task = tasks[next++];
      const started = performance.now();
      await task();
      durations.push(performance.now() - started);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, tasks.length) }, worker));
  return durations.sort((a, b) => a - b);
}

/** The room of client `index` (the probe is client 0, raw client j is client j + 1). */
const benchRoom = (index: number, rooms: number) => `bench-${index % rooms}`;

/**
 * Every client joins a random `bench-*` room and leaves it again, each as fast as its acks come
 * back, until `stop()`; records the latency of joins acked while the window is open.
 */
function startStorm(clients: RawClient[], rooms: number, recorder: Recorder) {
  const latencies: number[] = [];
  let refused = 0;
  let running = true;
  const loops = clients.map(async (client) => {
    try {
      while (running) {
        const room = benchRoom(Math.floor(Math.random() * rooms), rooms);
        const started = now();
        const ok = await client.request("join", { room });
        const at = now();
        if (at >= recorder.windowStart && at < recorder.windowEnd) {
          if (ok) latencies.push(at - started);
          else refused++;
        }
        await client.request("leave", { room });
      }
    } catch {
      // The read loop counted the broken connection.
    }
  });
  return {
    /** Ends every loop after its current round trip (waits at most `timeoutMs`). */
    async stop(timeoutMs: number) {
      running = false;
      await Promise.race([Promise.all(loops), sleep(timeoutMs)]);
      return { latencies: latencies.sort((a, b) => a - b), refused };
    },
  };
}

/**
 * `client` reacts to the last message it received (in `room`, or the default room); counted when
 * sent in the window, and refused when acked `ok: false`.
 */
function react(client: RawClient, room: string | undefined, recorder: Recorder): void {
  const id = client.latestId;
  if (id === undefined) return;
  const at = now();
  const inWindow = at >= recorder.windowStart && at < recorder.windowEnd;
  if (inWindow) recorder.reactsInWindow++;
  client.request("react", { ...(room ? { room } : {}), id, emoji: REACTION_EMOJI }).then(
    (ok) => {
      if (!ok && inWindow) recorder.reactsRefused++;
    },
    () => {},
  );
}

/** Deliveries due: each room's messages sent in the window times its members. */
function expectedDeliveries(sentTo: number[], members: number[]): number {
  return sentTo.reduce((sum, sent, room) => sum + sent * members[room], 0);
}

/** Runs one load test against the server at `options.url`. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const recorder = new Recorder();
  const urls = options.url.split(",");
  const serverUrls = urls.map((url) => new URL(url));
  const pids = String(options.pid).split(",").map(Number).filter((pid) => pid > 0);
  const tokens = await signTokens(options.secret, options.clients);
  if (options.seed > 0) {
    await seedHistory(serverUrls, options.secret, options.seed, options.payloadSize);
  }
  const probe = new Probe(recorder);
  // At thousands of clients, 64 KB each would be most of the generator's memory.
  const bufferSize = options.clients > 2000 ? 1 << 14 : 1 << 16;
  const raw = Array.from(
    { length: options.clients - 1 },
    () => new RawClient(recorder, bufferSize),
  );
  const senders = raw.slice(0, Math.min(options.senders, raw.length));
  if (options.reactEvery > 0) { for (const sender of senders) sender.trackLatest = true; }
  const cpu = () => pids.reduce((sum, pid) => sum + cpuMicros(pid), 0);
  const redisCpu = () => (options.redisPid ? cpuMicros(options.redisPid) : 0);
  const postgresCpu = () => (options.postgresPid ? treeCpuMicros(options.postgresPid) : 0);

  // Client i (the probe is client 0) connects to server i mod the number of servers. The first
  // client of each server connects before the others, alone: the servers' memory is read once the
  // history is seeded and each has served one client, so RSS per client is what each further
  // client costs, not the one-time warm-up (code compiled on first use, the seeded history).
  const connectRaw = (index: number) =>
    raw[index].connect(serverUrls[(index + 1) % urls.length], tokens[index + 1]);
  const warmed = Math.min(urls.length, options.clients);
  await probe.connect(urls[0], tokens[0]);
  for (let index = 0; index < warmed - 1; index++) await connectRaw(index);
  await sleep(500);
  const rssBeforeClientsKb = pids.length ? pids.reduce((sum, pid) => sum + rssKb(pid), 0) : NaN;

  const connectCpuStart = cpu();
  const connectStarted = performance.now();
  const inStorm = raw.slice(warmed - 1);
  // A connection the server closes during the storm is counted (the read loop counts it as a
  // disconnect) rather than ending the run: at 19,000 clients on a busy machine it happens.
  const durations = await runLimited(
    inStorm.map((_, offset) => () => connectRaw(offset + warmed - 1).catch(() => {})),
    options.concurrency,
  );
  const connectMs = performance.now() - connectStarted;
  const connectCpu = cpu() - connectCpuStart;
  console.error(`loadgen: ${options.clients} clients connected in ${connectMs.toFixed(0)} ms`);
  // Room r's members and the messages sent to it in the window; one room unless in `rooms` mode.
  const roomCount = options.mode === "rooms" ? options.rooms : 1;
  const members = Array.from(
    { length: roomCount },
    (_, room) => Math.ceil((options.clients - room) / roomCount),
  );
  const sentInWindowTo = new Array<number>(roomCount).fill(0);
  if (options.mode === "rooms") {
    await runLimited([
      () => probe.join(benchRoom(0, roomCount)),
      ...raw.map((client, index) => async () => {
        const room = benchRoom(index + 1, roomCount);
        if (!await client.request("join", { room })) throw new Error(`join ${room} refused`);
      }),
    ], options.concurrency);
    console.error(`loadgen: joined ${roomCount} rooms of ${members[0]}`);
  }
  await sleep(options.mode === "fanout" ? 2000 : 500);
  const rssWithClientsKb = pids.length ? pids.reduce((sum, pid) => sum + rssKb(pid), 0) : NaN;
  const loadgenRssKb = rssKb(Deno.pid);

  let sent = 0;
  let windowCpu = 0;
  let windowRedisCpu = 0;
  let windowPostgresCpu = 0;
  let loadgenCpu = 0;
  let otherCpu = 0;
  let kvCommits = NaN;
  let windowSeconds = 0;
  let stormed: { latencies: number[]; refused: number } | undefined;
  let fanout: LoadResult["fanout"];
  let webhooks: WebhookDrain | undefined;
  const scrapeKv = async () =>
    options.metrics
      ? (await Promise.all(urls.map(scrapeKvCommits))).reduce((sum, count) => sum + count, 0)
      : NaN;
  /** Opens the measured window; the function it returns closes it and reads the counters. */
  const openWindow = async () => {
    const kvBefore = await scrapeKv();
    const cpuBefore = cpu();
    const redisBefore = redisCpu();
    const postgresBefore = postgresCpu();
    const loadgenBefore = cpuMicros(Deno.pid);
    const machineBefore = machineBusyMicros();
    recorder.windowStart = now();
    return async () => {
      recorder.windowEnd = now();
      windowCpu = cpu() - cpuBefore;
      windowRedisCpu = redisCpu() - redisBefore;
      windowPostgresCpu = postgresCpu() - postgresBefore;
      loadgenCpu = cpuMicros(Deno.pid) - loadgenBefore;
      otherCpu = machineBusyMicros() - machineBefore - loadgenCpu - windowCpu - windowRedisCpu -
        windowPostgresCpu;
      windowSeconds = (recorder.windowEnd - recorder.windowStart) / 1000;
      kvCommits = (await scrapeKv() - kvBefore) / windowSeconds;
    };
  };
  if (options.mode === "fanout") {
    const closeWindow = await openWindow();
    fanout = await fanOut(raw[0], options.clients, options, recorder);
    sentInWindowTo[0] = recorder.sentInWindow;
    await closeWindow();
  } else if (options.mode !== "connect") {
    const filler = "x".repeat(options.payloadSize);
    const started = performance.now();
    const sentBy = new Array<number>(senders.length).fill(0);
    // One timer for all senders, in turn: rooms and senders get even, interleaved shares.
    const sendTimer = options.mode === "rooms-storm" ? undefined : setInterval(() => {
      const due = Math.floor((performance.now() - started) / 1000 * options.rate);
      for (; sent < due; sent++) {
        const sentAt = now();
        const sender = sent % senders.length;
        const room = (sender + 1) % roomCount;
        if (sentAt >= recorder.windowStart) {
          recorder.sentInWindow++;
          sentInWindowTo[room]++;
        }
        const roomName = options.mode === "rooms" ? benchRoom(room, roomCount) : undefined;
        senders[sender].send(`${sentAt.toFixed(3)} ${sent} ${filler}`, roomName);
        // Senders take turns reacting, so reactions are spread evenly over time.
        const mine = sentBy[sender]++;
        if (options.reactEvery > 0 && mine % options.reactEvery === sender % options.reactEvery) {
          react(senders[sender], roomName, recorder);
        }
      }
    }, 5);
    const storm = options.mode === "rooms-storm"
      ? startStorm(raw, options.rooms, recorder)
      : undefined;
    await sleep(options.warmupSeconds * 1000);

    const closeWindow = await openWindow();
    await sleep(options.durationSeconds * 1000);
    clearInterval(sendTimer);
    const stoppedAt = performance.now();
    // Every message sent, the seeded history included, gives one `message.created`.
    const outboxDrain = options.webhookReceiver
      ? watchOutbox(urls[0], options.webhookReceiver, options.seed * urls.length + sent, stoppedAt)
      : undefined;
    await closeWindow();
    stormed = await storm?.stop(options.drainSeconds * 1000);

    // Late deliveries still count: wait until all arrived, or nothing arrived for 2 s.
    const expected = expectedDeliveries(sentInWindowTo, members);
    const drainUntil = performance.now() + options.drainSeconds * 1000;
    let last = -1;
    let quietSince = performance.now();
    while (recorder.delivered < expected && performance.now() < drainUntil) {
      if (recorder.delivered !== last) [last, quietSince] = [recorder.delivered, performance.now()];
      if (performance.now() - quietSince > 2000) break;
      await sleep(50);
    }
    webhooks = await outboxDrain;
  }

  probe.close();
  for (const client of raw) client.close();
  await sleep(200);

  const latencies = recorder.latencies();
  const expected = expectedDeliveries(sentInWindowTo, members);
  let duplicates = 0;
  for (const count of probe.seen.values()) duplicates += count - 1;
  const delivered = recorder.delivered;
  return {
    mode: options.mode,
    clients: options.clients,
    rate: options.rate,
    connectMs,
    connectsPerSecond: inStorm.length / (connectMs / 1000),
    connectP50Ms: percentile(durations, 0.5),
    connectP99Ms: percentile(durations, 0.99),
    historyLength: probe.historyLength,
    sent: recorder.sentInWindow,
    expected,
    delivered,
    lost: expected - delivered,
    deliveriesPerSecond: windowSeconds ? recorder.receivedInWindow / windowSeconds : 0,
    messagesPerFrame: recorder.framesInWindow
      ? recorder.receivedInWindow / recorder.framesInWindow
      : 0,
    acks: recorder.acks,
    p50Ms: percentile(latencies, 0.5),
    p95Ms: percentile(latencies, 0.95),
    p99Ms: percentile(latencies, 0.99),
    maxMs: latencies.length ? latencies[latencies.length - 1] : NaN,
    probe: {
      received: probe.received,
      lost: sentInWindowTo[0] - probe.seen.size,
      duplicates,
      foreign: probe.foreign,
    },
    storm: stormed && {
      joins: stormed.latencies.length,
      joinsPerSecond: stormed.latencies.length / windowSeconds,
      refused: stormed.refused,
      p50Ms: percentile(stormed.latencies, 0.5),
      p99Ms: percentile(stormed.latencies, 0.99),
      cpuMicrosPerJoin: pids.length ? windowCpu / Math.max(1, stormed.latencies.length) : undefined,
    },
    fanout,
    reactions: options.reactEvery > 0
      ? {
        sent: recorder.reactsInWindow,
        refused: recorder.reactsRefused,
        deliveries: recorder.reactionsInWindow,
        deliveriesPerSecond: windowSeconds ? recorder.reactionsInWindow / windowSeconds : 0,
      }
      : undefined,
    webhooks,
    disconnects: recorder.disconnects,
    windowSeconds,
    server: pids.length
      ? {
        cpuMicros: windowCpu,
        // Nothing delivered (the connect and storm modes): no figure rather than a huge one.
        cpuMicrosPerDelivery: recorder.receivedInWindow
          ? windowCpu / (recorder.receivedInWindow + recorder.reactionsInWindow)
          : NaN,
        cpuMicrosPerConnect: connectCpu / inStorm.length,
        rssWithClientsKb,
        rssBeforeClientsKb,
        warmClients: warmed,
        kvCommitsPerSecond: options.metrics ? kvCommits : undefined,
        processes: pids.length,
        redisCpuMicros: options.redisPid ? windowRedisCpu : undefined,
        postgresCpuMicros: options.postgresPid ? windowPostgresCpu : undefined,
      }
      : undefined,
    loadgenCpuPercent: windowSeconds ? loadgenCpu / (windowSeconds * 10_000) : 0,
    loadgenRssKb,
    otherCpuPercent: windowSeconds && pids.length ? otherCpu / (windowSeconds * 10_000) : NaN,
  };
}

const MODES: readonly LoadOptions["mode"][] = [
  "traffic",
  "rooms",
  "rooms-storm",
  "connect",
  "fanout",
];

function readMode(mode: string): LoadOptions["mode"] {
  const known = MODES.find((candidate) => candidate === mode);
  if (!known) throw new Error(`--mode must be one of ${MODES.join(", ")}, got "${mode}"`);
  return known;
}

/** Parses `--name value` flags over {@link LOADGEN_DEFAULTS}. */
export function parseLoadArgs(args: string[]): LoadOptions {
  const values: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const name = args[i].replace(/^--/, "");
    if (name === "metrics") values.metrics = "true";
    else values[name] = args[++i];
  }
  if (!values.url || !values.secret) throw new Error("--url and --secret are required");
  const number = (name: string, fallback: number) =>
    values[name] === undefined ? fallback : Number(values[name]);
  const d = LOADGEN_DEFAULTS;
  return {
    url: values.url,
    secret: values.secret,
    mode: readMode(values.mode ?? d.mode),
    clients: number("clients", d.clients),
    rooms: number("rooms", d.rooms),
    senders: number("senders", d.senders),
    rate: number("rate", d.rate),
    warmupSeconds: number("warmup", d.warmupSeconds),
    durationSeconds: number("duration", d.durationSeconds),
    payloadSize: number("size", d.payloadSize),
    concurrency: number("concurrency", d.concurrency),
    pid: values.pid ?? d.pid,
    redisPid: number("redis-pid", d.redisPid),
    postgresPid: number("postgres-pid", d.postgresPid),
    seed: number("seed", d.seed),
    messages: number("messages", d.messages),
    intervalSeconds: number("interval", d.intervalSeconds),
    metrics: values.metrics === "true",
    drainSeconds: number("drain", d.drainSeconds),
    reactEvery: number("react-every", d.reactEvery),
    webhookReceiver: values["webhook-receiver"] ?? d.webhookReceiver,
  };
}

if (import.meta.main) {
  const result = await runLoad(parseLoadArgs(Deno.args));
  console.log(JSON.stringify(result));
  Deno.exit(0);
}
