/**
 * The socket.io internals the chat reaches into are all still there (this fails loudly on a
 * socket.io upgrade that changes one), and a missing one is named.
 */
import assert from "node:assert/strict";
import type { Socket } from "socket.io";
import { checkInternals } from "../src/cluster/socketio_internals.ts";
import { ChatClient, startChat } from "./helpers/chat_server.ts";

Deno.test("socket.io internals: every one used is there on a real connection", async () => {
  await using server = await startChat();
  using alice = await ChatClient.join(server.url, "alice");
  const [socket] = server.app.io.of("/").sockets.values();
  assert.ok(socket, "alice's socket");
  checkInternals(socket);
  assert.ok(alice.loaded, "the history, written pre-encoded, arrived");
});

Deno.test("socket.io internals: a changed one is named in the error", () => {
  const socket = {
    client: { encoder: { encode() {} }, decoder: { on() {}, off() {} }, nsps: new Map() },
  } as unknown as Socket;
  assert.throws(
    () => checkInternals(socket),
    /socket\.io internals changed: client\._packet, client\.ondecoded/,
  );
});
