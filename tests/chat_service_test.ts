/**
 * The rules both doors share live once, in the chat service: each is run here through a socket
 * and through the server API, with the user who must not see the result.
 */
import assert from "node:assert/strict";
import { ChatClient, startChat, type TestServer } from "./helpers/chat_server.ts";
import type { ChatMessage } from "../src/types.ts";

const KEY = "test-api-key-0123456789";

/** Calls the server API. */
async function api(server: TestServer, method: string, path: string, body?: unknown) {
  const response = await fetch(`${server.url}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text === "" ? undefined : JSON.parse(text) };
}

/** The rooms a user's `rooms` list shows. */
async function roomsOf(client: ChatClient): Promise<string[]> {
  const ack = await client.socket.emitWithAck("rooms");
  assert.ok(ack.ok);
  return ack.rooms.map((summary: { room: string }) => summary.room);
}

Deno.test("service: a DM is in both users' room lists whichever door sent it, and no one else's", async () => {
  await using server = await startChat({ apiKey: KEY });
  using alice = await ChatClient.join(server.url, "alice");
  using bob = await ChatClient.join(server.url, "bob");
  using carol = await ChatClient.join(server.url, "carol");
  using dave = await ChatClient.join(server.url, "dave");
  const bySocket = await alice.send({ room: "dm:alice:bob", message: "from a socket" });
  assert.ok(bySocket.ok);
  const byApi = await api(server, "POST", "/rooms/dm:carol:dave/messages", {
    message: "from the backend",
  });
  assert.equal(byApi.status, 201);
  const membershipsRecorded = async () => {
    for (let attempt = 0; attempt < 50; attempt++) {
      const lists = await Promise.all([alice, bob, carol, dave].map(roomsOf));
      if (lists.every((rooms) => rooms.some((room) => room.startsWith("dm:")))) return lists;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error("the DMs never showed in the room lists");
  };
  const [aliceRooms, bobRooms, carolRooms, daveRooms] = await membershipsRecorded();
  assert.ok(aliceRooms.includes("dm:alice:bob") && bobRooms.includes("dm:alice:bob"));
  assert.ok(carolRooms.includes("dm:carol:dave") && daveRooms.includes("dm:carol:dave"));
  assert.ok(!carolRooms.includes("dm:alice:bob"), "carol does not see alice and bob's DM");
  assert.ok(!aliceRooms.includes("dm:carol:dave"), "alice does not see carol and dave's DM");
});

Deno.test("service: edit rules and the chat's clock hold through both doors", async () => {
  let skew = 0;
  await using server = await startChat(
    { apiKey: KEY, editWindowMs: 60_000 },
    { now: () => Date.now() + skew },
  );
  using alice = await ChatClient.join(server.url, "alice");
  using bob = await ChatClient.join(server.url, "bob");
  const updates: ChatMessage[] = [];
  bob.socket.on("message:updated", (message: ChatMessage) => updates.push(message));
  const sent = await alice.send({ message: "first" });
  assert.ok(sent.ok);
  const id = sent.message.id;
  // Someone else's message: refused to bob, allowed to the backend.
  const bobEdit = await bob.socket.emitWithAck("message:edit", { id, message: "bob's" });
  assert.equal(bobEdit.error?.code, "forbidden");
  // Past the window by the chat's clock: the author is refused; the backend is not, and its
  // edit is stamped with the chat's clock, not the wall clock.
  skew = 120_000;
  const late = await alice.socket.emitWithAck("message:edit", { id, message: "late" });
  assert.equal(late.error?.code, "forbidden");
  const before = Date.now() + skew;
  const edited = await api(server, "PATCH", `/messages/${id}`, { message: "by the backend" });
  assert.equal(edited.status, 200);
  assert.ok(Date.parse(edited.body.message.editedAt) >= before, "stamped by the chat's clock");
  await bob.waitFor(
    () => updates.some((message) => message.message === "by the backend"),
    "bob sees the backend's edit",
  );
  // An edit after a delete is not_found through either door.
  const removed = await api(server, "DELETE", `/messages/${id}`);
  assert.equal(removed.status, 200);
  skew = 0;
  const afterDelete = await alice.socket.emitWithAck("message:edit", { id, message: "again" });
  assert.equal(afterDelete.error?.code, "not_found");
  const apiAfterDelete = await api(server, "PATCH", `/messages/${id}`, { message: "again" });
  assert.equal(apiAfterDelete.status, 404);
});

Deno.test("service: a ban through the API answers once the user's sockets are closed", async () => {
  await using server = await startChat({ apiKey: KEY });
  using firstTab = await ChatClient.join(server.url, "mallory");
  using secondTab = await ChatClient.join(server.url, "mallory");
  const closed = [firstTab, secondTab].map((tab) =>
    new Promise((resolve) => tab.socket.once("disconnect", resolve))
  );
  const banned = await api(server, "PUT", "/users/mallory/ban", { reason: "spam" });
  assert.equal(banned.status, 200);
  const left = [...server.app.io.of("/").sockets.values()]
    .filter((socket) => socket.data.identity.user.id === "mallory");
  assert.equal(left.length, 0, "no socket of mallory is left when the API answers");
  await Promise.all(closed);
  const past = await api(server, "PUT", "/users/bob/ban", { until: Date.now() - 1000 });
  assert.equal(past.status, 400);
  // A time past what a store can expire at is the caller's error, not the server's.
  const farFuture = await api(server, "PUT", "/users/bob/ban", { until: 8.64e15 });
  assert.equal(farFuture.status, 400);
  assert.equal(farFuture.body.error.code, "invalid_payload");
});
