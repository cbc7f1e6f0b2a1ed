/**
 * Limits one user cannot talk their way around: the connection cap under a burst, one socket per
 * transport session, write permission for typing, typing kept out of the recovery buffer, token
 * expiry across a recovered session, and a catch-up too big for one frame.
 */
import assert from "node:assert/strict";
import {
  ChatClient,
  sleep,
  startChat,
  TEST_AUTH,
  tokenFor,
  within,
} from "./helpers/chat_server.ts";
import { until } from "./helpers/time.ts";
import type { ChatMessage } from "../src/types.ts";
import { signToken } from "../src/auth/token.ts";

Deno.test("limits: 30 parallel connects for one user admit exactly MAX_SOCKETS_PER_USER", async () => {
  await using server = await startChat({ maxSocketsPerUser: 10, handshakeLimitPerMinute: 0 });
  const token = await tokenFor("alice");
  using opened = new DisposableStack();
  const clients = Array.from(
    { length: 30 },
    () => opened.use(new ChatClient(server.url, { auth: { token }, transports: ["websocket"] })),
  );
  const outcomes = await Promise.all(clients.map((client) =>
    within(
      new Promise<string>((resolve) => {
        client.socket.once("connect", () => resolve("connected"));
        client.socket.once("connect_error", (error) => resolve(error.message));
      }),
      5000,
      "connect or connect_error",
    )
  ));
  assert.equal(outcomes.filter((outcome) => outcome === "connected").length, 10);
  assert.equal(outcomes.filter((outcome) => outcome === "too_many_connections").length, 20);
  // Closing one frees its place, once the server has seen the close.
  clients[outcomes.indexOf("connected")].close();
  await until(() => server.app.io.of("/").sockets.size === 9, 5000, "the closed socket gone");
  const late = await ChatClient.join(server.url, "alice", { transports: ["websocket"] });
  late.close();
});

