import assert from "node:assert/strict";
import { ChatClient, sleep, startChat, tokenFor, within } from "./helpers/chat_server.ts";
import type { User } from "../src/types.ts";

/** Records presence events on a client. */
function watchPresence(client: ChatClient, self: string) {
  const events: string[] = [];
  let online: User[] = [];
  client.socket.on("presence", (users: User[]) => online = users);
  // Announcements are batched and may include the client's own user: leave that out here.
  const record = (sign: string) => (users: User[]) =>
    users.filter((user) => user.id !== self).forEach((user) => events.push(`${sign}${user.id}`));
  client.socket.on("user:joined", record("+"));
  client.socket.on("user:left", record("-"));
  return { events, online: () => online.map((user) => user.id) };
}

Deno.test("presence: a user with two tabs is listed once and leaves with the last tab", async () => {
  await using server = await startChat();
  using bob = new ChatClient(server.url, { auth: { token: await tokenFor("bob") } });
  const seenByBob = watchPresence(bob, "bob");
  await bob.waitFor(() => bob.loads.length > 0, "bob's load");
  using tab1 = await ChatClient.join(server.url, "alice");
  using tab2 = await ChatClient.join(server.url, "alice");
  using carol = new ChatClient(server.url, { auth: { token: await tokenFor("carol") } });
  const seenByCarol = watchPresence(carol, "carol");
  await carol.waitFor(() => seenByCarol.online().length > 0, "carol's presence");
  assert.deepEqual(seenByCarol.online(), ["bob", "alice", "carol"]);
  await bob.waitFor(() => seenByBob.events.length >= 2, "joins");
  await sleep(250);
  assert.deepEqual(seenByBob.events, ["+alice", "+carol"], "alice joined once");
  tab1.close();
  await sleep(150);
  assert.deepEqual(seenByBob.events, ["+alice", "+carol"], "one tab left: alice still online");
  tab2.close();
  await bob.waitFor(() => seenByBob.events.length === 3, "alice leaves");
  assert.deepEqual(seenByBob.events, ["+alice", "+carol", "-alice"]);
});

Deno.test("typing: rebroadcast to the others, throttled, never stored", async () => {
  await using server = await startChat();
  using alice = await ChatClient.join(server.url, "alice");
  using bob = await ChatClient.join(server.url, "bob");
  const seen: { user: User; typing: boolean }[] = [];
  bob.socket.on("typing", (event) => seen.push(event));
  let aliceSawHerself = false;
  alice.socket.on("typing", () => aliceSawHerself = true);
  for (let n = 0; n < 5; n++) alice.socket.emit("typing", { typing: true });
  alice.socket.emit("typing", { typing: false });
  await within(
    (async () => {
      while (seen.length < 2) await sleep(10);
    })(),
    5000,
    "typing events",
  );
  await sleep(100);
  assert.deepEqual(seen, [
    { room: "general", user: { id: "alice", name: "alice" }, typing: true },
    { room: "general", user: { id: "alice", name: "alice" }, typing: false },
  ]);
  assert.equal(aliceSawHerself, false);
  alice.socket.emit("typing", { typing: "yes" });
  await alice.waitFor(() => alice.errors.length === 1, "error");
  assert.equal(alice.errors[0].code, "invalid_payload");
  assert.deepEqual(await server.store.latest(10), []);
});

Deno.test("limits: the per-user rate limit trips with retryAfterMs and recovers", async () => {
  // The chat's clock stands still unless moved: nothing refills between the sends, however slow.
  let clock = Date.now();
  await using server = await startChat({ rateLimitPerMinute: 600, rateLimitBurst: 3 }, {
    now: () => clock,
  });
  using alice = await ChatClient.join(server.url, "alice");
  const acks = [];
  for (let n = 0; n < 5; n++) acks.push(await alice.send({ message: `${n}` }));
  assert.deepEqual(acks.map((ack) => ack.ok), [true, true, true, false, false]);
  const refused = acks[3];
  assert.ok(!refused.ok);
  assert.equal(refused.error.code, "rate_limited");
  const retryAfterMs = refused.error.retryAfterMs!;
  assert.ok(retryAfterMs > 0 && retryAfterMs <= 100, `retryAfterMs ${retryAfterMs}`);
  assert.equal((await server.store.latest(10)).length, 3, "refused messages are not stored");
  clock += retryAfterMs;
  const later = await alice.send({ message: "after waiting" });
  assert.equal(later.ok, true);
});

