/**
 * Rooms over real sockets and stock clients: joining and leaving, who receives what, DM privacy
 * on every path, token-claimed rooms, unread counts, and a multi-room catch-up across a restart.
 */
import assert from "node:assert/strict";
import { signToken } from "../src/auth/token.ts";
import type { BrowseAck, JoinAck, OkAck, RoomsAck } from "../src/chat/mod.ts";
import { BROWSE_PAGE } from "../src/chat/handlers.ts";
import type { ChatMessage } from "../src/types.ts";
import { ChatClient, SECRET, sleep, startChat, within } from "./helpers/chat_server.ts";
import { tempDir } from "./helpers/dispose.ts";

/** Sends `event` and resolves with its ack. */
function ask<T>(client: ChatClient, event: string, payload?: unknown): Promise<T> {
  return within(client.socket.emitWithAck(event, payload), 5000, `${event} ack`);
}

/** Joins with a token carrying a `rooms` claim. */
async function joinWithRooms(url: string, sub: string, rooms: string[]): Promise<ChatClient> {
  const token = await signToken(SECRET, { sub, rooms });
  const client = new ChatClient(url, { auth: { token } });
  await client.waitFor(() => client.loaded !== undefined, `${sub}'s history`);
  return client;
}

Deno.test("rooms: members of a room receive its messages; others and leavers do not", async () => {
  await using server = await startChat({ publicRooms: ["general", "team-*"] });
  using alice = await ChatClient.join(server.url, "alice");
  using bob = await ChatClient.join(server.url, "bob");
  using carol = await ChatClient.join(server.url, "carol");
  const presence: unknown[] = [];
  alice.socket.on("room:presence", (event: unknown) => presence.push(event));
  const first = await ask<JoinAck>(alice, "join", { room: "team-red" });
  assert.deepEqual(first, {
    ok: true,
    room: "team-red",
    messages: [],
    hasMore: false,
    online: [{ id: "alice", name: "alice" }],
    reads: [],
  });
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /^chat_rooms_occupied 1$/m, "team-red is occupied");
  const second = await ask<JoinAck>(bob, "join", { room: "team-red" });
  assert.ok(second.ok);
  assert.deepEqual(second.online.map((user) => user.id).toSorted(), ["alice", "bob"]);
  type RoomPresence = { room: string; joined: { id: string }[]; left: { id: string }[] };
  const joinedIds = () =>
    (presence as RoomPresence[]).flatMap((event) => event.joined.map((user) => user.id));
  await alice.waitFor(() => joinedIds().includes("bob"), "alice hears bob come in");
  assert.ok((presence as RoomPresence[]).every((event) => event.room === "team-red"));
  const heard = presence.length;
  const sent = await alice.send({ room: "team-red", message: "red only" });
  assert.ok(sent.ok && sent.message.room === "team-red");
  await bob.waitFor(() => bob.live.some((m) => m.id === sent.message.id), "bob gets it");
  const general = await alice.send({ message: "to everyone" });
  assert.ok(general.ok && general.message.room === "general");
  await carol.waitFor(() => carol.live.some((m) => m.id === general.message.id), "general");
  assert.ok(!carol.live.some((m) => m.room === "team-red"), "carol is not in team-red");

  // History and a later join see the room's messages only.
  const page = await ask<{ ok: true; messages: ChatMessage[] }>(bob, "history", {
    room: "team-red",
  });
  assert.deepEqual(page.messages.map((m) => m.message), ["red only"]);
  const late = await ask<JoinAck>(carol, "join", { room: "team-red" });
  assert.ok(late.ok);
  assert.deepEqual(late.messages.map((m) => m.message), ["red only"]);

  assert.deepEqual(await ask<OkAck>(bob, "leave", { room: "team-red" }), { ok: true });
  const leftIds = () =>
    (presence as RoomPresence[]).slice(heard).flatMap((event) => event.left.map((u) => u.id));
  await alice.waitFor(() => leftIds().includes("bob"), "alice hears bob leave");
  const after = await alice.send({ room: "team-red", message: "after bob left" });
  assert.ok(after.ok);
  await carol.waitFor(() => carol.live.some((m) => m.id === after.message.id), "carol");
  await sleep(50);
  assert.ok(!bob.live.some((m) => m.id === after.message.id), "bob left the room");
});

