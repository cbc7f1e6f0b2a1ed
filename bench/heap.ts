/**
 * Where a connection's bytes go: starts `main.ts` (through `bench/heap_server.ts`), fills the
 * default room with a full history, takes a heap snapshot, connects N raw clients (each gets that
 * history), takes another, and prints RSS and JS heap per connection and the objects that grew,
 * by constructor, per connection.
 *
 * ```sh
 * deno run -A bench/heap.ts                    # 1,000 connections
 * deno run -A bench/heap.ts --connections 200 --top 40
 * ```
 * @module
 */
import { signToken } from "../src/auth/token.ts";
import { freePort, spawnServerProcess, START_V8_FLAGS } from "../scripts/server_process.ts";
import { openClients, probe, readProcess } from "./harness.ts";

const args = Deno.args;
const flag = (name: string, fallback: number) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const connections = flag("connections", 1000);
/** `--reference`: the Node socket.io reference instead, RSS only (no snapshots). */
const reference = args.includes("--reference");
/** `--rss-only`: no snapshots (a snapshot itself grows the process by ~200 MB). */
const snapshots = !reference && !args.includes("--rss-only");
const top = flag("top", 30);
const secret = "bench-secret-0123456789-0123456789-0123456789";
/** `--keep <dir>`: write the snapshots there and keep them (for DevTools' Memory tab). */
const keep = args.includes("--keep") ? args[args.indexOf("--keep") + 1] : undefined;
if (keep) await Deno.mkdir(keep, { recursive: true });
const dir = keep ?? await Deno.makeTempDir({ prefix: "chat-heap-" });

const port = freePort();
const server = await spawnServerProcess({
  argv: reference ? ["node", new URL("./reference/server.mjs", import.meta.url).pathname] : [
    Deno.execPath(),
    "run",
    "-A",
    ...START_V8_FLAGS,
    new URL("./heap_server.ts", import.meta.url).pathname,
  ],
  name: reference ? "the reference" : "heap_server.ts",
  env: {
    HOSTNAME: "127.0.0.1",
    JWT_SECRET: secret,
    PORT: String(port),
    HOST: "127.0.0.1",
    KV_PATH: ":memory:",
    LOG_LEVEL: "error",
    HEAP_SNAPSHOT_DIR: dir,
    HANDSHAKE_LIMIT_PER_MIN: "0",
    MAX_PACKETS_PER_SECOND: "0",
    RATE_LIMIT_PER_MIN: "1000000",
    RATE_LIMIT_BURST: "1000000",
    MAX_SOCKETS_PER_USER: "10000",
  },
  ready: { port },
  stdout: "drop",
  readyTimeoutMs: 30_000,
});
const url = server.url;

/** The first match of `pattern` in what the server wrote to stderr after `from` characters. */
async function waitFor(pattern: RegExp, from = 0): Promise<RegExpMatchArray> {
  for (let tries = 0; tries < 600; tries++) {
    const match = server.errors().slice(from).match(pattern);
    if (match) return match;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no ${pattern} in: ${server.errors()}`);
}

/** Takes a snapshot and waits for the file. */
async function snapshot(): Promise<string> {
  const from = server.errors().length;
  Deno.kill(server.pid, "SIGUSR2");
  const [, path, memory] = await waitFor(/heap snapshot (\S+) (\{.*\})/, from);
  console.error(`memory before the snapshot: ${memory}`);
  return path;
}

// A full history: 50 messages (HISTORY_LIMIT's default) from one stock client.
const { io } = await import("socket.io-client");
const seeder = io(url, {
  auth: { token: await signToken(secret, { sub: "seeder" }) },
  transports: ["websocket"],
});
for (let n = 0; n < 50; n++) {
  const ack = await seeder.emitWithAck("message", { message: `seed message ${n} `.repeat(4) });
  if (!ack.ok) throw new Error(JSON.stringify(ack));
}
seeder.close();
await probe(url, await signToken(secret, { sub: "warm" }));
await new Promise((resolve) => setTimeout(resolve, 500));

const rssBefore = (await readProcess(server.pid)).rssKb;
const before = snapshots ? await snapshot() : "";
const tokens = await Promise.all(
  Array.from({ length: connections }, (_, n) => signToken(secret, { sub: `user-${n}` })),
);
const { clients, failed } = await openClients(url, tokens, connections, 100);
await new Promise((resolve) => setTimeout(resolve, 2000));
const rssAfter = (await readProcess(server.pid)).rssKb;
console.log(
  `${clients.length} connected (${failed} failed); RSS ${rssBefore} → ${rssAfter} KB: ` +
    `${((rssAfter - rssBefore) / clients.length).toFixed(1)} KB per connection`,
);
if (!snapshots) await stop();
const after = await snapshot();

/** Self sizes and counts by "type:constructor". */
async function summarize(path: string): Promise<Map<string, { count: number; bytes: number }>> {
  const snap = JSON.parse(await Deno.readTextFile(path));
  const fields: string[] = snap.snapshot.meta.node_fields;
  const types: string[] = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = ["type", "name", "self_size"].map((f) => fields.indexOf(f));
  const nodes: number[] = snap.nodes;
  const strings: string[] = snap.strings;
  const totals = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]];
    const name = type !== "string" && type !== "number" && type !== "code"
      ? strings[nodes[i + nameAt]].slice(0, 60)
      : "";
    const key = `${type}:${name}`;
    const entry = totals.get(key) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += nodes[i + sizeAt];
    totals.set(key, entry);
  }
  return totals;
}
const [a, b] = [await summarize(before), await summarize(after)];
const rows = [...b].map(([key, { count, bytes }]) => ({
  key,
  count: (count - (a.get(key)?.count ?? 0)) / clients.length,
  bytes: (bytes - (a.get(key)?.bytes ?? 0)) / clients.length,
})).sort((x, y) => y.bytes - x.bytes);
const heapDelta = rows.reduce((sum, row) => sum + row.bytes, 0);
console.log(`JS heap (live objects) ${(heapDelta / 1024).toFixed(1)} KB per connection`);
console.log("| bytes/conn | objects/conn | type:constructor |\n| ---: | ---: | --- |");
for (const row of rows.slice(0, top)) {
  console.log(`| ${row.bytes.toFixed(0)} | ${row.count.toFixed(2)} | ${row.key} |`);
}
await stop();

async function stop(): Promise<never> {
  await Promise.all(clients.map((client) => client.close()));
  await server.stop();
  if (!keep) await Deno.remove(dir, { recursive: true });
  Deno.exit(0);
}
