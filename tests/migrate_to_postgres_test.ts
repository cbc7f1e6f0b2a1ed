/**
 * `deno task migrate-to-postgres` (scripts/migrate_to_postgres.ts), end to end: a KV file written
 * through the KV store, moved into a throwaway PostgreSQL, then read through the PostgreSQL store:
 * every room's messages with the same ids in the same order, edits, tombstones, clientIds,
 * markers, memberships and bans. A database holding messages is refused without `--force`, and a
 * second run with it changes nothing.
 */
import assert from "node:assert/strict";
import { createIdGenerator } from "../src/store/id.ts";
import { KvFileLock } from "../src/store/kv_lock.ts";
import { type KvMessageStore, openKvStore } from "../src/store/kv.ts";
import { openPostgresStore } from "../src/store/postgres.ts";
import { MoveRefused, moveToPostgres } from "../scripts/migrate_to_postgres.ts";
import { tempDir } from "./helpers/dispose.ts";
import { hasPostgres, type PostgresServer, startPostgres } from "./helpers/postgres_server.ts";
import type { NewMessage } from "../src/types.ts";

let server: PostgresServer | undefined;
if (hasPostgres()) {
  Deno.test.beforeAll(async () => {
    server = await startPostgres();
  });
  Deno.test.afterAll(async () => {
    await server?.[Symbol.asyncDispose]();
  });
}

function pgTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: hasPostgres()
      ? `migrate-to-postgres: ${name}`
      : `migrate-to-postgres: ${name} — skipped because /usr/lib/postgresql/15/bin is not installed`,
    ignore: !hasPostgres(),
    fn,
  });
}

const DAY_MS = 24 * 60 * 60 * 1000;
const ROOMS = ["general", "team", "dm:alice:bob", "old"];
const SCRIPT = new URL("../scripts/migrate_to_postgres.ts", import.meta.url).pathname;

/** Runs the task's script as an operator would; its exit code and output. */
async function runTask(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code, stdout: text.decode(stdout), stderr: text.decode(stderr) };
}

/**
 * A chat in a KV file: 1,500 messages in `general` (past one copy batch), a room, a DM, a room
 * whose clientIds are two days old, an edit, a deletion, API and socket clientIds, markers,
 * memberships, a running ban and one that is over.
 */
async function writeChat(kvPath: string): Promise<void> {
  let idClock = Date.now() - 2 * DAY_MS;
  const ids = createIdGenerator(() => idClock, 7);
  await using store = await openKvStore(kvPath, { generateId: ids });
  const alice = { id: "alice", name: "Alice\u0000" };
  const bob = { id: "bob", name: "Bob" };
  await store.appendMany(
    Array.from({ length: 5 }, (_, n) => ({
      room: "old",
      user: bob,
      message: `old ${n}`,
      clientId: `old-${n}`,
    })),
  );
  idClock = Date.now();
  const general: NewMessage[] = Array.from({ length: 1500 }, (_, n) => ({
    user: n % 2 ? alice : bob,
    message: `general ${n}`,
    clientId: n % 3 === 0 ? `general-${n}` : undefined,
  }));
  for (let start = 0; start < general.length; start += 300) {
    await store.appendMany(general.slice(start, start + 300));
  }
  await store.appendMany(
    Array.from({ length: 30 }, (_, n) => ({ room: "team", user: alice, message: `team ${n}` })),
  );
  await store.append({
    room: "team",
    user: bob,
    message: "via api",
    clientId: "c1",
    source: "api",
  });
  await store.append({ room: "dm:alice:bob", user: alice, message: "psst", clientId: "dm-1" });
  const [first, second] = await store.latest(2, undefined, "team");
  await store.changeMessage(first.id, { message: "team 28, edited" }, new Date());
  await store.changeMessage(second.id, { deleted: true }, new Date());
  await store.setReadMarker("alice", "general", (await store.latest(1))[0].id);
  await store.setReadMarker("bob", "team", first.id);
  for (const room of ["general", "team", "dm:alice:bob"]) await store.addMembership("alice", room);
  await store.addMembership("bob", "dm:alice:bob", "alice");
  await store.setBan("mallory", { since: Date.now(), reason: "spam\u0000" });
  await store.setBan("eve", { since: Date.now() - 2000, until: Date.now() + 60_000 });
  await store.setBan("trudy", { since: Date.now() - 2000, until: Date.now() + 1000 });
}

