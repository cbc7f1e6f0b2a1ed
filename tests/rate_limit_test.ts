import assert from "node:assert/strict";
import { RateLimiter } from "../src/rate_limit.ts";

Deno.test("rate limit: a key spends its burst, then waits for the refill", () => {
  let now = 0;
  const limiter = new RateLimiter({ perMinute: 6, burst: 2 }, () => now);
  assert.deepEqual([limiter.take("a"), limiter.take("a")], [{ ok: true }, { ok: true }]);
  assert.deepEqual(limiter.take("a"), { ok: false, retryAfterMs: 10_000 });
  assert.deepEqual(limiter.take("b"), { ok: true }, "another key has its own bucket");
  now += 10_000;
  assert.deepEqual(limiter.take("a"), { ok: true });
});

Deno.test("rate limit: peek tells what take would answer without spending", () => {
  let now = 0;
  const limiter = new RateLimiter({ perMinute: 6, burst: 1 }, () => now);
  assert.deepEqual(limiter.peek("a"), { ok: true });
  assert.equal(limiter.size, 0, "peeking at an unknown key remembers nothing");
  limiter.take("a");
  assert.deepEqual(limiter.peek("a"), { ok: false, retryAfterMs: 10_000 });
  now += 4_000;
  assert.deepEqual(limiter.peek("a"), { ok: false, retryAfterMs: 6_000 });
  now += 6_000;
  assert.deepEqual(limiter.peek("a"), { ok: true });
  assert.deepEqual(limiter.take("a"), { ok: true });
});

Deno.test("rate limit: a flood of new keys keeps at most maxKeys buckets, forgetting the oldest", () => {
  const limiter = new RateLimiter({ perMinute: 1, burst: 1, maxKeys: 100 }, () => 0);
  for (let i = 0; i < 10_000; i++) limiter.take(`203.0.113.${i}`);
  assert.equal(limiter.size, 100);
  assert.equal(limiter.take("203.0.113.9999").ok, false, "the newest are remembered");
  assert.equal(limiter.take("203.0.113.0").ok, true, "the oldest were forgotten");
});

Deno.test("rate limit: a clock that steps back costs a key nothing", () => {
  let now = 120_000;
  const limiter = new RateLimiter({ perMinute: 6, burst: 2 }, () => now);
  assert.deepEqual(limiter.take("a"), { ok: true });
  now -= 60_000;
  assert.deepEqual(limiter.take("a"), { ok: true }, "the token left is still there");
  assert.equal(limiter.takeUpTo("b", 5), 2);
  limiter.giveBack("b", 1);
  assert.equal(limiter.takeUpTo("b", 5), 1, "what was given back can be taken again");
});
