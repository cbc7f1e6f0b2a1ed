/**
 * Durable write throughput: many concurrent senders storing messages in a Deno KV file, through
 * the timeline's group commits, against one KV commit per message. Prints a table and writes it to
 * `bench/results/kv-<date>.md`. Measurement only; it asserts nothing.
 *
 * @example
 * ```sh
 * deno run -A bench/kv_throughput.ts --senders 500 --seconds 5
 * ```
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { openKvStore } from "../src/store/mod.ts";
import { Timeline } from "../src/chat/timeline.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    senders: { type: "string", default: "500" },
    seconds: { type: "string", default: "5" },
  },
});
const senders = Number(values.senders);
const seconds = Number(values.seconds);
const user = { id: "bench", name: "Bench" };
const text = "x".repeat(120);

interface Row {
  mode: string;
  clientIds: boolean;
  stored: number;
  perSecond: number;
  p50: number;
  p99: number;
}

/** Runs `senders` loops for `seconds`, each awaiting `store(n)`; returns count and latencies. */
async function drive(store: (n: number) => Promise<unknown>): Promise<[number, number[]]> {
  const deadline = performance.now() + seconds * 1000;
  const latencies: number[] = [];
  let count = 0;
  await Promise.all([...Array(senders)].map(async (_, sender) => {
    for (let n = 0; performance.now() < deadline; n++) {
      const started = performance.now();
      await store(sender * 1_000_000 + n);
      latencies.push(performance.now() - started);
      count++;
    }
  }));
  latencies.sort((a, b) => a - b);
  return [count, latencies];
}

async function measure(mode: "timeline" | "one commit each", clientIds: boolean): Promise<Row> {
  const dir = await Deno.makeTempDir();
  const store = await openKvStore(`${dir}/chat.kv`);
  const timeline = new Timeline(store, { historyLimit: 50, deliver: () => {} });
  try {
    const input = (n: number) => ({
      user,
      message: text,
      clientId: clientIds ? `c${n}` : undefined,
    });
    const [stored, latencies] = await drive((n) =>
      mode === "timeline" ? timeline.publish(input(n)) : store.append(input(n))
    );
    const at = (q: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
    return { mode, clientIds, stored, perSecond: stored / seconds, p50: at(0.5), p99: at(0.99) };
  } finally {
    await timeline.idle();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** CPU of the whole process (every thread) per message, commits of `batch` messages one at a time. */
interface CpuRow {
  batch: number;
  userUs: number;
  systemUs: number;
  commitMs: number;
}

/**
 * What a commit costs in CPU, by its size: sequential commits over 10 rooms, with clientIds, as
 * the timeline makes them. Shows what gathering saves (the fixed part of a commit is shared).
 */
async function commitCpu(batch: number): Promise<CpuRow> {
  const dir = await Deno.makeTempDir();
  const store = await openKvStore(`${dir}/chat.kv`);
  let n = 0;
  const commit = () =>
    store.appendMany(
      Array.from({ length: batch }, () => ({
        user,
        message: text,
        room: `room-${n % 10}`,
        clientId: `c${n++}`,
      })),
    );
  try {
    for (let i = 0; i < 100; i++) await commit(); // warm-up
    const commits = Math.ceil(2000 / batch);
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (let i = 0; i < commits; i++) await commit();
    const { user: userUs, system: systemUs } = process.cpuUsage(cpu);
    const messages = commits * batch;
    return {
      batch,
      userUs: userUs / messages,
      systemUs: systemUs / messages,
      commitMs: (performance.now() - started) / commits,
    };
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const cpuRows: CpuRow[] = [];
for (const batch of [1, 2, 5, 10, 20]) cpuRows.push(await commitCpu(batch));

const rows: Row[] = [];
for (const clientIds of [false, true]) {
  for (const mode of ["one commit each", "timeline"] as const) {
    rows.push(await measure(mode, clientIds));
  }
}
const table = [
  `# Durable KV write throughput, ${new Date().toISOString()}`,
  "",
  `${senders} concurrent senders, ${seconds} s each, 120-character messages, a KV file in a temp dir;`,
  `${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}. "stored before acked" holds in both modes.`,
  "",
  "| mode | clientId | messages stored | messages/s | p50 ms | p99 ms |",
  "| --- | --- | --- | --- | --- | --- |",
  ...rows.map((row) =>
    `| ${row.mode} | ${row.clientIds ? "yes" : "no"} | ${row.stored} | ${
      Math.round(row.perSecond)
    } | ${row.p50.toFixed(1)} | ${row.p99.toFixed(1)} |`
  ),
  "",
  "CPU of the process (all threads: SQLite's and the kernel's work for it included) per message,",
  "2,000 messages committed one commit after another, by messages per commit:",
  "",
  "| messages per commit | CPU µs per message | of which user | system | ms per commit |",
  "| --- | --- | --- | --- | --- |",
  ...cpuRows.map((row) =>
    `| ${row.batch} | ${(row.userUs + row.systemUs).toFixed(0)} | ${row.userUs.toFixed(0)} | ${
      row.systemUs.toFixed(0)
    } | ${row.commitMs.toFixed(2)} |`
  ),
].join("\n") + "\n";
console.log(table);
const stamp = new Date().toISOString().slice(0, 16).replace("T", "-").replace(":", "");
await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
await Deno.writeTextFile(new URL(`./results/kv-${stamp}.md`, import.meta.url), table);
