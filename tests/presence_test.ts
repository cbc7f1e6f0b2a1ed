import assert from "node:assert/strict";
import {
  ClusterPresence,
  LocalPresence,
  PRESENCE_MAX_BATCH_USERS,
  PRESENCE_MAX_WINDOW_MS,
  PresenceFeed,
  PresenceListing,
} from "../src/cluster/presence.ts";
import type { User } from "../src/types.ts";
import { closing } from "./helpers/dispose.ts";
import { until } from "./helpers/time.ts";

const ada: User = { id: "ada", name: "Ada" };
const bo: User = { id: "bo", name: "Bo" };

Deno.test("presence feed: joins and leaves within a batch are announced together", async () => {
  const announced: [string[], string[]][] = [];
  using feed = closing(
    new PresenceFeed(
      (joined, left) => announced.push([joined.map((u) => u.id), left.map((u) => u.id)]),
      { batchMs: 20 },
    ),
  );
  feed.joined(ada);
  feed.joined(bo);
  feed.left({ id: "cy", name: "Cy" });
  assert.deepEqual(announced, [], "nothing before the batch ends");
  await until(() => announced.length > 0, 2_000, "the batch");
  assert.deepEqual(announced, [[["ada", "bo"], ["cy"]]]);
});

Deno.test("presence feed: a join and a leave of one user in one batch cancel out", () => {
  const announced: [User[], User[]][] = [];
  using feed = closing(
    new PresenceFeed((joined, left) => announced.push([joined, left]), { batchMs: 1000 }),
  );
  feed.joined(ada);
  feed.left(ada);
  feed.left(bo);
  feed.joined(bo);
  feed.flush();
  assert.deepEqual(announced, [], "a quick reconnect or a blink is no news");
  feed.close();
});

Deno.test("local presence: counts tabs per user", async () => {
  const presence = new LocalPresence();
  const tab = (socketId: string, user: User) => ({ socketId, user, since: 0 });
  assert.equal(await presence.arrive(tab("s1", ada)), true);
  assert.equal(await presence.arrive(tab("s2", ada)), false);
  assert.equal(await presence.connections("ada"), 2);
  assert.deepEqual(await presence.online(), [ada]);
  assert.deepEqual(await presence.online(0), [], "at most the limit");
  assert.equal(await presence.count(), 1, "one user however many tabs");
  assert.equal(await presence.depart(tab("s1", ada)), false);
  assert.equal(await presence.depart(tab("s2", ada)), true);
  assert.deepEqual(await presence.online(), []);
  assert.equal(await presence.count(), 0);
});

Deno.test("cluster presence: the oldest of simultaneous tabs announces, once", async () => {
  const connections = [
    { socketId: "b", user: ada, since: 10 },
    { socketId: "a", user: ada, since: 10 },
    { socketId: "c", user: bo, since: 5 },
  ];
  const presence = new ClusterPresence({
    ofUser: (id) => Promise.resolve(connections.filter((c) => c.user.id === id)),
    users: (limit) =>
      Promise.resolve(
        [...new Map(connections.map((c) => [c.user.id, c.user])).values()].slice(0, limit),
      ),
    count: () => Promise.resolve(2),
  });
  assert.equal(presence.shared, true, "other instances list its users");
  assert.equal(await presence.arrive(connections[1]), true, "a sorts before b");
  assert.equal(await presence.arrive(connections[0]), false);
  assert.equal(await presence.connections("ada"), 2);
  assert.deepEqual(await presence.online(), [ada, bo]);
  assert.deepEqual(await presence.online(1), [ada], "at most the limit");
  assert.equal(await presence.count(), 2, "the directory's count");
  assert.equal(await presence.depart(connections[2]), false, "bo is still listed");
});

