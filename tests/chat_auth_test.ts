import assert from "node:assert/strict";
import {
  ChatClient,
  expiredToken,
  SECRET,
  startChat,
  TEST_AUTH,
  tokenFor,
  within,
} from "./helpers/chat_server.ts";
import { signToken } from "../src/auth/token.ts";
import type { RefreshAck } from "../src/chat/mod.ts";

function refresh(client: ChatClient, payload: unknown): Promise<RefreshAck> {
  return within(client.socket.emitWithAck("auth:refresh", payload), 5000, "refresh ack");
}

Deno.test("auth: without chat:write a reader may read but not send when REQUIRE_WRITE_SCOPE is on", async () => {
  await using server = await startChat({ auth: { ...TEST_AUTH, requireWriteScope: true } });
  using writer = new ChatClient(server.url, {
    auth: { token: await tokenFor("writer", undefined, 3600, "chat:read chat:write") },
  });
  using reader = new ChatClient(server.url, {
    auth: { token: await tokenFor("reader", undefined, 3600, "chat:read") },
  });
  await writer.waitFor(() => writer.loads.length > 0, "writer load");
  await reader.waitFor(() => reader.loads.length > 0, "reader load");
  const refused = await reader.send({ message: "may I?" });
  assert.equal(!refused.ok && refused.error.code, "forbidden");
  assert.equal((await writer.send({ message: "yes" })).ok, true);
  await reader.waitFor(() => reader.live.length === 1, "the reader reads");
  assert.deepEqual((await server.store.latest(10)).map((m) => m.message), ["yes"]);
});

Deno.test("auth: without REQUIRE_WRITE_SCOPE a token without scopes may send", async () => {
  await using server = await startChat();
  using alice = await ChatClient.join(server.url, "alice");
  assert.equal((await alice.send({ message: "no scopes needed" })).ok, true);
});

Deno.test("auth: auth:refresh extends a session past the first token's expiry", async () => {
  // The chat's clock is moved by hand: the first token's expiry passes at once.
  let skew = 0;
  await using server = await startChat({}, { now: () => Date.now() + skew });
  using refreshed = new ChatClient(server.url, {
    auth: { token: await tokenFor("alice", "Alice", 60) },
  });
  using stale = new ChatClient(server.url, { auth: { token: await tokenFor("bob", "Bob", 60) } });
  for (const client of [refreshed, stale]) {
    await client.waitFor(() => client.loaded !== undefined, "history");
  }
  const ack = await refresh(refreshed, { token: await tokenFor("alice", "Alice", 3600) });
  assert.ok(ack.ok);
  assert.ok(ack.expiresAt !== null && ack.expiresAt > Date.now() + 3_500_000);
  skew = 10 * 60_000;
  const sent = await refreshed.send({ message: "still here" });
  assert.equal(sent.ok, true);
  assert.equal(refreshed.socket.connected, true);
  assert.deepEqual(refreshed.errors, []);
  // Without the refresh, the same moment is past the token's expiry.
  const cut = new Promise((resolve) => stale.socket.once("disconnect", resolve));
  stale.socket.emit("message", { message: "too late" });
  assert.equal(await within(cut, 2000, "the stale socket cut"), "io server disconnect");
  assert.deepEqual(stale.errors.map((error) => error.code), ["token_expired"]);
});

Deno.test("auth: auth:refresh refuses another user's token, bad tokens and bad payloads", async () => {
  await using server = await startChat({ refreshLimitPerMinute: 600 });
  using alice = await ChatClient.join(server.url, "alice");
  const cases: [unknown, string][] = [
    [{ token: await tokenFor("mallory") }, "forbidden"],
    [{ token: "garbage" }, "invalid_token"],
    [{ token: await expiredToken("alice", 60) }, "token_expired"],
    [{ token: 42 }, "invalid_payload"],
    ["just a string", "invalid_payload"],
  ];
  for (const [payload, code] of cases) {
    const ack = await refresh(alice, payload);
    assert.equal(!ack.ok && ack.error.code, code, JSON.stringify(payload));
  }
  const sent = await alice.send({ message: "still alice" });
  assert.ok(sent.ok);
  assert.deepEqual(sent.message.user, { id: "alice", name: "alice" });
});

