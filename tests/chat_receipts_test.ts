/**
 * Read receipts over real sockets, on both transports: a `join` ack lists the members' read
 * positions; `read` markers are announced to the room as `room:read`, batched; a DM's receipts
 * never reach an outsider; `READ_RECEIPTS=false` announces and lists nothing while markers still
 * count unread. (Across two instances: tests/cluster_test.ts.)
 */
import assert from "node:assert/strict";
import type {
  JoinAck,
  LoadedInfo,
  OkAck,
  ReactAck,
  ReactionsEvent,
  RoomReadEvent,
  RoomsAck,
} from "../src/chat/mod.ts";
import { dmRoom } from "../src/chat/rooms.ts";
import { ChatClient, startChat, tokenFor, within } from "./helpers/chat_server.ts";

const TRANSPORTS = [["websocket"], ["polling"]] as const;

function ask<T>(client: ChatClient, event: string, payload?: unknown): Promise<T> {
  return within(client.socket.emitWithAck(event, payload), 5000, `${event} ack`);
}

/** Records `room:read` events. */
function readsHeard(client: ChatClient): RoomReadEvent[] {
  const heard: RoomReadEvent[] = [];
  client.socket.on("room:read", (event: RoomReadEvent) => heard.push(event));
  return heard;
}

/** The latest position each user was heard at, per room. */
function latest(heard: RoomReadEvent[], room: string): Map<string, string> {
  const positions = new Map<string, string>();
  for (const event of heard.filter((event) => event.room === room)) {
    for (const { user, lastId } of event.reads) positions.set(user, lastId);
  }
  return positions;
}

