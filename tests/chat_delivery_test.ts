import assert from "node:assert/strict";
import { ChatClient, sleep, startChat, tokenFor, within } from "./helpers/chat_server.ts";
import { tempDir } from "./helpers/dispose.ts";
import type { ChatMessage } from "../src/types.ts";
import { type HistoryAck, LOAD_MAX_CHARS } from "../src/chat/mod.ts";

Deno.test("delivery: 20 concurrent retries of one clientId store one message, acked 20 times", async () => {
  await using server = await startChat({ rateLimitBurst: 100 });
  using alice = await ChatClient.join(server.url, "alice");
  using bob = await ChatClient.join(server.url, "bob");
  const acks = await Promise.all(
    [...Array(20)].map(() => alice.send({ message: "exactly once", clientId: "retry-1" })),
  );
  assert.ok(acks.every((ack) => ack.ok));
  const ids = new Set(acks.map((ack) => ack.ok && ack.message.id));
  assert.equal(ids.size, 1, "every ack names the same stored message");
  assert.equal(acks.filter((ack) => ack.ok && !ack.duplicate).length, 1);
  await bob.waitFor(() => bob.live.length >= 1, "the broadcast");
  await sleep(100);
  assert.equal(bob.live.length, 1, "broadcast once");
  assert.equal((await server.store.latest(100)).length, 1);
});

Deno.test("delivery: a clientId is remembered across a server restart", async () => {
  await using temp = await tempDir();
  const dir = temp.path;
  let original;
  {
    await using first = await startChat({ kvPath: `${dir}/chat.kv` });
    using alice = await ChatClient.join(first.url, "alice");
    original = await alice.send({ message: "before restart", clientId: "abc" });
  }
  await using second = await startChat({ kvPath: `${dir}/chat.kv` });
  using again = await ChatClient.join(second.url, "alice");
  const retry = await again.send({ message: "before restart", clientId: "abc" });
  assert.ok(original.ok && retry.ok);
  assert.deepEqual(retry.message, original.message);
  assert.equal(retry.duplicate, true);
  assert.equal((await second.store.latest(10)).length, 1);
});

Deno.test("delivery: bad clientIds are refused", async () => {
  await using server = await startChat();
  using alice = await ChatClient.join(server.url, "alice");
  for (const clientId of [42, "", "x".repeat(65), { id: 1 }, null]) {
    const ack = await alice.send({ message: "hi", clientId });
    assert.equal(ack.ok, false, JSON.stringify(clientId));
    assert.equal(!ack.ok && ack.error.code, "invalid_payload");
  }
  assert.deepEqual(await server.store.latest(10), []);
});

/**
 * A receiver whose transport is killed mid-stream reconnects (with `lastId` in its auth) while a
 * sender keeps sending; it must end with every message exactly once, in order.
 */
async function dropAndCatchUp(connectionRecoveryMs: number): Promise<boolean> {
  await using server = await startChat({ connectionRecoveryMs, rateLimitBurst: 1000 });
  using sender = await ChatClient.join(server.url, "sender");
  const token = await tokenFor("receiver");
  const seen: ChatMessage[] = [];
  using receiver = new ChatClient(server.url, {
    transports: ["websocket"],
    reconnection: true,
    reconnectionDelay: 50,
    reconnectionDelayMax: 100,
    auth: (send: (auth: Record<string, unknown>) => void) =>
      send({ token, lastId: seen.at(-1)?.id }),
  });
  receiver.socket.on("load", (messages: ChatMessage[]) => seen.push(...messages));
  let recovered = false;
  receiver.socket.on("connect", () => recovered ||= receiver.socket.recovered === true);
  await receiver.waitFor(() => receiver.loads.length > 0, "first load");
  const sending = (async () => {
    for (let n = 0; n < 60; n++) {
      await sender.send({ message: `${n}` });
      if (n === 20) receiver.socket.io.engine.close();
      await sleep(2);
    }
  })();
  await sending;
  await within(
    (async () => {
      while (seen.length < 60) await sleep(20);
    })(),
    5000,
    `all 60 messages (seen ${seen.length}: ${
      seen.map((m) => m.message).join(",")
    }; recovered ${recovered})`,
  );
  await sleep(100);
  assert.deepEqual(seen.map((message) => message.message), [...Array(60)].map((_, n) => `${n}`));
  return recovered;
}

Deno.test("delivery: a dropped transport reconnects with lastId and gets exactly the gap", async () => {
  assert.equal(await dropAndCatchUp(0), false, "recovery off: the lastId catch-up did the work");
});

Deno.test("delivery: with connection state recovery a short drop replays what was missed", async () => {
  assert.equal(await dropAndCatchUp(60_000), true, "the session was recovered");
});

