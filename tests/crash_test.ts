/**
 * `main.ts` killed under load: after a SIGKILL and a restart on the same KV file, every
 * acknowledged message is stored exactly once, retries with the same clientId store nothing
 * twice, and each sender's messages keep its order; after a SIGTERM, clients see only a clean
 * disconnect and every acknowledged message is stored.
 */
import assert from "node:assert/strict";
import { io as connect, type Socket } from "socket.io-client";
import { tokenFor, within } from "./helpers/chat_server.ts";
import { type RunningMain, startMain } from "./helpers/main_process.ts";
import { sleep } from "./helpers/engine_server.ts";
import type { MessageAck } from "../src/chat/mod.ts";
import type { ChatMessage } from "../src/types.ts";

const ENV = {
  RATE_LIMIT_PER_MIN: "1000000",
  RATE_LIMIT_BURST: "10000",
  HANDSHAKE_LIMIT_PER_MIN: "0",
  // A restarted server cannot recover sessions of the old one; catch-up is by clientId and lastId.
  CONNECTION_RECOVERY: "0",
};
/** Messages each sender sends, numbered 0…MESSAGES-1. */
const MESSAGES = 150;
/** Messages a sender has in flight at once. */
const WINDOW = 8;
const ACK_TIMEOUT_MS = 1_500;

/** Every stored message, read straight from the KV file once no server uses it. */
async function storedMessages(kvPath: string): Promise<ChatMessage[]> {
  using kv = await Deno.openKv(kvPath);
  const messages: ChatMessage[] = [];
  for await (const entry of kv.list<ChatMessage>({ prefix: ["messages", "general"] })) {
    messages.push(entry.value);
  }
  return messages;
}

/** The URL of the server that is up now; `next()` waits for a restart. */
class CurrentServer {
  #url: Promise<string>;
  #resolve?: (url: string) => void;
  constructor(url: string) {
    this.#url = Promise.resolve(url);
  }
  get url(): Promise<string> {
    return this.#url;
  }
  down(): void {
    this.#url = new Promise((resolve) => this.#resolve = resolve);
  }
  up(url: string): void {
    this.#resolve?.(url);
    this.#url = Promise.resolve(url);
  }
}

/**
 * A stock socket.io-client sender: numbered messages with clientIds, a window of them in flight,
 * and on any failure a new connection to the current server that resends from the first unacked.
 */
class Sender {
  /** Message number → every ack received for it (retries of acked messages get one more). */
  readonly acks = new Map<number, MessageAck[]>();
  readonly errors: unknown[] = [];
  /** Messages sent again after a failure (the kill). */
  resent = 0;
  socket?: Socket;
  #stopped = false;

  constructor(
    readonly name: string,
    readonly transports: string[],
    readonly server: CurrentServer,
  ) {}

  get acked(): number {
    return this.acks.size;
  }

  async run(): Promise<void> {
    let next = 0;
    while (next < MESSAGES && !this.#stopped) {
      const socket = this.socket ?? await this.#connect();
      const numbers = Array.from({ length: Math.min(WINDOW, MESSAGES - next) }, (_, i) => next + i);
      const results = await Promise.all(
        numbers.map((n) =>
          socket.timeout(ACK_TIMEOUT_MS).emitWithAck("message", {
            message: `${this.name} #${n}`,
            clientId: `${this.name}-${n}`,
          }).catch(() => undefined) as Promise<MessageAck | undefined>
        ),
      );
      const firstFailed = results.findIndex((ack) => !ack?.ok);
      results.forEach((ack, i) => {
        if (ack?.ok) this.acks.set(numbers[i], [...this.acks.get(numbers[i]) ?? [], ack]);
      });
      if (firstFailed === -1) {
        next += numbers.length;
        continue;
      }
      // Resend from the first message without an ack, on a fresh connection.
      next = numbers[firstFailed];
      this.resent += numbers.length - firstFailed;
      socket.close();
      this.socket = undefined;
    }
  }

  /** Stops sending and closes the connection. */
  stop(): void {
    this.#stopped = true;
    this.socket?.close();
  }

  async #connect(): Promise<Socket> {
    while (true) {
      if (this.#stopped) throw new Error(`${this.name} was stopped`);
      const url = await this.server.url;
      const socket = connect(url, {
        auth: { token: await tokenFor(this.name) },
        transports: this.transports,
        reconnection: false,
        forceNew: true,
      });
      socket.on("error", (error) => this.errors.push(error));
      const loaded = await within(
        new Promise<boolean>((resolve) => {
          socket.once("load", () => resolve(true));
          socket.once("connect_error", () => resolve(false));
          socket.once("disconnect", () => resolve(false));
        }),
        5_000,
        `${this.name} to connect`,
      ).catch(() => false);
      if (loaded) return this.socket = socket;
      socket.close();
      await sleep(50);
    }
  }
}

