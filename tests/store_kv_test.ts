import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createIdGenerator,
  isMessageId,
  KvMessageStore,
  openKvStore,
  PartialAppendError,
  StoreError,
} from "../src/store/mod.ts";
import type { ChatMessage } from "../src/types.ts";
import { failingCommits } from "./helpers/failing_kv.ts";
import { tempDir, tempFile } from "./helpers/dispose.ts";

const ada = { id: "u1", name: "Ada" };

async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  await using temp = await tempDir({ prefix: "chat_store_test_" });
  await run(temp.path);
}

async function appendMany(store: KvMessageStore, count: number): Promise<ChatMessage[]> {
  const saved: ChatMessage[] = [];
  for (let index = 0; index < count; index++) {
    saved.push(await store.append({ user: ada, message: `message ${index}` }));
  }
  return saved;
}

const texts = (messages: ChatMessage[]) => messages.map((message) => message.message);

Deno.test("kv store: append returns the message with an id and createdAt", async () => {
  using store = await openKvStore(":memory:");
  const before = Date.now();
  const saved = await store.append({ user: ada, message: "hello" });
  assert.ok(isMessageId(saved.id));
  assert.deepEqual(saved.user, ada);
  assert.equal(saved.message, "hello");
  const createdAt = Date.parse(saved.createdAt);
  assert.equal(new Date(createdAt).toISOString(), saved.createdAt);
  assert.ok(createdAt >= before && createdAt <= Date.now());
  assert.deepEqual(await store.latest(10), [saved]);
});

Deno.test("kv store: latest returns the newest messages, oldest first", async () => {
  using store = await openKvStore(":memory:");
  assert.deepEqual(await store.latest(5), []);
  const saved = await appendMany(store, 12);
  assert.deepEqual(await store.latest(0), []);
  assert.deepEqual(await store.latest(1), saved.slice(-1));
  assert.deepEqual(await store.latest(5), saved.slice(-5));
  assert.deepEqual(await store.latest(50), saved);
});

Deno.test("kv store: messages in the same millisecond keep their order", async () => {
  using store = new KvMessageStore(await Deno.openKv(":memory:"), {
    generateId: createIdGenerator(() => 1_700_000_000_000),
  });
  const saved = await appendMany(store, 30);
  assert.deepEqual(texts(await store.latest(30)), texts(saved));
  assert.ok(saved.every((message) => message.createdAt === "2023-11-14T22:13:20.000Z"));
});

Deno.test("kv store: after and before exclude the given id and page the whole history", async () => {
  using store = await openKvStore(":memory:");
  const saved = await appendMany(store, 120);
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

Deno.test("kv store: after and before accept ids of messages that were never stored", async () => {
  using store = await openKvStore(":memory:");
  const saved = await appendMany(store, 3);
  const ancient = createIdGenerator(() => 0)();
  assert.deepEqual(await store.after(ancient), saved);
  assert.deepEqual(await store.before(ancient, 10), []);
});

Deno.test("kv store: malformed ids and limits are refused with a StoreError code", async () => {
  using store = await openKvStore(":memory:");
  for (const id of ["", "42", "not-an-id", "01arz3ndektsv4rrffq69g5fav"]) {
    await assert.rejects(store.after(id), (error) => {
      return error instanceof StoreError && error.code === "invalid_id";
    });
    await assert.rejects(store.before(id, 5), (error) => {
      return error instanceof StoreError && error.code === "invalid_id";
    });
  }
  await assert.rejects(store.latest(-1), (error) => {
    return error instanceof StoreError && error.code === "invalid_limit";
  });
  await assert.rejects(store.latest(1.5), (error) => {
    return error instanceof StoreError && error.code === "invalid_limit";
  });
});

Deno.test("kv store: a file store keeps its history across close and reopen", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "chat.kv");
    let saved: ChatMessage[];
    {
      using first = await openKvStore(path);
      saved = await appendMany(first, 5);
    }
    using second = await openKvStore(path);
    assert.deepEqual(await second.latest(10), saved);
    const next = await second.append({ user: ada, message: "after reopen" });
    assert.ok(next.id > saved[4].id);
    assert.deepEqual(await second.after(saved[4].id), [next]);
  });
});

