/**
 * Server API publish throughput: one process starts the app (`:memory:` KV) and sends
 * `POST /api/v1/rooms/general/messages` over HTTP, first one at a time, then from `--concurrency`
 * loops at once, and prints requests per second for each. Measurement only; it asserts nothing.
 *
 * @example
 * ```sh
 * deno run -A bench/api_throughput.ts --requests 2000 --concurrency 32
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import { createApp } from "../src/app.ts";
import { DEFAULTS } from "../src/config.ts";
import { openKvStore } from "../src/store/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    requests: { type: "string", default: "2000" },
    concurrency: { type: "string", default: "32" },
  },
});
const requests = Number(values.requests);
const concurrency = Number(values.concurrency);
const apiKey = "bench-api-key-0123456789";

const config = {
  ...DEFAULTS,
  apiKey,
  port: 0,
  hostname: "127.0.0.1",
  instanceId: "bench",
  auth: {
    key: { kind: "secret" as const, secret: "bench-secret-long-enough-for-hs256" },
    algorithms: ["HS256" as const],
    requireWriteScope: false,
    clockToleranceSeconds: 5,
  },
};
const store = await openKvStore(":memory:", { defaultRoom: config.defaultRoom });
const app = createApp(config, store);
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.handler);
const url = `http://127.0.0.1:${server.addr.port}/api/v1/rooms/general/messages`;

let sent = 0;
async function publish(): Promise<void> {
  const response = await fetch(url, {
    method: "POST",
    headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
    body: JSON.stringify({ message: `notice ${sent}`, clientId: `bench-${sent++}` }),
  });
  if (response.status !== 201) throw new Error(`status ${response.status}`);
  await response.body?.cancel();
}

/** Requests per second for `count` publishes from `loops` concurrent loops. */
async function measure(count: number, loops: number): Promise<number> {
  let left = count;
  const started = performance.now();
  await Promise.all(Array.from({ length: loops }, async () => {
    while (left-- > 0) await publish();
  }));
  return count / ((performance.now() - started) / 1000);
}

await measure(200, 4); // warm-up
const sequential = await measure(requests, 1);
const concurrent = await measure(requests, concurrency);
console.log(
  `sequential ${sequential.toFixed(0)} req/s, ` +
    `${concurrency} concurrent ${concurrent.toFixed(0)} req/s (${requests} requests each)`,
);
await app.close();
await server.shutdown();
store.close();
