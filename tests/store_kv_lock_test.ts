import assert from "node:assert/strict";
import { join } from "node:path";
import {
  KvFileBusy,
  type KvFileBusyCode,
  KvFileLock,
  type KvLockOptions,
  lockPathOf,
  redisIdentity,
} from "../src/store/kv_lock.ts";
import { tempDir } from "./helpers/dispose.ts";

// The kernel's lock belongs to an open file, not to a process: two acquires in this process contend
// as two processes would.

const REDIS_A = "redis://127.0.0.1:6379";
const REDIS_B = "redis://127.0.0.1:6380";

async function refusal(kvPath: string, options: KvLockOptions): Promise<KvFileBusy> {
  try {
    (await KvFileLock.acquire(kvPath, options)).release();
  } catch (error) {
    assert.ok(error instanceof KvFileBusy, String(error));
    return error;
  }
  assert.fail(`${options.instanceId} was let in`);
}

async function refused(kvPath: string, options: KvLockOptions, code: KvFileBusyCode) {
  const error = await refusal(kvPath, options);
  assert.equal(error.code, code, error.message);
  return error;
}

Deno.test("kv lock: a second instance without Redis is refused while the first holds the file", async () => {
  await using temp = await tempDir({ prefix: "chat_kv_lock_test_" });
  const kvPath = join(temp.path, "data", "chat.kv");
  {
    using _first = await KvFileLock.acquire(kvPath, { instanceId: "first" });
    const error = await refused(kvPath, { instanceId: "second" }, "kv_in_use");
    assert.deepEqual(error.holder, { instanceId: "first", pid: Deno.pid, redis: null });
    assert.equal(error.message, `held by instance "first", process ${Deno.pid}`);
  }
  // Released: the next one takes it, and the lock file stays for the next start.
  using _next = await KvFileLock.acquire(kvPath, { instanceId: "next" });
  assert.equal(JSON.parse(await Deno.readTextFile(lockPathOf(kvPath))).instanceId, "next");
});

Deno.test("kv lock: instances on one Redis share the file; no-Redis and other-Redis ones are refused", async () => {
  await using temp = await tempDir({ prefix: "chat_kv_lock_test_" });
  const kvPath = join(temp.path, "chat.kv");
  {
    using _a = await KvFileLock.acquire(kvPath, { instanceId: "a", redisUrl: REDIS_A });
    using _b = await KvFileLock.acquire(kvPath, { instanceId: "b", redisUrl: REDIS_A });
    const alone = await refused(kvPath, { instanceId: "alone" }, "kv_redis_differs");
    assert.match(
      alone.message,
      /^held by instance "a", .* with Redis 127\.0\.0\.1:6379\/0, but this instance has no Redis$/,
    );
    const other = await refused(kvPath, { instanceId: "c", redisUrl: REDIS_B }, "kv_redis_differs");
    assert.match(
      other.message,
      /with Redis 127\.0\.0\.1:6379\/0, but this instance has Redis 127\.0\.0\.1:6380\/0$/,
    );
  }
  // The group gone, a group on another Redis (or an instance without) may take the file.
  using _c = await KvFileLock.acquire(kvPath, { instanceId: "c", redisUrl: REDIS_B });
});

Deno.test("kv lock: an instance with Redis is refused by a holder without", async () => {
  await using temp = await tempDir({ prefix: "chat_kv_lock_test_" });
  const kvPath = join(temp.path, "chat.kv");
  using _alone = await KvFileLock.acquire(kvPath, { instanceId: "alone" });
  const error = await refused(kvPath, { instanceId: "a", redisUrl: REDIS_A }, "kv_in_use");
  assert.match(
    error.message,
    /^held by instance "alone", .*, without Redis, but this instance has Redis 127\.0\.0\.1:6379\/0$/,
  );
});

Deno.test("kv lock: instances starting together end up as one group on one Redis", async () => {
  await using temp = await tempDir({ prefix: "chat_kv_lock_test_" });
  const kvPath = join(temp.path, "chat.kv");
  for (let round = 0; round < 5; round++) {
    const attempts = Array.from({ length: 8 }, (_, n) => ({
      instanceId: `i${n}`,
      ...(n % 4 === 3 ? {} : { redisUrl: n % 2 === 0 ? REDIS_A : REDIS_B }),
    }));
    const results = await Promise.allSettled(
      attempts.map((options) => KvFileLock.acquire(kvPath, options)),
    );
    const held = attempts.filter((_, n) => results[n].status === "fulfilled");
    for (const result of results) {
      if (result.status === "fulfilled") result.value.release();
      else assert.ok(result.reason instanceof KvFileBusy, String(result.reason));
    }
    // One instance without Redis alone, or every instance of one Redis: never a mix.
    const [winner, ...others] = new Set(held.map((options) => options.redisUrl));
    assert.equal(others.length, 0, JSON.stringify(held));
    const group = attempts.filter((options) => options.redisUrl === winner);
    assert.equal(held.length, winner === undefined ? 1 : group.length, JSON.stringify(held));
  }
});

Deno.test("kv lock: a killed holder's lock is free at once", async () => {
  await using temp = await tempDir({ prefix: "chat_kv_lock_test_" });
  const kvPath = join(temp.path, "chat.kv");
  const module = new URL("../src/store/kv_lock.ts", import.meta.url).href;
  const holder = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `const { KvFileLock } = await import(${JSON.stringify(module)});
       await KvFileLock.acquire(${JSON.stringify(kvPath)}, { instanceId: "killed" });
       console.log("held");
       setInterval(() => {}, 60_000);`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
  assert.equal((await lines.read()).value?.trim(), "held");
  await refused(kvPath, { instanceId: "second" }, "kv_in_use");
  holder.kill("SIGKILL");
  await holder.status;
  await lines.cancel();
  using _next = await KvFileLock.acquire(kvPath, { instanceId: "next" });
});

Deno.test("kv lock: a Redis is named by host, port and database, never by its credentials", () => {
  assert.equal(redisIdentity("redis://127.0.0.1:6379"), "127.0.0.1:6379/0");
  assert.equal(redisIdentity("redis://Cache.Example"), "cache.example:6379/0");
  assert.equal(redisIdentity("rediss://user:s3cret@cache.example:6380/2"), "cache.example:6380/2");
  assert.ok(!redisIdentity("redis://:s3cret@h").includes("s3cret"));
});