Deno.test("kv store: openKvStore creates a missing parent directory", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "nested", "deeper", "chat.kv");
    {
      using store = await openKvStore(path);
      await store.append({ user: ada, message: "hi" });
    }
    assert.ok((await Deno.stat(join(dir, "nested", "deeper"))).isDirectory);
    assert.ok((await Deno.stat(path)).isFile);
  });
});

Deno.test("kv store: appendMany stores a large batch in order across several commits", async () => {
  using store = await openKvStore(":memory:");
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

Deno.test("kv store: a repeated clientId stores one message, per user, within and across batches", async () => {
  using store = await openKvStore(":memory:");
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
});

Deno.test("kv store: clientIds are remembered across a reopen", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "chat.kv");
    const first = await openKvStore(path);
    const saved = await first.append({ user: ada, message: "hi", clientId: "abc" });
    first.close();
    using second = await openKvStore(path);
    const [retry] = await second.appendMany([{ user: ada, message: "hi", clientId: "abc" }]);
    assert.deepEqual(retry, { message: saved, created: false });
    assert.equal((await second.latest(10)).length, 1);
  });
});

Deno.test("kv store: two stores on one file share their clientIds", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "chat.kv");
    using first = await openKvStore(path);
    using second = await openKvStore(path);
    const saved = await first.append({ user: ada, message: "shared", clientId: "same" });
    assert.deepEqual(
      await second.append({ user: ada, message: "shared", clientId: "same" }),
      saved,
    );
    assert.equal((await second.latest(100)).length, 1);
  });
});

Deno.test("kv store: latest(limit, afterId) returns the newest messages after an id", async () => {
  using store = await openKvStore(":memory:");
  const saved = await appendMany(store, 20);
  assert.deepEqual(await store.latest(5, saved[9].id), saved.slice(15));
  assert.deepEqual(await store.latest(50, saved[9].id), saved.slice(10));
  assert.deepEqual(await store.latest(5, saved[19].id), []);
});

Deno.test("kv store: maxCount trims the oldest messages and keeps the newest", async () => {
  using store = new KvMessageStore(await Deno.openKv(":memory:"), { maxCount: 60 });
  const saved = await appendMany(store, 130);
  const kept = await store.latest(1000);
  assert.ok(kept.length <= 60 + 50, `trimmed as it went: ${kept.length} left`);
  assert.deepEqual(kept, saved.slice(-kept.length), "only the oldest were removed");
  await store.trim();
  assert.deepEqual(await store.latest(1000), saved.slice(-60));
});

Deno.test("kv store: maxAgeMs hides expired messages from every read", async () => {
  let now = Date.now() - 10_000;
  using store = new KvMessageStore(await Deno.openKv(":memory:"), {
    maxAgeMs: 5_000,
    generateId: createIdGenerator(() => now),
  });
  const old = await appendMany(store, 3);
  now = Date.now();
  const fresh = await appendMany(store, 3);
  assert.deepEqual(await store.latest(10), fresh);
  assert.deepEqual(await store.after(old[0].id), fresh);
  assert.deepEqual(await store.before(fresh[2].id, 10), fresh.slice(0, 2));
  assert.deepEqual(await store.before(old[2].id, 10), []);
});

Deno.test("kv store: ping answers while open and fails once closed", async () => {
  const store = await openKvStore(":memory:", { recentWindow: 10 });
  await store.ping();
  store.close();
  await assert.rejects(store.ping());
});