/** A raw Engine.IO WebSocket that records every text frame. */
async function rawSocket(url: string) {
  const socket = new WebSocket(`${url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
  const frames: string[] = [];
  socket.onmessage = (event) => {
    if (event.data === "2") socket.send("3");
    else frames.push(String(event.data));
  };
  await within(new Promise((resolve) => socket.onopen = resolve), 2000, "websocket open");
  const closed = new Promise((resolve) => socket.onclose = resolve);
  return {
    socket,
    frames,
    async close() {
      socket.close();
      await closed;
    },
    async [Symbol.asyncDispose]() {
      socket.close();
      await closed;
    },
  };
}

Deno.test("limits: several CONNECT packets in one polling request admit one socket; the rest get already_connected", async () => {
  await using server = await startChat();
  using sender = await ChatClient.join(server.url, "sender", { transports: ["websocket"] });
  const base = `${server.url}/socket.io/?EIO=4&transport=polling`;
  const open = await (await fetch(base)).text();
  const sid = JSON.parse(open.slice(1)).sid;
  const connect = `40${JSON.stringify({ token: await tokenFor("mallory") })}`;
  const posted = await fetch(`${base}&sid=${sid}`, {
    method: "POST",
    body: Array(6).fill(connect).join("\x1e"),
  });
  assert.equal(await posted.text(), "ok");
  const packets: string[] = [];
  while (packets.filter((packet) => packet.startsWith("4")).length < 6) {
    packets.push(...(await (await fetch(`${base}&sid=${sid}`)).text()).split("\x1e"));
  }
  const acks = packets.filter((packet) => /^40\{"sid"/.test(packet));
  const refusals = packets.filter((packet) => packet.startsWith("44"));
  assert.equal(acks.length, 1, packets.join("\n"));
  assert.equal(refusals.length, 5);
  for (const refusal of refusals) {
    assert.equal(JSON.parse(refusal.slice(2)).data.code, "already_connected");
  }
  const ack = await sender.send({ message: "once" });
  assert.ok(ack.ok);
  const delivered: string[] = [];
  while (!delivered.some((packet) => packet.includes(ack.message.id))) {
    delivered.push(...(await (await fetch(`${base}&sid=${sid}`)).text()).split("\x1e"));
  }
  await sleep(100);
  assert.equal(
    delivered.filter((packet) => packet.includes(ack.message.id)).length,
    1,
    "the broadcast reached the session once",
  );
  await fetch(`${base}&sid=${sid}`, { method: "POST", body: "1" }).then((r) => r.body?.cancel());
});

Deno.test("limits: CONNECT packets sent back to back on a WebSocket admit one socket; the rest get already_connected", async () => {
  await using server = await startChat();
  await using raw = await rawSocket(server.url);
  const connect = `40${JSON.stringify({ token: await tokenFor("mallory") })}`;
  for (let n = 0; n < 6; n++) raw.socket.send(connect);
  await until(
    () => raw.frames.filter((frame) => frame.startsWith("4")).length >= 6,
    5000,
    "an answer to each CONNECT",
  );
  const acks = raw.frames.filter((frame) => /^40\{"sid"/.test(frame));
  const refusals = raw.frames.filter((frame) => frame.startsWith("44"));
  assert.equal(acks.length, 1, raw.frames.join("\n"));
  assert.equal(refusals.length, 5, raw.frames.join("\n"));
  for (const refusal of refusals) {
    assert.equal(JSON.parse(refusal.slice(2)).data.code, "already_connected");
  }
  assert.equal(server.app.io.of("/").sockets.size, 1, "the first socket is still there");
  assert.equal(raw.socket.readyState, WebSocket.OPEN);
});

Deno.test("typing: a token that may not write cannot type either", async () => {
  await using server = await startChat({ auth: { ...TEST_AUTH, requireWriteScope: true } });
  using reader = await ChatClient.join(server.url, "reader");
  using writer = new ChatClient(server.url, {
    auth: { token: await tokenFor("writer", "Writer", 3600, "chat:write") },
  });
  await writer.waitFor(() => writer.loaded !== undefined, "writer's history");
  let typingSeen = 0;
  writer.socket.on("typing", () => typingSeen++);
  reader.socket.emit("typing", { typing: true });
  await reader.waitFor(() => reader.errors.length > 0, "the refusal");
  assert.equal(reader.errors[0].code, "forbidden");
  await sleep(50);
  assert.equal(typingSeen, 0);
});

Deno.test("typing: never enters socket.io's recovery buffer, while messages do", async () => {
  await using server = await startChat({ connectionRecoveryMs: 60_000 });
  using alice = await ChatClient.join(server.url, "alice");
  let bobAnnounced = false;
  alice.socket.on("user:joined", (users: { id: string }[]) => {
    bobAnnounced ||= users.some((user) => user.id === "bob");
  });
  using bob = await ChatClient.join(server.url, "bob");
  // Arrivals are announced in batches, and buffered like messages: count after bob's is out.
  await alice.waitFor(() => bobAnnounced, "bob's arrival announced");
  const buffered = () =>
    (server.app.io.of("/").adapter as unknown as { packets: unknown[] }).packets.length;
  const before = buffered();
  const typing = new Promise((resolve) => bob.socket.once("typing", resolve));
  alice.socket.emit("typing", { typing: true });
  await within(typing, 2000, "bob sees alice typing");
  assert.equal(buffered(), before, "typing is volatile");
  assert.ok((await alice.send({ message: "kept for recovery" })).ok);
  assert.equal(buffered(), before + 1);
});

Deno.test("auth: a dropped session whose token expired meanwhile is not restored and is ended with token_expired", async () => {
  // The chat's clock is moved by hand while the client is away, past its token's expiry.
  let skew = 0;
  await using server = await startChat({
    connectionRecoveryMs: 60_000,
    auth: { ...TEST_AUTH, clockToleranceSeconds: 0 },
  }, { now: () => Date.now() + skew });
  const token = await signToken(TEST_AUTH.key.kind === "secret" ? TEST_AUTH.key.secret : "", {
    sub: "brief",
    ttlSeconds: 60,
  });
  using client = new ChatClient(server.url, {
    auth: { token },
    transports: ["websocket"],
    reconnection: true,
    reconnectionDelay: 50,
    reconnectionDelayMax: 50,
    randomizationFactor: 0,
  });
  await client.waitFor(() => client.loaded !== undefined, "history");
  let recovered = false;
  client.socket.on("connect", () => recovered ||= client.socket.recovered);
  const ended = new Promise((resolve) => {
    client.socket.on(
      "disconnect",
      (reason) => reason === "io server disconnect" && resolve(reason),
    );
  });
  // Drop the transport while the token is still valid; the reconnect comes after its expiry.
  client.socket.io.engine.close();
  skew = 2 * 60_000;
  await within(ended, 5000, "the server to end the recovered session");
  assert.ok(!recovered, "socket.io did not restore the session");
  assert.deepEqual(client.errors.map((error) => error.code), ["token_expired"]);
});

for (const transport of ["polling", "websocket"] as const) {
  Deno.test(`delivery: a 1,000-message catch-up of 2,000-character messages arrives whole over ${transport}`, async () => {
    await using server = await startChat({ handshakeLimitPerMinute: 0 });
    const user = { id: "writer", name: "Writer" };
    const [mark] = await server.store.appendMany([{ user, message: "last seen" }]);
    const sent: ChatMessage[] = [];
    for (let batch = 0; batch < 10; batch++) {
      const inputs = Array.from({ length: 100 }, (_, n) => ({
        user,
        message: `${batch * 100 + n} `.padEnd(2000, "é"),
      }));
      sent.push(...(await server.store.appendMany(inputs)).map((result) => result.message));
    }
    using client = new ChatClient(server.url, {
      auth: { token: await tokenFor("reader"), lastId: mark.message.id },
      transports: [transport],
    });
    let disconnected = false;
    client.socket.on("disconnect", () => disconnected = true);
    await client.waitFor(() => client.loaded !== undefined, "the whole catch-up", 15_000);
    assert.deepEqual(client.history.map((message) => message.id), sent.map((m) => m.id));
    assert.deepEqual(client.loaded, { room: "general", hasMore: false, catchUp: true, reads: [] });
    assert.ok(client.loads.length > 1, "the catch-up came in several frames");
    await sleep(200);
    assert.equal(disconnected, false);
  });
}