function startSenders(server: CurrentServer): Sender[] {
  return Array.from({ length: 6 }, (_, n) =>
    new Sender(
      `sender-${n}`,
      n % 2 === 0 ? ["websocket"] : ["polling", "websocket"],
      server,
    ));
}

async function untilAcked(senders: Sender[], count: number): Promise<void> {
  await within(
    (async () => {
      while (senders.reduce((sum, sender) => sum + sender.acked, 0) < count) await sleep(10);
    })(),
    10_000,
    `${count} acks`,
  );
}

Deno.test("crash: after SIGKILL and a restart, acked and retried messages are stored once, in order", async () => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/chat.kv`;
  let running: RunningMain | undefined;
  const senders: Sender[] = [];
  try {
    running = await startMain({ ...ENV, KV_PATH: kvPath });
    const server = new CurrentServer(running.url);
    senders.push(...startSenders(server));
    const done = Promise.all(senders.map((sender) => sender.run()));
    await untilAcked(senders, 200);
    server.down();
    running.child.kill("SIGKILL");
    await running.child.status;
    // Restarted at once: the kernel dropped the killed server's lock on the KV file with it.
    const ackedBeforeCrash = senders.reduce((sum, sender) => sum + sender.acked, 0);
    running = await startMain({ ...ENV, KV_PATH: kvPath });
    server.up(running.url);
    await within(done, 15_000, "every sender to finish");
    running.child.kill("SIGTERM");
    assert.equal((await running.child.status).code, 0);
    running = undefined;

    const resent = senders.reduce((sum, sender) => sum + sender.resent, 0);
    const duplicates = senders.flatMap((sender) => [...sender.acks.values()]).flat()
      .filter((ack) => ack.ok && ack.duplicate).length;
    console.log(
      `crash: ${ackedBeforeCrash} acked before SIGKILL, ${resent} resent after it, ` +
        `${duplicates} of them already stored (duplicate acks)`,
    );
    assert.ok(resent > 0, "the kill landed while messages were in flight");
    const stored = await storedMessages(kvPath);
    const storedById = new Map(stored.map((message) => [message.id, message]));
    for (const sender of senders) {
      assert.deepEqual(sender.errors, [], `${sender.name} got no error event`);
      const own = stored.filter((message) => message.user.id === sender.name);
      // Exactly one stored message per number: nothing lost, nothing doubled by a retry.
      assert.deepEqual(
        own.map((message) => message.message).sort(),
        Array.from({ length: MESSAGES }, (_, n) => `${sender.name} #${n}`).sort(),
      );
      let previousId = "";
      for (let n = 0; n < MESSAGES; n++) {
        const acks = sender.acks.get(n) ?? [];
        assert.ok(acks.length > 0, `${sender.name} #${n} was acked`);
        const ids = new Set(acks.map((ack) => ack.ok ? ack.message.id : ""));
        assert.equal(ids.size, 1, `every ack of ${sender.name} #${n} names one stored message`);
        const [id] = ids;
        assert.equal(storedById.get(id)?.message, `${sender.name} #${n}`);
        assert.ok(id > previousId, `${sender.name}'s ids follow its sequence at #${n}`);
        previousId = id;
      }
    }
  } finally {
    for (const sender of senders) sender.stop();
    await running?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("crash: SIGTERM mid-load disconnects cleanly, and every acked message is stored", async () => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/chat.kv`;
  const running = await startMain({ ...ENV, KV_PATH: kvPath });
  const senders = startSenders(new CurrentServer(running.url));
  const reasons: string[] = [];
  try {
    const runs = senders.map((sender) => sender.run().catch(() => {}));
    await untilAcked(senders, 200);
    const sockets = senders.map((sender) => sender.socket!);
    for (const socket of sockets) socket.once("disconnect", (reason) => reasons.push(reason));
    running.child.kill("SIGTERM");
    assert.equal((await within(running.child.status, 10_000, "exit")).code, 0);
    await within(
      (async () => {
        while (sockets.some((socket) => socket.connected)) await sleep(10);
      })(),
      5_000,
      "every client to see the disconnect",
    );
    // The senders would otherwise wait for a server that does not come back.
    for (const sender of senders) sender.stop();
    for (const reason of reasons) {
      assert.ok(
        ["transport close", "io server disconnect"].includes(reason),
        `unexpected disconnect: ${reason}`,
      );
    }
    assert.equal(reasons.length, senders.length);
    for (const sender of senders) assert.deepEqual(sender.errors, [], `${sender.name} errors`);
    const stored = new Set((await storedMessages(kvPath)).map((message) => message.id));
    let acked = 0;
    for (const sender of senders) {
      for (const [n, acks] of sender.acks) {
        for (const ack of acks) {
          assert.ok(ack.ok && stored.has(ack.message.id), `${sender.name} #${n} is stored`);
          acked++;
        }
      }
    }
    assert.ok(acked >= 200);
    for (const sender of senders) sender.stop();
    await Promise.all(runs);
  } finally {
    for (const sender of senders) sender.stop();
    await running.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
