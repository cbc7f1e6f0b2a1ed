import assert from "node:assert/strict";
import { createIdGenerator, KvMessageStore } from "../src/store/mod.ts";
import { RecentWindow } from "../src/store/recent.ts";

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
  const kv = await Deno.openKv(":memory:");
  const plain = new KvMessageStore(kv, { generateId });
  const cached = new KvMessageStore(kv, { generateId, recentWindow: 20 });
  try {
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
  } finally {
    kv.close();
  }
});
