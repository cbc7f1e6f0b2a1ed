/**
 * The `MessageStore` contract, run against every backend: Deno KV in memory, a KV file, and
 * PostgreSQL (a throwaway cluster, one for this file; its tests skip themselves, saying so, when
 * PostgreSQL is not installed). What only one backend does is tested in its own file.
 */
import assert from "node:assert/strict";
import {
  createIdGenerator,
  isMessageId,
  type MessageStore,
  openKvStore,
  type OutboxDraft,
  type OutboxWriter,
  StoreError,
} from "../src/store/mod.ts";
import { openPostgresStore } from "../src/store/postgres.ts";
import { MAX_EVENT_BYTES, storedBytes } from "../src/hooks/events.ts";
import { MissedMessages } from "../src/hooks/missed.ts";
import type { ChatMessage } from "../src/types.ts";
import { tempDir } from "./helpers/dispose.ts";
import { hasPostgres, type PostgresServer, startPostgres } from "./helpers/postgres_server.ts";

/** The options every backend takes alike. */
interface ContractOptions {
  now?: () => number;
  maxAgeMs?: number;
  maxCount?: number;
  membershipMaxAgeMs?: number;
  peerMembershipsPerMinute?: number;
  defaultRoom?: string;
}

/** A store as the tests hold it: closed by `await using`, trimmed on demand. */
type ContractStore = MessageStore & AsyncDisposable & { trim(room?: string): Promise<void> };

/** One test's empty storage, on which stores are opened (and reopened, where it keeps data). */
interface Storage extends AsyncDisposable {
  open(options?: ContractOptions): Promise<ContractStore>;
}

interface Backend {
  name: string;
  /** Why its tests are skipped, when they are. */
  missing?: string;
  /** Stores opened on one storage see each other's writes, and a reopened one finds them. */
  shared: boolean;
  /** Ids are one order per room across stores sharing the storage (assigned in the commit). */
  ordersAcrossStores: boolean;
  storage(): Promise<Storage>;
}

function disposable<T extends MessageStore & { trim(room?: string): Promise<void> }>(
  store: T,
): T & AsyncDisposable {
  return Object.assign(store, { [Symbol.asyncDispose]: async () => await store.close() });
}

function kvOptions(options: ContractOptions) {
  // The KV store's ids come from a generator: give it the same clock.
  return options.now ? { ...options, generateId: createIdGenerator(options.now) } : options;
}

let postgresServer: PostgresServer | undefined;
if (hasPostgres()) {
  Deno.test.beforeAll(async () => {
    postgresServer = await startPostgres();
  });
  Deno.test.afterAll(async () => {
    await postgresServer?.[Symbol.asyncDispose]();
  });
}

const BACKENDS: Backend[] = [
  {
    name: "kv :memory:",
    shared: false,
    ordersAcrossStores: false,
    storage: () =>
      Promise.resolve({
        open: async (options = {}) => disposable(await openKvStore(":memory:", kvOptions(options))),
        [Symbol.asyncDispose]: () => Promise.resolve(),
      }),
  },
  {
    name: "kv file",
    shared: true,
    // Each store's ids come from its own clock and instance number.
    ordersAcrossStores: false,
    async storage() {
      const temp = await tempDir({ prefix: "chat_contract_" });
      return {
        open: async (options = {}) =>
          disposable(await openKvStore(`${temp.path}/chat.kv`, kvOptions(options))),
        [Symbol.asyncDispose]: () => temp[Symbol.asyncDispose](),
      };
    },
  },
  {
    name: "postgres",
    missing: hasPostgres() ? undefined : "/usr/lib/postgresql/15/bin is not installed",
    shared: true,
    ordersAcrossStores: true,
    async storage() {
      const url = await postgresServer!.createDatabase();
      return {
        open: async (options = {}) => await openPostgresStore(url, { poolSize: 4, ...options }),
        [Symbol.asyncDispose]: () => Promise.resolve(),
      };
    },
  },
];

/** Which backends a test runs on. */
interface Needs {
  shared?: boolean;
  ordersAcrossStores?: boolean;
}

/** Registers `name` once per backend that meets `needs`; a missing backend's test says why. */
function contract(
  name: string,
  needs: Needs,
  run: (storage: Storage) => Promise<void>,
): void;
function contract(name: string, run: (storage: Storage) => Promise<void>): void;
function contract(
  name: string,
  needsOrRun: Needs | ((storage: Storage) => Promise<void>),
  maybeRun?: (storage: Storage) => Promise<void>,
): void {
  const needs = typeof needsOrRun === "function" ? {} : needsOrRun;
  const run = typeof needsOrRun === "function" ? needsOrRun : maybeRun!;
  for (const backend of BACKENDS) {
    if (needs.shared && !backend.shared) continue;
    if (needs.ordersAcrossStores && !backend.ordersAcrossStores) continue;
    Deno.test({
      name: backend.missing
        ? `store (${backend.name}): ${name} — skipped because ${backend.missing}`
        : `store (${backend.name}): ${name}`,
      ignore: backend.missing !== undefined,
      async fn() {
        await using storage = await backend.storage();
        await run(storage);
      },
    });
  }
}

const ada = { id: "u1", name: "Ada" };
const texts = (messages: ChatMessage[]) => messages.map((message) => message.message);
const DAY = 86_400_000;

async function appendEach(store: MessageStore, count: number, room?: string) {
  const saved: ChatMessage[] = [];
  for (let index = 0; index < count; index++) {
    saved.push(await store.append({ room, user: ada, message: `message ${index}` }));
  }
  return saved;
}

contract("append returns the message with an id and createdAt", async (storage) => {
  await using store = await storage.open();
  const before = Date.now();
  const saved = await store.append({ user: ada, message: "hello" });
  assert.ok(isMessageId(saved.id));
  assert.deepEqual(saved.user, ada);
  assert.equal(saved.message, "hello");
  const createdAt = Date.parse(saved.createdAt);
  assert.equal(new Date(createdAt).toISOString(), saved.createdAt);
  assert.ok(createdAt >= before && createdAt <= Date.now());
  assert.deepEqual(await store.latest(10), [saved]);
  assert.deepEqual(await store.findMessage(saved.id), saved);
});

contract("latest returns the newest messages, oldest first", async (storage) => {
  await using store = await storage.open();
  assert.deepEqual(await store.latest(5), []);
  const saved = await appendEach(store, 12);
  assert.deepEqual(await store.latest(0), []);
  assert.deepEqual(await store.latest(1), saved.slice(-1));
  assert.deepEqual(await store.latest(5), saved.slice(-5));
  assert.deepEqual(await store.latest(50), saved);
});

contract(
  "messages in the same millisecond, or after the clock stepped back, keep their order",
  async (storage) => {
    let now = 1_700_000_000_000;
    await using store = await storage.open({ now: () => now });
    const saved = await appendEach(store, 30);
    now -= 5000;
    saved.push(...await appendEach(store, 5));
    assert.deepEqual(texts(await store.latest(50)), texts(saved));
    const ids = saved.map((message) => message.id);
    assert.deepEqual([...ids].sort(), ids);
    assert.equal(new Set(ids).size, ids.length);
    assert.ok(
      saved.slice(0, 30).every((message) => message.createdAt === "2023-11-14T22:13:20.000Z"),
    );
  },
);