Deno.test("kv store: a batch of more clientIds than one KV commit may check is split safely", async () => {
  using store = await openKvStore(":memory:");
  const inputs = [...Array(450)].map((_, n) => ({
    user: ada,
    message: `m${n}`,
    clientId: `c${n % 300}`,
  }));
  const results = await store.appendMany(inputs);
  assert.equal(results.filter((result) => result.created).length, 300);
  results.slice(300).forEach((result, index) => {
    assert.equal(result.created, false);
    assert.deepEqual(result.message, results[index].message, "a repeat returns the first");
  });
  assert.equal((await store.latest(1000)).length, 300);
});

Deno.test("kv store: a batch whose second commit fails says which messages the first one stored", async () => {
  // 150 clientIds: KV checks at most 100 per commit, so the batch takes two commits.
  using store = new KvMessageStore(failingCommits(await Deno.openKv(":memory:"), [2]));
  const inputs = [...Array(150)].map((_, n) => ({
    user: ada,
    message: `m${n}`,
    clientId: `c${n}`,
  }));
  const error = await store.appendMany(inputs).then(
    () => assert.fail("the failing commit went unnoticed"),
    (error) => error,
  );
  assert.ok(error instanceof PartialAppendError, String(error));
  assert.equal(error.code, "partial_append");
  assert.match(String(error.cause), /disk I\/O error/);
  assert.deepEqual(
    texts(error.stored.map((result) => result.message)),
    inputs.slice(0, 100).map((input) => input.message),
  );
  assert.ok(error.stored.every((result) => result.created));
  assert.deepEqual(await store.latest(1000), error.stored.map((result) => result.message));
  // The failed part was not stored: sending it again stores it once.
  const retried = await store.appendMany(inputs.slice(100));
  assert.ok(retried.every((result) => result.created));
  assert.equal((await store.latest(1000)).length, 150);
});

Deno.test("kv store: a batch whose only commit fails rejects with the store's own error", async () => {
  using store = new KvMessageStore(failingCommits(await Deno.openKv(":memory:"), [1]));
  await assert.rejects(store.appendMany([{ user: ada, message: "lost" }]), (error) => {
    assert.ok(!(error instanceof PartialAppendError));
    assert.match(String(error), /disk I\/O error/);
    return true;
  });
  assert.deepEqual(await store.latest(10), []);
});

Deno.test("kv store: rooms keep separate histories; a message carries its room", async () => {
  using store = await openKvStore(":memory:");
  const user = { id: "u", name: "U" };
  const general = await store.append({ user, message: "in general" });
  const team = await store.append({ room: "team", user, message: "in team" });
  const team2 = await store.append({ room: "team", user, message: "again" });
  assert.equal(general.room, "general");
  assert.equal(team.room, "team");
  assert.deepEqual(await store.latest(10), [general]);
  assert.deepEqual(await store.latest(10, undefined, "team"), [team, team2]);
  assert.deepEqual(await store.before(team2.id, 10, "team"), [team]);
  assert.deepEqual(await store.after(team.id, 10, "team"), [team2]);
  assert.deepEqual(await store.latest(10, undefined, "empty"), []);
  assert.equal(await store.countAfter("team", undefined, 100), 2);
  assert.equal(await store.countAfter("team", team.id, 100), 1);
  assert.equal(await store.countAfter("team", undefined, 1), 1, "counting stops at the cap");
});

Deno.test("kv store: a clientId retried in another room answers with the first message", async () => {
  using store = await openKvStore(":memory:");
  const user = { id: "u", name: "U" };
  const [first] = await store.appendMany([{ room: "team", user, message: "a", clientId: "c" }]);
  const [again] = await store.appendMany([{ room: "other", user, message: "a", clientId: "c" }]);
  assert.equal(again.created, false);
  assert.deepEqual(again.message, first.message);
});

