/**
 * Mentions over real sockets, on both transports: `message` takes `mentions`, kept on the stored
 * message; a mentioned user who may read the room hears `mention` on every connection, joined to
 * the room or not; nobody the room is closed to hears of it (a DM's outsider, a user whose token
 * lacks the room's claim); the `rooms` list counts unread mentions; bad input is refused.
 */
import assert from "node:assert/strict";
import { signToken } from "../src/auth/token.ts";
import type { JoinAck, MentionEvent, OkAck, RoomsAck } from "../src/chat/mod.ts";
import { MAX_MENTIONS } from "../src/chat/payloads.ts";
import { dmRoom } from "../src/chat/rooms.ts";
import { ChatClient, SECRET, startChat, tokenFor, within } from "./helpers/chat_server.ts";

const TRANSPORTS = [["websocket"], ["polling"]] as const;

function ask<T>(client: ChatClient, event: string, payload?: unknown): Promise<T> {
  return within(client.socket.emitWithAck(event, payload), 5000, `${event} ack`);
}

/** Records `mention` events. */
function mentionsHeard(client: ChatClient): MentionEvent[] {
  const heard: MentionEvent[] = [];
  client.socket.on("mention", (event: MentionEvent) => heard.push(event));
  return heard;
}

/** Connects `sub` (with a `rooms` claim when given) and waits for the history. */
async function connect(
  url: string,
  sub: string,
  transports: readonly string[],
  rooms?: string[],
): Promise<ChatClient> {
  const token = rooms ? await signToken(SECRET, { sub, rooms }) : await tokenFor(sub);
  const client = new ChatClient(url, { auth: { token }, transports: [...transports] });
  await client.waitFor(() => client.loaded !== undefined, `${sub}'s history`);
  return client;
}