contract("after and before exclude the given id and page the whole history", async (storage) => {
  await using store = await storage.open();
  const saved = (await store.appendMany(
    [...Array(120)].map((_, index) => ({ user: ada, message: `message ${index}` })),
  )).map((result) => result.message);
  assert.deepEqual(await store.after(saved[49].id, 10), saved.slice(50, 60));
  assert.deepEqual(await store.after(saved[0].id), saved.slice(1));
  assert.deepEqual(await store.after(saved[119].id), []);
  assert.deepEqual(await store.before(saved[50].id, 10), saved.slice(40, 50));
  assert.deepEqual(await store.before(saved[5].id, 10), saved.slice(0, 5));
  assert.deepEqual(await store.before(saved[0].id, 10), []);
  assert.deepEqual(await store.before(saved[50].id, 0), []);

  const forward: ChatMessage[] = [];
  let cursor = createIdGenerator(() => 0)();
  for (;;) {
    const page = await store.after(cursor, 17);
    if (page.length === 0) break;
    forward.push(...page);
    cursor = page[page.length - 1].id;
  }
  assert.deepEqual(forward, saved);

  const backward = await store.latest(17);
  for (;;) {
    const page = await store.before(backward[0].id, 17);
    if (page.length === 0) break;
    backward.unshift(...page);
  }
  assert.deepEqual(backward, saved);
});

contract("after and before accept ids of messages that were never stored", async (storage) => {
  await using store = await storage.open();
  const saved = await appendEach(store, 3);
  const ancient = createIdGenerator(() => 0)();
  assert.deepEqual(await store.after(ancient), saved);
  assert.deepEqual(await store.before(ancient, 10), []);
  assert.equal(await store.findMessage(ancient), undefined);
  assert.equal(await store.findMessage("not-an-id"), undefined);
});

contract("malformed ids and limits are refused with a StoreError code", async (storage) => {
  await using store = await storage.open();
  const code = (expected: string) => (error: unknown) =>
    error instanceof StoreError && error.code === expected;
  for (const id of ["", "42", "not-an-id", "01arz3ndektsv4rrffq69g5fav"]) {
    await assert.rejects(store.after(id), code("invalid_id"));
    await assert.rejects(store.before(id, 5), code("invalid_id"));
    await assert.rejects(store.countAfter("general", id, 5), code("invalid_id"));
  }
  await assert.rejects(store.latest(-1), code("invalid_limit"));
  await assert.rejects(store.latest(1.5), code("invalid_limit"));
  await assert.rejects(store.memberships("u", -1), code("invalid_limit"));
});

contract(
  "any string is stored as it was sent: NUL, lone surrogates, private use",
  async (storage) => {
    await using store = await storage.open();
    const odd = [
      "a\u0000b",
      "\uD800 lone",
      "tail \uDC00",
      "\uE000 and \uE0000041",
      "😀 ok",
      "\\u0000",
    ];
    const user = { id: "u\uE000", name: "N\u0000me\uD800" };
    const saved = await store.appendMany(odd.map((message, n) => ({
      user,
      message,
      clientId: `c\u0000${n}`,
    })));
    const history = await store.latest(10);
    assert.deepEqual(texts(history), odd);
    assert.deepEqual(history[1].user, user);
    const again = await store.append({ user, message: "retry", clientId: "c\u00001" });
    assert.deepEqual(again, saved[1].message);
    const edited = await store.changeMessage(
      saved[0].message.id,
      { message: "\u0000!" },
      new Date(),
    );
    assert.equal(edited?.message, "\u0000!");
    await store.setBan("u\uE000", { since: 1, reason: "r\u0000" });
    assert.deepEqual(await store.getBan("u\uE000"), { since: 1, reason: "r\u0000" });
  },
);

contract("a history is kept across close and reopen", { shared: true }, async (storage) => {
  let saved: ChatMessage[];
  {
    await using first = await storage.open();
    saved = await appendEach(first, 5);
    await first.append({ user: ada, message: "with a clientId", clientId: "abc" });
  }
  await using second = await storage.open();
  const history = await second.latest(10);
  assert.deepEqual(history.slice(0, 5), saved);
  const [retry] = await second.appendMany([{ user: ada, message: "again", clientId: "abc" }]);
  assert.deepEqual(retry, { message: history[5], created: false }, "clientIds are remembered");
  const next = await second.append({ user: ada, message: "after reopen" });
  assert.ok(next.id > history[5].id);
  assert.deepEqual(await second.after(history[5].id), [next]);
});

contract("appendMany stores a large batch in order", async (storage) => {
  await using store = await storage.open();
  const inputs = [...Array(1200)].map((_, index) => ({
    user: ada,
    message: `${index} ${"x".repeat(index % 7 === 0 ? 1500 : 10)}`,
  }));
  const results = await store.appendMany(inputs);
  assert.ok(results.every((result) => result.created));
  const saved = results.map((result) => result.message);
  assert.deepEqual(texts(saved), inputs.map((input) => input.message));
  const ids = saved.map((message) => message.id);
  assert.deepEqual(ids, [...ids].sort());
  assert.equal(new Set(ids).size, ids.length);
  assert.deepEqual(await store.after(ids[0], 2000), saved.slice(1));
  assert.deepEqual(await store.appendMany([]), []);
});

contract("the server API's clientIds are a key space apart from the sockets'", async (storage) => {
  await using store = await storage.open();
  const [bySocket, byApi] = await store.appendMany([
    { user: ada, message: "from ada's socket", clientId: "cid-1" },
    { user: ada, message: "from the API as ada", clientId: "cid-1", source: "api" },
  ]);
  assert.ok(bySocket.created && byApi.created, "neither is the other's retry");
  const apiRetry = await store.appendMany([
    { user: ada, message: "API retry", clientId: "cid-1", source: "api" },
  ]);
  assert.deepEqual(apiRetry, [{ message: byApi.message, created: false }]);
  const socketRetry = await store.append({ user: ada, message: "socket retry", clientId: "cid-1" });
  assert.deepEqual(socketRetry, bySocket.message);
});

contract(
  "a repeated clientId stores one message, per user, within and across batches",
  async (storage) => {
    await using store = await storage.open();
    const bob = { id: "u2", name: "Bob" };
    const first = await store.appendMany([
      { user: ada, message: "once", clientId: "c1" },
      { user: ada, message: "once (retry in the same batch)", clientId: "c1" },
      { user: bob, message: "bob's c1", clientId: "c1" },
      { user: ada, message: "no clientId" },
    ]);
    assert.deepEqual(first.map((r) => r.created), [true, false, true, true]);
    assert.equal(first[1].message, first[0].message);
    const again = await store.append({ user: ada, message: "once (later retry)", clientId: "c1" });
    assert.deepEqual(again, first[0].message);
    assert.deepEqual(texts(await store.latest(10)), ["once", "bob's c1", "no clientId"]);
    // 450 messages with 300 distinct clientIds: a repeat returns the first.
    const many = await store.appendMany([...Array(450)].map((_, n) => ({
      user: ada,
      message: `m${n}`,
      clientId: `k${n % 300}`,
    })));
    assert.equal(many.filter((result) => result.created).length, 300);
    many.slice(300).forEach((result, index) => {
      assert.equal(result.created, false);
      assert.deepEqual(result.message, many[index].message);
    });
  },
);

contract("a clientId retried in another room answers with the first message", async (storage) => {
  await using store = await storage.open();
  const [first] = await store.appendMany([{
    room: "team",
    user: ada,
    message: "a",
    clientId: "c",
  }]);
  const [again] = await store.appendMany([{
    room: "other",
    user: ada,
    message: "a",
    clientId: "c",
  }]);
  assert.equal(again.created, false);
  assert.deepEqual(again.message, first.message);
  assert.deepEqual(await store.latest(10, undefined, "other"), []);
});

