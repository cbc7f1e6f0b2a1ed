import assert from "node:assert/strict";
import { ReadBatch } from "../src/store/read_batch.ts";

Deno.test("read batch: reads asked in one turn share one read, a repeated key once", async () => {
  const reads: string[][] = [];
  const batch = new ReadBatch<string>((keys) => {
    reads.push(keys);
    return Promise.resolve(keys.map((key) => key.toUpperCase()));
  });
  const values = await Promise.all(["a", "b", "a"].map((key) => batch.read(key)));
  assert.deepEqual(values, ["A", "B", "A"]);
  assert.deepEqual(reads, [["a", "b"]]);
});

Deno.test("read batch: keys asked during a read go in the next, which sees earlier writes", async () => {
  const stored = new Map([["ban", "old"]]);
  const reads: string[][] = [];
  let release!: () => void;
  const firstHeld = new Promise<void>((resolve) => release = resolve);
  const batch = new ReadBatch<string | undefined>(async (keys) => {
    reads.push(keys);
    // The stored values are taken when the read starts, as a snapshot would.
    const values = keys.map((key) => stored.get(key));
    if (reads.length === 1) await firstHeld;
    return values;
  });
  const first = batch.read("ban");
  await Promise.resolve();
  stored.set("ban", "new");
  const second = batch.read("ban");
  const third = batch.read("other");
  release();
  assert.deepEqual(await first, "old");
  assert.deepEqual([await second, await third], ["new", undefined]);
  assert.deepEqual(reads, [["ban"], ["ban", "other"]]);
});

Deno.test("read batch: a failed read rejects its own requests only", async () => {
  let fail = true;
  const batch = new ReadBatch<number>((keys) => {
    if (fail) return Promise.reject(new Error("store down"));
    return Promise.resolve(keys.map(() => 1));
  });
  await assert.rejects(batch.read("a"), /store down/);
  fail = false;
  assert.deepEqual(await batch.read("a"), 1);
});
