/**
 * `client.ts` against the real server: a typed stock client speaks every event as the server
 * understands it, and the client's event names are exactly the server's.
 */
import assert from "node:assert/strict";
import { io, type Socket } from "socket.io-client";
import type {
  ClientToServerEvents,
  LoadedInfo,
  MentionEvent,
  PresenceCount,
  RoomReadEvent,
  ServerToClientEvents,
} from "../client.ts";
import type { ClientToServerEvents as ServerSideEvents } from "../src/chat/types.ts";
import { startChat, tokenFor, within } from "./helpers/chat_server.ts";
import { closing } from "./helpers/dispose.ts";

/** Compiles only when the two sets of event names are the same. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameEvents: Same<keyof ClientToServerEvents, keyof ServerSideEvents> = true;

Deno.test("client.ts: a typed socket.io-client speaks every event the server answers", async () => {
  assert.equal(sameEvents, true);
  await using server = await startChat({ publicRooms: ["general", "team-*"] });
  using socket: Socket<ServerToClientEvents, ClientToServerEvents> & Disposable = closing(
    io(server.url, {
      auth: { token: await tokenFor("typed") },
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
    }),
  );
  socket.on("presence:count", (count: PresenceCount) => {
    assert.fail(`one user online is listed, not counted: ${count.online} ${count.listed}`);
  });
  const loaded = await within(
    new Promise<LoadedInfo>((resolve) => socket.once("loaded", resolve)),
    5000,
    "loaded",
  );
  assert.equal(loaded.room, "general");
  const joined = await socket.emitWithAck("join", { room: "team-a" });
  assert.ok(joined.ok && joined.room === "team-a");
  assert.ok(joined.ok && Array.isArray(joined.reads));
  const receipt = new Promise<RoomReadEvent>((resolve) => socket.once("room:read", resolve));
  socket.on("mention", (event: MentionEvent) => assert.fail(`no self-mention: ${event.room}`));
  const sent = await socket.emitWithAck("message", {
    room: "team-a",
    message: "typed @typed",
    mentions: ["typed"],
  });
  assert.ok(sent.ok && sent.message.room === "team-a");
  assert.deepEqual(sent.message.mentions, ["typed"]);
  const reacted = await socket.emitWithAck("react", {
    room: "team-a",
    id: sent.message.id,
    emoji: "👍",
  });
  assert.ok(reacted.ok && reacted.reactions[0].users[0] === "typed");
  const reply = await socket.emitWithAck("message", {
    room: "team-a",
    message: "a reply",
    replyTo: sent.message.id,
  });
  assert.ok(reply.ok && reply.message.replyTo?.id === sent.message.id);
  const thread = await socket.emitWithAck("thread", { room: "team-a", id: sent.message.id });
  assert.ok(thread.ok && thread.messages[0].id === reply.message.id);
  const page = await socket.emitWithAck("history", { room: "team-a", limit: 5 });
  assert.ok(page.ok && page.messages.length === 2);
  const read = await socket.emitWithAck("read", { room: "team-a", lastId: sent.message.id });
  assert.deepEqual(read, { ok: true });
  assert.deepEqual(await within(receipt, 5000, "room:read"), {
    room: "team-a",
    reads: [{ user: "typed", lastId: sent.message.id }],
  });
  const rooms = await socket.emitWithAck("rooms");
  assert.ok(rooms.ok && rooms.rooms.some((summary) => summary.room === "team-a"));
  const browsed = await socket.emitWithAck("rooms:browse", { prefix: "team-" });
  assert.ok(browsed.ok && browsed.rooms.some((entry) => entry.room === "team-a"));
  const refreshed = await socket.emitWithAck("auth:refresh", { token: await tokenFor("typed") });
  assert.ok(refreshed.ok);
  socket.emit("typing", { room: "team-a", typing: true });
  assert.deepEqual(await socket.emitWithAck("leave", { room: "team-a" }), { ok: true });
});
