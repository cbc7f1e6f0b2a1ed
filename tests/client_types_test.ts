/**
 * `client.ts` against the real server: a typed stock client speaks every event as the server
 * understands it, and the client's event names are exactly the server's.
 */
import assert from "node:assert/strict";
import { io, type Socket } from "socket.io-client";
import type { ClientToServerEvents, LoadedInfo, ServerToClientEvents } from "../client.ts";
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
  const loaded = await within(
    new Promise<LoadedInfo>((resolve) => socket.once("loaded", resolve)),
    5000,
    "loaded",
  );
  assert.equal(loaded.room, "general");
  const joined = await socket.emitWithAck("join", { room: "team-a" });
  assert.ok(joined.ok && joined.room === "team-a");
  const sent = await socket.emitWithAck("message", { room: "team-a", message: "typed" });
  assert.ok(sent.ok && sent.message.room === "team-a");
  const page = await socket.emitWithAck("history", { room: "team-a", limit: 5 });
  assert.ok(page.ok && page.messages.length === 1);
  const read = await socket.emitWithAck("read", { room: "team-a", lastId: sent.message.id });
  assert.deepEqual(read, { ok: true });
  const rooms = await socket.emitWithAck("rooms");
  assert.ok(rooms.ok && rooms.rooms.some((summary) => summary.room === "team-a"));
  const browsed = await socket.emitWithAck("rooms:browse", { prefix: "team-" });
  assert.ok(browsed.ok && browsed.rooms.some((entry) => entry.room === "team-a"));
  const refreshed = await socket.emitWithAck("auth:refresh", { token: await tokenFor("typed") });
  assert.ok(refreshed.ok);
  socket.emit("typing", { room: "team-a", typing: true });
  assert.deepEqual(await socket.emitWithAck("leave", { room: "team-a" }), { ok: true });
});
