/**
 * The stress benchmark at CI size: 1,000 raw WebSocket connections to `main.ts` are all
 * authenticated and loaded, a stock client still chats, and every connection gets a broadcast.
 */
import assert from "node:assert/strict";
import { runStress } from "../bench/stress.ts";

Deno.test("stress: 1,000 concurrent connections are held, and a stock client still chats", async () => {
  // A short settle: the memory bound below is loose enough not to need the bench's 2 s.
  const result = await runStress(1_000, { settleMs: 250 });
  assert.equal(result.failed, 0);
  assert.equal(result.connected, 1_000);
  assert.deepEqual(result.probeFailures, []);
  assert.ok(result.probes.length >= 1);
  assert.ok(result.fanOutMs < 10_000, `fan-out took ${result.fanOutMs} ms`);
  // Loose: a regression to megabytes per connection fails, noise does not.
  assert.ok(result.kbPerConnection < 500, `${result.kbPerConnection} KB per connection`);
  assert.ok(result.serverFds >= 1_000, "each connection holds a socket on the server");
});