Deno.test("presence feed: newcomers of one batch are welcomed together, with the batch's changes", async () => {
  const announced: [string[], string[], string[]][] = [];
  using feed = closing(
    new PresenceFeed(
      (joined, left, welcomed) =>
        announced.push([joined.map((u) => u.id), left.map((u) => u.id), welcomed]),
      { batchMs: 20 },
    ),
  );
  feed.joined(ada);
  feed.welcome("s-ada");
  feed.welcome("s-bo");
  assert.deepEqual(announced, [], "nothing before the batch ends");
  await until(() => announced.length > 0, 2_000, "the batch");
  assert.deepEqual(announced, [[["ada"], [], ["s-ada", "s-bo"]]]);
  feed.welcome("s-cy");
  feed.flush();
  assert.deepEqual(announced[1], [[], [], ["s-cy"]], "a welcome alone is still sent");
  feed.flush();
  assert.equal(announced.length, 2, "an empty batch announces nothing");
});

Deno.test("presence feed: changes wait 0.1 ms per recipient, from the batch up to a second", () => {
  const window = (audience: number) =>
    new PresenceFeed(() => {}, { audience: () => audience }).windowMs();
  assert.equal(window(0), 100);
  assert.equal(window(1_000), 100, "a thousand recipients: the batch");
  assert.equal(window(5_000), 500);
  assert.equal(window(10_000), PRESENCE_MAX_WINDOW_MS);
  assert.equal(window(1_000_000), PRESENCE_MAX_WINDOW_MS, "never longer");
});

Deno.test("presence feed: with a big audience newcomers are welcomed at once and changes follow their window", async () => {
  const announced: [string[], string[], string[]][] = [];
  let audience = 10_000;
  using feed = closing(
    new PresenceFeed(
      (joined, left, welcomed) =>
        announced.push([joined.map((u) => u.id), left.map((u) => u.id), welcomed]),
      { batchMs: 20, audience: () => audience },
    ),
  );
  const started = performance.now();
  feed.joined(ada);
  feed.welcome("s-ada");
  await until(() => announced.length > 0, 2_000, "the welcome");
  assert.deepEqual(announced, [[[], [], ["s-ada"]]], "the snapshot does not wait for the window");
  feed.left(bo);
  await until(() => announced.length > 1, 5_000, "the changes");
  const waited = performance.now() - started;
  assert.ok(waited >= PRESENCE_MAX_WINDOW_MS - 1, `changes announced after ${waited} ms`);
  assert.deepEqual(announced[1], [["ada"], ["bo"], []], "one batch, from the oldest change");
  // A small audience again: one batch for everything, as before.
  audience = 0;
  feed.joined({ id: "cy", name: "Cy" });
  feed.welcome("s-cy");
  await until(() => announced.length > 2, 2_000, "the small batch");
  assert.deepEqual(announced[2], [["cy"], [], ["s-cy"]]);
});

Deno.test("presence feed: a change a newcomer's snapshot showed is not cancelled out by its undoing", async () => {
  // A newcomer applying the snapshot and then the changes, as set operations, ends up with who
  // is online, when the snapshot came while a change waited its (1 s) window.
  const online = new Set(["yu"]);
  let view: Set<string> | undefined;
  let announcements = 0;
  using feed = closing(
    new PresenceFeed(
      (joined, left, welcomed) => {
        announcements++;
        if (welcomed.includes("s-new")) view = new Set(online);
        for (const user of joined) view?.add(user.id);
        for (const user of left) view?.delete(user.id);
      },
      { batchMs: 20, audience: () => 10_000 },
    ),
  );
  const come = (id: string) => (online.add(id), feed.joined({ id, name: id }));
  const go = (id: string) => (online.delete(id), feed.left({ id, name: id }));
  come("xi");
  go("yu");
  feed.welcome("s-new");
  await until(() => view !== undefined, 2_000, "the snapshot");
  assert.deepEqual([...view!].sort(), ["xi"], "the snapshot shows both pending changes");
  go("xi");
  come("yu");
  // Unseen, a pair still cancels out.
  come("zo");
  go("zo");
  feed.flush();
  assert.deepEqual([...view!].sort(), [...online].sort(), "the newcomer's list is who is online");
  assert.equal(announcements, 2);
});