contract(
  "two stores on one storage share their clientIds, even sent at once",
  { shared: true },
  async (storage) => {
    await using first = await storage.open();
    await using second = await storage.open();
    const saved = await first.append({ user: ada, message: "shared", clientId: "same" });
    assert.deepEqual(
      await second.append({ user: ada, message: "shared", clientId: "same" }),
      saved,
    );
    const racing = await Promise.all(
      [...Array(10)].map((_, n) =>
        (n % 2 === 0 ? first : second).appendMany([
          { user: ada, message: `race ${n}`, clientId: `race-${Math.floor(n / 2)}` },
        ])
      ),
    );
    const created = racing.flat().filter((result) => result.created);
    assert.equal(created.length, 5);
    assert.equal((await second.latest(100)).length, 6);
  },
);

contract("latest(limit, afterId) returns the newest messages after an id", async (storage) => {
  await using store = await storage.open();
  const saved = await appendEach(store, 20);
  assert.deepEqual(await store.latest(5, saved[9].id), saved.slice(15));
  assert.deepEqual(await store.latest(50, saved[9].id), saved.slice(10));
  assert.deepEqual(await store.latest(5, saved[19].id), []);
});

contract("maxCount trims the oldest messages and keeps the newest", async (storage) => {
  await using store = await storage.open({ maxCount: 60 });
  const saved = await appendEach(store, 130);
  const kept = await store.latest(1000);
  assert.ok(kept.length <= 60 + 50, `trimmed as it went: ${kept.length} left`);
  assert.deepEqual(kept, saved.slice(-kept.length), "only the oldest were removed");
  await store.trim();
  assert.deepEqual(await store.latest(1000), saved.slice(-60));
});

contract("maxAgeMs hides expired messages from every read", async (storage) => {
  let now = Date.now() - 10_000;
  await using store = await storage.open({ maxAgeMs: 5_000, now: () => now });
  const old = await appendEach(store, 3);
  now = Date.now();
  const fresh = await appendEach(store, 3);
  assert.deepEqual(await store.latest(10), fresh);
  assert.deepEqual(await store.after(old[0].id), fresh);
  assert.deepEqual(await store.before(fresh[2].id, 10), fresh.slice(0, 2));
  assert.deepEqual(await store.before(old[2].id, 10), []);
  assert.equal(await store.countAfter("general", undefined, 100), 3);
  assert.equal(await store.findMessage(old[0].id), undefined);
  assert.deepEqual(await store.findMessage(fresh[0].id), fresh[0]);
});

contract(
  "listRooms pages through the rooms holding messages, by name, never a DM",
  async (storage) => {
    await using store = await storage.open();
    const user = { id: "u", name: "U" };
    for (
      const room of ["team-b", "dm:a:b", "dm:c:d", "general", "team-a", "team-b", "dmz", "zoo"]
    ) {
      await store.append({ room, user, message: "hi" });
    }
    assert.deepEqual(await store.listRooms({ limit: 10 }), [
      "dmz",
      "general",
      "team-a",
      "team-b",
      "zoo",
    ]);
    assert.deepEqual(await store.listRooms({ limit: 2 }), ["dmz", "general"]);
    assert.deepEqual(await store.listRooms({ after: "general", limit: 2 }), ["team-a", "team-b"]);
    assert.deepEqual(await store.listRooms({ prefix: "team-", limit: 10 }), ["team-a", "team-b"]);
    assert.deepEqual(await store.listRooms({ prefix: "team-", after: "team-a", limit: 10 }), [
      "team-b",
    ]);
    assert.deepEqual(await store.listRooms({ prefix: "d", limit: 10 }), ["dmz"]);
    assert.deepEqual(await store.listRooms({ prefix: "team-", after: "a", limit: 10 }), [
      "team-a",
      "team-b",
    ]);
    assert.deepEqual(await store.listRooms({ prefix: "x", limit: 10 }), []);
    assert.deepEqual(await store.listRooms({ limit: 0 }), []);
  },
);

contract("listRooms leaves out a room whose messages have all expired", async (storage) => {
  let now = Date.now() - 120_000;
  await using store = await storage.open({ maxAgeMs: 60_000, now: () => now });
  const user = { id: "u", name: "U" };
  await store.append({ room: "old", user, message: "long ago" });
  now = Date.now();
  await store.append({ room: "new", user, message: "just now" });
  assert.deepEqual(await store.listRooms({ limit: 10 }), ["new"]);
});

contract("ping answers while open and fails once closed", async (storage) => {
  const store = await storage.open();
  await store.ping();
  await store.close();
  await assert.rejects(store.ping());
});

contract("rooms keep separate histories; a message carries its room", async (storage) => {
  await using store = await storage.open();
  const general = await store.append({ user: ada, message: "in general" });
  const team = await store.append({ room: "team", user: ada, message: "in team" });
  const team2 = await store.append({ room: "team", user: ada, message: "again" });
  assert.equal(general.room, "general");
  assert.equal(team.room, "team");
  assert.notEqual(team.id, general.id);
  assert.deepEqual(await store.latest(10), [general]);
  assert.deepEqual(await store.latest(10, undefined, "team"), [team, team2]);
  assert.deepEqual(await store.before(team2.id, 10, "team"), [team]);
  assert.deepEqual(await store.after(team.id, 10, "team"), [team2]);
  assert.deepEqual(await store.latest(10, undefined, "empty"), []);
  assert.deepEqual(await store.findMessage(team2.id), team2);
  assert.equal(await store.countAfter("team", undefined, 100), 2);
  assert.equal(await store.countAfter("team", team.id, 100), 1);
  assert.equal(await store.countAfter("team", undefined, 1), 1, "counting stops at the cap");
});

contract("the default room is configurable", async (storage) => {
  await using store = await storage.open({ defaultRoom: "lobby" });
  const saved = await store.append({ user: ada, message: "hi" });
  assert.equal(saved.room, "lobby");
  assert.deepEqual(await store.latest(10, undefined, "lobby"), [saved]);
});

contract(
  "edits and deletes apply once each; a deleted message stays as a tombstone",
  async (storage) => {
    await using store = await storage.open();
    const saved = await store.append({ user: ada, message: "draft" });
    const at = new Date("2030-01-02T03:04:05.678Z");
    const edited = await store.changeMessage(saved.id, { message: "final" }, at);
    assert.deepEqual(edited, { ...saved, message: "final", editedAt: at.toISOString() });
    assert.deepEqual(await store.latest(10), [edited]);
    const deleted = await store.changeMessage(saved.id, { deleted: true }, at);
    assert.deepEqual(deleted, { ...saved, message: "", editedAt: at.toISOString(), deleted: true });
    const later = new Date(at.getTime() + 1000);
    assert.deepEqual(await store.changeMessage(saved.id, { deleted: true }, later), deleted);
    assert.equal(await store.changeMessage(saved.id, { message: "x" }, later), undefined);
    assert.deepEqual(await store.findMessage(saved.id), deleted);
    const unknown = createIdGenerator()();
    assert.equal(await store.changeMessage(unknown, { message: "x" }, later), undefined);
  },
);

