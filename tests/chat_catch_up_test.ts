/**
 * The catch-up on connect (`auth.lastIds`, `auth.lastId`) spends the user's budgets like the
 * events that fetch the same: a room besides the default is a `join`, a catch-up past a join's
 * history is `history` pages, per user across sockets and reconnects.
 */
import assert from "node:assert/strict";
import { ChatClient, startChat, tokenFor } from "./helpers/chat_server.ts";
import type { LoadedInfo } from "../src/chat/mod.ts";
import type { ChatMessage } from "../src/types.ts";

const WRITER = { id: "writer", name: "Writer" };

/** Connects `sub` with `auth` extras and waits until `rooms` rooms have loaded or been refused. */
async function connectWith(
  url: string,
  sub: string,
  auth: Record<string, unknown>,
  settled: (client: ChatClient, loaded: LoadedInfo[]) => boolean,
): Promise<{ client: ChatClient; loaded: LoadedInfo[]; messages: ChatMessage[] }> {
  const loaded: LoadedInfo[] = [];
  const messages: ChatMessage[] = [];
  const client = new ChatClient(url, {
    auth: { token: await tokenFor(sub), ...auth },
    transports: ["websocket"],
  });
  client.socket.on("loaded", (info: LoadedInfo) => loaded.push(info));
  client.socket.on("load", (batch: ChatMessage[]) => messages.push(...batch));
  await client.waitFor(() => settled(client, loaded), `${sub}'s rooms`);
  return { client, loaded, messages };
}

Deno.test("catch-up: rooms named in lastIds spend the user's join budget, across sockets", async () => {
  await using server = await startChat({
    publicRooms: ["general", "room-*"],
    handshakeLimitPerMinute: 0,
    maxSocketsPerUser: 10,
    joinLimitPerMinute: 60,
    // Every refusal as an `error` event, so the test can count them.
    errorEventsPerSecond: 1000,
  });
  const rooms = Array.from({ length: 30 }, (_, n) => `room-${n}`);
  const marks = await server.store.appendMany(
    rooms.map((room) => ({ room, user: WRITER, message: `first in ${room}` })),
  );
  const lastIds = Object.fromEntries(marks.map(({ message }) => [message.room, message.id]));
  const clients: ChatClient[] = [];
  let entered = 0;
  let refused = 0;
  try {
    for (let socket = 0; socket < 4; socket++) {
      const { client, loaded } = await connectWith(
        server.url,
        "mallory",
        { lastIds },
        (client, loaded) =>
          loaded.length + client.errors.filter((e) => e.code === "rate_limited").length >= 31,
      );
      clients.push(client);
      entered += loaded.filter((info) => info.room !== "general").length;
      refused += client.errors.filter((error) => error.code === "rate_limited").length;
      assert.ok(loaded.some((info) => info.room === "general"), "the default room always loads");
    }
    // A burst of 10 joins (60 a minute), and a little refill while the sockets connect.
    assert.ok(entered >= 10 && entered <= 12, `${entered} rooms entered by 4 sockets`);
    assert.equal(entered + refused, 4 * 30);
    const refusal = clients[3].errors.find((error) => error.code === "rate_limited");
    assert.match(refusal?.message ?? "", /room "room-\d+" was not rejoined/);
    assert.match(
      String((refusal as { room?: string })?.room),
      /^room-\d+$/,
      "the refusal names its room",
    );
    // Someone else's budget is whole.
    const other = await connectWith(
      server.url,
      "alice",
      { lastIds },
      (_, loaded) => loaded.length >= 11,
    );
    clients.push(other.client);
    assert.equal(other.loaded.length, 11);
  } finally {
    for (const client of clients) client.close();
  }
});

Deno.test("catch-up: a long catch-up spends history pages; a short one costs nothing", async () => {
  await using server = await startChat({
    handshakeLimitPerMinute: 0,
    catchupLimit: 1000,
    historyLimit: 50,
    historyLimitPerMinute: 60,
  });
  const [mark] = await server.store.appendMany([{ user: WRITER, message: "last seen" }]);
  for (let batch = 0; batch < 10; batch++) {
    await server.store.appendMany(
      Array.from({ length: 100 }, (_, n) => ({ user: WRITER, message: `${batch * 100 + n}` })),
    );
  }
  const lastId = mark.message.id;
  const done = (_: ChatClient, loaded: LoadedInfo[]) => loaded.length >= 1;
  const clients: ChatClient[] = [];
  try {
    // The whole gap: 950 past a join's 50 is ten pages, the whole burst.
    const first = await connectWith(server.url, "mallory", { lastId }, done);
    clients.push(first.client);
    assert.equal(first.messages.length, 1000);
    assert.deepEqual(first.loaded[0], {
      room: "general",
      hasMore: false,
      catchUp: true,
      reads: [],
    });
    // The budget is spent: the next catch-up gets a join's worth, and says there is more.
    const second = await connectWith(server.url, "mallory", { lastId }, done);
    clients.push(second.client);
    assert.equal(second.messages.length, 50);
    assert.deepEqual(second.loaded[0], {
      room: "general",
      hasMore: true,
      catchUp: true,
      reads: [],
    });
    const page = await second.client.socket.emitWithAck("history", { limit: 10 });
    assert.equal(page.ok, false);
    assert.equal(page.error.code, "rate_limited");

    // Another user's short catch-up gives back what it did not use.
    const recent = (await server.store.latest(11)).at(0)!.id;
    const short = await connectWith(server.url, "alice", { lastId: recent }, done);
    clients.push(short.client);
    assert.equal(short.messages.length, 10);
    for (let n = 0; n < 10; n++) {
      const ack = await short.client.socket.emitWithAck("history", { limit: 1 });
      assert.ok(ack.ok, `alice's history page ${n} after a short catch-up`);
    }
  } finally {
    for (const client of clients) client.close();
  }
});
