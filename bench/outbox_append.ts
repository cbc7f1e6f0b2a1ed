/**
 * What the webhook outbox costs `appendMany`: batches of messages stored with no writer (no
 * `WEBHOOK_URL`) and with the writer the webhooks give the timeline (one URL, `message.created`),
 * on KV `:memory:`, a KV file and, when installed, PostgreSQL. Prints the median time per batch
 * and per message. Measurement only; it asserts nothing.
 *
 * @example
 * ```sh
 * deno run -A bench/outbox_append.ts --batch 128 --batches 60
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import { type MessageStore, openKvStore, type OutboxWriter } from "../src/store/mod.ts";
import { openPostgresStore } from "../src/store/postgres.ts";
import { eventDrafts } from "../src/hooks/events.ts";
import { hasPostgres, startPostgres } from "../tests/helpers/postgres_server.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    batch: { type: "string", default: "128" },
    batches: { type: "string", default: "60" },
  },
});
const batchSize = Number(values.batch);
const batches = Number(values.batches);
const user = { id: "bench", name: "Bench" };
const text = "x".repeat(120);

/** The writer `Webhooks.created` is with one URL and `message.created` only. */
const writer: OutboxWriter = {
  maxDraftsFor: () => 1,
  draftsFor: (message) =>
    eventDrafts(["https://backend.example/hooks"], "message.created", message, message.room, 0),
};

/** Median ms per batch of `store.appendMany`, alternating rooms, after a warm-up. */
async function measure(store: MessageStore, outbox?: OutboxWriter): Promise<number> {
  const times: number[] = [];
  for (let n = 0; n < batches + 5; n++) {
    const inputs = [...Array(batchSize)].map((_, i) => ({
      room: `room-${i % 8}`,
      user,
      message: text,
      clientId: `${outbox ? "w" : "n"}${n}-${i}`,
    }));
    const started = performance.now();
    await store.appendMany(inputs, outbox);
    if (n >= 5) times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

const rows: string[] = [];
async function row(name: string, open: () => Promise<MessageStore>) {
  const store = await open();
  try {
    // Interleaved, so both see the same store size and machine load.
    const without = await measure(store);
    const withOutbox = await measure(store, writer);
    const perMessage = (ms: number) => (ms * 1000 / batchSize).toFixed(1);
    rows.push(
      `| ${name} | ${without.toFixed(2)} ms (${perMessage(without)} µs) | ` +
        `${withOutbox.toFixed(2)} ms (${perMessage(withOutbox)} µs) | ` +
        `×${(withOutbox / without).toFixed(2)} |`,
    );
  } finally {
    await store.close();
  }
}

const temp = await Deno.makeTempDir({ prefix: "outbox_bench_" });
try {
  await row("KV :memory:", () => openKvStore(":memory:"));
  await row("KV file", () => openKvStore(`${temp}/chat.kv`));
  if (hasPostgres()) {
    await using postgres = await startPostgres();
    const url = await postgres.createDatabase();
    await row("PostgreSQL", () => openPostgresStore(url));
  }
} finally {
  await Deno.remove(temp, { recursive: true });
}
console.log(`appendMany of ${batchSize} messages (median of ${batches}; per message)\n`);
console.log("| store | no WEBHOOK_URL | with the outbox | cost |");
console.log("| ----- | -------------- | --------------- | ---- |");
for (const line of rows) console.log(line);
