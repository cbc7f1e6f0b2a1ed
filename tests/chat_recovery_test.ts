/**
 * socket.io's connection state recovery admits a dropped session again only where a fresh connect
 * would be admitted: a banned user, or one already at `MAX_SOCKETS_PER_USER`, is refused like a new
 * connection, and a user who may come back gets their missed messages as before.
 */
import assert from "node:assert/strict";
import { ChatClient, startChat, tokenFor } from "./helpers/chat_server.ts";
import { until } from "./helpers/time.ts";
import type { TestServer } from "./helpers/chat_server.ts";
import type { ChatMessage } from "../src/types.ts";

/** A client that can drop its transport and come back with its session id (no auto-reconnect). */
async function recoverable(server: TestServer, sub: string): Promise<ChatClient> {
  const client = new ChatClient(server.url, {
    auth: { token: await tokenFor(sub) },
    transports: ["websocket"],
  });
  await client.waitFor(() => client.loaded !== undefined, `${sub}'s history`);
  return client;
}

/** Drops the client's transport and waits until the server has let the socket go. */
async function drop(server: TestServer, client: ChatClient): Promise<void> {
  const id = client.socket.id!;
  client.socket.io.engine.close();
  await until(() => !server.app.io.of("/").sockets.has(id), 2000, "the server to see the drop");
}

/** Comes back on a dropped client: whether socket.io recovered it, or the refusal's code. */
function comeBack(client: ChatClient): Promise<"recovered" | "fresh" | string> {
  return new Promise((resolve) => {
    client.socket.once("connect", () => resolve(client.socket.recovered ? "recovered" : "fresh"));
    client.socket.once("connect_error", (error) => resolve(error.message));
    client.socket.connect();
  });
}

/** The user's sockets connected to the server now. */
function socketsOf(server: TestServer, userId: string): number {
  return [...server.app.io.of("/").sockets.values()]
    .filter((socket) => socket.data.identity.user.id === userId).length;
}

Deno.test("recovery: a user who comes back in time gets their session restored", async () => {
  await using server = await startChat({ connectionRecoveryMs: 60_000 });
  using alice = await recoverable(server, "alice");
  await drop(server, alice);
  assert.equal(await comeBack(alice), "recovered");
});

Deno.test("recovery: a user banned while away is refused with banned, and sends nothing", async () => {
  await using server = await startChat({ connectionRecoveryMs: 60_000 });
  using mallory = await recoverable(server, "mallory");
  using watcher = await ChatClient.join(server.url, "watcher");
  await drop(server, mallory);
  await server.store.setBan("mallory", { since: Date.now(), reason: "spam" });
  assert.equal(await comeBack(mallory), "banned");
  assert.equal(socketsOf(server, "mallory"), 0);
  mallory.socket.emit("message", { message: "still here?" });
  const ack = await watcher.send({ message: "after the ban" });
  assert.ok(ack.ok);
  const stored = await server.store.latest(10);
  assert.ok(stored.every((message) => message.user.id !== "mallory"), "mallory stored nothing");
});

Deno.test("recovery: restoring dropped sessions cannot beat MAX_SOCKETS_PER_USER", async () => {
  await using server = await startChat({
    connectionRecoveryMs: 60_000,
    maxSocketsPerUser: 3,
    handshakeLimitPerMinute: 0,
  });
  const clients: ChatClient[] = [];
  try {
    // Three sockets, dropped; three fresh ones take their places; then the three come back.
    const dropped = await Promise.all([1, 2, 3].map(() => recoverable(server, "mallory")));
    clients.push(...dropped);
    for (const client of dropped) await drop(server, client);
    clients.push(...await Promise.all([1, 2, 3].map(() => recoverable(server, "mallory"))));
    const outcomes = [];
    for (const client of dropped) outcomes.push(await comeBack(client));
    assert.deepEqual(outcomes, Array(3).fill("too_many_connections"));
    assert.equal(socketsOf(server, "mallory"), 3);
  } finally {
    for (const client of clients) client.close();
  }
});

Deno.test("recovery: a message sent while the comeback is checked still reaches the restored session", async () => {
  await using server = await startChat({ connectionRecoveryMs: 60_000 });
  using alice = await recoverable(server, "alice");
  using bob = await ChatClient.join(server.url, "bob");
  const received: string[] = [];
  alice.socket.on("load", (messages: ChatMessage[]) => {
    for (const message of messages) received.push(message.message);
  });
  await drop(server, alice);
  assert.ok((await bob.send({ message: "while away" })).ok);
  // The ban is read for the comeback; bob's message lands while that read is pending.
  const getBan = server.store.getBan.bind(server.store);
  let during: Promise<unknown> | undefined;
  server.store.getBan = (userId: string) => {
    if (userId === "alice" && !during) during = bob.send({ message: "during the check" });
    return during ? during.then(() => getBan(userId)) : getBan(userId);
  };
  assert.equal(await comeBack(alice), "recovered");
  assert.ok((await bob.send({ message: "after" })).ok);
  await alice.waitFor(() => received.includes("after"), "alice's live messages");
  assert.deepEqual(received.filter((text) => text !== ""), [
    "while away",
    "during the check",
    "after",
  ]);
});

Deno.test("recovery: a comeback with another user's token is not restored", async () => {
  await using server = await startChat({ connectionRecoveryMs: 60_000 });
  using alice = await recoverable(server, "alice");
  await drop(server, alice);
  // The session id is alice's; the token now offered is mallory's.
  const token = await tokenFor("mallory");
  (alice.socket as unknown as { auth: Record<string, unknown> }).auth = { token };
  assert.equal(await comeBack(alice), "fresh");
  assert.equal(socketsOf(server, "alice"), 0);
  assert.equal(socketsOf(server, "mallory"), 1);
});