contract(
  "concurrent changes of one message from two stores all apply",
  { shared: true },
  async (storage) => {
    await using first = await storage.open();
    await using second = await storage.open();
    const message = await first.append({ user: ada, message: "draft" });
    const changed = await Promise.all(
      [...Array(16)].map((_, index) =>
        (index % 2 === 0 ? first : second).changeMessage(
          message.id,
          { message: `edit ${index}` },
          new Date(),
        )
      ),
    );
    assert.ok(changed.every((result) => result?.message.startsWith("edit")));
    const stored = await first.findMessage(message.id);
    assert.ok(changed.some((result) => result?.message === stored?.message));
    const removed = await first.changeMessage(message.id, { deleted: true }, new Date());
    assert.equal(removed?.deleted, true);
    const late = await second.changeMessage(message.id, { message: "too late" }, new Date());
    assert.equal(late, undefined, "a deleted message has nothing left to edit");
  },
);

contract("read markers and memberships are per user and room", async (storage) => {
  await using store = await storage.open();
  const message = await store.append({ room: "team", user: ada, message: "hi" });
  await store.setReadMarker("alice", "team", message.id);
  assert.deepEqual(await store.readMarkers("alice", ["team", "general"]), [message.id, undefined]);
  assert.deepEqual(await store.readMarkers("bob", ["team"]), [undefined]);
  await store.addMembership("alice", "team");
  await store.addMembership("alice", "dm:alice:bob");
  await store.addMembership("bob", "dm:alice:bob");
  assert.deepEqual(await store.memberships("alice", 10), ["dm:alice:bob", "team"]);
  assert.deepEqual(await store.memberships("alice", 1), ["dm:alice:bob"]);
  assert.deepEqual(await store.memberships("alice", 0), []);
});

contract(
  "markers and memberships untouched for membershipMaxAgeMs are gone; touched ones stay",
  async (storage) => {
    let now = Date.now();
    await using store = await storage.open({ membershipMaxAgeMs: 10 * DAY, now: () => now });
    const message = await store.append({ room: "team", user: ada, message: "hi" });
    for (const room of ["team", "quiet", "dm:alice:bob"]) {
      await store.addMembership("alice", room);
      await store.setReadMarker("alice", room, message.id);
    }
    now += 6 * DAY;
    await store.touchRoom("alice", "team"); // sent or joined
    await store.setReadMarker("alice", "dm:alice:bob", message.id); // read
    now += 6 * DAY;
    assert.deepEqual(await store.memberships("alice", 10), ["dm:alice:bob", "team"]);
    assert.deepEqual(await store.readMarkers("alice", ["team", "quiet", "dm:alice:bob"]), [
      message.id,
      undefined,
      message.id,
    ]);
    now += 10 * DAY;
    assert.deepEqual(await store.memberships("alice", 10), []);
    assert.deepEqual(await store.readMarkers("alice", ["team", "dm:alice:bob"]), [
      undefined,
      undefined,
    ]);
    // A touch does not bring back what expired; a join does.
    await store.touchRoom("alice", "team");
    assert.deepEqual(await store.memberships("alice", 10), []);
    await store.addMembership("alice", "team");
    assert.deepEqual(await store.memberships("alice", 10), ["team"]);
  },
);

contract(
  "one user creates a bounded number of memberships in others' room lists",
  async (storage) => {
    const now = Date.now();
    await using store = await storage.open({ peerMembershipsPerMinute: 30, now: () => now });
    const peers = [...Array(100)].map((_, index) => `peer${index}`);
    for (const peer of peers) await store.addMembership(peer, `dm:mallory:${peer}`, "mallory");
    const listed = await Promise.all(peers.map((peer) => store.memberships(peer, 10)));
    assert.equal(listed.filter((rooms) => rooms.length > 0).length, 30);
    await store.addMembership("mallory", "dm:mallory:peer99");
    await store.addMembership("alice", "dm:alice:bob", "bob");
    assert.deepEqual(await store.memberships("mallory", 10), ["dm:mallory:peer99"]);
    assert.deepEqual(await store.memberships("alice", 10), ["dm:alice:bob"], "others are not held");
  },
);

contract("bans last until their end or until lifted", async (storage) => {
  let now = Date.now();
  await using store = await storage.open({ now: () => now });
  assert.equal(await store.getBan("mallory"), undefined);
  await store.setBan("mallory", { since: now, until: now + 60_000, reason: "spam" });
  await store.setBan("eve", { since: now });
  assert.deepEqual(await store.getBan("mallory"), {
    since: now,
    until: now + 60_000,
    reason: "spam",
  });
  assert.deepEqual(await store.getBan("eve"), { since: now });
  now += 60_000;
  assert.equal(await store.getBan("mallory"), undefined, "over at its end");
  assert.equal(await store.deleteBan("mallory"), false);
  assert.equal(await store.deleteBan("eve"), true);
  assert.equal(await store.getBan("eve"), undefined);
  assert.equal(await store.deleteBan("eve"), false);
});

// ---- web push subscriptions

const subscription = (n: number) => ({
  endpoint: `https://push.example/send/${n}`,
  keys: { p256dh: `key${n}`, auth: `auth${n}` },
});

contract("push subscriptions are kept per user, newest max, oldest dropped", async (storage) => {
  let now = Date.now();
  await using store = await storage.open({ now: () => now });
  assert.deepEqual(await store.pushSubscriptions("ada"), []);
  for (const n of [1, 2, 3]) {
    await store.addPushSubscription("ada", subscription(n), 2);
    now += 1;
  }
  assert.deepEqual(await store.pushSubscriptions("ada"), [subscription(2), subscription(3)]);
  await store.addPushSubscription(
    "ada",
    { ...subscription(2), keys: { p256dh: "k", auth: "a" } },
    2,
  );
  assert.deepEqual(
    await store.pushSubscriptions("ada"),
    [subscription(3), { ...subscription(2), keys: { p256dh: "k", auth: "a" } }],
    "the same endpoint is replaced, and becomes the newest",
  );
  assert.equal(await store.removePushSubscription("ada", subscription(3).endpoint), true);
  assert.equal(await store.removePushSubscription("ada", subscription(3).endpoint), false);
  assert.equal(await store.removePushSubscription("bob", subscription(2).endpoint), false);
  assert.equal((await store.pushSubscriptions("ada")).length, 1);
});

contract("a browser subscribed by another user leaves its previous user", async (storage) => {
  await using store = await storage.open();
  await store.addPushSubscription("ada", subscription(1), 10);
  await store.addPushSubscription("bob", subscription(1), 10);
  assert.deepEqual(await store.pushSubscriptions("ada"), []);
  assert.deepEqual(await store.pushSubscriptions("bob"), [subscription(1)]);
  assert.equal(await store.removePushSubscription("ada", subscription(1).endpoint), false);
});

contract("a reader following a room from one store never skips what another store committed", {
  shared: true,
  ordersAcrossStores: true,
}, async (storage) => {
  await using reader = await storage.open();
  // The writers' clocks disagree by seconds: ids still follow commit order.
  const skews = [0, -3000, 2000];
  const writers = await Promise.all(
    skews.map((skew) => storage.open({ now: () => Date.now() + skew })),
  );
  try {
    const writing = Promise.all(writers.map(async (writer, w) => {
      for (let batch = 0; batch < 20; batch++) {
        await writer.appendMany([...Array(1 + (batch % 3))].map((_, n) => ({
          room: "busy",
          user: { id: `w${w}`, name: `W${w}` },
          message: `${w}.${batch}.${n}`,
        })));
      }
    }));
    const followed: ChatMessage[] = [];
    let done = false;
    writing.finally(() => done = true);
    for (;;) {
      const finished = done;
      const lastId = followed.at(-1)?.id ?? createIdGenerator(() => 0)();
      followed.push(...await reader.after(lastId, 1000, "busy"));
      if (finished) break;
    }
    await writing;
    assert.deepEqual(followed, await reader.latest(1000, undefined, "busy"));
    assert.equal(followed.length, 3 * (7 * 1 + 7 * 2 + 6 * 3));
  } finally {
    for (const writer of writers) await writer.close();
  }
});