for (const transports of TRANSPORTS) {
  const options = { transports: [...transports] };

  Deno.test(`receipts (${transports[0]}): read markers are announced, batched; a join lists them`, async () => {
    await using server = await startChat({ publicRooms: ["general", "team"] });
    using alice = await ChatClient.join(server.url, "alice", options);
    using bob = await ChatClient.join(server.url, "bob", options);
    const heard = readsHeard(alice);
    for (const client of [alice, bob]) {
      const joined = await ask<JoinAck>(client, "join", { room: "team" });
      assert.ok(joined.ok);
      assert.deepEqual(joined.reads, []);
    }
    const sent: string[] = [];
    for (let n = 0; n < 3; n++) {
      const ack = await alice.send({ room: "team", message: `m${n}` });
      assert.ok(ack.ok);
      sent.push(ack.message.id);
    }
    for (const lastId of sent) {
      assert.ok((await ask<OkAck>(bob, "read", { room: "team", lastId })).ok);
    }
    await alice.waitFor(() => latest(heard, "team").get("bob") === sent[2], "bob's last read");
    assert.ok(heard.length <= 3, `batched: ${heard.length} events for 3 reads`);
    for (const event of heard) {
      const users = event.reads.map((read) => read.user);
      assert.equal(new Set(users).size, users.length, "each user once an event");
    }
    assert.ok((await ask<OkAck>(alice, "read", { room: "team", lastId: sent[2] })).ok);

    using carol = await ChatClient.join(server.url, "carol", options);
    const joined = await ask<JoinAck>(carol, "join", { room: "team" });
    assert.ok(joined.ok);
    assert.deepEqual(
      [...joined.reads].sort((a, b) => a.user.localeCompare(b.user)),
      [{ user: "alice", lastId: sent[2] }, { user: "bob", lastId: sent[2] }],
    );
  });

  Deno.test(`receipts (${transports[0]}): a connect's loaded lists the read positions of each room it starts in`, async () => {
    await using server = await startChat({ publicRooms: ["general", "team"] });
    using alice = await ChatClient.join(server.url, "alice", options);
    using bob = await ChatClient.join(server.url, "bob", options);
    assert.deepEqual(alice.loaded?.reads, []);
    assert.ok((await ask<JoinAck>(alice, "join", { room: "team" })).ok);
    const inGeneral = await alice.send({ message: "hello all" });
    const inTeam = await alice.send({ room: "team", message: "hello team" });
    const dm = dmRoom("alice", "bob");
    const inDm = await alice.send({ room: dm, message: "hello bob" });
    assert.ok(inGeneral.ok && inTeam.ok && inDm.ok);
    for (const { room, id } of [inGeneral.message, inTeam.message, inDm.message]) {
      assert.ok((await ask<OkAck>(bob, "read", { room, lastId: id })).ok);
    }
    // Carol reconnects naming team and the DM; alice, the DM's member, names both too.
    const lastIds = { team: inTeam.message.id, [dm]: inDm.message.id };
    const connect = async (sub: string) => {
      const loaded: LoadedInfo[] = [];
      const client = new ChatClient(server.url, {
        ...options,
        auth: { token: await tokenFor(sub), lastIds },
      });
      client.socket.on("loaded", (info: LoadedInfo) => loaded.push(info));
      return { client, loaded };
    };
    const carol = await connect("carol");
    const again = await connect("alice");
    try {
      await carol.client.waitFor(
        () => carol.loaded.length === 2 && carol.client.errors.length === 1,
        "carol's rooms and the DM's refusal",
      );
      await again.client.waitFor(() => again.loaded.length === 3, "alice's three rooms");
      const readsOf = (loaded: LoadedInfo[]) =>
        Object.fromEntries(loaded.map((info) => [info.room, info.reads]));
      const bobAt = (id: string) => [{ user: "bob", lastId: id }];
      assert.deepEqual(readsOf(carol.loaded), {
        general: bobAt(inGeneral.message.id),
        team: bobAt(inTeam.message.id),
      });
      assert.equal(carol.client.errors[0].code, "forbidden");
      assert.deepEqual(readsOf(again.loaded), {
        general: bobAt(inGeneral.message.id),
        team: bobAt(inTeam.message.id),
        [dm]: bobAt(inDm.message.id),
      });
    } finally {
      carol.client.close();
      again.client.close();
    }
  });

  Deno.test(`receipts (${transports[0]}): a DM's receipts never reach an outsider`, async () => {
    await using server = await startChat({ publicRooms: ["general"] });
    using alice = await ChatClient.join(server.url, "alice", options);
    using bob = await ChatClient.join(server.url, "bob", options);
    using mallory = await ChatClient.join(server.url, "mallory", options);
    const [aliceHeard, malloryHeard] = [alice, mallory].map(readsHeard);
    const dm = dmRoom("alice", "bob");
    assert.ok((await ask<JoinAck>(alice, "join", { room: dm })).ok);
    const secret = await alice.send({ room: dm, message: "just us" });
    assert.ok(secret.ok);
    assert.ok((await ask<OkAck>(bob, "read", { room: dm, lastId: secret.message.id })).ok);
    await alice.waitFor(() => latest(aliceHeard, dm).has("bob"), "alice sees bob's Seen");

    const peeking = await ask<JoinAck>(mallory, "join", { room: dm });
    assert.equal(!peeking.ok && peeking.error.code, "forbidden");
    const forging = await ask<OkAck>(mallory, "read", { room: dm, lastId: secret.message.id });
    assert.equal(!forging.ok && forging.error.code, "forbidden");
    // The sentinel: mallory's first receipt is general's, so none of the DM's came before it.
    const open = await alice.send({ message: "public" });
    assert.ok(open.ok);
    assert.ok((await ask<OkAck>(bob, "read", { room: "general", lastId: open.message.id })).ok);
    await mallory.waitFor(() => malloryHeard.length > 0, "mallory hears general's");
    assert.deepEqual(malloryHeard.map((event) => event.room), ["general"]);
  });
}

Deno.test("receipts: READ_RECEIPTS=false announces and lists nothing; markers still count unread", async () => {
  await using server = await startChat({ readReceipts: false });
  using alice = await ChatClient.join(server.url, "alice");
  using bob = await ChatClient.join(server.url, "bob");
  const heard = readsHeard(alice);
  const reactions: ReactionsEvent[] = [];
  alice.socket.on("message:reactions", (event: ReactionsEvent) => reactions.push(event));
  const sent = await alice.send({ message: "seen?" });
  assert.ok(sent.ok);
  assert.ok((await ask<OkAck>(bob, "read", { room: "general", lastId: sent.message.id })).ok);
  // A reaction's batch starts after the read's would have, with the same delay: its event
  // arriving first means no receipt was on its way.
  assert.ok((await ask<ReactAck>(bob, "react", { id: sent.message.id, emoji: "👀" })).ok);
  await alice.waitFor(() => reactions.length > 0, "the reaction");
  assert.deepEqual(heard, []);
  using carol = await ChatClient.join(server.url, "carol");
  assert.deepEqual(carol.loaded?.reads, []);
  const joined = await ask<JoinAck>(alice, "join", { room: "general" });
  assert.ok(joined.ok);
  assert.deepEqual(joined.reads, []);
  const rooms = await ask<RoomsAck>(bob, "rooms");
  assert.ok(rooms.ok);
  assert.equal(rooms.rooms.find((room) => room.room === "general")?.unread, 0);
});
