/**
 * Soak: steady chat load against a server it starts itself (file KV), sampling the server's RSS
 * and open fds every 10 s; both must stay flat. Writes the samples to
 * `bench/results/soak-<date>.md`.
 *
 * ```sh
 * deno task soak                # 5 minutes
 * deno task soak --seconds 60
 * ```
 * Load: 20 stock socket.io clients each send one acknowledged message a second, 200 raw
 * listeners receive every message, and a tenth of the listeners reconnect every 10 s.
 * @module
 */
import { io as connect, type Socket } from "socket.io-client";
import {
  type BenchServer,
  benchToken,
  openClients,
  RawChatClient,
  readProcess,
  spawnServer,
  writeResult,
} from "./harness.ts";

const SENDERS = 20;
const LISTENERS = 200;
const SAMPLE_EVERY_MS = 10_000;
/** The second half's peak RSS may exceed the first half's by this much and count as flat. */
const RSS_TOLERANCE = 0.25;
/** Open fds may differ by this many from the first sample (sockets mid-churn). */
const FD_TOLERANCE = 30;

interface Sample {
  seconds: number;
  rssKb: number;
  fds: number;
  acked: number;
  failed: number;
}

async function startSender(server: BenchServer, n: number): Promise<Socket> {
  const socket = connect(server.url, {
    auth: { token: await benchToken(server, `sender-${n}`) },
    transports: n % 2 === 0 ? ["websocket"] : ["polling", "websocket"],
  });
  await new Promise((resolve) => socket.once("load", resolve));
  return socket;
}

const flag = Deno.args.indexOf("--seconds");
const seconds = flag >= 0 ? Number(Deno.args[flag + 1]) : 300;
if (!Number.isFinite(seconds) || seconds < 10) {
  console.error("usage: deno task soak [--seconds N]  (at least 10)");
  Deno.exit(2);
}

const dir = await Deno.makeTempDir({ prefix: "soak-" });
const server = await spawnServer({
  env: { KV_PATH: `${dir}/chat.kv`, HISTORY_MAX_COUNT: "10000" },
});
const listenerTokens = await Promise.all(
  Array.from({ length: 10 }, (_, n) => benchToken(server, `listener-${n}`)),
);
const senders = await Promise.all(
  Array.from({ length: SENDERS }, (_, n) => startSender(server, n)),
);
let listeners = (await openClients(server.url, listenerTokens, LISTENERS)).clients;
let acked = 0;
let failed = 0;
let running = true;
const sending = senders.map(async (socket, n) => {
  for (let sequence = 0; running; sequence++) {
    const next = Date.now() + 1000;
    try {
      const ack = await socket.timeout(5000).emitWithAck("message", {
        message: `soak ${n} #${sequence}`,
        clientId: `soak-${n}-${sequence}`,
      });
      if (ack.ok) acked++;
      else failed++;
    } catch {
      failed++;
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - Date.now())));
  }
});

console.log(`soak: ${seconds} s, ${SENDERS} senders, ${LISTENERS} listeners (10% churn / 10 s)`);
const samples: Sample[] = [];
const started = Date.now();
while (Date.now() - started < seconds * 1000) {
  await new Promise((resolve) => setTimeout(resolve, SAMPLE_EVERY_MS));
  // Churn: a tenth of the listeners leave and new ones join.
  const leaving = listeners.slice(0, LISTENERS / 10);
  await Promise.all(leaving.map((client) => client.close()));
  const joined = await openClients(server.url, listenerTokens, LISTENERS / 10);
  listeners = [...listeners.slice(LISTENERS / 10), ...joined.clients];
  failed += joined.failed;
  const sample = {
    seconds: Math.round((Date.now() - started) / 1000),
    ...await readProcess(server.pid),
    acked,
    failed,
  };
  samples.push(sample);
  console.log(
    `  ${sample.seconds} s: RSS ${(sample.rssKb / 1024).toFixed(1)} MB, ${sample.fds} fds, ` +
      `${sample.acked} messages acked, ${sample.failed} failed`,
  );
}
running = false;
await Promise.all(sending);
for (const socket of senders) socket.close();
await Promise.all(listeners.map((client: RawChatClient) => client.close()));
await server.stop();
await Deno.remove(dir, { recursive: true });

const first = samples[0];
const last = samples.at(-1)!;
// RSS saws up and down with garbage collection: compare the peaks of each half of the run.
const half = Math.ceil(samples.length / 2);
const peak = (part: Sample[]) => Math.max(...part.map((sample) => sample.rssKb));
const rssGrowth = (peak(samples.slice(half)) - peak(samples.slice(0, half))) /
  peak(samples.slice(0, half));
const rssFlat = rssGrowth <= RSS_TOLERANCE;
const fdsFlat = Math.abs(last.fds - first.fds) <= FD_TOLERANCE;
const lines = [
  `# Soak: ${seconds} s`,
  "",
  `${
    new Date().toISOString()
  }, Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPUs. ` +
  `${SENDERS} stock clients sending 1 acked message/s each, ${LISTENERS} raw listeners, ` +
  `${LISTENERS / 10} of them replaced every 10 s; file KV.`,
  "",
  "| t (s) | server RSS (MB) | open fds | messages acked | failed |",
  "| --- | --- | --- | --- | --- |",
  ...samples.map((s) =>
    `| ${s.seconds} | ${(s.rssKb / 1024).toFixed(1)} | ${s.fds} | ${s.acked} | ${s.failed} |`
  ),
  "",
  `Peak RSS of the second half ${rssGrowth >= 0 ? "+" : ""}${(rssGrowth * 100).toFixed(1)}% ` +
  "against the first half " +
  `(flat: ≤ +${RSS_TOLERANCE * 100}%): ${rssFlat ? "flat" : "GROWING"}. ` +
  `Open fds ${first.fds} → ${last.fds}: ${fdsFlat ? "flat" : "GROWING"}. ` +
  `${last.failed} failed sends.`,
];
const path = await writeResult("soak", lines.join("\n") + "\n");
console.log(lines.slice(4).join("\n"));
console.log(`written to ${path}`);
if (!rssFlat || !fdsFlat || last.failed > 0) Deno.exit(1);
