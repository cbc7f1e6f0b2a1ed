import assert from "node:assert/strict";
import { ChatClient, SECRET, sleep, tokenFor, within } from "./helpers/chat_server.ts";
import { signToken } from "../src/auth/token.ts";
import { type RunningMain, startMain } from "./helpers/main_process.ts";
import { hasRedis, type RedisServer, startRedis } from "./helpers/redis_server.ts";
import { until } from "./helpers/time.ts";
import type { ChatMessage, User } from "../src/types.ts";

const websocket = { transports: ["websocket" as const] };

/** A token for `sub` whose `rooms` claim opens `rooms`. */
function signed(sub: string, rooms: string[]): Promise<string> {
  return signToken(SECRET, { sub, rooms });
}

/**
 * Two instances of main.ts (`a`, `b`) on one Redis and one KV file, with `extraEnv`; `join` connects
 * a stock client over WebSocket; `await using` closes the clients, the instances and Redis.
 */
async function startCluster(extraEnv: Record<string, string>) {
  const dir = await Deno.makeTempDir();
  const redis: RedisServer = await startRedis();
  const env = { REDIS_URL: redis.url, KV_PATH: `${dir}/chat.kv`, LOG_LEVEL: "error", ...extraEnv };
  const a = await startMain({ ...env, INSTANCE_ID: "a" });
  const b = await startMain({ ...env, INSTANCE_ID: "b" });
  const clients: ChatClient[] = [];
  return {
    env,
    redis,
    a,
    b,
    clients,
    async join(instance: RunningMain, user: string, extra = {}): Promise<ChatClient> {
      const client = await ChatClient.join(instance.url, user, { ...websocket, ...extra });
      clients.push(client);
      return client;
    },
    async [Symbol.asyncDispose]() {
      clients.forEach((client) => client.close());
      await a.stop();
      await b.stop();
      await redis.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function readyz(instance: RunningMain): Promise<{ status: number; checks: unknown }> {
  const response = await fetch(`${instance.url}/readyz`);
  return { status: response.status, checks: (await response.json()).checks };
}

Deno.test({
  name: hasRedis()
    ? "cluster: two instances on one Redis and one KV file behave as one chat"
    : "cluster: skipped because /usr/bin/redis-server is not installed",
  ignore: !hasRedis(),
  async fn() {
    await using cluster = await startCluster({ RATE_LIMIT_BURST: "200", CONNECTION_RECOVERY: "0" });
    const { a, b, redis, env, clients, join } = cluster;
    const alice = await join(a, "alice");
    const bob = await join(b, "bob");
    const carol = await join(a, "carol");
    const joinedSeenByBob: string[] = [];
    bob.socket.on(
      "user:joined",
      (users: User[]) => joinedSeenByBob.push(...users.map((u) => u.id)),
    );

    // Fan-out: messages sent on A reach A and B once each, in the same order. Bob answers once he
    // has A's last message: what reaches B through Redis a few milliseconds later may otherwise
    // arrive after B's own newer ones (docs/scaling.md, "Order").
    for (let n = 0; n < 10; n++) assert.ok((await alice.send({ message: `a${n}` })).ok);
    await bob.waitFor(() => bob.live.some((m) => m.message === "a9"), "A's messages on B");
    for (let n = 0; n < 10; n++) assert.ok((await bob.send({ message: `b${n}` })).ok);
    for (const client of [alice, bob, carol]) {
      await client.waitFor(() => client.live.length >= 20, "20 live messages");
    }
    await sleep(100);
    const expected = [...Array(10)].map((_, n) => `a${n}`).concat(
      [...Array(10)].map((_, n) => `b${n}`),
    );
    for (const client of [alice, bob, carol]) {
      assert.deepEqual(
        client.live.map((m) => m.message),
        expected,
        "each message once, in order",
      );
    }
    const ids = alice.live.map((m) => m.id);
    assert.equal(new Set(ids).size, 20, "ids are unique across instances");

    // The same history from either instance.
    const lateA = await join(a, "dave");
    const lateB = await join(b, "erin");
    assert.deepEqual(lateA.history, lateB.history);
    assert.deepEqual(lateA.history.map((m) => m.message), expected);

    // Presence spans both instances.
    const presence: User[] = await within(
      // The token first: a client connects as soon as it is made.
      tokenFor("frank").then((token) =>
        new Promise((resolve) => {
          const client = new ChatClient(b.url, { ...websocket, auth: { token } });
          clients.push(client);
          client.socket.on("presence", resolve);
        })
      ),
      8000,
      "presence",
    );
    assert.deepEqual(
      presence.map((user) => user.id).sort(),
      ["alice", "bob", "carol", "dave", "erin", "frank"],
    );
    await until(() => joinedSeenByBob.includes("dave"), 8000, "dave's join");
    assert.ok(joinedSeenByBob.includes("dave"), "bob on B saw dave join on A");

    // Instance B dies: A keeps serving, and B's client catches up on A with lastId.
    const bobLastSeen = bob.live.at(-1)!.id;
    await b.stop();
    for (let n = 0; n < 5; n++) assert.ok((await alice.send({ message: `after-b-${n}` })).ok);
    await carol.waitFor(() => carol.live.length >= 25, "A still delivers");
    const rejoined = new ChatClient(a.url, {
      ...websocket,
      auth: { token: await tokenFor("bob"), lastId: bobLastSeen },
    });
    clients.push(rejoined);
    await rejoined.waitFor(() => rejoined.loads.length > 0, "bob's catch-up on A");
    assert.deepEqual(
      rejoined.history.map((m: ChatMessage) => m.message),
      [...Array(5)].map((_, n) => `after-b-${n}`),
      "exactly the gap",
    );

    // Redis restarts mid-test: A reports it, then fan-out resumes.
    await redis.stop();
    await within(
      (async () => {
        while ((await readyz(a)).status !== 503) await sleep(50);
      })(),
      10_000,
      "A to report Redis down",
    );
    assert.ok((await alice.send({ message: "while redis is down" })).ok, "local chat goes on");
    await redis.start();
    await within(
      (async () => {
        while ((await readyz(a)).status !== 200) await sleep(100);
      })(),
      10_000,
      "A to be ready again",
    );
    await using b2 = await startMain({ ...env, INSTANCE_ID: "b2" });
    const george = await join(b2, "george");
    await sleep(300);
    assert.ok((await alice.send({ message: "after redis restart" })).ok);
    await george.waitFor(
      () => george.live.some((m) => m.message === "after redis restart"),
      "fan-out after the Redis restart",
      10_000,
    );
  },
});

Deno.test({
  name: "cluster: REDIS_URL that cannot be reached stops the start with a clear line",
  async fn() {
    const { runMain } = await import("./helpers/main_process.ts");
    const { code, stderr } = await runMain({ REDIS_URL: "redis://127.0.0.1:1" });
    assert.equal(code, 1);
    assert.match(stderr, /chat server: cannot connect to REDIS_URL: /);
  },
});

Deno.test({
  name: hasRedis()
    ? "cluster: a room and a DM span two instances, and stay private to their members"
    : "cluster: rooms skipped because /usr/bin/redis-server is not installed",
  ignore: !hasRedis(),
  async fn() {
    await using cluster = await startCluster({ PUBLIC_ROOMS: "general,team-*" });
    const { a, b, join } = cluster;
    const ask = <T>(client: ChatClient, event: string, payload: unknown) =>
      within<T>(client.socket.emitWithAck(event, payload), 5000, `${event} ack`);
    const alice = await join(a, "alice");
    const bob = await join(b, "bob");
    const carol = await join(b, "carol");
    for (const client of [alice, bob]) {
      assert.ok((await ask<{ ok: boolean }>(client, "join", { room: "team-x" })).ok);
    }
    assert.ok((await ask<{ ok: boolean }>(bob, "join", { room: "dm:alice:bob" })).ok);
    const forbidden = await ask<{ ok: boolean; error?: { code: string } }>(carol, "join", {
      room: "dm:alice:bob",
    });
    assert.equal(forbidden.error?.code, "forbidden");
    await sleep(200);

    const inRoom = await alice.send({ room: "team-x", message: "team x, from A" });
    const inDm = await alice.send({ room: "dm:alice:bob", message: "just bob, from A" });
    assert.ok(inRoom.ok && inDm.ok);
    await bob.waitFor(
      () => [inRoom.message.id, inDm.message.id].every((id) => bob.live.some((m) => m.id === id)),
      "bob on B gets the room and the DM",
    );
    const general = await bob.send({ message: "to everyone, from B" });
    assert.ok(general.ok);
    await carol.waitFor(() => carol.live.some((m) => m.id === general.message.id), "general");
    await sleep(200);
    assert.equal(bob.live.filter((m) => m.id === inRoom.message.id).length, 1, "once");
    assert.ok(
      !carol.live.some((m) => m.room === "team-x" || m.room === "dm:alice:bob"),
      "carol, on the same instance as bob, gets neither",
    );
    // The DM's history is the same from either instance, and still closed to carol.
    const fromB = await ask<{ ok: boolean; messages: ChatMessage[] }>(bob, "history", {
      room: "dm:alice:bob",
    });
    assert.deepEqual(fromB.messages.map((m) => m.id), [inDm.message.id]);
    const snoop = await ask<{ ok: boolean; error?: { code: string } }>(carol, "history", {
      room: "dm:alice:bob",
    });
    assert.equal(snoop.error?.code, "forbidden");
  },
});

Deno.test({
  name: hasRedis()
    ? "cluster: a ban set through one instance cuts the user on the other and holds there"
    : "cluster: bans skipped because /usr/bin/redis-server is not installed",
  ignore: !hasRedis(),
  async fn() {
    const key = "cluster-api-key-0123456789";
    await using cluster = await startCluster({ API_KEY: key });
    const { a, b, join } = cluster;
    const mallory = await join(b, "mallory");
    const closed = new Promise((resolve) => mallory.socket.once("disconnect", resolve));
    const banned = await fetch(`${a.url}/api/v1/users/mallory/ban`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify({ reason: "spam" }),
    });
    assert.equal(banned.status, 200);
    await banned.body?.cancel();
    assert.equal(await within(closed, 5000, "mallory cut on B"), "io server disconnect");
    const again = new ChatClient(b.url, {
      ...websocket,
      auth: { token: await tokenFor("mallory") },
    });
    cluster.clients.push(again);
    assert.equal((await again.connectError()).message, "banned");
  },
});

Deno.test({
  name: hasRedis()
    ? "cluster: a ban races connects on both instances and no socket survives it (20 rounds)"
    : "cluster: ban race skipped because /usr/bin/redis-server is not installed",
  ignore: !hasRedis(),
  async fn() {
    const key = "cluster-api-key-0123456789";
    await using cluster = await startCluster({
      API_KEY: key,
      HANDSHAKE_LIMIT_PER_MIN: "0",
      MAX_SOCKETS_PER_USER: "10",
    });
    const { a, b } = cluster;
    for (let round = 0; round < 20; round++) {
      const user = `mallory-${round}`;
      const token = await tokenFor(user);
      // Connects on both instances, some admitted before the ban, some racing it.
      const settled: Promise<string>[] = [];
      const clients: ChatClient[] = [];
      const connect = (instance: RunningMain) => {
        const client = new ChatClient(instance.url, { ...websocket, auth: { token } });
        clients.push(client);
        cluster.clients.push(client);
        settled.push(
          new Promise((resolve) => {
            client.socket.once("connect_error", (error) => resolve(`refused ${error.message}`));
            client.socket.once("disconnect", (reason) => resolve(`cut ${reason}`));
          }),
        );
      };
      for (let n = 0; n < 3; n++) connect(b);
      connect(a);
      await sleep(round % 4 * 5);
      const ban = fetch(`${a.url}/api/v1/users/${user}/ban`, {
        method: "PUT",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: "{}",
      });
      connect(b);
      connect(a);
      const answered = await ban;
      assert.equal(answered.status, 200);
      await answered.body?.cancel();
      const outcomes = await within(
        Promise.all(settled),
        3000,
        `round ${round}: every socket of ${user} cut or refused`,
      );
      for (const outcome of outcomes) {
        assert.match(outcome, /^(refused banned|cut io server disconnect)$/, `round ${round}`);
      }
      for (const client of clients) client.close();
    }
  },
});

Deno.test({
  name: hasRedis()
    ? "cluster: read receipts and mentions cross instances, to members and the mentioned only"
    : "cluster: receipts skipped because /usr/bin/redis-server is not installed",
  ignore: !hasRedis(),
  async fn() {
    await using cluster = await startCluster({ PUBLIC_ROOMS: "general" });
    const { a, b, join, clients } = cluster;
    const ask = <T>(client: ChatClient, event: string, payload: unknown) =>
      within<T>(client.socket.emitWithAck(event, payload), 5000, `${event} ack`);
    const alice = await join(a, "alice");
    const bob = await join(b, "bob");
    // Carol's token opens "ops"; dave's does not: a mention there reaches carol alone.
    const claimed = (sub: string, rooms: string[]) =>
      new ChatClient(b.url, {
        ...websocket,
        auth: async (cb) => cb({ token: await signed(sub, rooms) }),
      });
    const carol = claimed("carol", ["ops"]);
    const dave = claimed("dave", []);
    clients.push(carol, dave);
    for (const client of [carol, dave]) {
      await client.waitFor(() => client.loaded !== undefined, "history");
    }
    const reads: { room: string; reads: { user: string; lastId: string }[] }[] = [];
    alice.socket.on("room:read", (event: (typeof reads)[number]) => reads.push(event));
    const mentioned = new Map<string, string[]>();
    for (const [name, client] of [["carol", carol], ["dave", dave]] as const) {
      mentioned.set(name, []);
      client.socket.on(
        "mention",
        (event: { room: string }) => mentioned.get(name)!.push(event.room),
      );
    }
    await sleep(200);

    const sent = await alice.send({ message: "seen on B?" });
    assert.ok(sent.ok);
    await bob.waitFor(() => bob.live.some((m) => m.id === sent.message.id), "B has it");
    assert.ok(
      (await ask<{ ok: boolean }>(bob, "read", { room: "general", lastId: sent.message.id })).ok,
    );
    await alice.waitFor(
      () => reads.some((event) => event.reads.some((read) => read.user === "bob")),
      "A hears B's receipt",
    );
    assert.deepEqual(reads.at(-1), {
      room: "general",
      reads: [{ user: "bob", lastId: sent.message.id }],
    });
    const joined = await ask<{ ok: boolean; reads: unknown[] }>(alice, "join", { room: "general" });
    assert.deepEqual(joined.reads, [{ user: "bob", lastId: sent.message.id }]);

    const aliceOps = new ChatClient(a.url, {
      ...websocket,
      auth: async (cb) => cb({ token: await signed("alice", ["ops"]) }),
    });
    clients.push(aliceOps);
    await aliceOps.waitFor(() => aliceOps.loaded !== undefined, "history");
    const ops = await aliceOps.send({
      room: "ops",
      message: "@carol @dave",
      mentions: ["carol", "dave"],
    });
    assert.ok(ops.ok);
    await carol.waitFor(() => mentioned.get("carol")!.length === 1, "carol on B hears");
    const open = await alice.send({ message: "@dave", mentions: ["dave"] });
    assert.ok(open.ok);
    await dave.waitFor(() => mentioned.get("dave")!.length === 1, "dave hears general's");
    assert.deepEqual(mentioned.get("dave"), ["general"], "never ops'");
    assert.deepEqual(mentioned.get("carol"), ["ops"]);
  },
});

/** Notes a client's presence as it comes: `list:N`, `+id`, `-id`, `count:N:listed`. */
function recordPresence(client: ChatClient, seen: string[]): void {
  client.socket.on("presence", (users: User[]) => seen.push(`list:${users.length}`));
  client.socket.on("user:joined", (users: User[]) => users.forEach((u) => seen.push(`+${u.id}`)));
  client.socket.on("user:left", (users: User[]) => users.forEach((u) => seen.push(`-${u.id}`)));
  client.socket.on(
    "presence:count",
    ({ online, listed }: { online: number; listed: boolean }) =>
      seen.push(`count:${online}:${listed}`),
  );
}

Deno.test({
  name: hasRedis()
    ? "cluster: above MAX_LISTED_USERS online across instances, both count users, and name them again together"
    : "cluster: presence counts skipped because /usr/bin/redis-server is not installed",
  ignore: !hasRedis(),
  async fn() {
    await using cluster = await startCluster({ MAX_LISTED_USERS: "2" });
    const { a, b, join } = cluster;
    const alice = await join(a, "alice");
    const seenByAlice: string[] = [];
    recordPresence(alice, seenByAlice);
    const bob = await join(b, "bob");
    await until(() => seenByAlice.includes("+bob"), 8000, "bob's join, named");
    const seenByBob: string[] = [];
    recordPresence(bob, seenByBob);
    // Carol on A makes three: A's count adds B's, and reaches bob on B.
    const carol = await join(a, "carol");
    await until(() => seenByBob.includes("count:3:false"), 8000, "the count on B");
    assert.ok(!seenByBob.includes("+carol"), "carol is counted, not named");
    carol.close();
    await until(() => seenByBob.includes("count:2:false"), 8000, "still counted at the limit");
    await until(() => seenByAlice.includes("count:2:false"), 8000, "and on A");
    // Bob leaves on B, whose own batches never went over: B switches back all the same.
    seenByAlice.length = 0;
    bob.close();
    // Counted still for the feed's hold (5 s from the switch), then B switches and says so; A,
    // which was counting, says it again behind anything it had sent while counting (which could
    // otherwise reach clients after B's and leave them counting).
    const lists = () => seenByAlice.filter((event) => event.startsWith("list:")).length;
    await until(() => lists() >= 2, 12_000, "the list again, from B and from A");
    const relisted = seenByAlice.indexOf("count:1:true");
    assert.ok(seenByAlice.slice(0, relisted).every((event) => event === "count:1:false"));
    // B's pair crosses Redis and A's goes out at once, so they may interleave; each is in order.
    assert.deepEqual(seenByAlice.slice(relisted).sort(), [
      "count:1:true",
      "count:1:true",
      "list:1",
      "list:1",
    ]);
    assert.equal(seenByAlice.at(-1), "list:1", "a list after the last count");
  },
});

Deno.test({
  name: hasRedis()
    ? "cluster: an instance that starts while the others count users counts them too"
    : "cluster: a late instance's presence skipped because /usr/bin/redis-server is not installed",
  ignore: !hasRedis(),
  async fn() {
    // 20 listed at most, named again at 18: 19 and 20 online keep whatever the feed does.
    await using cluster = await startCluster({ MAX_LISTED_USERS: "20" });
    const { a, env, join } = cluster;
    const seen: string[] = [];
    const first = await join(a, "user-0");
    recordPresence(first, seen);
    const crowd = await Promise.all(
      Array.from({ length: 20 }, (_, index) => join(a, `user-${index + 1}`)),
    );
    await until(() => seen.includes("count:21:false"), 8000, "21 online, counted");
    crowd.slice(0, 2).forEach((client) => client.close());
    await until(() => seen.includes("count:19:false"), 8000, "19 online, still counted");
    const c = await startMain({ ...env, INSTANCE_ID: "c" });
    try {
      const late = new ChatClient(c.url, { ...websocket, auth: { token: await tokenFor("late") } });
      cluster.clients.push(late);
      const lateSeen: string[] = [];
      recordPresence(late, lateSeen);
      await until(() => seen.includes("count:20:false") || seen.includes("+late"), 8000, "late");
      assert.ok(!seen.includes("+late"), "counted: the newcomer is not named");
      await until(() => lateSeen.includes("count:20:false"), 8000, "the newcomer's count");
    } finally {
      cluster.clients.forEach((client) => client.close());
      await c.stop();
    }
  },
});
