import { decodeJwt } from "jose";
import assert from "node:assert/strict";
import {
  ChatClient,
  expiredToken,
  sleep,
  startChat,
  TEST_AUTH,
  tokenFor,
  within,
} from "./helpers/chat_server.ts";
import { tempDir } from "./helpers/dispose.ts";
import { signToken } from "../src/auth/token.ts";

const MODES: Record<string, { transports?: ("polling" | "websocket")[] }> = {
  "polling only": { transports: ["polling"] },
  "websocket only": { transports: ["websocket"] },
  "default (polling, then upgrade)": {},
};

for (const [mode, options] of Object.entries(MODES)) {
  Deno.test(`chat: ${mode}: connect, load, send, ack, everyone receives`, async () => {
    await using server = await startChat();
    using alice = await ChatClient.join(server.url, "alice", { ...options });
    using bob = await ChatClient.join(server.url, "bob", { ...options });
    assert.deepEqual(alice.history, []);
    const ack = await alice.send({ message: "  hello bob  " });
    assert.equal(ack.ok, true);
    if (!ack.ok) return;
    assert.equal(ack.message.message, "hello bob");
    assert.deepEqual(ack.message.user, { id: "alice", name: "alice" });
    assert.match(ack.message.id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.ok(!Number.isNaN(Date.parse(ack.message.createdAt)));
    await bob.waitFor(() => bob.live.length === 1, "bob receives alice's message");
    await alice.waitFor(() => alice.live.length === 1, "alice receives her own message");
    assert.deepEqual(bob.live, [ack.message]);
    assert.deepEqual(alice.live, [ack.message]);
    assert.ok(bob.loads.slice(1).every((load) => load.length === 1), "one message per live load");
    if (mode.startsWith("default")) {
      await alice.waitFor(
        () => alice.socket.io.engine.transport.name === "websocket",
        "the upgrade",
      ).catch(() => {});
      assert.equal(alice.socket.io.engine.transport.name, "websocket");
    }
  });
}

Deno.test("chat: three clients see each other's messages in the same order", async () => {
  await using server = await startChat({ rateLimitBurst: 100 });
  using opened = new DisposableStack();
  const clients = await Promise.all(
    ["ann", "ben", "cy"].map(async (name, i) =>
      opened.use(
        await ChatClient.join(server.url, name, i === 1 ? { transports: ["polling"] } : {}),
      )
    ),
  );
  await Promise.all(clients.map(async (client, i) => {
    for (let n = 0; n < 10; n++) await client.send({ message: `${i}:${n}` });
  }));
  for (const client of clients) {
    await client.waitFor(() => client.live.length === 30, "30 live messages");
  }
  const [first, ...others] = clients.map((client) => client.live);
  for (const other of others) assert.deepEqual(other, first);
  const ids = first.map((message) => message.id);
  assert.deepEqual(ids, [...ids].sort(), "delivery order is id order");
  for (let i = 0; i < 3; i++) {
    const own = first.filter((message) => message.message.startsWith(`${i}:`));
    assert.deepEqual(own.map((m) => m.message), [...Array(10)].map((_, n) => `${i}:${n}`));
  }
  const stored = await server.store.latest(100);
  assert.deepEqual(stored, first, "history equals what was delivered");
});

Deno.test("chat: a late joiner gets the last HISTORY_LIMIT messages, oldest first", async () => {
  await using server = await startChat({ historyLimit: 5 });
  using alice = await ChatClient.join(server.url, "alice");
  for (let n = 1; n <= 7; n++) await alice.send({ message: `m${n}` });
  using late = await ChatClient.join(server.url, "late");
  assert.deepEqual(late.history.map((m) => m.message), ["m3", "m4", "m5", "m6", "m7"]);
});

Deno.test("chat: a joiner during a burst misses nothing and sees nothing twice", async () => {
  await using server = await startChat({ historyLimit: 1000, rateLimitBurst: 100 });
  using sender = await ChatClient.join(server.url, "sender");
  const sends = [...Array(60)].map((_, n) => sender.send({ message: `burst ${n}` }));
  await sleep(5);
  using joiner = await ChatClient.join(server.url, "joiner");
  await Promise.all(sends);
  await joiner.waitFor(
    () => joiner.history.length + joiner.live.length >= 60,
    "all 60 messages",
  );
  await sleep(50);
  const seen = [...joiner.history, ...joiner.live].map((m) => m.message);
  assert.equal(seen.length, 60);
  assert.deepEqual(seen, [...Array(60)].map((_, n) => `burst ${n}`));
});

Deno.test("chat: history survives a server restart on the same KV file", async () => {
  await using temp = await tempDir();
  const kvPath = `${temp.path}/nested/chat.kv`;
  const acks = [];
  {
    await using first = await startChat({ kvPath });
    using alice = await ChatClient.join(first.url, "alice");
    for (const text of ["one", "two", "three"]) acks.push(await alice.send({ message: text }));
  }

  await using second = await startChat({ kvPath });
  using bob = await ChatClient.join(second.url, "bob");
  assert.deepEqual(bob.history, acks.map((ack) => ack.ok && ack.message));
});

Deno.test("chat: auth failures reach connect_error with a stable code", async () => {
  await using server = await startChat();
  const cases: [string, Record<string, unknown>, string][] = [
    ["no token", {}, "auth_required"],
    ["empty token", { token: "" }, "auth_required"],
    ["garbage", { token: "not-a-jwt" }, "invalid_token"],
    ["wrong secret", { token: await signToken("other", { sub: "eve" }) }, "invalid_token"],
    ["expired", { token: await expiredToken("late", 60) }, "token_expired"],
  ];
  for (const [name, auth, code] of cases) {
    using client = new ChatClient(server.url, { auth });
    const error = await client.connectError();
    assert.equal(error.message, code, name);
    assert.equal(error.data?.code, code, name);
    assert.equal(typeof error.data?.message, "string", name);
  }
});

Deno.test("chat: a Bearer token in the Authorization header is accepted", async () => {
  await using server = await startChat();
  const token = await tokenFor("header-user", "Header User");
  using client = new ChatClient(server.url, {
    transports: ["websocket"],
    extraHeaders: { Authorization: `Bearer ${token}` },
  });
  await client.waitFor(() => client.loads.length > 0, "load");
  const ack = await client.send({ message: "via header" });
  assert.ok(ack.ok);
  assert.deepEqual(ack.message.user, { id: "header-user", name: "Header User" });
});

Deno.test("chat: each bad message gets its error code and stores nothing", async () => {
  await using server = await startChat({ maxMessageLength: 10 });
  using alice = await ChatClient.join(server.url, "alice");
  const kept = await alice.send({ message: "keep me" });
  assert.ok(kept.ok);
  const cases: [unknown, string][] = [
    ["just a string", "invalid_payload"],
    [null, "invalid_payload"],
    [[{ message: "in an array" }], "invalid_payload"],
    [{}, "invalid_payload"],
    [{ message: 42 }, "invalid_payload"],
    [{ message: { nested: true } }, "invalid_payload"],
    [{ message: "   " }, "invalid_payload"],
    [{ message: "x".repeat(11) }, "message_too_long"],
  ];
  for (const [payload, code] of cases) {
    const ack = await alice.send(payload);
    assert.equal(ack.ok, false, JSON.stringify(payload));
    if (ack.ok) continue;
    assert.equal(ack.error.code, code, JSON.stringify(payload));
    assert.equal(typeof ack.error.message, "string");
  }
  await alice.waitFor(() => alice.errors.length === cases.length, "one error event per case");
  assert.deepEqual(alice.errors.map((e) => e.code), cases.map(([, code]) => code));
  const ten = await alice.send({ message: "😀".repeat(10) });
  assert.ok(ten.ok, "ten emoji are ten characters");
  alice.socket.emit("message");
  alice.socket.emit("message", { message: "no ack" }, "not a function");
  await alice.waitFor(() => alice.errors.length === cases.length + 1, "error without ack");
  // The message without an ack is stored and broadcast: wait for it to come back.
  await alice.waitFor(() => alice.live.some((m) => m.message === "no ack"), "the broadcast");
  assert.deepEqual(
    (await server.store.latest(10)).map((m) => m.message),
    ["keep me", "😀".repeat(10), "no ack"],
  );
});

Deno.test("chat: a listen-only socket is cut when its token expires", async () => {
  // The chat's clock runs ahead so that the token, valid for a minute to the verifier, has 1.5 s
  // left to the chat: no whole-second `exp` can leave it less.
  let skew = 0;
  await using server = await startChat(
    { auth: { ...TEST_AUTH, clockToleranceSeconds: 0 } },
    { now: () => Date.now() + skew },
  );
  const token = await tokenFor("late", "Late", 60);
  skew = decodeJwt(token).exp! * 1000 - 1500 - Date.now();
  using listener = new ChatClient(server.url, { auth: { token } });
  // Listened for from the start: under load the expiry may come soon after the load.
  const disconnected = new Promise((resolve) => listener.socket.once("disconnect", resolve));
  using sender = await ChatClient.join(server.url, "sender");
  await listener.waitFor(() => listener.loads.length > 0, "load");
  const reason = await within(disconnected, 3000, "the expiry disconnect");
  assert.equal(reason, "io server disconnect");
  assert.deepEqual(listener.errors.map((e) => e.code), ["token_expired"]);
  // Nothing sent after the expiry reaches the expired listener.
  await sender.send({ message: "after expiry" });
  await sleep(50);
  assert.deepEqual(listener.live, []);
});

Deno.test("chat: a store failure is reported as internal", async () => {
  const server = await startChat();
  const alice = await ChatClient.join(server.url, "alice");
  try {
    server.store.close();
    const ack = await alice.send({ message: "nowhere to go" });
    assert.deepEqual(ack, {
      ok: false,
      error: { code: "internal", message: "the message could not be stored" },
    });
    await alice.waitFor(() => alice.errors.length === 1, "error event");
    assert.equal(alice.errors[0].code, "internal");
  } finally {
    alice.close();
    await server.app.close();
    await server.close().catch(() => {});
  }
});
