/**
 * What only the Deno KV store does: its commit chunks, its older key layouts, its file. The
 * contract every store keeps is tests/store_contract_test.ts, which runs on KV too.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createIdGenerator,
  KvMessageStore,
  openKvStore,
  PartialAppendError,
} from "../src/store/mod.ts";
import type { ChatMessage } from "../src/types.ts";
import { failingCommits } from "./helpers/failing_kv.ts";
import { tempDir, tempFile } from "./helpers/dispose.ts";

const ada = { id: "u1", name: "Ada" };

async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  await using temp = await tempDir({ prefix: "chat_store_test_" });
  await run(temp.path);
}

const texts = (messages: ChatMessage[]) => messages.map((message) => message.message);

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

Deno.test("kv store: id and mention entries an earlier trim left behind are swept on open, the rest kept", async () => {
  await using temp = await tempFile({ suffix: ".kv" });
  const kept: ChatMessage[] = [];
  const trimmed: ChatMessage[] = [];
  {
    using store = await openKvStore(temp.path);
    for (let n = 0; n < 150; n++) {
      const room = n % 2 === 0 ? "team" : "general";
      const message = await store.append({ room, user: ada, message: `m${n}`, mentions: ["bob"] });
      (n % 3 === 0 ? trimmed : kept).push(message);
    }
  }
  const entries = async (kv: Deno.Kv, prefix: Deno.KvKey) =>
    (await Array.fromAsync(kv.list({ prefix }))).map((entry) => entry.key);
  {
    // What a trim before layout 4 did: the messages went, their id and mention entries stayed.
    using kv = await Deno.openKv(temp.path);
    for (const { room, id } of trimmed) await kv.delete(["messages", room, id]);
    await kv.set(["meta", "layout"], 3);
    assert.equal((await entries(kv, ["ids"])).length, 150);
    assert.equal((await entries(kv, ["mentions"])).length, 150);
  }
  {
    using store = await openKvStore(temp.path);
    assert.deepEqual(texts(await store.latest(100, undefined, "team")).length, 50);
  }
  using kv = await Deno.openKv(temp.path);
  const ids = (await entries(kv, ["ids"])).map((key) => key[1]).sort();
  assert.deepEqual(ids, kept.map((message) => message.id).sort());
  const mentions = (await entries(kv, ["mentions"])).map((key) => key[3]).sort();
  assert.deepEqual(mentions, kept.map((message) => message.id).sort());
  assert.equal((await kv.get(["meta", "layout"])).value, 4);
});
