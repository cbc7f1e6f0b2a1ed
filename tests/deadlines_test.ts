import assert from "node:assert/strict";
import { DEADLINE_RESOLUTION_MS, Deadlines } from "../src/deadlines.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("deadlines: entries fire in deadline order, never early, from one timer", async () => {
  const fired: [string, number][] = [];
  const deadlines = new Deadlines<string>((entry) => fired.push([entry, performance.now()]));
  const start = performance.now();
  deadlines.set("late", start + 60);
  deadlines.set("early", start + 20);
  deadlines.set("middle", start + 40);
  assert.equal(deadlines.size, 3);
  await sleep(120);
  assert.deepEqual(fired.map(([entry]) => entry), ["early", "middle", "late"]);
  const due = { early: 20, middle: 40, late: 60 } as Record<string, number>;
  for (const [entry, at] of fired) assert.ok(at - start >= due[entry], `${entry} fired early`);
  assert.equal(deadlines.size, 0);
});

Deno.test("deadlines: a cancelled entry does not fire, and the last cancel clears the timer", async () => {
  const fired: string[] = [];
  const deadlines = new Deadlines<string>((entry) => fired.push(entry));
  const key = deadlines.set("a", performance.now() + 10_000);
  deadlines.cancel("a", key);
  // The sanitizer fails the test if a timer were still pending.
  assert.equal(deadlines.size, 0);
  const soon = deadlines.set("b", performance.now() + 5);
  deadlines.set("c", performance.now() + 5);
  deadlines.cancel("b", soon);
  await sleep(5 + 3 * DEADLINE_RESOLUTION_MS);
  assert.deepEqual(fired, ["c"]);
});

Deno.test("deadlines: an entry set again from its own firing fires again", async () => {
  let count = 0;
  const deadlines: Deadlines<string> = new Deadlines<string>((entry) => {
    if (++count < 3) deadlines.set(entry, performance.now() + 5);
  });
  deadlines.set("tick", performance.now());
  await sleep(100);
  assert.equal(count, 3);
  assert.equal(deadlines.size, 0);
});

Deno.test("deadlines: clear drops everything", () => {
  const deadlines = new Deadlines<string>(() => assert.fail("nothing may fire"));
  deadlines.set("a", performance.now() + 1000);
  deadlines.set("b", performance.now() + 2000);
  deadlines.clear();
  assert.equal(deadlines.size, 0);
});