Deno.test("limits: MAX_SOCKETS_PER_USER refuses one connection too many", async () => {
  await using server = await startChat({ maxSocketsPerUser: 2 });
  using _firstTab = await ChatClient.join(server.url, "alice");
  using _secondTab = await ChatClient.join(server.url, "alice");
  using third = new ChatClient(server.url, { auth: { token: await tokenFor("alice") } });
  const error = await third.connectError();
  assert.equal(error.message, "too_many_connections");
  assert.equal(error.data?.code, "too_many_connections");
});

Deno.test("limits: handshakes per IP are limited with a 403", async () => {
  await using server = await startChat({ handshakeLimitPerMinute: 4 });
  const handshake = () => fetch(`${server.url}/socket.io/?EIO=4&transport=polling`);
  const first = await handshake();
  assert.equal(first.status, 200);
  await first.body?.cancel();
  const second = await handshake();
  assert.equal(second.status, 403);
  assert.deepEqual(await second.json(), {
    code: 4,
    message: "too many connections from this address",
  });
});

Deno.test("presence: clients connecting together each get a snapshot after their load, and converge", async () => {
  await using server = await startChat();
  const names = ["ann", "ben", "cat", "dan", "eve"];
  using opened = new DisposableStack();
  const clients = await Promise.all(names.map(async (name) => {
    const client = opened.use(
      new ChatClient(server.url, { auth: { token: await tokenFor(name) } }),
    );
    const online = new Set<string>();
    const order: string[] = [];
    client.socket.on("load", () => order.push("load"));
    client.socket.on("presence", (users: User[]) => {
      order.push("presence");
      online.clear();
      users.forEach((user) => online.add(user.id));
    });
    client.socket.on("user:joined", (users: User[]) => users.forEach((u) => online.add(u.id)));
    client.socket.on("user:left", (users: User[]) => users.forEach((u) => online.delete(u.id)));
    return { client, online, order };
  }));
  for (const { client, online, order } of clients) {
    await client.waitFor(() => online.size === names.length, "everyone online");
    assert.deepEqual(order.slice(0, 2), ["load", "presence"]);
    assert.equal(order.filter((event) => event === "presence").length, 1);
  }
});

Deno.test("presence: MAX_LISTED_USERS bounds the snapshot and a join's online list; room presence still names everyone", async () => {
  await using server = await startChat({ maxListedUsers: 2, publicRooms: ["general", "team-*"] });
  using alice = await ChatClient.join(server.url, "alice");
  using bob = await ChatClient.join(server.url, "bob");
  using carol = await ChatClient.join(server.url, "carol");
  for (const client of [alice, bob, carol]) {
    const ack = await client.socket.emitWithAck("join", { room: "team-red" });
    assert.equal(ack.ok, true);
  }
  const dave = new ChatClient(server.url, { auth: { token: await tokenFor("dave") } });
  using _dave = dave;
  const seenByDave = watchPresence(dave, "dave");
  await dave.waitFor(() => seenByDave.online().length > 0, "dave's presence");
  assert.equal(seenByDave.online().length, 2, "the snapshot lists two of the four online");
  const join = await dave.socket.emitWithAck("join", { room: "team-red" });
  assert.equal(join.ok, true);
  assert.equal(join.online.length, 2, "the join ack lists two of the four in the room");
  const inTeamRed: string[] = [];
  alice.socket.on("room:presence", (event: { joined: User[]; left: User[] }) => {
    event.joined.forEach((user) => inTeamRed.push(`+${user.id}`));
    event.left.forEach((user) => inTeamRed.push(`-${user.id}`));
  });
  using erin = await ChatClient.join(server.url, "erin");
  assert.equal((await erin.socket.emitWithAck("join", { room: "team-red" })).ok, true);
  await alice.waitFor(() => inTeamRed.includes("+erin"), "erin's arrival in team-red");
  erin.close();
  await alice.waitFor(() => inTeamRed.includes("-erin"), "erin's leaving team-red");
});