Deno.test("rooms: a DM is for its two users only, on every path", async () => {
  await using server = await startChat();
  using alice = await ChatClient.join(server.url, "alice");
  using bob = await ChatClient.join(server.url, "bob");
  using mallory = await joinWithRooms(server.url, "mallory", ["*", "dm:*"]);
  const dm = "dm:alice:bob";
  assert.ok((await ask<JoinAck>(bob, "join", { room: dm })).ok);
  const sent = await alice.send({ room: dm, message: "just us" });
  assert.ok(sent.ok, "alice may send to her DM without joining it");
  await bob.waitFor(() => bob.live.some((m) => m.id === sent.message.id), "bob gets the DM");

  const refusals = [
    await ask<JoinAck>(mallory, "join", { room: dm }),
    await ask<JoinAck>(mallory, "history", { room: dm }),
    await ask<JoinAck>(mallory, "message", { room: dm, message: "let me in" }),
    await ask<OkAck>(mallory, "read", { room: dm, lastId: sent.message.id }),
  ];
  for (const refusal of refusals) {
    assert.equal(!refusal.ok && refusal.error.code, "forbidden");
  }
  mallory.socket.emit("typing", { room: dm, typing: true });
  // Catch-up on connect: the DM is refused and nothing of it is sent.
  const token = await signToken(SECRET, { sub: "mallory", rooms: ["*"] });
  const sneaky = new ChatClient(server.url, {
    auth: { token, lastIds: { [dm]: sent.message.id.replace(/.$/, "0") } },
  });
  await sneaky.waitFor(() => sneaky.loaded !== undefined && sneaky.errors.length > 0, "load");
  assert.equal(sneaky.errors[0].code, "forbidden");
  await sleep(100);
  for (const client of [mallory, sneaky]) {
    assert.ok(!client.loads.flat().some((m) => m.room === dm), "no DM message leaked");
  }
  const rooms = await ask<RoomsAck>(mallory, "rooms");
  assert.ok(rooms.ok && !rooms.rooms.some((summary) => summary.room === dm));
  const bobsRooms = await ask<RoomsAck>(bob, "rooms");
  assert.ok(bobsRooms.ok && bobsRooms.rooms.some((summary) => summary.room === dm));
  sneaky.close();
});

Deno.test("rooms: a token's rooms claim opens its rooms and patterns, nothing else", async () => {
  await using server = await startChat();
  using ops = await joinWithRooms(server.url, "olga", ["ops", "proj-*"]);
  using plain = await ChatClient.join(server.url, "pete");
  assert.ok((await ask<JoinAck>(ops, "join", { room: "ops" })).ok);
  assert.ok((await ask<JoinAck>(ops, "join", { room: "proj-apollo" })).ok);
  const other = await ask<JoinAck>(ops, "join", { room: "finance" });
  assert.equal(!other.ok && other.error.code, "forbidden");
  const refused = await ask<JoinAck>(plain, "join", { room: "ops" });
  assert.equal(!refused.ok && refused.error.code, "forbidden");
  const malformed = await ask<JoinAck>(plain, "join", { room: "Not A Room" });
  assert.equal(!malformed.ok && malformed.error.code, "invalid_payload");
});

/** The rooms of a `rooms:browse` ack, or its refusal's code. */
async function browse(client: ChatClient, payload?: unknown): Promise<string[] | string> {
  const ack = await ask<BrowseAck>(client, "rooms:browse", payload);
  return ack.ok ? ack.rooms.map((entry) => entry.room) : ack.error.code;
}