Deno.test("auth: a refreshed token that no longer opens a room takes the connection out of it", async () => {
  await using server = await startChat();
  const connect = async (sub: string, rooms?: string[]) => {
    const client = new ChatClient(server.url, {
      auth: { token: await signToken(SECRET, { sub, rooms }) },
    });
    await client.waitFor(() => client.loaded !== undefined, `${sub}'s history`);
    return client;
  };
  using alice = await connect("alice", ["ops"]);
  using carol = await connect("carol", ["ops"]);
  using bob = await connect("bob", ["ops"]);
  const ask = (client: ChatClient, event: string, payload: unknown) =>
    within(client.socket.emitWithAck(event, payload), 5000, `${event} ack`);
  for (const client of [alice, carol, bob]) {
    assert.equal((await ask(client, "join", { room: "ops" })).ok, true);
  }
  const heard = (client: ChatClient) => {
    const events: string[] = [];
    for (const event of ["message:reactions", "message:thread", "room:read", "mention"]) {
      client.socket.on(event, () => events.push(event));
    }
    return events;
  };
  const bobHeard = heard(bob);
  const carolHeard = heard(carol);
  const ack = await refresh(bob, { token: await signToken(SECRET, { sub: "bob" }) });
  assert.ok(ack.ok);
  assert.deepEqual(ack.left, ["ops"]);
  const secret = await ask(alice, "message", {
    room: "ops",
    message: "ops only",
    mentions: ["bob"],
  });
  assert.ok(secret.ok);
  await ask(alice, "react", { room: "ops", id: secret.message.id, emoji: "👍" });
  await ask(alice, "message", { room: "ops", message: "a reply", replyTo: secret.message.id });
  await ask(alice, "read", { room: "ops", lastId: secret.message.id });
  await carol.waitFor(
    () => ["message:reactions", "message:thread", "room:read"].every((e) => carolHeard.includes(e)),
    "carol hears the room",
  );
  // Sent to bob after all of the above: once it is there, so is anything of ops sent to him.
  assert.ok((await alice.send({ message: "general marker" })).ok);
  await bob.waitFor(() => bob.live.some((m) => m.message === "general marker"), "the marker");
  assert.deepEqual(bob.live.map((m) => m.room), ["general"]);
  assert.deepEqual(bobHeard, []);
  const again = await ask(bob, "join", { room: "ops" });
  assert.equal(!again.ok && again.error.code, "forbidden");
});

Deno.test("auth: a join under way when a refresh drops its room does not put the connection in it", async () => {
  await using server = await startChat({ refreshLimitPerMinute: 600, joinLimitPerMinute: 600 });
  const withOps = () => signToken(SECRET, { sub: "bob", rooms: ["ops"] });
  const withoutOps = () => signToken(SECRET, { sub: "bob" });
  const connect = async (sub: string) => {
    const client = new ChatClient(server.url, {
      auth: { token: await signToken(SECRET, { sub, rooms: ["ops"] }) },
    });
    await client.waitFor(() => client.loaded !== undefined, `${sub}'s history`);
    return client;
  };
  using alice = await connect("alice");
  using bob = await connect("bob");
  const ask = (client: ChatClient, event: string, payload: unknown) =>
    within(client.socket.emitWithAck(event, payload), 5000, `${event} ack`);
  assert.equal((await ask(alice, "join", { room: "ops" })).ok, true);
  for (let round = 0; round < 10; round++) {
    const reopened = await refresh(bob, { token: await withOps() });
    assert.equal(reopened.ok, true, JSON.stringify(reopened));
    const token = await withoutOps();
    // The join is asked with ops open; the refresh that closes it arrives while the join runs.
    const [joined, refreshed] = await Promise.all([
      ask(bob, "join", { room: "ops" }),
      refresh(bob, { token }),
    ]);
    assert.equal(refreshed.ok, true, JSON.stringify(refreshed));
    if (!joined.ok) assert.equal(joined.error.code, "forbidden");
    assert.ok((await alice.send({ room: "ops", message: `ops ${round}` })).ok);
    const marker = `marker ${round}`;
    assert.ok((await alice.send({ message: marker })).ok);
    await bob.waitFor(() => bob.live.some((m) => m.message === marker), marker);
    assert.deepEqual(bob.live.filter((m) => m.room === "ops").map((m) => m.message), []);
  }
});

Deno.test("auth: a display name is cleaned of bidi controls, while message text is kept as sent", async () => {
  await using server = await startChat();
  using client = new ChatClient(server.url, {
    auth: { token: await tokenFor("mallory", "\u202Egnp.exe\u200b") },
  });
  await client.waitFor(() => client.loads.length > 0, "load");
  const ack = await client.send({ message: "\u202Eabc \u2066x\u2069" });
  assert.ok(ack.ok);
  assert.deepEqual(ack.message.user, { id: "mallory", name: "gnp.exe" });
  assert.equal(ack.message.message, "\u202Eabc \u2066x\u2069");
});
