import assert from "node:assert/strict";
import { openKvStore } from "../src/store/mod.ts";
import type { ChatMessage } from "../src/store/mod.ts";
import { Timeline } from "../src/timeline.ts";

const user = { id: "u", name: "U" };

Deno.test("timeline: concurrent publishes are group-committed, delivered in id order, then resolved", async () => {
  const store = await openKvStore(":memory:");
  const delivered: ChatMessage[][] = [];
  const timeline = new Timeline(store, {
    historyLimit: 10,
    deliver: (messages) => delivered.push(messages),
    maxBatch: 8,
  });
  try {
    const results = await Promise.all(
      [...Array(20)].map((_, n) => timeline.publish({ user, message: `m${n}` })),
    );
    assert.deepEqual(results.map((m) => m.message), [...Array(20)].map((_, n) => `m${n}`));
    const flat = delivered.flat();
    assert.deepEqual(flat, results, "every message delivered once, in publish order");
    assert.ok(delivered.length < 20, `batched into ${delivered.length} commits`);
    assert.ok(delivered.every((batch) => batch.length <= 8));
    assert.deepEqual(await store.latest(100), results);
  } finally {
    await timeline.idle();
    store.close();
  }
});

Deno.test("timeline: a join sees history up to a delivery boundary, and every later delivery", async () => {
  const store = await openKvStore(":memory:");
  const subscribers: ChatMessage[][] = [];
  const timeline = new Timeline(store, {
    historyLimit: 1000,
    deliver: (messages) => subscribers.forEach((seen) => seen.push(...messages)),
  });
  try {
    const publishes = [...Array(50)].map((_, n) => timeline.publish({ user, message: `${n}` }));
    const joins = [...Array(5)].map(() => {
      const seen: ChatMessage[] = [];
      return timeline.join((history) => {
        seen.push(...history);
        subscribers.push(seen);
      }).then(() => seen);
    });
    const seenBy = await Promise.all(joins);
    await Promise.all(publishes);
    for (const seen of seenBy) {
      assert.deepEqual(seen.map((m) => m.message), [...Array(50)].map((_, n) => `${n}`));
    }
  } finally {
    await timeline.idle();
    store.close();
  }
});

Deno.test("timeline: a failed commit rejects its senders and the next batch still works", async () => {
  const store = await openKvStore(":memory:");
  let failNext = true;
  const appendMany = store.appendMany.bind(store);
  store.appendMany = (inputs) => {
    if (failNext) {
      failNext = false;
      return Promise.reject(new Error("disk full"));
    }
    return appendMany(inputs);
  };
  const timeline = new Timeline(store, { historyLimit: 10, deliver: () => {} });
  try {
    await assert.rejects(timeline.publish({ user, message: "lost" }), /disk full/);
    const kept = await timeline.publish({ user, message: "kept" });
    assert.deepEqual(await store.latest(10), [kept]);
  } finally {
    await timeline.idle();
    store.close();
  }
});
