/**
 * Stress: opens N concurrent authenticated WebSocket connections (default 10,000) against a
 * server it starts itself, and reports the server's memory per connection, the time to connect
 * them all, the time to fan one message out to all of them, and whether a stock client could
 * still connect and chat throughout. Writes the table to `bench/results/stress-<date>.md`.
 *
 * ```sh
 * deno task stress                      # 10,000 connections
 * deno task stress --connections 2000
 * deno task stress --connections 19000 --profile /tmp/prof   # the server under --cpu-prof
 * deno task stress --connections 19000 --users 19000          # a user per connection (as S)
 * ```
 * Every 1,000 connections it prints (and the result lists) the wall time, the server's CPU time and
 * this process's own: the clients and the probes live here, so a slowdown shows on whichever side
 * it is.
 * This process holds one fd per connection: its own `ulimit -n` must allow N plus some (the
 * server's limit is raised with `ulimit -n` when it is spawned).
 * @module
 */
import {
  benchToken,
  fdLimit,
  markdownTable,
  openClients,
  probe,
  type RawChatClient,
  readProcess,
  spawnServer,
  writeResult,
} from "./harness.ts";

/** Figures of one stress run. */
export interface StressResult {
  requested: number;
  connected: number;
  failed: number;
  connectSeconds: number;
  rssBeforeKb: number;
  rssAfterKb: number;
  kbPerConnection: number;
  serverFds: number;
  fanOutMs: number;
  probes: number[];
  probeFailures: string[];
  /** Clients that closed between their connect and the fan-out. */
  dropped: number;
  /** One point per 1,000 connected: cumulative seconds (wall, server CPU, this process's CPU). */
  curve: CurvePoint[];
}

/** The connect curve at `connected` connections. */
export interface CurvePoint {
  connected: number;
  wallSeconds: number;
  serverCpuSeconds: number;
  clientCpuSeconds: number;
}

/** How to run the stress besides its size. */
export interface StressOptions {
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** How long the server settles after the connects before its memory is read (default 2 s). */
  settleMs?: number;
  /** Writes the server's V8 CPU profile here (`--cpu-prof`) when set. */
  profileDir?: string;
  /**
   * Users the connections are spread over (default 100: each has many tabs open, and presence
   * stays small); as many as connections for a crowd of distinct users, as bench scenario S.
   */
  users?: number;
}
/** How long the fan-out of one message to every connection may take. */
const FAN_OUT_TIMEOUT_MS = 60_000;