async function allOf(store: KvMessageStore | Awaited<ReturnType<typeof openPostgresStore>>) {
  const rooms: Record<string, unknown> = {};
  for (const room of ROOMS) rooms[room] = await store.latest(10_000, undefined, room);
  return {
    rooms,
    markers: await store.readMarkers("alice", ROOMS),
    bobMarkers: await store.readMarkers("bob", ROOMS),
    aliceRooms: await store.memberships("alice", 10),
    bobRooms: await store.memberships("bob", 10),
    bans: [await store.getBan("mallory"), await store.getBan("eve")],
    listed: await store.listRooms({ limit: 10 }),
  };
}

pgTest(
  "a KV file's chat is readable through the PostgreSQL store, ids and order equal",
  async () => {
    await using dir = await tempDir();
    const kvPath = `${dir.path}/chat.kv`;
    await writeChat(kvPath);
    const url = await server!.createDatabase();

    const moved = await runTask(["--from", kvPath, "--to", url]);
    assert.equal(moved.code, 0, moved.stderr);
    assert.match(moved.stdout, /general: 1500 messages copied, 1500 verified/);
    assert.match(
      moved.stdout,
      /4 rooms, 1537 messages \(1537 verified; 1 edited, 1 deleted\), 502 clientIds \(5 expired, left out\), 2 read markers, 4 memberships, [23] bans/,
    );
    assert.match(moved.stdout, /counts equal/);

    // The ban that ends a second after the copy is over by the time the stores are compared.
    const later = Date.now() + 2000;
    let kvView;
    {
      await using kv = await openKvStore(kvPath, { now: () => later });
      kvView = await allOf(kv);
    }
    await using pg = await openPostgresStore(url, { now: () => later });
    const pgView = await allOf(pg);
    assert.deepEqual(pgView, kvView);
    assert.equal((pgView.rooms.general as unknown[]).length, 1500);
    assert.deepEqual(pgView.listed, ["general", "old", "team"]);
    assert.equal(await pg.getBan("trudy"), undefined);

    const general = pgView.rooms.general as { id: string; message: string }[];
    assert.deepEqual(await pg.after(general[999].id, 1000), general.slice(1000));
    assert.deepEqual(await pg.findMessage(general[42].id), general[42]);
    // A retried clientId still answers with the copied message, in both key spaces.
    const [retried, retriedApi, expired] = await pg.appendMany([
      { user: { id: "bob", name: "Bob" }, message: "general 0", clientId: "general-0" },
      {
        room: "team",
        user: { id: "bob", name: "Bob" },
        message: "x",
        clientId: "c1",
        source: "api",
      },
      { room: "old", user: { id: "bob", name: "Bob" }, message: "old 0", clientId: "old-0" },
    ]);
    assert.deepEqual(retried, { message: general[0], created: false });
    assert.equal(retriedApi.created, false);
    assert.equal(expired.created, true, "a clientId past its 24 h is forgotten");
    // New ids sort after the copied ones, in every room.
    for (const room of ROOMS) {
      const newest = (await pg.latest(1, undefined, room))[0];
      const added = await pg.append({ room, user: { id: "carol", name: "Carol" }, message: "new" });
      assert.ok(added.id > newest.id, `a new id in ${room} sorts after the copied ones`);
      assert.deepEqual((await pg.latest(1, undefined, room))[0], added);
    }
  },
);

pgTest(
  "a database that holds messages is refused without --force, and a rerun copies nothing twice",
  async () => {
    await using dir = await tempDir();
    const kvPath = `${dir.path}/chat.kv`;
    await writeChat(kvPath);
    const url = await server!.createDatabase();
    const first = await moveToPostgres({ kvPath, databaseUrl: url });
    assert.equal(first.messages, 1537);

    const refused = await runTask(["--from", kvPath, "--to", url]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /already holds messages \(--force merges into them\)/);

    const again = await moveToPostgres({ kvPath, databaseUrl: url, force: true });
    assert.deepEqual(
      again.rooms.map((room) => [room.room, room.kv, room.verified, room.postgres]),
      first.rooms.map((room) => [room.room, room.kv, room.kv, room.kv]),
      "every room holds what it held after the first run",
    );
  },
);

pgTest("a KV file a server holds, or none at all, is refused", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/chat.kv`;
  const url = await server!.createDatabase();
  await assert.rejects(
    moveToPostgres({ kvPath, databaseUrl: url }),
    (error) => error instanceof MoveRefused && error.code === "kv_missing",
  );
  await writeChat(kvPath);
  using _server = await KvFileLock.acquire(kvPath, { instanceId: "chat-1" });
  await assert.rejects(
    moveToPostgres({ kvPath, databaseUrl: url }),
    (error) =>
      error instanceof MoveRefused && error.code === "kv_in_use" && /chat-1/.test(error.message),
  );
});