// ---- reactions

const LIMITS = { maxEmoji: 3, maxPerUser: 2, listedUsers: 2 };
const react = (
  store: MessageStore,
  message: ChatMessage,
  userId: string,
  emoji: string,
  on = true,
  limits = LIMITS,
) => store.react({ room: message.room, id: message.id, userId, emoji, on }, limits);

contract("reactions are added once, taken back, and listed in first-use order", async (storage) => {
  await using store = await storage.open();
  const [first, second] = await appendEach(store, 2, "team");
  assert.deepEqual(await react(store, first, "u1", "👍"), {
    status: "changed",
    reactions: [{ emoji: "👍", count: 1, users: ["u1"] }],
  });
  assert.equal((await react(store, first, "u1", "👍")).status, "unchanged", "idempotent");
  await react(store, first, "u2", "🎉");
  const both = await react(store, first, "u2", "👍");
  assert.deepEqual(both.reactions, [
    { emoji: "👍", count: 2, users: ["u1", "u2"] },
    { emoji: "🎉", count: 1, users: ["u2"] },
  ]);
  assert.deepEqual(
    await store.reactionsOf("team", [first.id, second.id], 20),
    new Map([
      [first.id, both.reactions],
    ]),
  );
  assert.equal((await react(store, first, "u3", "🎉", false)).status, "unchanged");
  const back = await react(store, first, "u2", "🎉", false);
  assert.deepEqual(back, {
    status: "changed",
    reactions: [{ emoji: "👍", count: 2, users: ["u1", "u2"] }],
  });
  await react(store, first, "u1", "👍", false);
  await react(store, first, "u2", "👍", false);
  assert.deepEqual(await store.reactionsOf("team", [first.id], 20), new Map());
});

contract("reactions are bounded per message and per user", async (storage) => {
  await using store = await storage.open();
  const [message] = await appendEach(store, 1);
  await react(store, message, "u1", "👍");
  await react(store, message, "u1", "🎉");
  assert.equal((await react(store, message, "u1", "😀")).status, "too_many_reactions");
  await react(store, message, "u2", "😀");
  const refused = await react(store, message, "u3", "🚀");
  assert.equal(refused.status, "too_many_emoji");
  assert.equal(refused.reactions.length, 3);
  assert.equal(
    (await react(store, message, "u3", "👍")).status,
    "changed",
    "a known emoji is fine",
  );
  await react(store, message, "u3", "😀");
  await react(store, message, "u2", "😀", false);
  assert.equal(
    (await react(store, message, "u2", "🚀")).status,
    "too_many_emoji",
    "😀 is u3's too",
  );
  await react(store, message, "u1", "🎉", false);
  assert.equal((await react(store, message, "u2", "🚀")).status, "changed", "🎉's place is free");
});

contract("a reaction's listed users fill up again when one takes theirs back", async (storage) => {
  await using store = await storage.open();
  const [message] = await appendEach(store, 1);
  for (const user of ["u1", "u2", "u3"]) await react(store, message, user, "👍");
  const listed = (await react(store, message, "u4", "👍")).reactions;
  assert.deepEqual(listed, [{ emoji: "👍", count: 4, users: ["u1", "u2"] }]);
  const after = (await react(store, message, "u1", "👍", false)).reactions;
  assert.equal(after[0].count, 3);
  assert.equal(after[0].users.length, 2);
  assert.ok(!after[0].users.includes("u1"));
});

contract("a reaction to a message that is not there is not_found", async (storage) => {
  await using store = await storage.open();
  const [message] = await appendEach(store, 1, "team");
  const elsewhere = { ...message, room: "other" };
  assert.deepEqual(await react(store, elsewhere, "u1", "👍"), {
    status: "not_found",
    reactions: [],
  });
  assert.deepEqual(await store.reactionsOf("other", [message.id], 20), new Map());
});

contract("concurrent reactions to one message all count, within the bounds", async (storage) => {
  await using store = await storage.open();
  const [message] = await appendEach(store, 1);
  const users = Array.from({ length: 12 }, (_, index) => `u${index}`);
  const limits = { maxEmoji: 2, maxPerUser: 10, listedUsers: 20 };
  const outcomes = await Promise.all(
    users.map((user, index) =>
      react(store, message, user, ["👍", "🎉", "🚀"][index % 3], true, limits)
    ),
  );
  const [reactions] = (await store.reactionsOf(message.room, [message.id], 20)).values();
  assert.equal(reactions.length, 2, "never more than maxEmoji");
  const stored = reactions.reduce((sum, reaction) => sum + reaction.count, 0);
  assert.equal(stored, outcomes.filter((outcome) => outcome.status === "changed").length);
  assert.equal(stored, 8);
});

contract("reactions are kept across close and reopen", { shared: true }, async (storage) => {
  let message: ChatMessage;
  {
    await using first = await storage.open();
    [message] = await appendEach(first, 1);
    await react(first, message, "u1", "👍");
  }
  await using second = await storage.open();
  assert.deepEqual(
    await second.reactionsOf(message.room, [message.id], 20),
    new Map([
      [message.id, [{ emoji: "👍", count: 1, users: ["u1"] }]],
    ]),
  );
});

// ---- replies and threads

const quote = (parent: ChatMessage) => ({
  id: parent.id,
  user: parent.user,
  preview: parent.message,
  deleted: false,
});

contract("a reply keeps its quote and joins its parent's thread", async (storage) => {
  await using store = await storage.open();
  const [parent, other] = await appendEach(store, 2, "team");
  const bea = { id: "u2", name: "Bea" };
  const replies: ChatMessage[] = [];
  for (const [index, user] of [ada, bea, ada].entries()) {
    const [{ message }] = await store.appendMany([
      { room: "team", user, message: `reply ${index}`, replyTo: quote(parent) },
    ]);
    replies.push(message);
  }
  assert.deepEqual(replies[0].replyTo, quote(parent));
  assert.deepEqual(await store.findMessage(replies[1].id), replies[1]);
  assert.deepEqual((await store.latest(10, undefined, "team")).slice(2), replies);
  assert.deepEqual(
    await store.threadsOf("team", [parent.id, other.id, ...replies.map((m) => m.id)]),
    new Map([[parent.id, { count: 3, lastId: replies[2].id, users: ["u1", "u2"] }]]),
  );
  assert.deepEqual(await store.threadsOf("other", [parent.id]), new Map());
  assert.deepEqual(await store.threadReplies("team", other.id, undefined, 10), []);
  assert.deepEqual(await store.threadReplies("other", parent.id, undefined, 10), []);
});

