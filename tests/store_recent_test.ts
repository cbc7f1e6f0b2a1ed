import assert from "node:assert/strict";
import { createIdGenerator, KvMessageStore } from "../src/store/mod.ts";
import { RecentWindow, RoomWindows } from "../src/store/recent.ts";
import { tempFile } from "./helpers/dispose.ts";

const user = { id: "u", name: "U" };

/** A small seeded PRNG, so a failure replays the same way. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("recent window: answers only what it can answer exactly", () => {
  const window = new RecentWindow(3);
  const message = (id: string) => ({ id, room: "general", user, message: id, createdAt: "" });
  window.seed([message("A"), message("B")]);
  assert.deepEqual(window.newest(5)?.map((m) => m.id), ["A", "B"], "complete: all of it");
  window.add([message("C"), message("D")]);
  assert.deepEqual(window.newest(2)?.map((m) => m.id), ["C", "D"]);
  assert.equal(window.newest(4), undefined, "A was dropped: the store must answer");
  assert.deepEqual(window.newest(5, "B")?.map((m) => m.id), ["C", "D"]);
  assert.equal(window.newest(5, "A"), undefined, "the gap after A starts before the window");
  assert.deepEqual(window.newest(5, undefined, "C")?.map((m) => m.id), ["C", "D"], "B expired");
});

Deno.test("recent window: a store with it answers latest() exactly as one without", async () => {
  const next = random(42);
  let clock = 1_700_000_000_000;
  const generateId = createIdGenerator(() => clock);
  using kv = await Deno.openKv(":memory:");
  const plain = new KvMessageStore(kv, { generateId });
  const cached = new KvMessageStore(kv, { generateId, recentWindow: 20 });
  await cached.warm();
  const ids: string[] = [];
  for (let step = 0; step < 300; step++) {
    if (next() < 0.6) {
      clock += Math.floor(next() * 3);
      const count = 1 + Math.floor(next() * 4);
      const results = await cached.appendMany(
        [...Array(count)].map(() => ({ user, message: `m${ids.length}` })),
      );
      ids.push(...results.map((result) => result.message.id));
    }
    const limit = 1 + Math.floor(next() * 30);
    const afterId = ids.length > 0 && next() < 0.5
      ? ids[Math.floor(next() * ids.length)]
      : undefined;
    assert.deepEqual(
      await cached.latest(limit, afterId),
      await plain.latest(limit, afterId),
      `step ${step}: latest(${limit}, ${afterId})`,
    );
  }
});

Deno.test("room windows: the least recently read room is dropped beyond the limit", async () => {
  const windows = new RoomWindows(2, 2);
  const message = (room: string, id: string) => ({ id, room, user, message: id, createdAt: "" });
  for (const room of ["a", "b", "c"]) {
    await windows.fill(room, () => Promise.resolve([message(room, `${room}1`)]));
    if (room === "b") windows.newest("a", 1); // a was read after b was filled
  }
  assert.equal(windows.rooms, 2);
  assert.ok(windows.has("a") && windows.has("c") && !windows.has("b"));
  assert.deepEqual(windows.newest("a", 5)?.map((m) => m.id), ["a1"]);
  assert.equal(windows.newest("b", 5), undefined);
  assert.equal(windows.messages, 2);
});

Deno.test("room windows: what is stored while a room is filled is merged in, once", async () => {
  const windows = new RoomWindows(3, 10);
  const message = (id: string) => ({ id, room: "r", user, message: id, createdAt: "" });
  await windows.fill("r", () => {
    // Stored while the read is under way: one the read saw, one it did not.
    windows.add([message("B"), message("C")]);
    return Promise.resolve([message("A"), message("B")]);
  });
  assert.deepEqual(windows.newest("r", 10)?.map((m) => m.id), ["A", "B", "C"]);
  windows.add([message("D")]);
  assert.deepEqual(windows.newest("r", 3)?.map((m) => m.id), ["B", "C", "D"]);
  assert.equal(windows.newest("r", 4), undefined, "more than the window holds: ask the store");
  assert.equal(windows.newest("r", 10, "A"), undefined, "A was dropped: the window cannot tell");
});

Deno.test("kv store: other rooms are served from their windows, and match KV exactly", async () => {
  await using temp = await tempFile({ suffix: ".kv" });
  const path = temp.path;
  using cached = new KvMessageStore(await Deno.openKv(path), { roomWindow: 4, roomWindows: 2 });
  using plain = new KvMessageStore(await Deno.openKv(path));
  const rng = random(7);
  for (let n = 0; n < 60; n++) {
    const room = ["x", "y", "z"][Math.floor(rng() * 3)];
    await cached.append({ room, user, message: `${n}` });
    const reader = ["x", "y", "z"][Math.floor(rng() * 3)];
    const limit = 1 + Math.floor(rng() * 6);
    assert.deepEqual(
      await cached.latest(limit, undefined, reader),
      await plain.latest(limit, undefined, reader),
      `latest(${limit}) of ${reader} after ${n}`,
    );
  }
  assert.ok(cached.memory().rooms <= 2);
  assert.ok(cached.memory().messages <= 8);
});