Deno.test("rooms:browse: the rooms a user may join, by name, a page at a time", async () => {
  await using server = await startChat({
    publicRooms: ["general", "team-*"],
    roomsLimitPerMinute: 600,
  });
  const user = { id: "seed", name: "Seed" };
  const teams = Array.from(
    { length: BROWSE_PAGE + 5 },
    (_, i) => `team-${String(i).padStart(2, "0")}`,
  );
  for (const room of teams) await server.store.append({ room, user, message: "hi" });
  using alice = await ChatClient.join(server.url, "alice");
  const first = await ask<BrowseAck>(alice, "rooms:browse", {});
  assert.ok(first.ok);
  assert.equal(first.rooms.length, BROWSE_PAGE);
  // general has no message yet: named in PUBLIC_ROOMS, it is listed all the same.
  assert.deepEqual(first.rooms.slice(0, 2), [{ room: "general" }, { room: "team-00" }]);
  assert.deepEqual(first.patterns, ["general", "team-*"]);
  assert.equal(first.next, first.rooms.at(-1)?.room);
  const second = await ask<BrowseAck>(alice, "rooms:browse", { after: first.next });
  assert.ok(second.ok && second.next === undefined);
  assert.deepEqual(
    [...first.rooms, ...second.rooms].map((entry) => entry.room),
    ["general", ...teams],
  );
  assert.deepEqual(await browse(alice, { prefix: "team-5" }), teams.filter((r) => r >= "team-5"));
  assert.deepEqual(await browse(alice, { prefix: "gen" }), ["general"]);
  assert.deepEqual(await browse(alice, { prefix: "zzz" }), []);
  // A payload may be left out.
  assert.equal((await browse(alice)).length, BROWSE_PAGE);
});

Deno.test("rooms:browse: never a DM, nor a room outside the user's public and claimed patterns", async () => {
  await using server = await startChat({
    publicRooms: ["general", "team-*"],
    roomsLimitPerMinute: 600,
  });
  const user = { id: "seed", name: "Seed" };
  for (const room of ["team-red", "secret-plans", "ops", "dm:alice:bob", "dm:carol:dave"]) {
    await server.store.append({ room, user, message: "hi" });
  }
  using alice = await ChatClient.join(server.url, "alice");
  using mallory = await joinWithRooms(server.url, "mallory", ["*", "dm:*", "secret-*"]);
  assert.deepEqual(await browse(alice), ["general", "team-red"]);
  assert.deepEqual(await browse(alice, { prefix: "dm" }), []);
  assert.deepEqual(await browse(alice, { prefix: "secret" }), []);
  // A claim of every named room lists them all, and still no DM, not even by prefix.
  assert.deepEqual(await browse(mallory), ["general", "ops", "secret-plans", "team-red"]);
  assert.deepEqual(await browse(mallory, { prefix: "d" }), []);
  assert.deepEqual(await browse(mallory, { after: "dm:alice:bob" }), [
    "general",
    "ops",
    "secret-plans",
    "team-red",
  ]);
});

Deno.test("rooms:browse: a bad payload is invalid_payload", async () => {
  await using server = await startChat({ roomsLimitPerMinute: 600 });
  using alice = await ChatClient.join(server.url, "alice");
  const bad = [
    5,
    "team",
    [1],
    { prefix: "Team" },
    { prefix: 5 },
    { prefix: "x".repeat(65) },
    { after: "Not a room" },
    { after: 7 },
  ];
  for (const payload of bad) {
    assert.equal(await browse(alice, payload), "invalid_payload", JSON.stringify(payload));
  }
});

Deno.test("rooms:browse: over its budget (the size of the rooms list's) it is rate_limited", async () => {
  await using server = await startChat({ roomsLimitPerMinute: 6 });
  using alice = await ChatClient.join(server.url, "alice");
  assert.deepEqual(await browse(alice), ["general"]);
  const refused = await ask<BrowseAck>(alice, "rooms:browse", {});
  assert.equal(!refused.ok && refused.error.code, "rate_limited");
  assert.ok(!refused.ok && (refused.error.retryAfterMs ?? 0) > 0);
});