contract("a thread pages back with no gap and no repeat", async (storage) => {
  await using store = await storage.open();
  const [parent] = await appendEach(store, 1);
  const replies: ChatMessage[] = [];
  for (let index = 0; index < 23; index++) {
    replies.push(await store.append({ user: ada, message: `r${index}`, replyTo: quote(parent) }));
    // Messages of the room that are not replies are not in the thread.
    if (index % 5 === 0) await store.append({ user: ada, message: `aside ${index}` });
  }
  const paged: ChatMessage[] = [];
  let before: string | undefined;
  for (;;) {
    const page = await store.threadReplies(parent.room, parent.id, before, 5);
    paged.unshift(...page);
    if (page.length < 5) break;
    before = page[0].id;
  }
  assert.deepEqual(paged, replies);
  assert.deepEqual(
    await store.threadReplies(parent.room, parent.id, undefined, 2),
    replies.slice(-2),
  );
});

contract("a repeated clientId of a reply answers with the first, counted once", async (storage) => {
  await using store = await storage.open();
  const [parent] = await appendEach(store, 1);
  const input = { user: ada, message: "once", clientId: "r1", replyTo: quote(parent) };
  const [first] = await store.appendMany([input]);
  const [again] = await store.appendMany([input]);
  assert.deepEqual(again, { message: first.message, created: false });
  assert.equal((await store.threadsOf(parent.room, [parent.id])).get(parent.id)?.count, 1);
});

/** A writer giving each message `perMessage` drafts, on the message's room's stream. */
function roomWriter(perMessage = 1, kind = "created"): OutboxWriter {
  return {
    maxDraftsFor: () => perMessage,
    draftsFor: (message) =>
      [...Array(perMessage)].map((_, n) => ({
        id: `${kind}:${message.id}:${n}`,
        target: `https://hooks.example/${n}`,
        stream: `room:${message.room}`,
        body: JSON.stringify({ type: kind, data: message }),
      })),
  };
}

const draft = (id: string, stream: string, notBefore?: number): OutboxDraft => ({
  id,
  target: "https://hooks.example/",
  stream,
  body: JSON.stringify({ id }),
  ...(notBefore === undefined ? {} : { notBefore }),
});

const CLAIM = { owner: "one", limit: 100, perStream: 10, leaseMs: 10_000 };

contract("outbox: appendMany's writer stores each created message's events in its commit", async (
  storage,
) => {
  await using store = await storage.open();
  assert.deepEqual(await store.outbox.outboxStats(), { depth: 0 });
  const [first] = await store.appendMany(
    [{ user: ada, message: "one", clientId: "c1" }, { room: "x", user: ada, message: "two" }],
    roomWriter(2),
  );
  // A retry creates nothing, so it describes nothing.
  await store.appendMany([{ user: ada, message: "one", clientId: "c1" }], roomWriter(2));
  await store.appendMany([{ user: ada, message: "no writer" }]);
  assert.equal((await store.outbox.outboxStats()).depth, 4);
  const entries = await store.outbox.claimOutbox(CLAIM);
  assert.deepEqual(entries.map((entry) => entry.id), [
    `created:${first.message.id}:0`,
    `created:${first.message.id}:1`,
    ...entries.slice(2).map((entry) => entry.id),
  ]);
  assert.equal(entries.length, 4);
  assert.deepEqual(JSON.parse(entries[0].body).data, first.message);
  assert.deepEqual(entries.map((entry) => entry.attempts), [0, 0, 0, 0]);
});

contract(
  "outbox: a batch over one commit's worth keeps every message's events",
  async (storage) => {
    await using store = await storage.open();
    const inputs = [...Array(450)].map((_, n) => ({
      user: ada,
      message: `m${n}`,
      clientId: `c${n}`,
    }));
    const results = await store.appendMany(inputs, roomWriter(3));
    assert.equal((await store.outbox.outboxStats()).depth, 1350);
    const claimed = await store.outbox.claimOutbox({ ...CLAIM, perStream: 100 });
    assert.deepEqual(
      claimed.map((entry) => entry.id),
      results.slice(0, 34).flatMap(({ message }) =>
        [0, 1, 2].map((n) => `created:${message.id}:${n}`)
      )
        .slice(0, 100),
    );
  },
);

contract(
  "outbox: a writer's bound per message (one draft per mention) keeps every draft of a batch",
  async (storage) => {
    await using store = await storage.open();
    // One draft per mentioned user, each a copy of its message, as missed-message candidates are.
    const perMention: OutboxWriter = {
      maxDraftsFor: (message) => message.mentions?.length ?? 0,
      draftsFor: (message) =>
        (message.mentions ?? []).map((userId) => ({
          id: `missed:${message.id}:${userId}`,
          target: "",
          stream: `missed:${userId}`,
          body: JSON.stringify({ user: userId, message }),
        })),
    };
    const mentions = [...Array(20)].map((_, n) => `user${n}`);
    // Alone, 40 mentioning messages hold 40 × 20 drafts and 40 × 20 mention entries: more
    // mutations than one KV commit takes, so the batch must be split by each message's bound.
    const inputs = [...Array(440)].map((_, n) => ({
      user: ada,
      message: n % 11 === 0 ? `${n} ${"x".repeat(2000)}` : `m${n}`,
      ...(n % 11 === 0 ? { mentions } : {}),
    }));
    const results = await store.appendMany(inputs, perMention);
    assert.equal(results.filter((result) => result.created).length, 440);
    assert.equal((await store.outbox.outboxStats()).depth, 40 * 20);
    const claimed = await store.outbox.claimOutbox({ ...CLAIM, limit: 100, perStream: 100 });
    assert.deepEqual(
      claimed.map((entry) => entry.id),
      results.filter((_, n) => n % 11 === 0).slice(0, 5).flatMap(({ message }) =>
        mentions.map((userId) => `missed:${message.id}:${userId}`)
      ),
    );
  },
);

contract(
  "outbox: a writer's references (drafts naming the message, not copying it) keep every draft of a batch of long messages",
  async (storage) => {
    await using store = await storage.open();
    // One copy (as message.created) and a reference per mentioned user (as missed candidates).
    const copyAndReferences: OutboxWriter = {
      maxDraftsFor: (message) => 1 + (message.mentions?.length ?? 0),
      maxCopiesFor: () => 1,
      draftsFor: (message) => [
        { id: `created:${message.id}`, target: "", stream: "room", body: JSON.stringify(message) },
        ...(message.mentions ?? []).map((userId) => ({
          id: `missed:${message.id}:${userId}`,
          target: "",
          stream: `missed:${userId}`,
          body: JSON.stringify({ user: userId, room: message.room, id: message.id }),
        })),
      ],
    };
    const mentions = [...Array(20)].map((_, n) => `user${n}`);
    // 16 KB each as KV stores them: 30 messages and their copies are over one KV commit.
    const inputs = [...Array(30)].map((_, n) => ({
      user: ada,
      message: `${n} ${"😀".repeat(4000)}`,
      mentions,
    }));
    const results = await store.appendMany(inputs, copyAndReferences);
    assert.equal(results.filter((result) => result.created).length, 30);
    assert.equal((await store.outbox.outboxStats()).depth, 30 * 21);
    const [first] = await store.outbox.claimOutbox({ ...CLAIM, limit: 1 });
    assert.deepEqual(JSON.parse(first.body), results[0].message);
  },
);

