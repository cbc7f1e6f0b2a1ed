import assert from "node:assert/strict";
import { KvMessageStore, openKvStore } from "../src/store/mod.ts";
import type { ChatMessage } from "../src/types.ts";
import { gatherDelay, MAX_GATHER_MS, Timeline } from "../src/chat/timeline.ts";
import { failingCommits } from "./helpers/failing_kv.ts";

const user = { id: "u", name: "U" };

/** `timeline`, waited for on dispose: its last commit finishes before its store closes. */
function idleOnDispose(timeline: Timeline): Timeline & AsyncDisposable {
  return Object.assign(timeline, { [Symbol.asyncDispose]: () => timeline.idle() });
}

Deno.test("timeline: concurrent publishes are group-committed, delivered in id order, then resolved", async () => {
  using store = await openKvStore(":memory:");
  const delivered: ChatMessage[][] = [];
  await using timeline = idleOnDispose(
    new Timeline(store, {
      historyLimit: 10,
      deliver: (messages) => delivered.push(messages),
      maxBatch: 8,
    }),
  );
  const results = (await Promise.all(
    [...Array(20)].map((_, n) => timeline.publish({ user, message: `m${n}` })),
  )).map((result) => result.message);
  assert.deepEqual(results.map((m) => m.message), [...Array(20)].map((_, n) => `m${n}`));
  const flat = delivered.flat();
  assert.deepEqual(flat, results, "every message delivered once, in publish order");
  assert.ok(delivered.length < 20, `batched into ${delivered.length} commits`);
  assert.ok(delivered.every((batch) => batch.length <= 8));
  assert.deepEqual(await store.latest(100), results);
});

Deno.test("timeline: each delivered message comes with its receivedAt; a duplicate is not delivered", async () => {
  using store = await openKvStore(":memory:");
  const delivered: [string, number][] = [];
  await using timeline = idleOnDispose(
    new Timeline(store, {
      historyLimit: 10,
      deliver: (messages, receivedAt) => {
        assert.equal(receivedAt.length, messages.length);
        messages.forEach((message, index) => delivered.push([message.message, receivedAt[index]]));
      },
    }),
  );
  await Promise.all([
    timeline.publish({ user, message: "a", clientId: "c1" }, 1),
    timeline.publish({ user, message: "a again", clientId: "c1" }, 2),
    timeline.publish({ user, message: "b" }, 3),
  ]);
  const before = performance.now();
  await timeline.publish({ user, message: "c" });
  assert.deepEqual(delivered.slice(0, 2), [["a", 1], ["b", 3]]);
  const [text, receivedAt] = delivered[2];
  assert.equal(text, "c");
  assert.ok(receivedAt >= before && receivedAt <= performance.now(), "defaults to now");
  assert.equal(delivered.length, 3);
});

Deno.test("timeline: a join sees history up to a delivery boundary, and every later delivery", async () => {
  using store = await openKvStore(":memory:");
  const subscribers: ChatMessage[][] = [];
  await using timeline = idleOnDispose(
    new Timeline(store, {
      historyLimit: 1000,
      deliver: (messages) => subscribers.forEach((seen) => seen.push(...messages)),
    }),
  );
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
});

Deno.test("timeline: a failed commit rejects its senders and the next batch still works", async () => {
  using store = await openKvStore(":memory:");
  let failNext = true;
  const appendMany = store.appendMany.bind(store);
  store.appendMany = (inputs) => {
    if (failNext) {
      failNext = false;
      return Promise.reject(new Error("disk full"));
    }
    return appendMany(inputs);
  };
  await using timeline = idleOnDispose(
    new Timeline(store, { historyLimit: 10, deliver: () => {} }),
  );
  await assert.rejects(timeline.publish({ user, message: "lost" }), /disk full/);
  const { message: kept } = await timeline.publish({ user, message: "kept" });
  assert.deepEqual(await store.latest(10), [kept]);
});

Deno.test("timeline: when a batch's second KV commit fails, the first commit's messages are still delivered and acked", async () => {
  // Commit 1 is the first publish alone (the writer starts at once); the other 150 are one batch,
  // which takes commits 2 and 3 (KV checks at most 100 clientIds per commit). Commit 3 fails.
  using store = new KvMessageStore(failingCommits(await Deno.openKv(":memory:"), [3]));
  const delivered: ChatMessage[][] = [];
  await using timeline = idleOnDispose(
    new Timeline(store, {
      historyLimit: 10,
      deliver: (messages) => delivered.push(messages),
      maxBatch: 200,
    }),
  );
  const outcomes = await Promise.allSettled(
    [...Array(151)].map((_, n) => timeline.publish({ user, message: `m${n}`, clientId: `c${n}` })),
  );
  const acked = outcomes.flatMap((outcome) =>
    outcome.status === "fulfilled" ? [outcome.value.message.message] : []
  );
  const expected = [...Array(101)].map((_, n) => `m${n}`);
  assert.deepEqual(acked, expected, "the first 101 are acked");
  for (const outcome of outcomes.slice(101)) {
    assert.equal(outcome.status, "rejected");
    assert.match(String(outcome.reason), /disk I\/O error/);
  }
  assert.deepEqual(delivered.map((batch) => batch.length), [1, 100], "delivered once each");
  assert.deepEqual(delivered.flat().map((message) => message.message), expected);
  assert.deepEqual((await store.latest(1000)).map((message) => message.message), expected);
  // The writer goes on: a resend of a rejected message is stored and delivered.
  const resent = await timeline.publish({ user, message: "m101", clientId: "c101" });
  assert.equal(resent.created, true);
  assert.deepEqual(delivered.at(-1), [resent.message]);
});