/** Runs the stress against a fresh server; the caller prints or checks the result. */
export async function runStress(
  connections: number,
  options: StressOptions = {},
): Promise<StressResult> {
  const { log = () => {}, settleMs = 2000, profileDir, users = 100 } = options;
  const flags = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
  const server = await spawnServer({ fdLimit: connections + 4096, flags });
  let clients: RawChatClient[] = [];
  try {
    const tokens = await Promise.all(
      Array.from({ length: users }, (_, n) => benchToken(server, `load-${n}`)),
    );
    const probeToken = await benchToken(server, "probe");
    // Warm up (first connection compiles the handlers) before the baseline is read.
    await probe(server.url, probeToken);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const rssBeforeKb = (await readProcess(server.pid)).rssKb;
    const probes: number[] = [];
    const probeFailures: string[] = [];
    let connecting = true;
    // The pause between probes ends early once every connection is open.
    let endPause = () => {};
    const prober = (async () => {
      while (connecting) {
        try {
          probes.push(await probe(server.url, probeToken));
        } catch (error) {
          probeFailures.push(error instanceof Error ? error.message : String(error));
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 1000);
          endPause = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    })();
    const curve = await connectCurve(server.pid, log);
    const started = performance.now();
    const opened = await openClients(server.url, tokens, connections, 256, curve.onProgress);
    const connectSeconds = (performance.now() - started) / 1000;
    clients = opened.clients;
    connecting = false;
    endPause();
    await prober;
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    const { rssKb: rssAfterKb, fds: serverFds } = await readProcess(server.pid);

    // One more message, delivered to every connection: how long until the last one has it.
    const before = clients.map((client) => client.liveLoads);
    const fanOutStarted = performance.now();
    try {
      probes.push(await probe(server.url, probeToken));
    } catch (error) {
      probeFailures.push(error instanceof Error ? error.message : String(error));
    }
    while (clients.some((client, n) => !client.closed && client.liveLoads <= before[n])) {
      if (performance.now() - fanOutStarted > FAN_OUT_TIMEOUT_MS) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const fanOutMs = performance.now() - fanOutStarted;
    return {
      requested: connections,
      connected: clients.filter((client) => !client.closed).length,
      failed: opened.failed,
      connectSeconds,
      rssBeforeKb,
      rssAfterKb,
      kbPerConnection: (rssAfterKb - rssBeforeKb) / Math.max(1, clients.length),
      serverFds,
      fanOutMs,
      probes,
      probeFailures,
      dropped: clients.filter((client) => client.closed).length,
      curve: await curve.points(),
    };
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await server.stop();
  }
}

/**
 * Reads the server's and this process's CPU time at every 1,000th connection (in the background:
 * a read must not hold the connects up), and logs each point.
 */
async function connectCurve(serverPid: number, log: (line: string) => void) {
  const started = performance.now();
  const [server, client] = await Promise.all([readProcess(serverPid), readProcess(Deno.pid)]);
  const readings: Promise<CurvePoint>[] = [];
  let next = 1000;
  return {
    onProgress(count: number) {
      if (count < next) return;
      next += 1000;
      const wallSeconds = (performance.now() - started) / 1000;
      const point = Promise.all([readProcess(serverPid), readProcess(Deno.pid)]).then(
        ([s, c]) => ({
          connected: count,
          wallSeconds,
          serverCpuSeconds: s.cpuSeconds - server.cpuSeconds,
          clientCpuSeconds: c.cpuSeconds - client.cpuSeconds,
        }),
      );
      point.then((p) =>
        log(
          `  ${p.connected} connected: ${p.wallSeconds.toFixed(1)} s, server CPU ` +
            `${p.serverCpuSeconds.toFixed(1)} s, clients' CPU ${p.clientCpuSeconds.toFixed(1)} s`,
        )
      );
      readings.push(point);
    },
    points: () => Promise.all(readings),
  };
}

/** The connect curve as a Markdown table: cumulative and per 1,000. */
export function curveTable(curve: CurvePoint[]): string {
  const lines = [
    "| connected | wall s | server CPU s | clients' CPU s | wall s / 1,000 | server CPU s / 1,000 |",
    "| ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  curve.forEach((point, index) => {
    const previous = curve[index - 1] ?? {
      connected: 0,
      wallSeconds: 0,
      serverCpuSeconds: 0,
      clientCpuSeconds: 0,
    };
    const per = (value: number, before: number) =>
      ((value - before) * 1000 / (point.connected - previous.connected)).toFixed(2);
    lines.push(
      `| ${point.connected} | ${point.wallSeconds.toFixed(1)} | ${
        point.serverCpuSeconds.toFixed(1)
      } | ${point.clientCpuSeconds.toFixed(1)} | ${
        per(point.wallSeconds, previous.wallSeconds)
      } | ${per(point.serverCpuSeconds, previous.serverCpuSeconds)} |`,
    );
  });
  return lines.join("\n");
}

/** The result as Markdown rows. */
export function stressTable(result: StressResult): string {
  const sorted = [...result.probes].sort((a, b) => a - b);
  const percentile = (p: number) =>
    sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : NaN;
  return markdownTable([
    ["connections requested", result.requested],
    ["connections held (authenticated, history loaded)", result.connected],
    ["connections failed", result.failed],
    ["connections dropped before the fan-out", result.dropped],
    ["time to connect all", `${result.connectSeconds.toFixed(1)} s`],
    ["server RSS before", `${(result.rssBeforeKb / 1024).toFixed(1)} MB`],
    ["server RSS with all connected", `${(result.rssAfterKb / 1024).toFixed(1)} MB`],
    ["server RSS per connection", `${result.kbPerConnection.toFixed(1)} KB`],
    ["server open fds", result.serverFds],
    ["one message fanned out to all", `${result.fanOutMs.toFixed(0)} ms`],
    ["stock-client probes (connect + send + echo)", result.probes.length],
    ["probe p50 / max", `${percentile(0.5).toFixed(0)} ms / ${percentile(1).toFixed(0)} ms`],
    ["probe failures", result.probeFailures.length],
  ]);
}

if (import.meta.main) {
  const flag = Deno.args.indexOf("--connections");
  const connections = flag >= 0 ? Number(Deno.args[flag + 1]) : 10_000;
  const profileFlag = Deno.args.indexOf("--profile");
  const profileDir = profileFlag >= 0 ? Deno.args[profileFlag + 1] : undefined;
  const usersFlag = Deno.args.indexOf("--users");
  const users = usersFlag >= 0 ? Number(Deno.args[usersFlag + 1]) : 100;
  if (!Number.isInteger(connections) || connections < 1 || !Number.isInteger(users) || users < 1) {
    console.error("usage: deno task stress [--connections N] [--users N] [--profile DIR]");
    Deno.exit(2);
  }
  const limit = await fdLimit();
  if (limit < connections + 256) {
    console.error(
      `stress: ulimit -n is ${limit}; ${connections} connections need about ` +
        `${connections + 256} here: run \`ulimit -n ${connections + 1024}\` first`,
    );
    Deno.exit(1);
  }
  console.log(`stress: ${connections} connections`);
  const result = await runStress(connections, { log: console.log, profileDir, users });
  // Through `cat`: Deno lets only --allow-all read /proc (see readProcess).
  const { stdout } = await new Deno.Command("cat", { args: ["/proc/loadavg"] }).output();
  const load = new TextDecoder().decode(stdout).split(" ").slice(0, 3).join(" ");
  const table = `${stressTable(result)}\n\nLoad average at the end: ${load}\n\n` +
    `Connect curve:\n\n${curveTable(result.curve)}`;
  const path = await writeResult(
    "stress",
    `# Stress: ${connections} WebSocket connections\n\n${new Date().toISOString()}, ` +
      `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPUs\n\n${table}\n` +
      (result.probeFailures.length
        ? `\nProbe failures:\n\n${result.probeFailures.map((f) => `- ${f}`).join("\n")}\n`
        : ""),
  );
  console.log(table);
  console.log(`written to ${path}`);
  if (result.connected < connections || result.probeFailures.length > 0) Deno.exit(1);
}