contract(
  "outbox: entries too big to claim in one KV commit are handed out by later claims, in order",
  async (storage) => {
    await using store = await storage.open();
    // 40 KB each as KV stores them: 30 of them are over one KV commit (about 800 KB).
    const long = "😀".repeat(10_000);
    const ids = [...Array(30)].map((_, n) => `long${n}`);
    for (const id of ids) {
      const body = JSON.stringify({ long });
      await store.outbox.enqueueOutbox([{ ...draft(id, "room:a"), body }]);
    }
    const handedOut: string[] = [];
    while (handedOut.length < ids.length) {
      const claimed = await store.outbox.claimOutbox({ ...CLAIM, perStream: 100 });
      assert.ok(claimed.length > 0, `a claim after ${handedOut.length} hands out more`);
      handedOut.push(...claimed.map((entry) => entry.id));
      await store.outbox.settleOutbox(
        CLAIM.owner,
        claimed.map(({ key }) => ({ key, outcome: "done" })),
      );
    }
    assert.deepEqual(handedOut, ids);
  },
);

contract(
  "outbox: a missed burst too big for one event is settled over several, each message once, in order",
  async (storage) => {
    await using store = await storage.open();
    const target = "https://backend.example/hooks";
    const missed = new MissedMessages({
      targets: [target],
      push: true,
      missedAfterMs: 0,
      store,
      isConnected: () => Promise.resolve(false),
      mayRead: () => Promise.resolve(true),
      now: Date.now,
    });
    const candidates: OutboxWriter = {
      maxDraftsFor: () => 1,
      maxCopiesFor: () => 0,
      draftsFor: (message) => missed.candidates(message, ["u2"]),
    };
    // 4 KB each as KV keeps them: 80 KB for the 20, over one KV value (64 KiB).
    const inputs = [...Array(20)].map((_, n) => ({
      room: "dm:u1:u2",
      user: ada,
      message: `${n} ${"語".repeat(1995)}`,
    }));
    const sent = (await store.appendMany(inputs, candidates)).map((result) => result.message);
    const events: string[] = [];
    const jobs: string[] = [];
    for (let round = 0; (await store.outbox.outboxStats()).depth > 0; round++) {
      assert.ok(round < 20, "the outbox empties");
      const claimed = await store.outbox.claimOutbox({ ...CLAIM, perStream: 20 });
      const due = claimed.filter((entry) => entry.stream === "missed:u2");
      for (const entry of claimed.filter((entry) => entry.stream !== "missed:u2")) {
        (entry.stream === "push:u2" ? jobs : events).push(entry.body);
      }
      const outcome = due.length > 0 ? await missed.settle(due) : { settlements: [], then: [] };
      const others = claimed.filter((entry) => entry.stream !== "missed:u2");
      await store.outbox.settleOutbox(CLAIM.owner, [
        ...outcome.settlements,
        ...others.map(({ key }) => ({ key, outcome: "done" as const })),
      ], outcome.then);
    }
    assert.ok(events.length > 1, `several events: ${events.length}`);
    assert.equal(jobs.length, events.length, "a push job beside each event");
    for (const body of events) assert.ok(storedBytes(body) <= MAX_EVENT_BYTES);
    for (const body of jobs) assert.ok(body.length < 1000, `a push job of ${body.length}`);
    const messages = events.flatMap((body) => JSON.parse(body).data.messages);
    assert.deepEqual(messages, sent, "each once, oldest first, whole");
  },
);

contract("outbox: changeMessage's writer stores the change's events, none for no change", async (
  storage,
) => {
  await using store = await storage.open();
  const saved = await store.append({ user: ada, message: "hi" });
  const at = new Date();
  await store.changeMessage(saved.id, { message: "edited" }, at, roomWriter(1, "updated"));
  await store.changeMessage(saved.id, { deleted: true }, at, roomWriter(1, "deleted"));
  await store.changeMessage(saved.id, { deleted: true }, at, roomWriter(1, "deleted"));
  await store.changeMessage(saved.id, { message: "too late" }, at, roomWriter(1, "updated"));
  const entries = await store.outbox.claimOutbox(CLAIM);
  assert.deepEqual(entries.map((entry) => JSON.parse(entry.body).type), ["updated", "deleted"]);
  assert.equal(JSON.parse(entries[0].body).data.message, "edited");
  assert.equal(JSON.parse(entries[1].body).data.deleted, true);
});

contract("outbox: claims hand out each stream in order, never what is held or not due", async (
  storage,
) => {
  let now = Date.now();
  await using store = await storage.open({ now: () => now });
  await store.outbox.enqueueOutbox([draft("a1", "a"), draft("b1", "b"), draft("a2", "a")]);
  await store.outbox.enqueueOutbox([
    draft("a3", "a"),
    draft("c1", "c", now + 5000),
    draft("c2", "c"),
  ]);
  const first = await store.outbox.claimOutbox({ ...CLAIM, perStream: 2 });
  assert.deepEqual(first.map((entry) => entry.id), ["a1", "b1", "a2"]);
  // Held by "one" until its lease ends: "two" gets nothing of those streams.
  assert.deepEqual(await store.outbox.claimOutbox({ ...CLAIM, owner: "two" }), []);
  const [a1, b1, a2] = first;
  await store.outbox.settleOutbox("one", [
    { key: a1.key, outcome: "done" },
    { key: a2.key, outcome: "retry", dueAt: now + 1000 },
    { key: b1.key, outcome: "release" },
  ]);
  assert.deepEqual((await store.outbox.claimOutbox(CLAIM)).map((entry) => entry.id), ["b1"]);
  now += 1000;
  const retried = await store.outbox.claimOutbox({ ...CLAIM, owner: "two" });
  assert.deepEqual(retried.map((entry) => [entry.id, entry.attempts]), [["a2", 1], ["a3", 0]]);
  now += 4000;
  // A stream's head due brings the rest of it along, due or not.
  assert.deepEqual((await store.outbox.claimOutbox(CLAIM)).map((entry) => entry.id), ["c1", "c2"]);
  // A lease that ran out frees the entries; the late owner's retry is ignored, its done is not.
  now += CLAIM.leaseMs;
  const taken = await store.outbox.claimOutbox({ ...CLAIM, owner: "three", limit: 2 });
  assert.deepEqual(taken.map((entry) => entry.id), ["b1", "a2"]);
  await store.outbox.settleOutbox("two", [{
    key: taken[1].key,
    outcome: "retry",
    dueAt: now + 9999,
  }]);
  await store.outbox.settleOutbox("one", [{ key: taken[0].key, outcome: "done" }]);
  await store.outbox.settleOutbox("three", [{ key: taken[1].key, outcome: "release" }]);
  assert.deepEqual(
    (await store.outbox.claimOutbox({ ...CLAIM, limit: 1 })).map((entry) => entry.id),
    [
      "a2",
    ],
  );
  assert.equal((await store.outbox.outboxStats()).depth, 4);
});

contract("outbox: settling enqueues follow-up events in the same commit", async (storage) => {
  await using store = await storage.open();
  await store.outbox.enqueueOutbox([draft("pending", "missed:bob")]);
  const [pending] = await store.outbox.claimOutbox(CLAIM);
  await store.outbox.settleOutbox("one", [{ key: pending.key, outcome: "done" }], [
    draft("sent", "x"),
  ]);
  const [next] = await store.outbox.claimOutbox(CLAIM);
  assert.equal(next.id, "sent");
  assert.equal((await store.outbox.outboxStats()).depth, 1);
});

