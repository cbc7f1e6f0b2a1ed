import assert from "node:assert/strict";
import { io as connect, type Socket } from "socket.io-client";
import { adapterFor, LeanAdapter, LeanSessionAwareAdapter } from "../src/cluster/adapter.ts";
import { startSocketIo, waitFor } from "./helpers/engine_server.ts";

type Transports = ("polling" | "websocket")[];

/**
 * Four clients in rooms a = {0, 1, 2} and b = {2, 3}; runs `broadcast` on the server and returns
 * what each client received of the `note` event before a `barrier` sent to each afterwards.
 */
async function receivedBy(
  recovery: boolean,
  transports: Transports,
  broadcast: (emit: (rooms: string[], except?: string[]) => void, ids: string[]) => void,
): Promise<string[][]> {
  const server = startSocketIo({}, {
    adapter: adapterFor({ recovery }),
    connectionStateRecovery: recovery ? { maxDisconnectionDuration: 1000 } : undefined,
  });
  const rooms = [["a"], ["a"], ["a", "b"], ["b"]];
  const clients: Socket[] = [];
  const received: string[][] = rooms.map(() => []);
  try {
    const sockets: { id: string; emit(event: string): void }[] = [];
    for (const [index, joined] of rooms.entries()) {
      const joinedOnServer = waitFor(server.io, "connection");
      const client = connect(server.origin, { transports, reconnection: false, forceNew: true });
      clients.push(client);
      client.on("note", (text: string) => received[index].push(text));
      const [socket] = await joinedOnServer as [
        { id: string; join(rooms: string[]): void; emit(event: string): void },
      ];
      socket.join(joined);
      sockets.push(socket);
      await waitFor(client, "connect");
    }
    broadcast((targets, except = []) => {
      server.io.to(targets).except(except).emit("note", `${targets}-${except.length}`);
    }, sockets.map((socket) => socket.id));
    // A connection delivers in order: a client that has the barrier has every note sent before it.
    const barriers = clients.map((client) => waitFor(client, "barrier"));
    for (const socket of sockets) socket.emit("barrier");
    await Promise.all(barriers);
    return received;
  } finally {
    for (const client of clients) client.disconnect();
    server.io.close();
    await server.close();
  }
}

for (const recovery of [false, true]) {
  for (const transports of [["websocket"], ["polling"]] as Transports[]) {
    const label = `${recovery ? "recovery" : "plain"} adapter over ${transports[0]}`;

    Deno.test(`adapter: ${label}: one room reaches exactly its members, once each`, async () => {
      const received = await receivedBy(recovery, transports, (emit) => emit(["a"]));
      assert.deepEqual(received, [["a-0"], ["a-0"], ["a-0"], []]);
    });

    Deno.test(`adapter: ${label}: two rooms reach a member of both once`, async () => {
      const received = await receivedBy(recovery, transports, (emit) => emit(["a", "b"]));
      assert.deepEqual(received, [["a,b-0"], ["a,b-0"], ["a,b-0"], ["a,b-0"]]);
    });

    Deno.test(`adapter: ${label}: one room with an exception skips the excepted socket`, async () => {
      const received = await receivedBy(
        recovery,
        transports,
        (emit, ids) => emit(["a"], [ids[1]]),
      );
      assert.deepEqual(received, [["a-1"], [], ["a-1"], []]);
    });
  }
}

Deno.test("adapter: adapterFor picks the recovery adapter only when recovery is on", () => {
  assert.equal(adapterFor({ recovery: true }), LeanSessionAwareAdapter);
  assert.equal(adapterFor({ recovery: false }), LeanAdapter);
});

Deno.test("adapter: an unknown room reaches nobody", async () => {
  const received = await receivedBy(false, ["websocket"], (emit) => emit(["nobody"]));
  assert.deepEqual(received, [[], [], [], []]);
});