Deno.test("kv store: read markers and memberships are per user and room", async () => {
  using store = await openKvStore(":memory:");
  const user = { id: "u", name: "U" };
  const message = await store.append({ room: "team", user, message: "hi" });
  await store.setReadMarker("alice", "team", message.id);
  assert.deepEqual(await store.readMarkers("alice", ["team", "general"]), [
    message.id,
    undefined,
  ]);
  assert.deepEqual(await store.readMarkers("bob", ["team"]), [undefined]);
  await store.addMembership("alice", "team");
  await store.addMembership("alice", "dm:alice:bob");
  await store.addMembership("bob", "dm:alice:bob");
  assert.deepEqual(await store.memberships("alice", 10), ["dm:alice:bob", "team"]);
  assert.deepEqual(await store.memberships("alice", 1), ["dm:alice:bob"]);
});

Deno.test("kv store: listRooms pages through the rooms holding messages, by name, never a DM", async () => {
  using store = await openKvStore(":memory:");
  const user = { id: "u", name: "U" };
  for (const room of ["team-b", "dm:a:b", "dm:c:d", "general", "team-a", "team-b", "dmz", "zoo"]) {
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
});

Deno.test("kv store: listRooms leaves out a room whose messages have all expired", async () => {
  let now = Date.now();
  using store = new KvMessageStore(await Deno.openKv(":memory:"), {
    generateId: createIdGenerator(() => now),
    maxAgeMs: 60_000,
    now: () => now,
  });
  const user = { id: "u", name: "U" };
  await store.append({ room: "old", user, message: "long ago" });
  now += 120_000;
  await store.append({ room: "new", user, message: "just now" });
  assert.deepEqual(await store.listRooms({ limit: 10 }), ["new"]);
});

Deno.test("kv store: messages stored before rooms move into the default room on open, once", async () => {
  await using temp = await tempFile({ suffix: ".kv" });
  const path = temp.path;
  const user = { id: "u", name: "U" };
  const legacy = [...Array(450)].map((_, n) => ({
    id: `01JDQ7ZJ2K8M6V1T4X3N${String(n).padStart(6, "0")}`,
    user,
    message: `old ${n}`,
    createdAt: "2026-11-25T21:56:24.123Z",
  }));
  {
    using kv = await Deno.openKv(path);
    for (const message of legacy) await kv.set(["messages", message.id], message);
    await kv.set(["dedupe", "u", "c1"], legacy[3].id);
  }
  {
    using store = await openKvStore(path, { defaultRoom: "lobby" });
    const history = await store.latest(1000);
    assert.equal(history.length, 450);
    assert.deepEqual(history[0], { ...legacy[0], room: "lobby" });
    // A retry of a message sent before rooms still finds it.
    const [retry] = await store.appendMany([{ user, message: "x", clientId: "c1" }]);
    assert.equal(retry.created, false);
    assert.equal(retry.message.id, legacy[3].id);
  }
  using again = await openKvStore(path, { defaultRoom: "lobby" });
  assert.equal((await again.latest(1000)).length, 450, "nothing moved twice");
});

const DAY = 86_400_000;

/** Wraps `kv`, counting its writes: `set`s and atomic commits. */
function countingWrites(kv: Deno.Kv): { kv: Deno.Kv; writes: () => number } {
  let writes = 0;
  const counted = new Proxy(kv, {
    get(target, property) {
      if (property === "set") {
        return (...args: Parameters<Deno.Kv["set"]>) => (writes++, target.set(...args));
      }
      if (property === "atomic") {
        return () => {
          const atomic = target.atomic();
          const commit = atomic.commit.bind(atomic);
          atomic.commit = () => (writes++, commit());
          return atomic;
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { kv: counted, writes: () => writes };
}

Deno.test("kv store: markers and memberships untouched for membershipMaxAgeMs are gone; touched ones stay", async () => {
  let now = Date.now();
  using store = new KvMessageStore(await Deno.openKv(":memory:"), {
    membershipMaxAgeMs: 10 * DAY,
    now: () => now,
  });
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
});

Deno.test("kv store: touching a room writes at most once per refresh interval", async () => {
  const start = Date.now();
  let now = start;
  const { kv, writes } = countingWrites(await Deno.openKv(":memory:"));
  using store = new KvMessageStore(kv, { membershipMaxAgeMs: 10 * DAY, now: () => now });
  const message = await store.append({ room: "team", user: ada, message: "hi" });
  await store.addMembership("alice", "team");
  await store.setReadMarker("alice", "team", message.id);
  const before = writes();
  // A message every 7.2 s for two hours, each a touch and a DM's membership: refreshed once.
  for (let sent = 0; sent < 1000; sent++) {
    await store.touchRoom("alice", "team");
    await store.addMembership("alice", "team");
    now += 7200;
  }
  assert.equal(writes() - before, 1);
  now = start + 10 * DAY + 30 * 60_000;
  assert.deepEqual(await store.memberships("alice", 10), ["team"], "the refresh kept it");
  assert.deepEqual(await store.readMarkers("alice", ["team"]), [message.id]);
});

Deno.test("kv store: one user creates a bounded number of memberships in others' room lists", async () => {
  const now = Date.now();
  using store = new KvMessageStore(await Deno.openKv(":memory:"), {
    peerMembershipsPerMinute: 30,
    now: () => now,
  });
  const peers = [...Array(100)].map((_, index) => `peer${index}`);
  for (const peer of peers) await store.addMembership(peer, `dm:mallory:${peer}`, "mallory");
  const listed = await Promise.all(peers.map((peer) => store.memberships(peer, 10)));
  assert.equal(listed.filter((rooms) => rooms.length > 0).length, 30);
  await store.addMembership("mallory", "dm:mallory:peer99");
  await store.addMembership("alice", "dm:alice:bob", "bob");
  assert.deepEqual(await store.memberships("mallory", 10), ["dm:mallory:peer99"]);
  assert.deepEqual(await store.memberships("alice", 10), ["dm:alice:bob"], "others are not held");
});

Deno.test("kv store: markers and memberships stored without a touch time get one on open, and expire", async () => {
  await using temp = await tempFile({ suffix: ".kv" });
  let now = Date.now();
  const id = createIdGenerator()();
  {
    using kv = await Deno.openKv(temp.path);
    await kv.set(["meta", "layout"], 2);
    await kv.set(["reads", "alice", "team"], id);
    await kv.set(["members", "alice", "team"], true);
  }
  using store = await openKvStore(temp.path, { membershipMaxAgeMs: 10 * DAY, now: () => now });
  assert.deepEqual(await store.readMarkers("alice", ["team"]), [id]);
  assert.deepEqual(await store.memberships("alice", 10), ["team"]);
  now += 10 * DAY;
  assert.deepEqual(await store.readMarkers("alice", ["team"]), [undefined]);
  assert.deepEqual(await store.memberships("alice", 10), []);
});

Deno.test("kv store: concurrent changes of one message from two stores on one file all apply", async () => {
  await using temp = await tempFile({ suffix: ".kv" });
  using first = await openKvStore(temp.path);
  using second = new KvMessageStore(await Deno.openKv(temp.path));
  const message = await first.append({ user: ada, message: "draft" });
  const changes = [...Array(16)].map((_, index) =>
    (index % 2 === 0 ? first : second).changeMessage(
      message.id,
      { message: `edit ${index}` },
      new Date(),
    )
  );
  const changed = await Promise.all(changes);
  assert.ok(changed.every((result) => result?.message.startsWith("edit")));
  const stored = await first.findMessage(message.id);
  assert.ok(changed.some((result) => result?.message === stored?.message));
  const removed = await first.changeMessage(message.id, { deleted: true }, new Date());
  assert.equal(removed?.deleted, true);
  const late = await second.changeMessage(message.id, { message: "too late" }, new Date());
  assert.equal(late, undefined, "a deleted message has nothing left to edit");
});