for (const transports of TRANSPORTS) {
  Deno.test(`mentions (${transports[0]}): every connection of the mentioned hears, joined or not; the rooms list counts them`, async () => {
    await using server = await startChat({ publicRooms: ["general", "team"] });
    using alice = await connect(server.url, "alice", transports);
    using bobHere = await connect(server.url, "bob", transports);
    using bobThere = await connect(server.url, "bob", transports);
    using carol = await connect(server.url, "carol", transports);
    const [here, there, carolHeard] = [bobHere, bobThere, carol].map(mentionsHeard);
    assert.ok((await ask<JoinAck>(bobHere, "join", { room: "team" })).ok);

    const sent = await alice.send({
      room: "team",
      message: "@bob look",
      mentions: ["bob", "bob", "alice"],
    });
    assert.ok(sent.ok);
    assert.deepEqual(sent.message.mentions, ["bob", "alice"], "each once, as given");
    const event = { room: "team", message: sent.message };
    await bobHere.waitFor(() => here.length === 1, "bob's joined connection hears");
    await bobThere.waitFor(() => there.length === 1, "bob's other connection hears");
    assert.deepEqual(here[0], event);
    assert.deepEqual(there[0], event);
    assert.deepEqual(bobHere.live.at(-1), sent.message, "the joined one has it in load too");

    // The sentinel: carol's first mention is this one, so none came before it.
    const later = await alice.send({ message: "@carol", mentions: ["carol"] });
    assert.ok(later.ok);
    await carol.waitFor(() => carolHeard.length > 0, "carol hears hers");
    assert.deepEqual(carolHeard.map((heard) => heard.message.id), [later.message.id]);

    const listed = await ask<RoomsAck>(bobThere, "rooms");
    assert.ok(listed.ok);
    const team = listed.rooms.find((room) => room.room === "team");
    assert.equal(team?.mentions, 1);
    assert.equal(listed.rooms.find((room) => room.room === "general")?.mentions, 0);
    assert.ok((await ask<OkAck>(bobThere, "read", { room: "team", lastId: sent.message.id })).ok);
    const after = await ask<RoomsAck>(bobThere, "rooms");
    assert.ok(after.ok);
    assert.equal(after.rooms.find((room) => room.room === "team")?.mentions, 0);
    // Her own mention never counts for the author.
    const own = await ask<RoomsAck>(alice, "rooms");
    assert.ok(own.ok);
    assert.equal(own.rooms.find((room) => room.room === "team")?.mentions, 0);
  });

  Deno.test(`mentions (${transports[0]}): nobody the room is closed to hears — a DM's outsider, a user without the room's claim`, async () => {
    await using server = await startChat({ publicRooms: ["general"] });
    using alice = await connect(server.url, "alice", transports, ["ops"]);
    using bob = await connect(server.url, "bob", transports);
    using carol = await connect(server.url, "carol", transports, ["ops"]);
    using mallory = await connect(server.url, "mallory", transports);
    const [bobHeard, carolHeard, malloryHeard] = [bob, carol, mallory].map(mentionsHeard);

    const dm = await alice.send({
      room: dmRoom("alice", "bob"),
      message: "@bob @mallory",
      mentions: ["bob", "mallory"],
    });
    assert.ok(dm.ok, "mentioning an outsider is not an error");
    assert.deepEqual(dm.message.mentions, ["bob", "mallory"]);
    await bob.waitFor(() => bobHeard.length === 1, "the DM's peer hears");
    assert.equal(bobHeard[0].room, dmRoom("alice", "bob"));

    const ops = await alice.send({
      room: "ops",
      message: "@carol @bob",
      mentions: ["carol", "bob"],
    });
    assert.ok(ops.ok);
    await carol.waitFor(() => carolHeard.length === 1, "carol's token opens ops");
    assert.equal(carolHeard[0].message.id, ops.message.id);

    // Sentinels in general: each one's first mention heard afterwards is theirs alone.
    const open = await alice.send({ message: "@bob @mallory", mentions: ["bob", "mallory"] });
    assert.ok(open.ok);
    await bob.waitFor(() => bobHeard.length === 2, "bob hears general's");
    await mallory.waitFor(() => malloryHeard.length === 1, "mallory hears general's");
    assert.deepEqual(bobHeard.map((heard) => heard.room), [dmRoom("alice", "bob"), "general"]);
    assert.deepEqual(malloryHeard.map((heard) => heard.room), ["general"]);

    const listed = await ask<RoomsAck>(mallory, "rooms");
    assert.ok(listed.ok);
    assert.deepEqual(listed.rooms.map((room) => room.room), ["general"]);
  });
}

Deno.test("mentions: bad input is invalid_payload; the server API publishes them too", async () => {
  await using server = await startChat({ apiKey: "k".repeat(32), rateLimitBurst: 100 });
  using alice = await ChatClient.join(server.url, "alice");
  using bob = await ChatClient.join(server.url, "bob");
  const heard = mentionsHeard(bob);
  const code = async (mentions: unknown) => {
    const ack = await alice.send({ message: "hi", mentions });
    return ack.ok ? "ok" : ack.error.code;
  };
  const tooMany = [...Array(MAX_MENTIONS + 1)].map((_, index) => `user${index}`);
  for (const bad of ["bob", [1], [""], ["a\u0000b"], tooMany, { bob: true }]) {
    assert.equal(await code(bad), "invalid_payload", JSON.stringify(bad));
  }
  assert.equal(await code([]), "ok");
  assert.equal(await code(tooMany.slice(1)), "ok", `${MAX_MENTIONS} is the bound`);
  const plain = await alice.send({ message: "none", mentions: [] });
  assert.ok(plain.ok);
  assert.equal(plain.message.mentions, undefined, "none kept where none were named");

  const response = await fetch(`${server.url}/api/v1/rooms/general/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${"k".repeat(32)}`, "content-type": "application/json" },
    body: JSON.stringify({ message: "@bob from the backend", mentions: ["bob"] }),
  });
  assert.equal(response.status, 201);
  const { message } = await response.json();
  assert.deepEqual(message.mentions, ["bob"]);
  await bob.waitFor(() => heard.some((event) => event.message.id === message.id), "bob hears");
  assert.equal(heard.length, 1, "only the message that named bob");
});
