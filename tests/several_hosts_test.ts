/**
 * Two main.ts instances as two hosts: one PostgreSQL (`DATABASE_URL`), one Redis (`REDIS_URL`),
 * and no disk in common (each runs in a directory of its own). Stock socket.io-client senders on
 * both send numbered messages with clientIds and resend from the first unacked one after any
 * failure. One instance is killed (SIGKILL) under load and its clients go on on the other; then
 * PostgreSQL is stopped under load and started again. Every acked message is in the history
 * exactly once, read in one order from both instances, and a client that catches up on the other
 * instance with its `lastId` misses nothing.
 */
import assert from "node:assert/strict";
import { io as connect, type Socket } from "socket.io-client";
import { sleep, tokenFor, within } from "./helpers/chat_server.ts";
import { tempDir } from "./helpers/dispose.ts";
import { type RunningMain, startMain } from "./helpers/main_process.ts";
import { hasPostgres, type PostgresServer, startPostgres } from "./helpers/postgres_server.ts";
import { hasRedis, type RedisServer, startRedis } from "./helpers/redis_server.ts";
import type { MessageAck } from "../src/chat/mod.ts";
import type { ChatMessage } from "../src/types.ts";

const available = hasPostgres() && hasRedis();
let postgresServer: PostgresServer | undefined;
let redis: RedisServer | undefined;
if (available) {
  Deno.test.beforeAll(async () => {
    [postgresServer, redis] = await Promise.all([startPostgres(), startRedis()]);
  });
  Deno.test.afterAll(async () => {
    await postgresServer?.[Symbol.asyncDispose]();
    await redis?.[Symbol.asyncDispose]();
  });
}

function hostsTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: available
      ? `several hosts: ${name}`
      : `several hosts: ${name} — skipped because PostgreSQL 15 or redis-server is not installed`,
    ignore: !available,
    fn,
  });
}

const API_KEY = "several-hosts-test-api-key";
const ENV = {
  RATE_LIMIT_PER_MIN: "1000000",
  RATE_LIMIT_BURST: "10000",
  RATE_LIMIT_HISTORY_PER_MIN: "1000000",
  HANDSHAKE_LIMIT_PER_MIN: "0",
  // Sessions are not recovered: a client on the other instance catches up by lastId.
  CONNECTION_RECOVERY: "0",
  API_KEY,
  KV_PATH: "",
};
/** Messages each sender sends, numbered 0…MESSAGES-1. */
const MESSAGES = 150;
/** Messages a sender has in flight at once. */
const WINDOW = 8;
const ACK_TIMEOUT_MS = 1_500;

/** Both instances, each with a working directory of its own; a dead one's clients use the other. */
class Hosts implements AsyncDisposable {
  readonly running = new Map<string, RunningMain>();
  readonly #dirs: AsyncDisposable[] = [];
  constructor(readonly databaseUrl: string) {}

  async start(name: string): Promise<RunningMain> {
    const dir = await tempDir({ prefix: `host_${name}_` });
    this.#dirs.push(dir);
    const env = {
      ...ENV,
      DATABASE_URL: this.databaseUrl,
      REDIS_URL: redis!.url,
      INSTANCE_ID: name,
    };
    const running = await startMain(env, { cwd: dir.path });
    this.running.set(name, running);
    return running;
  }

  /** The URL of `preferred`, or of the other instance while it is down. */
  urlFor(preferred: string): string {
    const running = this.running.get(preferred) ?? [...this.running.values()][0];
    return running.url;
  }

  async kill(name: string): Promise<void> {
    const running = this.running.get(name)!;
    this.running.delete(name);
    running.child.kill("SIGKILL");
    await running.child.status;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const running of this.running.values()) await running.stop();
    for (const dir of this.#dirs) await dir[Symbol.asyncDispose]();
  }
}

/**
 * A stock socket.io-client sender: numbered messages with clientIds, a window of them in flight,
 * and on any failure a new connection that resends from the first unacked one.
 */
class Sender {
  /** Message number → every ack received for it (a retry of an acked message gets one more). */
  readonly acks = new Map<number, MessageAck[]>();
  /** Failed acks' error codes and messages. */
  readonly failures: string[] = [];
  resent = 0;
  socket?: Socket;
  #stopped = false;

