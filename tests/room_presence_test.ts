import assert from "node:assert/strict";
import { RoomPresence } from "../src/chat/room_presence.ts";
import { until } from "./helpers/time.ts";

const alice = { id: "alice", name: "Alice" };
const bob = { id: "bob", name: "Bob" };

function recorder() {
  const announced: [string, string[], string[]][] = [];
  const presence = new RoomPresence((room, joined, left) => {
    announced.push([room, joined.map((u) => u.id), left.map((u) => u.id)]);
  }, { batchMs: 10 });
  return { presence, announced, settle: () => new Promise((r) => setTimeout(r, 30)) };
}

Deno.test("room presence: first connection in and last connection out are announced, per room", async () => {
  const { presence, announced, settle } = recorder();
  presence.enter("red", alice);
  presence.enter("red", alice);
  presence.enter("blue", bob);
  await until(() => announced.length === 2, 2_000, "both rooms");
  assert.deepEqual(announced.toSorted(), [["blue", ["bob"], []], ["red", ["alice"], []]]);
  presence.exit("red", alice);
  await settle();
  assert.equal(announced.length, 2, "alice still has a connection in red");
  presence.exit("red", alice);
  await until(() => announced.length === 3, 2_000, "alice leaving red");
  assert.deepEqual(announced.at(-1), ["red", [], ["alice"]]);
  assert.equal(presence.rooms, 1);
  presence.close();
});

Deno.test("room presence: a join and a leave within one batch cancel out; strays are ignored", async () => {
  const { presence, announced, settle } = recorder();
  presence.enter("red", alice);
  presence.exit("red", alice);
  presence.exit("red", bob);
  await settle();
  assert.deepEqual(announced, []);
  assert.equal(presence.rooms, 0);
  presence.close();
});

Deno.test("room presence: a big room gathers 0.1 ms per member, up to a full batch, while a small one announces at the batch", async () => {
  const { presence, announced } = recorder();
  const members = Array.from({ length: 5_000 }, (_, n) => ({ id: `u${n}`, name: `U${n}` }));
  for (const member of members) presence.enter("big", member);
  assert.equal(presence.windowMs("big"), 500);
  // A storm goes out in full batches, not after the window: the frame each member gets stays small.
  await until(
    () => announced.reduce((sum, [, joined]) => sum + joined.length, 0) === 5_000,
    2_000,
    "the 5,000",
  );
  announced.length = 0;
  const started = performance.now();
  presence.enter("big", alice);
  presence.enter("small", bob);
  assert.equal(presence.windowMs("small"), 10);
  await until(() => announced.length > 0, 2_000, "the small room");
  assert.deepEqual(announced, [["small", ["bob"], []]], "the small room does not wait");
  await until(() => announced.length > 1, 5_000, "the big room");
  assert.ok(performance.now() - started >= 499, "a lone change in the big room waited its window");
  assert.deepEqual(announced[1], ["big", ["alice"], []]);
  presence.close();
});

Deno.test("room presence: after a member list was taken, a join and a leave no longer cancel out", async () => {
  const { presence, announced } = recorder();
  presence.enter("red", alice);
  presence.observed("red"); // someone's `join` ack lists alice
  presence.exit("red", alice);
  presence.enter("blue", bob);
  presence.exit("blue", bob);
  await until(() => announced.length > 0, 2_000, "red's change");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(announced, [["red", [], ["alice"]]], "red's list-taker learns alice left");
  presence.close();
});

Deno.test("room presence: shared across instances, a join and a leave do not cancel out", async () => {
  const announced: [string, string[], string[]][] = [];
  const presence = new RoomPresence((room, joined, left) => {
    announced.push([room, joined.map((u) => u.id), left.map((u) => u.id)]);
  }, { batchMs: 10, cancelOut: false });
  presence.enter("red", alice);
  presence.exit("red", alice);
  await until(() => announced.length > 0, 2_000, "red's change");
  assert.deepEqual(announced, [["red", [], ["alice"]]]);
  presence.close();
});

Deno.test("room presence: changes trickling into a big room go out once 250 are pending, before the window", async () => {
  const { presence, announced } = recorder();
  const total = () => announced.reduce((sum, [, joined]) => sum + joined.length, 0);
  for (let n = 0; n < 10_000; n++) presence.enter("huge", { id: `u${n}`, name: `U${n}` });
  await until(() => total() === 10_000, 2_000, "the first 10,000");
  assert.equal(presence.windowMs("huge"), 1_000);
  announced.length = 0;
  const started = performance.now();
  // Ten at a time, a millisecond apart: without the cap they would wait the whole second.
  for (let n = 0; n < 260; n++) {
    presence.enter("huge", { id: `late${n}`, name: `Late${n}` });
    if (n % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await until(() => announced.length > 0, 2_000, "the full batch");
  assert.ok(performance.now() - started < 900, "sent before the window ended");
  assert.ok(announced[0][1].length >= 250 && announced[0][1].length <= 260, "one full batch");
  presence.close();
});