contract("outbox: a transition enqueues only when it changes the state", async (storage) => {
  await using store = await storage.open();
  const online = { key: "presence:u1", state: "online" };
  assert.equal(await store.outbox.enqueueOutbox([draft("on1", "u1")], online), true);
  assert.equal(await store.outbox.enqueueOutbox([draft("on2", "u1")], online), false);
  assert.equal(
    await store.outbox.enqueueOutbox([draft("off", "u1")], { ...online, state: "offline" }),
    true,
  );
  assert.equal(await store.outbox.enqueueOutbox([draft("on3", "u1")], online), true);
  assert.equal(
    await store.outbox.enqueueOutbox([draft("other", "u2")], { ...online, key: "p:u2" }),
    true,
  );
  const ids = (await store.outbox.claimOutbox(CLAIM)).map((entry) => entry.id);
  assert.deepEqual(ids, ["on1", "off", "on3", "other"]);
});

contract("outbox: trim drops the oldest past the bound and the too old, counted", async (
  storage,
) => {
  let now = Date.now();
  await using store = await storage.open({ now: () => now });
  await store.outbox.enqueueOutbox([draft("old1", "a"), draft("old2", "b")]);
  now += 1000;
  await store.outbox.enqueueOutbox([1, 2, 3, 4, 5].map((n) => draft(`new${n}`, `s${n}`)));
  assert.deepEqual(await store.outbox.outboxStats(), { depth: 7, oldestAt: now - 1000 });
  assert.deepEqual(await store.outbox.trimOutbox({ maxDepth: 4, storedAfter: 0 }), {
    full: 3,
    expired: 0,
  });
  assert.deepEqual(await store.outbox.trimOutbox({ maxDepth: 10, storedAfter: now }), {
    full: 0,
    expired: 0,
  });
  assert.deepEqual((await store.outbox.claimOutbox(CLAIM)).map((entry) => entry.id), [
    "new2",
    "new3",
    "new4",
    "new5",
  ]);
  now += 1;
  assert.deepEqual(await store.outbox.trimOutbox({ maxDepth: 10, storedAfter: now }), {
    full: 0,
    expired: 4,
  });
  assert.deepEqual(await store.outbox.outboxStats(), { depth: 0 });
});

contract("outbox: kept across close and reopen", { shared: true }, async (storage) => {
  {
    await using first = await storage.open();
    await first.appendMany([{ user: ada, message: "unsent" }], roomWriter());
  }
  await using second = await storage.open();
  const [entry] = await second.outbox.claimOutbox(CLAIM);
  assert.equal(JSON.parse(entry.body).data.message, "unsent");
});

contract("outbox: stores sharing the storage never hand out one entry twice", {
  shared: true,
}, async (storage) => {
  const stores = await Promise.all([storage.open(), storage.open(), storage.open()]);
  try {
    const streams = ["a", "b", "c", "d"];
    await stores[0].outbox.enqueueOutbox(
      [...Array(60)].map((_, n) => draft(`e${n}`, streams[n % streams.length])),
    );
    const sent: string[] = [];
    await Promise.all(stores.map(async (store, index) => {
      const owner = `owner${index}`;
      while ((await store.outbox.outboxStats()).depth > 0) {
        const claimed = await store.outbox.claimOutbox({ ...CLAIM, owner, perStream: 3 });
        sent.push(...claimed.map((entry) => entry.id));
        await store.outbox.settleOutbox(
          owner,
          claimed.map(({ key }) => ({ key, outcome: "done" })),
        );
      }
    }));
    assert.equal(sent.length, 60, "each once");
    for (const stream of streams) {
      const ids = sent.filter((id) => Number(id.slice(1)) % 4 === streams.indexOf(stream));
      assert.deepEqual(ids, [...ids].sort((a, b) => Number(a.slice(1)) - Number(b.slice(1))));
    }
  } finally {
    for (const store of stores) await store.close();
  }
});

contract(
  "a message keeps its mentions; unread mentions count per user after a marker",
  async (storage) => {
    const bob = { id: "bob", name: "Bob" };
    {
      await using store = await storage.open();
      const [plain] = await appendEach(store, 1, "team");
      const [one, two] = await store.appendMany([
        { room: "team", user: ada, message: "@bob @carol", mentions: ["bob", "carol"] },
        { room: "team", user: bob, message: "@bob is me", mentions: ["bob", "u1"] },
      ]).then((results) => results.map((result) => result.message));
      assert.deepEqual(one.mentions, ["bob", "carol"]);
      assert.equal(plain.mentions, undefined);
      assert.deepEqual((await store.findMessage(one.id))?.mentions, ["bob", "carol"]);
      assert.deepEqual((await store.latest(3, undefined, "team")).map((m) => m.mentions), [
        undefined,
        ["bob", "carol"],
        ["bob", "u1"],
      ]);
      // Counted: others' messages only, after the marker, in that room, up to the cap.
      assert.equal(await store.countMentions("team", "bob", undefined, 100), 1);
      assert.equal(await store.countMentions("team", "u1", undefined, 100), 1);
      assert.equal(await store.countMentions("team", "carol", plain.id, 100), 1);
      assert.equal(await store.countMentions("team", "carol", one.id, 100), 0);
      assert.equal(await store.countMentions("team", "carol", undefined, 0), 0);
      assert.equal(await store.countMentions("general", "carol", undefined, 100), 0);
      assert.equal(await store.countMentions("team", "dave", undefined, 100), 0);
      await store.changeMessage(two.id, { deleted: true }, new Date());
      assert.equal(await store.countMentions("team", "u1", undefined, 100), 0, "deleted: gone");
    }
  },
);

contract("mentions are kept across close and reopen", { shared: true }, async (storage) => {
  {
    await using store = await storage.open();
    await store.append({ room: "team", user: ada, message: "@bob", mentions: ["bob"] });
  }
  await using reopened = await storage.open();
  const [kept] = await reopened.latest(1, undefined, "team");
  assert.deepEqual(kept.mentions, ["bob"]);
  assert.equal(await reopened.countMentions("team", "bob", undefined, 100), 1);
});

contract("unread mentions stop at the cap", async (storage) => {
  await using store = await storage.open();
  await store.appendMany(
    [...Array(5)].map((_, index) => ({
      room: "team",
      user: ada,
      message: `@bob ${index}`,
      mentions: ["bob"],
    })),
  );
  assert.equal(await store.countMentions("team", "bob", undefined, 3), 3);
  assert.equal(await store.countMentions("team", "bob", undefined, 10), 5);
});

contract("a room's read positions list each user's marker, bounded", async (storage) => {
  let now = Date.now();
  await using store = await storage.open({ membershipMaxAgeMs: 10 * DAY, now: () => now });
  const [first, second] = await appendEach(store, 2, "team");
  await store.setReadMarker("alice", "team", first.id);
  await store.setReadMarker("bob", "team", first.id);
  await store.setReadMarker("bob", "team", second.id);
  await store.setReadMarker("carol", "other", second.id);
  const sorted = (positions: { user: string; lastId: string }[]) =>
    [...positions].sort((a, b) => a.user.localeCompare(b.user));
  assert.deepEqual(sorted(await store.readPositions("team", 10)), [
    { user: "alice", lastId: first.id },
    { user: "bob", lastId: second.id },
  ]);
  assert.equal((await store.readPositions("team", 1)).length, 1);
  assert.deepEqual(await store.readPositions("team", 0), []);
  assert.deepEqual(await store.readPositions("quiet", 10), []);
  now += 6 * DAY;
  await store.setReadMarker("alice", "team", second.id);
  now += 6 * DAY;
  assert.deepEqual(await store.readPositions("team", 10), [{ user: "alice", lastId: second.id }]);
});