Deno.test("delivery: the catch-up is capped at CATCHUP_LIMIT with hasMore", async () => {
  await using server = await startChat({ catchupLimit: 5, rateLimitBurst: 100 });
  using alice = await ChatClient.join(server.url, "alice");
  const sent: ChatMessage[] = [];
  for (let n = 0; n < 20; n++) {
    const ack = await alice.send({ message: `${n}` });
    if (ack.ok) sent.push(ack.message);
  }
  const loadInfo = async (lastId: string) => {
    // The token first: a client connects as soon as it is made.
    const token = await tokenFor("bob");
    using client = new ChatClient(server.url, { auth: { token, lastId } });
    await client.waitFor(() => client.loaded !== undefined, "catch-up load");
    return [client.history, client.loaded];
  };
  assert.deepEqual(await loadInfo(sent[2].id), [sent.slice(15), {
    room: "general",
    hasMore: true,
    catchUp: true,
    reads: [],
  }]);
  assert.deepEqual(await loadInfo(sent[16].id), [
    sent.slice(17),
    { room: "general", hasMore: false, catchUp: true, reads: [] },
  ]);
});

Deno.test("delivery: a malformed lastId gets invalid_payload and the latest history", async () => {
  await using server = await startChat();
  using alice = await ChatClient.join(server.url, "alice");
  await alice.send({ message: "latest" });
  for (const lastId of ["nope", 42, { id: "x" }]) {
    using client = new ChatClient(server.url, { auth: { token: await tokenFor("bob"), lastId } });
    await client.waitFor(() => client.loads.length > 0 && client.errors.length > 0, "load");
    assert.equal(client.errors[0].code, "invalid_payload");
    assert.deepEqual(client.history.map((m) => m.message), ["latest"]);
  }
});

Deno.test("delivery: history paging walks the whole history with no gap or overlap", async () => {
  await using server = await startChat({ rateLimitBurst: 1000, historyLimit: 10 });
  using alice = await ChatClient.join(server.url, "alice");
  await Promise.all([...Array(120)].map((_, n) => alice.send({ message: `${n}` })));
  const all = await server.store.latest(1000);
  assert.equal(all.length, 120);
  const history = (payload: unknown) =>
    within(alice.socket.emitWithAck("history", payload), 5000, "history ack") as Promise<
      HistoryAck
    >;
  const pages: ChatMessage[][] = [];
  let before: string | undefined = undefined;
  while (true) {
    const ack: HistoryAck = await history(before ? { before, limit: 25 } : { limit: 25 });
    assert.ok(ack.ok);
    pages.unshift(ack.messages);
    if (!ack.hasMore) break;
    before = ack.messages[0].id;
  }
  assert.equal(pages.length, 5);
  assert.deepEqual(pages.flat(), all);
  const defaults = await history(undefined);
  assert.ok(defaults.ok && defaults.messages.length === 50 && defaults.hasMore);
});

Deno.test("delivery: bad history requests get invalid_payload", async () => {
  await using server = await startChat();
  using alice = await ChatClient.join(server.url, "alice");
  for (const payload of ["x", { before: "nope" }, { limit: 0 }, { limit: 101 }, { limit: 2.5 }]) {
    const ack = await within(alice.socket.emitWithAck("history", payload), 5000, "ack");
    assert.equal(ack.ok, false, JSON.stringify(payload));
    assert.equal(ack.error.code, "invalid_payload");
  }
});

for (const transports of [["websocket"], ["polling"]] as ("websocket" | "polling")[][]) {
  Deno.test(`delivery: messages stored in one commit reach a ${transports[0]} client in one live load, in order`, async () => {
    await using server = await startChat({ rateLimitBurst: 100 });
    using alice = await ChatClient.join(server.url, "alice");
    using bob = await ChatClient.join(server.url, "bob", { transports });
    const acks = await Promise.all(
      [...Array(40)].map((_, i) => alice.send({ message: `burst ${i}` })),
    );
    const ids = acks.map((ack) => ack.ok ? ack.message.id : "refused");
    await bob.waitFor(() => bob.live.length >= 40, "40 live messages");
    assert.deepEqual(bob.live.map((message) => message.id), ids.toSorted());
    assert.equal(new Set(ids).size, 40);
    const frames = bob.loads.length - 1;
    assert.ok(frames < 40, `40 concurrent messages took ${frames} live loads`);
    assert.deepEqual(await server.store.latest(40), bob.live);
  });
}

Deno.test("delivery: a commit with more text than one live load holds is split, nothing lost", async () => {
  await using server = await startChat({ rateLimitBurst: 100, maxMessageLength: 9000 });
  using alice = await ChatClient.join(server.url, "alice");
  using bob = await ChatClient.join(server.url, "bob");
  const acks = await Promise.all(
    [...Array(30)].map((_, i) => alice.send({ message: `${i} `.padEnd(8000, "x") })),
  );
  assert.ok(acks.every((ack) => ack.ok));
  await bob.waitFor(() => bob.live.length >= 30, "30 live messages");
  assert.equal(bob.live.length, 30);
  assert.deepEqual(bob.live.map((message) => message.id), bob.live.map((m) => m.id).toSorted());
  for (const load of bob.loads.slice(1)) {
    const chars = load.reduce((sum, message) => sum + message.message.length, 0);
    assert.ok(load.length === 1 || chars <= LOAD_MAX_CHARS, `a load of ${chars} chars`);
  }
});
