import assert from "node:assert/strict";
import type { Socket as ServerSocket } from "socket.io";
import { io as connect, type ManagerOptions, type Socket } from "socket.io-client";
import {
  type SocketIoServer,
  startSocketIo,
  until,
  waitFor,
  within,
} from "./helpers/engine_server.ts";

type Transports = ManagerOptions["transports"];

/** Both ends of a stock-client connection; disposing it closes the client. */
interface Connection extends AsyncDisposable {
  client: Socket;
  socket: ServerSocket;
}

/** Connects the stock client (no reconnection) and waits for both ends of the connection. */
async function connectClient(
  target: SocketIoServer,
  transports?: Transports,
): Promise<Connection> {
  const connected = waitFor<[ServerSocket]>(target.io, "connection");
  const client = connect(target.origin, {
    reconnection: false,
    forceNew: true,
    ...(transports ? { transports } : {}),
  });
  try {
    await waitFor(client, "connect");
  } catch (error) {
    client.close();
    throw error;
  }
  const [socket] = await connected;
  return { client, socket, [Symbol.asyncDispose]: () => closeClient(client) };
}

/** Closes the client and waits for its disconnect (if it was still connected). */
async function closeClient(client: Socket): Promise<void> {
  if (client.connected) {
    const disconnected = waitFor(client, "disconnect");
    client.close();
    await disconnected;
  } else {
    client.close();
  }
}

/** `client`, closed as {@link closeClient} does on dispose. */
function closedOnDispose(client: Socket): Socket & AsyncDisposable {
  return Object.assign(client, { [Symbol.asyncDispose]: () => closeClient(client) });
}

function bytesOf(value: unknown): number[] {
  assert.ok(
    value instanceof ArrayBuffer || ArrayBuffer.isView(value),
    `expected binary, got ${Object.prototype.toString.call(value)}`,
  );
  const view = value instanceof ArrayBuffer
    ? new Uint8Array(value)
    : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return [...view];
}

/** Echoes text and binary with acks in one transport mode. */
async function assertEcho(transports: Transports, expectedTransport: string): Promise<void> {
  await using target = startSocketIo();
  await using connection = await connectClient(target, transports);
  const { client, socket } = connection;
  socket.on("echo", (payload: unknown, ack: (reply: unknown) => void) => ack(payload));
  if (transports === undefined) {
    // Default: polling first, then the client upgrades on its own.
    await until(() => client.io.engine.transport.name === "websocket", 3_000, "the upgrade");
    await until(() => socket.conn.transport.name === "websocket", 2_000, "the server upgrade");
  }
  assert.equal(client.io.engine.transport.name, expectedTransport);
  assert.equal(socket.conn.transport.name, expectedTransport);

  const text = await client.timeout(2_000).emitWithAck("echo", { text: "héllo", n: 1 });
  assert.deepEqual(text, { text: "héllo", n: 1 });

  const bytes = new Uint8Array([0, 1, 2, 127, 128, 255]);
  const reply = await client.timeout(2_000).emitWithAck("echo", { label: "bin", bytes });
  assert.equal(reply.label, "bin");
  assert.deepEqual(bytesOf(reply.bytes), [...bytes]);

  const fromServer = waitFor<[unknown]>(client, "blob");
  socket.emit("blob", new Uint8Array([7, 7, 7]));
  assert.deepEqual(bytesOf((await fromServer)[0]), [7, 7, 7]);
}

Deno.test("socketio: connects and echoes with ack over polling only", async () => {
  await assertEcho(["polling"], "polling");
});

Deno.test("socketio: connects and echoes with ack over websocket only", async () => {
  await assertEcho(["websocket"], "websocket");
});

Deno.test("socketio: by default connects over polling, upgrades and echoes over websocket", async () => {
  await assertEcho(undefined, "websocket");
});

Deno.test("socketio: socket.disconnect() reaches the client as io server disconnect", async () => {
  for (const transports of [["polling"], ["websocket"]] as Transports[]) {
    await using target = startSocketIo();
    await using connection = await connectClient(target, transports);
    const { client, socket } = connection;
    const disconnected = waitFor<[string]>(client, "disconnect");
    const serverSide = waitFor<[string]>(socket, "disconnect");
    socket.disconnect(true);
    assert.equal((await disconnected)[0], "io server disconnect");
    assert.equal((await serverSide)[0], "server namespace disconnect");
    await until(() => target.engine.clientsCount === 0, 2_000, "the session to close");
  }
});

Deno.test("socketio: an engine close between two polls reaches a polling client as transport close", async () => {
  await using target = startSocketIo();
  // The connect reply goes out with the next GET, so the close finds no GET waiting.
  target.io.on("connection", (socket) => socket.conn.close());
  await using client = closedOnDispose(connect(target.origin, {
    reconnection: false,
    forceNew: true,
    transports: ["polling"],
  }));
  const connected = waitFor(client, "connect");
  const disconnected = waitFor<[string]>(client, "disconnect");
  await connected;
  assert.equal((await disconnected)[0], "transport close");
  assert.equal(target.engine.clientsCount, 0);
});

Deno.test("socketio: a client disconnect reaches the server", async () => {
  for (const transports of [["polling"], ["websocket"]] as Transports[]) {
    await using target = startSocketIo();
    await using connection = await connectClient(target, transports);
    const { client, socket } = connection;
    const serverSide = waitFor<[string]>(socket, "disconnect");
    client.disconnect();
    assert.equal((await serverSide)[0], "client namespace disconnect");
    await until(() => target.engine.clientsCount === 0, 2_000, "the session to close");
  }
});

Deno.test("socketio: io.close() ends every connection", async () => {
  await using target = startSocketIo();
  await using first = await connectClient(target, ["polling"]);
  await using second = await connectClient(target, ["websocket"]);
  assert.equal(target.engine.clientsCount, 2);
  const firstGone = waitFor<[string]>(first.client, "disconnect");
  const secondGone = waitFor<[string]>(second.client, "disconnect");
  const serverSide = waitFor<[string]>(first.socket, "disconnect");
  await within(target.io.close(), 2_000, "io.close()");
  assert.equal((await serverSide)[0], "server shutting down");
  assert.equal((await firstGone)[0], "transport close");
  assert.equal((await secondGone)[0], "transport close");
  assert.equal(target.engine.clientsCount, 0);
  assert.equal(target.io.sockets.sockets.size, 0);
});

Deno.test("socketio: the heartbeat keeps an idle client connected", async () => {
  // A pong has 500 ms: the stock client answers at once, but a busy event loop can hold it back.
  await using target = startSocketIo({ pingInterval: 200, pingTimeout: 500 });
  await using connection = await connectClient(target);
  const { client, socket } = connection;
  let heartbeats = 0;
  socket.conn.on("heartbeat", () => heartbeats++);
  await until(() => heartbeats >= 3, 3_000, "three heartbeats");
  assert.ok(client.connected);
  assert.ok(socket.connected);
});

Deno.test("socketio: handshakeHeaders keeps only the named headers in socket.handshake", async () => {
  await using target = startSocketIo({ handshakeHeaders: ["Authorization", "origin"] });
  const connected = waitFor<[ServerSocket]>(target.io, "connection");
  await using _client = closedOnDispose(connect(target.origin, {
    reconnection: false,
    forceNew: true,
    transports: ["websocket"],
    extraHeaders: { Authorization: "Bearer kept", "X-Dropped": "dropped" },
  }));
  const [socket] = await connected;
  assert.deepEqual(socket.handshake.headers, { authorization: "Bearer kept" });
  assert.equal(socket.handshake.address, "127.0.0.1");
});