Deno.test("presence feed: shared across instances, nothing cancels out: the latest change stands", () => {
  // Another instance may have listed ada to its newcomer between her join and her leave here.
  assert.equal(new LocalPresence().shared, false);
  const announced: [string[], string[]][] = [];
  using feed = closing(
    new PresenceFeed(
      (joined, left) => announced.push([joined.map((u) => u.id), left.map((u) => u.id)]),
      { batchMs: 1000, cancelOut: false },
    ),
  );
  feed.joined(ada);
  feed.left(ada);
  feed.left(bo);
  feed.joined(bo);
  feed.flush();
  assert.deepEqual(announced, [[["bo"], ["ada"]]]);
});

Deno.test("presence feed: a batch goes out once it holds PRESENCE_MAX_BATCH_USERS changes, window or not", async () => {
  const announced: number[] = [];
  using feed = closing(
    new PresenceFeed((joined) => announced.push(joined.length), {
      batchMs: 20,
      audience: () => 10_000,
    }),
  );
  for (let n = 0; n < PRESENCE_MAX_BATCH_USERS + 10; n++) {
    feed.joined({ id: `u${n}`, name: `U${n}` });
  }
  // Noted in one go, all of them go out together, at once rather than after the 1 s window.
  await until(() => announced.length > 0, 500, "the full batch");
  assert.deepEqual(announced, [PRESENCE_MAX_BATCH_USERS + 10]);
  feed.joined(ada);
  feed.flush();
  assert.deepEqual(announced, [PRESENCE_MAX_BATCH_USERS + 10, 1], "the next batch starts afresh");
});

Deno.test("presence listing: names users up to the limit, counts above it, names them again at 90 %", () => {
  const listing = new PresenceListing(10, 0);
  assert.equal(listing.relistAt, 9);
  assert.deepEqual([listing.update(10), listing.listed], [false, true], "at the limit: listed");
  assert.deepEqual([listing.update(11), listing.listed], [true, false], "one more: counted");
  assert.deepEqual([listing.update(10), listing.listed], [false, false], "back at the limit");
  assert.deepEqual([listing.update(9), listing.listed], [true, true], "at 90 %: listed again");
  assert.deepEqual([listing.update(10), listing.listed], [false, true]);
  assert.equal(new PresenceListing(1000).relistAt, 900);
  assert.equal(new PresenceListing(3).relistAt, 2);
});

Deno.test("presence listing: once counting, it keeps counting for its hold however few are online", () => {
  let now = 1000;
  const listing = new PresenceListing(10, 5000, () => now);
  assert.equal(listing.update(11), true, "counted from 1000");
  now += 4999;
  assert.equal(listing.update(5), false, "held: still counted");
  assert.equal(listing.heldBack(5), true);
  assert.equal(listing.relistFrom, 6000);
  assert.equal(listing.heldBack(10), false, "over 90 %: not held, counted anyway");
  now += 1;
  assert.equal(listing.heldBack(5), false);
  assert.deepEqual([listing.update(5), listing.listed], [true, true], "named again at 6000");
  // Following another instance's switch to counting starts the hold too.
  listing.follow(false);
  now += 100;
  assert.deepEqual([listing.update(1), listing.listed], [false, false]);
});

Deno.test("presence feed: while users are counted, a batch waits its window however many changed", async () => {
  const announced: number[] = [];
  let listed = false;
  using feed = closing(
    new PresenceFeed((joined) => announced.push(joined.length), {
      batchMs: 20,
      audience: () => 5_000,
      listed: () => listed,
    }),
  );
  const started = performance.now();
  for (let n = 0; n < PRESENCE_MAX_BATCH_USERS + 10; n++) {
    feed.joined({ id: `u${n}`, name: `U${n}` });
  }
  await until(() => announced.length > 0, 2_000, "the batch");
  const waited = performance.now() - started;
  assert.ok(waited >= 499, `a counted batch waited ${waited} ms, its window`);
  assert.deepEqual(announced, [PRESENCE_MAX_BATCH_USERS + 10]);
  listed = true;
  for (let n = 0; n < PRESENCE_MAX_BATCH_USERS; n++) feed.joined({ id: `v${n}`, name: `V${n}` });
  await until(() => announced.length > 1, 200, "a full named batch at once");
  assert.deepEqual(announced, [PRESENCE_MAX_BATCH_USERS + 10, PRESENCE_MAX_BATCH_USERS]);
});