/**
 * Every presence event a client gets, in order: `+id`, `-id`, `count:N:listed`, `list:ids`. With
 * connection state recovery, socket.io appends an offset argument to each broadcast.
 */
function presenceLog(client: ChatClient, recovery: boolean): string[] {
  const log: string[] = [];
  const ids = (users: User[]) => users.map((user) => user.id).sort().join(",");
  client.socket.on("presence", (users: User[]) => log.push(`list:${ids(users)}`));
  client.socket.on("user:joined", (users: User[]) => users.forEach((u) => log.push(`+${u.id}`)));
  client.socket.on("user:left", (users: User[]) => users.forEach((u) => log.push(`-${u.id}`)));
  client.socket.on("presence:count", (...args: unknown[]) => {
    assert.equal(args.length, recovery ? 2 : 1, "one argument");
    const { online, listed, ...rest } = args[0] as { online: number; listed: boolean };
    assert.deepEqual(rest, {});
    log.push(`count:${online}:${listed}`);
  });
  return log;
}

for (const recovery of [false, true]) {
  Deno.test(`presence: above MAX_LISTED_USERS online, joins and leaves are counted, not named, until 90 % of it${recovery ? " (connection recovery: socket.io's broadcasts)" : ""}`, async () => {
    await using server = await startChat({
      maxListedUsers: 3,
      connectionRecoveryMs: recovery ? 60_000 : 0,
    }, { presenceHoldMs: 0 });
    using u1 = new ChatClient(server.url, { auth: { token: await tokenFor("u1") } });
    const seen = presenceLog(u1, recovery);
    await u1.waitFor(() => seen.length > 0, "u1's presence");
    const connected = new Map<string, ChatClient>();
    const expect = async (events: string[], what: string) => {
      await u1.waitFor(() => seen.length >= events.length, what);
      await sleep(150);
      assert.deepEqual(seen.splice(0), events, what);
    };
    const come = async (id: string, events: string[]) => {
      connected.set(id, await ChatClient.join(server.url, id));
      await expect(events, `${id} comes`);
    };
    const go = async (id: string, events: string[]) => {
      connected.get(id)!.close();
      connected.delete(id);
      await expect(events, `${id} goes`);
    };
    try {
      await expect(["list:u1", "+u1"], "u1's snapshot, then its own arrival");
      await come("u2", ["+u2"]);
      await come("u3", ["+u3"]);
      await come("u4", ["count:4:false"]);
      await come("u5", ["count:5:false"]);
      // A newcomer gets a sample of the list, then the count that says it is one.
      using u6 = new ChatClient(server.url, { auth: { token: await tokenFor("u6") } });
      const newcomer = presenceLog(u6, recovery);
      await u6.waitFor(() => newcomer.length >= 2, "u6's snapshot and count");
      await sleep(150);
      assert.equal(newcomer.length, 2, `${newcomer}`);
      assert.match(newcomer[0], /^list:(u\d,){2}u\d$/, "three of the six");
      assert.equal(newcomer[1], "count:6:false");
      await expect(["count:6:false"], "u6 comes");
      u6.close();
      await expect(["count:5:false"], "u6 goes");
      await go("u5", ["count:4:false"]);
      await go("u4", ["count:3:false"]);
      // 2 is 90 % of 3, rounded down: the list again, whole, and then named changes.
      await go("u3", ["count:2:true", "list:u1,u2"]);
      await come("u7", ["+u7"]);
      await go("u7", ["-u7"]);
    } finally {
      for (const client of connected.values()) client.close();
    }
  });
}