Deno.test("rooms: read markers drive the unread counts of the rooms list", async () => {
  await using server = await startChat({ publicRooms: ["general", "team-*"] });
  using alice = await ChatClient.join(server.url, "alice");
  using bob = await ChatClient.join(server.url, "bob");
  await ask<JoinAck>(bob, "join", { room: "team-blue" });
  const sent: ChatMessage[] = [];
  for (const message of ["one", "two", "three"]) {
    const ack = await alice.send({ room: "team-blue", message });
    assert.ok(ack.ok);
    sent.push(ack.message);
  }
  let rooms = await ask<RoomsAck>(bob, "rooms");
  assert.ok(rooms.ok);
  const blue = rooms.rooms.find((summary) => summary.room === "team-blue");
  assert.equal(blue?.unread, 3);
  assert.equal(blue?.lastMessage?.id, sent[2].id);
  assert.deepEqual(await ask<OkAck>(bob, "read", { room: "team-blue", lastId: sent[1].id }), {
    ok: true,
  });
  rooms = await ask<RoomsAck>(bob, "rooms");
  assert.ok(rooms.ok);
  assert.equal(rooms.rooms.find((summary) => summary.room === "team-blue")?.unread, 1);
  assert.equal(rooms.rooms[0].room, "team-blue", "the most recent room first");
});

Deno.test("rooms: a reconnect after a restart catches up several rooms with no gap and no duplicate", async () => {
  await using temp = await tempDir();
  const kvPath = `${temp.path}/chat.kv`;
  const overrides = { kvPath, publicRooms: ["general", "team-*"], rateLimitBurst: 100 };
  const lastSeen: Record<string, string> = {};
  {
    await using server = await startChat(overrides);
    using writer = await ChatClient.join(server.url, "writer");
    for (const room of ["general", "team-a", "team-b"]) {
      const ack = await writer.send({ room, message: `${room} before` });
      assert.ok(ack.ok);
      lastSeen[room] = ack.message.id;
    }
  }
  await using server = await startChat(overrides);
  const writer2 = await ChatClient.join(server.url, "writer");
  const missed: ChatMessage[] = [];
  for (const room of ["team-a", "team-b", "general", "team-a"]) {
    const ack = await writer2.send({ room, message: `${room} while away` });
    assert.ok(ack.ok);
    missed.push(ack.message);
  }
  writer2.close();
  using reader = new ChatClient(server.url, {
    auth: {
      token: await signToken(SECRET, { sub: "reader" }),
      lastIds: { "team-a": lastSeen["team-a"], "team-b": lastSeen["team-b"] },
      lastId: lastSeen.general,
    },
  });
  const loaded: string[] = [];
  reader.socket.on("loaded", (info: { room: string }) => loaded.push(info.room));
  await reader.waitFor(() => loaded.length === 3, "three rooms loaded");
  const received = reader.loads.flat();
  assert.deepEqual(
    received.map((m) => m.id).toSorted(),
    missed.map((m) => m.id).toSorted(),
    "exactly the missed messages, each once",
  );
  for (const room of ["general", "team-a", "team-b"]) {
    const ofRoom = received.filter((m) => m.room === room).map((m) => m.id);
    assert.deepEqual(ofRoom, missed.filter((m) => m.room === room).map((m) => m.id));
  }
  // And the rooms are live: a new message in team-b arrives.
  using live = new ChatClient(server.url, {
    auth: { token: await signToken(SECRET, { sub: "w3" }) },
  });
  await live.waitFor(() => live.loaded !== undefined, "w3 history");
  const ack = await live.send({ room: "team-b", message: "live" });
  assert.ok(ack.ok);
  await reader.waitFor(() => reader.loads.flat().some((m) => m.id === ack.message.id), "live");
});