  constructor(readonly name: string, readonly home: string, readonly hosts: Hosts) {}

  get acked(): number {
    return this.acks.size;
  }

  async run(): Promise<void> {
    let next = 0;
    while (next < MESSAGES && !this.#stopped) {
      const socket = this.socket ?? await this.#connect();
      if (socket === undefined) return;
      const numbers = Array.from({ length: Math.min(WINDOW, MESSAGES - next) }, (_, i) => next + i);
      const results = await Promise.all(
        numbers.map((n) =>
          socket.timeout(ACK_TIMEOUT_MS).emitWithAck("message", {
            message: `${this.name} #${n}`,
            clientId: `${this.name}-${n}`,
          }).catch(() => undefined) as Promise<MessageAck | undefined>
        ),
      );
      results.forEach((ack, i) => {
        if (ack?.ok) this.acks.set(numbers[i], [...this.acks.get(numbers[i]) ?? [], ack]);
        else if (ack) this.failures.push(`${ack.error.code}: ${ack.error.message}`);
      });
      const firstFailed = results.findIndex((ack) => !ack?.ok);
      if (firstFailed === -1) {
        next += numbers.length;
        continue;
      }
      next = numbers[firstFailed];
      this.resent += numbers.length - firstFailed;
      socket.close();
      this.socket = undefined;
    }
    this.socket?.close();
  }

  stop(): void {
    this.#stopped = true;
    this.socket?.close();
  }

  /** A connection to its instance (the other while it is down); none once stopped. */
  async #connect(): Promise<Socket | undefined> {
    while (true) {
      if (this.#stopped) return undefined;
      const socket = connect(this.hosts.urlFor(this.home), {
        auth: { token: await tokenFor(this.name) },
        transports: ["websocket"],
        reconnection: false,
        forceNew: true,
      });
      const loaded = await within(
        new Promise<boolean>((resolve) => {
          socket.once("loaded", () => resolve(true));
          socket.once("connect_error", () => resolve(false));
          socket.once("disconnect", () => resolve(false));
        }),
        5_000,
        `${this.name} to connect`,
      ).catch(() => false);
      if (loaded) return this.socket = socket;
      socket.close();
      await sleep(20);
    }
  }
}

/**
 * A reader: every message it receives (history, live, catch-up), how often, and the newest id,
 * which it sends as `lastId` when it connects again.
 */
class Reader {
  readonly received = new Map<string, number>();
  lastId?: string;
  socket?: Socket;
  /** Messages the last connection's catch-up brought. */
  caughtUp = 0;

  constructor(readonly name: string) {}

  async connect(url: string): Promise<void> {
    this.socket?.close();
    const catchUp = this.lastId !== undefined;
    let inHistory = true;
    const socket = this.socket = connect(url, {
      auth: { token: await tokenFor(this.name), ...(catchUp ? { lastId: this.lastId } : {}) },
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
    });
    this.caughtUp = 0;
    socket.on("load", (messages: ChatMessage[]) => {
      for (const message of messages) {
        this.received.set(message.id, (this.received.get(message.id) ?? 0) + 1);
        if (this.lastId === undefined || message.id > this.lastId) this.lastId = message.id;
        if (inHistory && catchUp) this.caughtUp++;
      }
    });
    await within(
      new Promise<void>((resolve, reject) => {
        socket.once("loaded", (info: { catchUp: boolean; hasMore: boolean }) => {
          inHistory = false;
          if (catchUp && (!info.catchUp || info.hasMore)) {
            reject(new Error(`${this.name}'s catch-up was cut short: ${JSON.stringify(info)}`));
          }
          resolve();
        });
        socket.once("connect_error", reject);
      }),
      5_000,
      `${this.name} to connect`,
    );
  }

  close(): void {
    this.socket?.close();
  }
}