Deno.test("presence: users going over MAX_LISTED_USERS and straight back keep the feed counting for its hold, then everyone gets the list once", async () => {
  const holdMs = 1500;
  await using server = await startChat({ maxListedUsers: 3 }, { presenceHoldMs: holdMs });
  using u1 = new ChatClient(server.url, { auth: { token: await tokenFor("u1") } });
  const seen = presenceLog(u1, false);
  using _u2 = await ChatClient.join(server.url, "u2");
  await u1.waitFor(() => seen.includes("+u2"), "u2 named");
  // Two more together, then gone together: over the limit and back under 90 % of it.
  const flappers = await Promise.all(["f1", "f2"].map((id) => ChatClient.join(server.url, id)));
  await u1.waitFor(() => seen.includes("count:4:false"), "counted");
  const counting = performance.now();
  seen.length = 0;
  flappers.forEach((client) => client.close());
  await u1.waitFor(() => seen.includes("count:2:false"), "under the limit, still counted");
  assert.ok(!seen.some((event) => event.startsWith("list:")), "no list within the hold");
  // Nobody comes or goes after that: the list comes once the hold is over, and only once.
  await u1.waitFor(() => seen.includes("list:u1,u2"), "the list after the hold", holdMs + 3000);
  assert.ok(performance.now() - counting >= holdMs - 150, "not before the hold ended");
  await sleep(300);
  assert.deepEqual(seen.slice(-2), ["count:2:true", "list:u1,u2"]);
  assert.equal(seen.filter((event) => event.startsWith("list:")).length, 1, `${seen}`);
});

Deno.test("presence: a join ack's list of the default room plus the changes after it stays right when a user blinks meanwhile", async () => {
  await using server = await startChat({ connectionRecoveryMs: 0 });
  using carol = await ChatClient.join(server.url, "carol");
  const first = await ChatClient.join(server.url, "xavier");
  await sleep(300);
  // Carol keeps the list from her `join` ack, then applies the changes that follow it.
  const view = new Set<string>();
  const after = (sign: 1 | -1) => (users: User[]) => {
    for (const { id } of users) sign > 0 ? view.add(id) : view.delete(id);
  };
  carol.socket.on("user:joined", after(1));
  carol.socket.on("user:left", after(-1));
  // Xavier leaves and comes back within one batch, around Carol's join: the leave is in her list.
  first.close();
  await sleep(15);
  const ack = await carol.socket.emitWithAck("join", { room: "general" });
  assert.ok(ack.ok);
  view.clear();
  for (const user of ack.online as User[]) view.add(user.id);
  using second = new ChatClient(server.url, { auth: { token: await tokenFor("xavier") } });
  await second.waitFor(() => second.loads.length > 0, "xavier's return");
  // His return is announced within a batch or two; nothing that comes after may undo it.
  await carol.waitFor(
    () => view.has("xavier") && view.size === 2,
    `carol's view to hold xavier again (${[...view]})`,
  );
  await sleep(300);
  assert.deepEqual([...view].sort(), ["carol", "xavier"]);
});

Deno.test("presence: a socket gone before it arrived is never listed, however slow the ban's re-read", async () => {
  await using server = await startChat();
  const getBan = server.store.getBan.bind(server.store);
  let slow = false;
  server.store.getBan = async (userId: string) => {
    if (slow) await new Promise((resolve) => setTimeout(resolve, 30));
    return await getBan(userId);
  };
  const token = await tokenFor("ghost");
  for (const delay of [false, true]) {
    slow = delay;
    for (let n = 0; n < 3; n++) {
      const ghost = new ChatClient(server.url, { auth: { token }, transports: ["websocket"] });
      await new Promise<void>((resolve) => ghost.socket.once("connect", () => resolve()));
      ghost.close();
    }
  }
  slow = false;
  for (let n = 0; n < 100 && server.app.io.of("/").sockets.size > 0; n++) await sleep(20);
  assert.equal(server.app.io.of("/").sockets.size, 0, "every ghost socket gone");
  // Whatever the ghosts' arrivals were still doing is done once a newcomer's snapshot goes out.
  await sleep(100);
  using observer = new ChatClient(server.url, { auth: { token: await tokenFor("observer") } });
  let snapshot: User[] | undefined;
  observer.socket.on("presence", (users: User[]) => snapshot = users);
  await observer.waitFor(() => snapshot !== undefined, "the presence snapshot");
  assert.deepEqual(snapshot!.map((user) => user.id), ["observer"]);
});
