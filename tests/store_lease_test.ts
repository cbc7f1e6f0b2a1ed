import assert from "node:assert/strict";
import { join } from "node:path";
import { LEASE_KEY, LeaseHeld, type LeaseHolder, WriterLease } from "../src/store/lease.ts";
import { tempDir } from "./helpers/dispose.ts";
import { sleep, within } from "./helpers/time.ts";

/** Two handles on one KV file, as two processes would have, closed after `run`. */
async function withTwoHandles(run: (first: Deno.Kv, second: Deno.Kv) => Promise<void>) {
  await using temp = await tempDir({ prefix: "chat_lease_test_" });
  const path = join(temp.path, "chat.kv");
  using first = await Deno.openKv(path);
  using second = await Deno.openKv(path);
  await run(first, second);
}

/** A clock that moves only when told. */
function manualClock(start = 1_000_000) {
  let time = start;
  return { now: () => time, advance: (ms: number) => time += ms };
}

async function refusal(promise: Promise<WriterLease>): Promise<LeaseHeld> {
  try {
    const lease = await promise;
    await lease.release();
  } catch (error) {
    assert.ok(error instanceof LeaseHeld, String(error));
    return error;
  }
  assert.fail("the lease was taken twice");
}

// A long lease keeps the heartbeat out of the way of the manual clock.
const MINUTE = 60_000;

Deno.test("lease: a second instance on the same file is refused while the first holds it", async () => {
  await withTwoHandles(async (first, second) => {
    const clock = manualClock();
    const lease = await WriterLease.acquire(first, {
      instanceId: "a",
      durationMs: MINUTE,
      ...clock,
    });
    try {
      const refused = await refusal(
        WriterLease.acquire(second, { instanceId: "b", durationMs: MINUTE, ...clock }),
      );
      assert.equal(refused.code, "lease_held");
      assert.deepEqual(refused.holder, { instanceId: "a", expiresAt: clock.now() + MINUTE });
      assert.match(refused.message, /^held by instance "a" until \d{4}-\d\d-\d\dT/);
    } finally {
      await lease.release();
    }
  });
});

Deno.test("lease: once released, the next instance takes it", async () => {
  await withTwoHandles(async (first, second) => {
    const lease = await WriterLease.acquire(first, { instanceId: "a", durationMs: MINUTE });
    await lease.release();
    assert.equal((await first.get(LEASE_KEY)).value, null);
    const next = await WriterLease.acquire(second, { instanceId: "b", durationMs: MINUTE });
    await next.release();
  });
});

Deno.test("lease: an expired lease (a crashed holder) is taken over; the old holder learns it lost", async () => {
  await withTwoHandles(async (first, second) => {
    const clock = manualClock();
    const lost: (LeaseHolder | null)[] = [];
    const crashed = await WriterLease.acquire(first, {
      instanceId: "a",
      durationMs: MINUTE,
      onLost: (holder) => lost.push(holder),
      ...clock,
    });
    try {
      clock.advance(MINUTE - 1);
      await refusal(WriterLease.acquire(second, { instanceId: "b", durationMs: MINUTE, ...clock }));
      clock.advance(1);
      const next = await WriterLease.acquire(second, {
        instanceId: "b",
        durationMs: MINUTE,
        ...clock,
      });
      try {
        // The old holder wakes up (say, from a long pause): its renewal fails instead of stealing.
        assert.equal(await crashed.renew(), false);
        assert.deepEqual(lost, [{ instanceId: "b", expiresAt: clock.now() + MINUTE }]);
        assert.equal(await next.renew(), true);
        // Releasing a lost lease leaves the new holder's alone.
        await crashed.release();
        assert.equal((await second.get<LeaseHolder>(LEASE_KEY)).value?.instanceId, "b");
      } finally {
        await next.release();
      }
    } finally {
      await crashed.release();
    }
  });
});

Deno.test("lease: the heartbeat keeps a live holder's lease from expiring", async () => {
  await withTwoHandles(async (first, second) => {
    // Renewed every 100 ms. The lease's clock moves only when told, and only after the heartbeat
    // has renewed at the current time: however late a busy machine runs the heartbeat, the lease
    // is past its first expiry by renewals alone, not by a race between timers and the clock.
    const clock = manualClock();
    const firstExpiry = clock.now() + 300;
    const lease = await WriterLease.acquire(first, { instanceId: "a", durationMs: 300, ...clock });
    try {
      for (let step = 0; step < 3; step++) {
        clock.advance(200);
        const renewedAt = clock.now() + 300;
        await within(
          (async () => {
            while ((await first.get<LeaseHolder>(LEASE_KEY)).value?.expiresAt !== renewedAt) {
              await sleep(10);
            }
          })(),
          10_000,
          `the heartbeat's renewal at +${(step + 1) * 200} ms`,
        );
      }
      assert.ok(clock.now() > firstExpiry, "the first expiry is long past");
      const refused = await refusal(
        WriterLease.acquire(second, { instanceId: "b", durationMs: 300, ...clock }),
      );
      assert.equal(refused.holder.instanceId, "a");
    } finally {
      await lease.release();
    }
    // Released: no timer is left behind (the test sanitizers check), and the file is free.
    const next = await WriterLease.acquire(second, { instanceId: "b", durationMs: 300 });
    await next.release();
  });
});