Deno.test("timeline: a repeated clientId resolves with the first message and is delivered once", async () => {
  using store = await openKvStore(":memory:");
  const delivered: ChatMessage[] = [];
  await using timeline = idleOnDispose(
    new Timeline(store, {
      historyLimit: 10,
      deliver: (messages) => delivered.push(...messages),
    }),
  );
  const results = await Promise.all(
    [...Array(20)].map(() => timeline.publish({ user, message: "once", clientId: "c" })),
  );
  assert.equal(new Set(results.map((result) => result.message.id)).size, 1);
  assert.equal(results.filter((result) => result.created).length, 1);
  assert.equal(delivered.length, 1);
});

Deno.test("timeline: a join after an id gets the newest messages after it and hasMore", async () => {
  using store = await openKvStore(":memory:");
  await using timeline = idleOnDispose(new Timeline(store, { historyLimit: 3, deliver: () => {} }));
  const sent = [];
  for (let n = 0; n < 10; n++) {
    sent.push((await timeline.publish({ user, message: `${n}` })).message);
  }
  const seen: [ChatMessage[], boolean][] = [];
  const record = (history: ChatMessage[], info: { hasMore: boolean }) =>
    seen.push([history, info.hasMore]);
  await timeline.join(record);
  await timeline.join(record, { afterId: sent[4].id, limit: 3 });
  await timeline.join(record, { afterId: sent[6].id, limit: 5 });
  assert.deepEqual(seen, [
    [sent.slice(7), true],
    [sent.slice(7), true],
    [sent.slice(7), false],
  ]);
  assert.deepEqual(await timeline.page(sent[3].id, 2), [sent.slice(1, 3), { hasMore: true }]);
  assert.deepEqual(await timeline.page(sent[2].id, 5), [sent.slice(0, 2), { hasMore: false }]);
});

/**
 * Publishes "alone", then "a1" and "a2" together, then `count` more ("b0"…) one every
 * `intervalMs`; returns the texts of each delivered batch and how long "alone" took.
 */
async function deliveredBatches(
  gather: number | "auto" | undefined,
  intervalMs: number,
  count: number,
): Promise<{ batches: string[][]; aloneMs: number }> {
  using store = await openKvStore(":memory:");
  const delivered: ChatMessage[][] = [];
  await using timeline = idleOnDispose(
    new Timeline(store, {
      historyLimit: 10,
      deliver: (messages) => delivered.push(messages),
      gather,
    }),
  );
  const started = performance.now();
  await timeline.publish({ user, message: "alone" });
  const aloneMs = performance.now() - started;
  await Promise.all([
    timeline.publish({ user, message: "a1" }),
    timeline.publish({ user, message: "a2" }),
    (async () => {
      for (let n = 0; n < count; n++) {
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
        timeline.publish({ user, message: `b${n}` });
      }
    })(),
  ]);
  await timeline.idle();
  return {
    batches: delivered.map((batch) => batch.map((message) => message.message)),
    aloneMs,
  };
}

Deno.test("timeline: under load, messages arriving during the gather wait join the next commit", async () => {
  // The gather is long next to the 15 ms the four take to arrive, so a busy machine's late timers
  // still land them in it.
  const { batches, aloneMs } = await deliveredBatches(200, 5, 4);
  // A lone message is committed at once: a quiet chat never waits.
  assert.ok(aloneMs < 200, "no gather wait for a lone message");
  // Two at once make a multi-message commit; what arrives next is gathered for 200 ms.
  assert.deepEqual(batches, [["alone"], ["a1", "a2"], ["b0", "b1", "b2", "b3"]]);
});

Deno.test("timeline: without a gather, messages arriving one by one are committed one by one", async () => {
  // 60 ms apart: each commit is done before the next message arrives, even on a busy machine.
  const { batches } = await deliveredBatches(undefined, 60, 3);
  assert.deepEqual(batches.slice(-3), [["b0"], ["b1"], ["b2"]]);
});

Deno.test("timeline: auto gathers about one commit's time, counted from the oldest waiting message", () => {
  // Commits take 2 ms: a message that just arrived waits 2 ms more for company.
  assert.equal(gatherDelay(2, 100, 100), 2);
  // One that waited 1.5 ms for the previous commit waits only what is left.
  assert.equal(gatherDelay(2, 100, 101.5), 0.5);
  // One that waited longer than a commit takes goes at once.
  assert.equal(gatherDelay(2, 100, 105), 0);
  // A slow store gathers more, never past the bound.
  assert.equal(gatherDelay(40, 100, 100), MAX_GATHER_MS);
});

Deno.test("timeline: auto at a trickle commits each message at once, alone", async () => {
  const { batches, aloneMs } = await deliveredBatches("auto", 60, 3);
  assert.ok(aloneMs < MAX_GATHER_MS * 20, `a lone message took ${aloneMs} ms`);
  assert.deepEqual(batches[0], ["alone"]);
  assert.deepEqual(batches.slice(-3), [["b0"], ["b1"], ["b2"]]);
});

Deno.test("timeline: a message published as the writer finishes is still committed", async () => {
  using store = await openKvStore(":memory:");
  await using timeline = idleOnDispose(
    new Timeline(store, { historyLimit: 10, deliver: () => {} }),
  );
  for (let n = 0; n < 20; n++) {
    // Publish from the microtask right after a commit resolves, racing the writer's cleanup.
    await timeline.publish({ user, message: `first ${n}` }).then(() =>
      timeline.publish({ user, message: `second ${n}` })
    );
  }
  assert.equal((await store.latest(100)).length, 40);
});