/** A room's whole history through an instance's server API, oldest first. */
async function historyOf(url: string, room = "general"): Promise<ChatMessage[]> {
  const pages: ChatMessage[][] = [];
  let before: string | undefined;
  while (true) {
    const query = new URLSearchParams({ limit: "100", ...(before ? { before } : {}) });
    const response = await fetch(`${url}/api/v1/rooms/${room}/messages?${query}`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    assert.equal(response.status, 200);
    const page: { messages: ChatMessage[]; hasMore: boolean } = await response.json();
    pages.unshift(page.messages);
    if (!page.hasMore || page.messages.length === 0) return pages.flat();
    before = page.messages[0].id;
  }
}

async function readyz(url: string): Promise<number> {
  const response = await fetch(`${url}/readyz`);
  await response.body?.cancel();
  return response.status;
}

async function until(condition: () => boolean | Promise<boolean>, what: string, ms = 10_000) {
  await within(
    (async () => {
      while (!(await condition())) await sleep(10);
    })(),
    ms,
    what,
  );
}

function totalAcked(senders: Sender[]): number {
  return senders.reduce((sum, sender) => sum + sender.acked, 0);
}

/**
 * Every sender's every number acked, each ack naming the one stored message of that number, ids
 * rising in the sender's order; and nothing else in the history.
 */
function assertExactlyOnce(senders: Sender[], history: ChatMessage[]): void {
  const ids = history.map((message) => message.id);
  assert.deepEqual(ids, [...ids].sort(), "the history is in id order");
  assert.equal(new Set(ids).size, ids.length, "no id twice");
  const byId = new Map(history.map((message) => [message.id, message]));
  for (const sender of senders) {
    const own = history.filter((message) => message.user.id === sender.name);
    assert.deepEqual(
      own.map((message) => message.message).sort(),
      Array.from({ length: MESSAGES }, (_, n) => `${sender.name} #${n}`).sort(),
      `${sender.name}'s messages are stored once each`,
    );
    let previousId = "";
    for (let n = 0; n < MESSAGES; n++) {
      const acks = sender.acks.get(n) ?? [];
      assert.ok(acks.length > 0, `${sender.name} #${n} was acked`);
      const named = new Set(acks.map((ack) => ack.ok ? ack.message.id : ""));
      assert.equal(named.size, 1, `every ack of ${sender.name} #${n} names one message`);
      const [id] = named;
      assert.equal(byId.get(id)?.message, `${sender.name} #${n}`);
      assert.ok(id > previousId, `${sender.name}'s ids follow its order at #${n}`);
      previousId = id;
    }
  }
  assert.equal(history.length, senders.length * MESSAGES, "nothing but the senders' messages");
}

hostsTest(
  "one killed under load: acked messages stored once, one order on both, catch-up misses none",
  async () => {
    await using hosts = new Hosts(await postgresServer!.createDatabase());
    await Promise.all([hosts.start("a"), hosts.start("b")]);
    const readerOnA = new Reader("reader-a");
    const readerOnB = new Reader("reader-b");
    const senders = Array.from(
      { length: 6 },
      (_, n) => new Sender(`sender-${n}`, "ab"[n % 2], hosts),
    );
    try {
      await readerOnA.connect(hosts.urlFor("a"));
      await readerOnB.connect(hosts.urlFor("b"));
      const done = Promise.all(senders.map((sender) => sender.run()));
      await until(() => totalAcked(senders) >= 300, "300 acks");
      await hosts.kill("a");
      const ackedBeforeKill = totalAcked(senders);
      // A's reader goes on on B from the newest message it had, once B stored more after it.
      await until(() => readerOnA.socket!.disconnected, "A's reader to see the kill");
      await until(() => totalAcked(senders) >= ackedBeforeKill + 50, "50 more acks, on B");
      await readerOnA.connect(hosts.urlFor("b"));
      await within(done, 20_000, "every sender to finish");
      // The host comes back, on a fresh disk: PostgreSQL holds everything.
      await hosts.start("a");

      const fromB = await historyOf(hosts.urlFor("b"));
      const fromA = await historyOf(hosts.urlFor("a"));
      assert.deepEqual(fromA, fromB, "both instances read one history, in one order");
      assertExactlyOnce(senders, fromB);
      const resent = senders.reduce((sum, sender) => sum + sender.resent, 0);
      const duplicates = senders.flatMap((sender) => [...sender.acks.values()]).flat()
        .filter((ack) => ack.ok && ack.duplicate).length;
      assert.ok(resent > 0, "the kill landed while messages were in flight");

      // Everything reached A's reader: live on A, then the catch-up and live on B.
      await until(
        () => fromB.every((message) => readerOnA.received.has(message.id)),
        "A's reader to have every message",
        5_000,
      ).catch(() => {});
      const missing = fromB.filter((message) => !readerOnA.received.has(message.id)).length;
      const twice = [...readerOnA.received.values()].filter((count) => count > 1).length;
      console.log(
        `several hosts: ${ackedBeforeKill} acked before SIGKILL, ${resent} resent after it ` +
          `(${duplicates} already stored); A's reader caught up ${readerOnA.caughtUp} on B: ` +
          `${missing} missing, ${twice} twice`,
      );
      assert.equal(missing, 0, "the catch-up on the other instance missed nothing");
      assert.ok(readerOnA.caughtUp >= 50, "A's reader caught up on B");
      // A message A stored just before the kill can reach B's sockets through Redis after the
      // catch-up read it from the database: a client keeps messages by id (docs/scaling.md).
      assert.ok(twice <= ackedBeforeKill, "only messages A stored can arrive twice");
      for (const id of readerOnB.received.keys()) {
        assert.ok(
          fromB.some((message) => message.id === id),
          "B's reader got only stored messages",
        );
      }
    } finally {
      for (const sender of senders) sender.stop();
      readerOnA.close();
      readerOnB.close();
    }
  },
);

hostsTest(
  "PostgreSQL restarted under load: sends fail with internal meanwhile, then succeed; nothing acked lost",
  async () => {
    await using hosts = new Hosts(await postgresServer!.createDatabase());
    const [a, b] = await Promise.all([hosts.start("a"), hosts.start("b")]);
    const listener = new Reader("listener");
    const probe = new Reader("probe");
    const senders = Array.from(
      { length: 4 },
      (_, n) => new Sender(`sender-${n}`, "ab"[n % 2], hosts),
    );
    try {
      await listener.connect(b.url);
      await probe.connect(a.url);
      const done = Promise.all(senders.map((sender) => sender.run()));
      await until(() => totalAcked(senders) >= 150, "150 acks");
      await postgresServer!.stop();
      try {
        const ack: MessageAck = await within(
          probe.socket!.emitWithAck("message", { message: "while down", clientId: "probe-1" }),
          15_000,
          "the probe's ack",
        );
        assert.deepEqual(ack, {
          ok: false,
          error: { code: "internal", message: "the message could not be stored" },
        });
        assert.equal(await readyz(a.url), 503);
        assert.equal(await readyz(b.url), 503);
        await until(
          () => senders.every((sender) => sender.failures.length > 0),
          "every sender to see a failure",
        );
      } finally {
        await postgresServer!.start();
      }
      // Back by itself: the pools reconnect on the next query.
      await until(
        async () => (await readyz(a.url)) === 200 && (await readyz(b.url)) === 200,
        "ready",
      );
      await within(done, 30_000, "every sender to finish");

      const history = await historyOf(a.url);
      assert.deepEqual(await historyOf(b.url), history);
      assertExactlyOnce(senders, history);
      const failures = senders.flatMap((sender) => sender.failures);
      assert.ok(
        failures.every((failure) => failure === "internal: the message could not be stored"),
        `only "could not be stored" failures: ${[...new Set(failures)]}`,
      );
      // Nothing unstored was broadcast: every live message the listener got is in the history.
      const stored = new Set(history.map((message) => message.id));
      assert.ok([...listener.received.keys()].every((id) => stored.has(id)));
      assert.ok(!history.some((message) => message.message === "while down"));
      console.log(
        `several hosts: PostgreSQL down under load: ${failures.length} sends refused with ` +
          `internal, all ${history.length} acked messages stored once after the restart`,
      );
    } finally {
      for (const sender of senders) sender.stop();
      listener.close();
      probe.close();
    }
  },
);
