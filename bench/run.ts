/**
 * The side-by-side load benchmark (`deno task bench`): our server (durable KV and `:memory:`),
 * the Node.js socket.io reference and the bare-runtime limit, each started alone on 127.0.0.1,
 * driven by `bench/loadgen.ts` in its own process. Writes `bench/results/<date>-<time>.md`,
 * `latest.md`, `latest.json` and `latest.svg`. Asserts nothing; never runs in CI.
 *
 * Scenarios: A, B (traffic), C (saturation sweep), D (connect storm), T (B over two instances of
 * a server sharing one redis-server started for the run), F (one message at a time fanned out to
 * 10,000 clients), S (F at 19,000 clients, or as many as the open-file cap allows), and for
 * servers with rooms (ours) R (B's deliveries/s in 10 rooms of 100; B runs too, as its baseline)
 * and J (join/leave storm), and for ours BX (B with a reaction after one message in ten) and BW (B
 * with a webhook receiver on every `message.created`, the outbox's drain timed after the load),
 * each with B as its baseline. Every server gets a 50-message history before
 * the clients connect. The runs of a scenario take the servers in turn (run 1 of each, then run 2
 * of each, …), and BX and BW take turns with B (B, BX, BW, B, …); C sweeps one server after the
 * other. The results end with the targets, each PASS
 * or MISS.
 *
 * ```sh
 * deno run -A bench/run.ts            # everything, 3 runs each (20–30 minutes)
 * deno run -A bench/run.ts --quick    # 4 s windows, 1 run
 * deno run -A bench/run.ts --servers ours-kv,limit --scenarios A,D --runs 1
 * deno run -A bench/run.ts --servers ours-kv,ours-mem --scenarios R,J --quick --out /tmp/bench
 * deno run -A bench/run.ts --servers ours-kv --scenarios B,BX,BW --runs 3 --out /tmp/bench
 * deno run -A bench/run.ts --quick --out /tmp/bench   # results elsewhere, `latest.*` untouched
 * deno run -A bench/run.ts --scenarios S --servers ours-kv,reference,limit --out /tmp/bench
 * ```
 * @module
 */
import {
  freePort,
  type ServerProcess,
  spawnMain,
  spawnServerProcess,
  withFdLimit,
} from "../scripts/server_process.ts";
import type { LoadOptions, LoadResult } from "./loadgen.ts";
import { rssKb } from "./proc.ts";
import { startPostgres } from "../tests/helpers/postgres_server.ts";
import {
  computeTargets,
  type Environment,
  renderMarkdown,
  renderSvg,
  type Report,
  rssPerClientKb,
  type RunFigures,
} from "./report.ts";

const BENCH_DIR = new URL(".", import.meta.url).pathname;
const ROOT_DIR = new URL("..", import.meta.url).pathname;
const REFERENCE_DIR = `${BENCH_DIR}reference/`;
let RESULTS_DIR = `${BENCH_DIR}results/`;
const JWT_SECRET = "bench-secret-0123456789-0123456789-0123456789";

/** Benchmark options; defaults are the full run. */
interface BenchOptions {
  runs: number;
  /** Re-render the results files from this `.json` instead of running. */
  render?: string;
  warmupSeconds: number;
  durationSeconds: number;
  servers: string[];
  scenarios: string[];
  /** Pin the server to CPU 0 and the load generator to CPU 1 (when `taskset` exists). */
  pin: boolean;
  /** More servers: ours with a KV file and these settings (`--variant name:KEY=VALUE;…`). */
  variants: ServerSpec[];
  /** Wait for the load average to drop first (`--no-wait`: start at once, on a shared machine). */
  waitForQuiet: boolean;
}

/** A server under test. */
interface ServerSpec {
  name: string;
  label: string;
  /** Its command; `main.ts` as `deno task start` runs it (V8 flags included) when unset. */
  argv?: string[];
  /** Its environment, given its port and the run's data directory. */
  env: (port: number, dataDir: string) => Record<string, string>;
  /** Has our `/metrics` (KV commits). */
  metrics: boolean;
  /** Speaks our rooms contract (`join`, `leave`, `room` on messages): runs R and J. */
  rooms: boolean;
  /** Shares fan-out through Redis when given `REDIS_URL`: runs T. */
  cluster: boolean;
  /** Has reactions (`react`, `message:reactions`) and webhooks (`WEBHOOK_URL`): runs BX and BW. */
  hooks: boolean;
  /** Keeps its history in a PostgreSQL the run starts (`DATABASE_URL`). */
  postgres?: boolean;
  /** The only scenarios it runs, when set. */
  only?: string[];
}

/** One load generator run's shape. */
interface Load {
  clients: number;
  rate: number;
  mode?: LoadOptions["mode"];
  rooms?: number;
  senders?: number;
  /** Server processes sharing one redis-server (T); one, without Redis, when unset. */
  instances?: number;
  /** `fanout` mode: messages sent, 2 s apart. */
  messages?: number;
  /** Each sender reacts after one of every this many messages it sends (BX). */
  reactEvery?: number;
  /** A webhook receiver gets every `message.created` (BW). */
  webhooks?: boolean;
}

/** Messages every server holds before the clients connect: each connect gets a full history. */
const HISTORY = 50;
/** The soft `ulimit -n` asked for the servers and the load generator (capped at the hard limit). */
const FD_LIMIT = 65_536;
/** S's clients where the open-file cap allows them. */
const STORM_CLIENTS = 19_000;
/** Descriptors a server or the load generator needs besides one per client. */
const FD_HEADROOM = 1_000;

/**
 * S's clients: {@link STORM_CLIENTS}, or fewer when the hard `ulimit -n` (which the servers and the
 * load generator are raised to, one descriptor per client each) leaves less room.
 */
async function stormClients(): Promise<number> {
  const hard = await output(["bash", "-c", "ulimit -Hn"]);
  const cap = hard === "unlimited" ? Infinity : Number(hard);
  return Math.min(STORM_CLIENTS, Math.floor((cap - FD_HEADROOM) / 1000) * 1000);
}

/**
 * Our limits lifted as far as config allows (1000000 messages a minute per user is 16 666/s), and
 * the `bench-*` rooms of R and J open to everyone.
 */
const OURS_ENV = {
  JWT_SECRET,
  HOST: "127.0.0.1",
  LOG_LEVEL: "error",
  RATE_LIMIT_PER_MIN: "1000000",
  RATE_LIMIT_BURST: "1000000",
  RATE_LIMIT_JOIN_PER_MIN: "1000000",
  RATE_LIMIT_READ_PER_MIN: "1000000",
  RATE_LIMIT_ROOMS_PER_MIN: "1000000",
  RATE_LIMIT_TYPING_PER_MIN: "1000000",
  RATE_LIMIT_HISTORY_PER_MIN: "1000000",
  RATE_LIMIT_REACT_PER_MIN: "1000000",
  MAX_PACKETS_PER_SECOND: "0",
  MAX_ERROR_EVENTS_PER_SECOND: "1000000",
  HANDSHAKE_LIMIT_PER_MIN: "0",
  MAX_SOCKETS_PER_USER: "10000",
  PUBLIC_ROOMS: "general,bench-*",
};

const SERVERS: ServerSpec[] = [
  {
    name: "ours-kv",
    label: "ours (KV file)",
    metrics: true,
    rooms: true,
    cluster: true,
    hooks: true,
    env: (port, dataDir) => ({ ...OURS_ENV, PORT: String(port), KV_PATH: `${dataDir}/chat.kv` }),
  },
  {
    name: "ours-mem",
    label: "ours (KV :memory:)",
    metrics: true,
    rooms: true,
    cluster: true,
    hooks: true,
    env: (port) => ({ ...OURS_ENV, PORT: String(port), KV_PATH: ":memory:" }),
  },
  {
    name: "ours-pg",
    label: "ours (PostgreSQL)",
    metrics: true,
    rooms: true,
    cluster: true,
    hooks: true,
    postgres: true,
    // Next to the KV file where the store is what is measured: one instance (B), two (T).
    only: ["B", "T"],
    env: (port) => ({ ...OURS_ENV, PORT: String(port), KV_PATH: "" }),
  },
  {
    name: "reference",
    label: "Node socket.io",
    metrics: false,
    rooms: false,
    cluster: true,
    hooks: false,
    argv: ["node", `${REFERENCE_DIR}server.mjs`],
    env: (port) => ({ JWT_SECRET, PORT: String(port), HOSTNAME: "127.0.0.1" }),
  },
  {
    name: "limit",
    label: "limit (bare Deno WS)",
    metrics: false,
    rooms: false,
    cluster: false,
    hooks: false,
    argv: [Deno.execPath(), "run", "-A", `${BENCH_DIR}limit_server.ts`],
    env: (port) => ({ PORT: String(port), HOSTNAME: "127.0.0.1" }),
  },
];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function parseArgs(args: string[]): BenchOptions {
  const options: BenchOptions = {
    runs: 3,
    warmupSeconds: 3,
    durationSeconds: 10,
    servers: SERVERS.map((server) => server.name),
    scenarios: ["A", "B", "L", "C", "D", "R", "J", "T", "F", "S", "BX", "BW"],
    pin: true,
    variants: [],
    waitForQuiet: true,
  };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    if (flag === "--quick") [options.durationSeconds, options.runs] = [4, 1];
    else if (flag === "--no-pin") options.pin = false;
    else if (flag === "--no-wait") options.waitForQuiet = false;
    else if (flag === "--out") RESULTS_DIR = args[++i].replace(/\/?$/, "/");
    else if (flag === "--render") options.render = args[++i];
    else if (flag === "--runs") options.runs = Number(args[++i]);
    else if (flag === "--duration") options.durationSeconds = Number(args[++i]);
    else if (flag === "--warmup") options.warmupSeconds = Number(args[++i]);
    else if (flag === "--servers") options.servers = args[++i].split(",");
    else if (flag === "--scenarios") options.scenarios = args[++i].toUpperCase().split(",");
    else if (flag === "--variant") options.variants.push(variant(args[++i]));
    else throw new Error(`unknown flag ${flag}`);
  }
  // R, BX and BW are measured against B on the same servers in the same run.
  const againstB = options.scenarios.findIndex((scenario) => B_BASELINED.includes(scenario));
  if (againstB >= 0 && !options.scenarios.includes("B")) options.scenarios.splice(againstB, 0, "B");
  return options;
}

/**
 * `name:KEY=VALUE;KEY=VALUE`: ours with a KV file and these settings, measured beside the others
 * (e.g. `--variant gather10:COMMIT_GATHER=10ms`).
 */
function variant(text: string): ServerSpec {
  const [name, settings = ""] = text.split(/:(.*)/s);
  const ours = SERVERS.find((spec) => spec.name === "ours-kv")!;
  const extra = Object.fromEntries(
    settings.split(";").filter(Boolean).map((pair) => pair.split(/=(.*)/s).slice(0, 2)),
  );
  return {
    ...ours,
    name,
    label: `ours (KV file, ${settings.replaceAll(";", ", ")})`,
    env: (port, dataDir) => ({ ...ours.env(port, dataDir), ...extra }),
  };
}

/** Scenarios that need the rooms contract: servers without it skip them. */
const ROOM_SCENARIOS = ["R", "J"];
/** Scenarios that need several instances sharing Redis: servers without it skip them. */
const CLUSTER_SCENARIOS = ["T"];
/** Scenarios that need reactions and webhooks: servers without them skip them. */
const HOOK_SCENARIOS = ["BX", "BW"];
/** Scenarios whose figures are read against B's in the same run: B runs too. */
const B_BASELINED = ["R", "BX", "BW"];

/** Scenarios run by run with B (B, BX, BW, B, BX, BW, …): their ratios to B share the machine. */
const WITH_B = ["BX", "BW"];

/** The scenarios in the order they run: B and those of {@link WITH_B} as one group. */
function scenarioGroups(scenarios: string[]): string[][] {
  return scenarios.filter((scenario) => !WITH_B.includes(scenario)).map((scenario) =>
    scenario === "B" ? ["B", ...scenarios.filter((other) => WITH_B.includes(other))] : [scenario]
  );
}

/** The servers that run `scenario`; each skipped one is said, with why. */
function runnableFor(specs: ServerSpec[], scenario: string): ServerSpec[] {
  console.error(`bench: scenario ${scenario}`);
  return specs.filter((spec) => {
    const skip = spec.only && !spec.only.includes(scenario)
      ? `it runs only ${spec.only.join(", ")}`
      : ROOM_SCENARIOS.includes(scenario) && !spec.rooms
      ? "it has no rooms"
      : CLUSTER_SCENARIOS.includes(scenario) && !spec.cluster
      ? "it cannot share fan-out through Redis"
      : HOOK_SCENARIOS.includes(scenario) && !spec.hooks
      ? "it has no reactions or webhooks"
      : undefined;
    if (skip) console.error(`  ${scenario} ${spec.name}: skipped, ${skip}`);
    return !skip;
  });
}

async function output(args: string[], cwd = ROOT_DIR): Promise<string> {
  const { stdout } = await new Deno.Command(args[0], { args: args.slice(1), cwd, stderr: "null" })
    .output();
  return new TextDecoder().decode(stdout).trim();
}

async function hasTaskset(): Promise<boolean> {
  try {
    return (await new Deno.Command("taskset", { args: ["-V"], stdout: "null" }).output()).success;
  } catch {
    return false;
  }
}

async function ensureReferenceInstalled(): Promise<void> {
  try {
    // The last package added: an older install lacks it.
    await Deno.stat(`${REFERENCE_DIR}node_modules/@socket.io/redis-streams-adapter`);
  } catch {
    console.error("bench: npm ci in bench/reference");
    const { success } = await new Deno.Command("npm", {
      args: ["ci", "--silent"],
      cwd: REFERENCE_DIR,
    })
      .output();
    if (!success) throw new Error("npm ci failed in bench/reference");
  }
}

/** The servers' and redis-server's CPU when pinned; the load generator gets the other. */
const SERVER_CPU = ["taskset", "-c", "0"];
const LOADGEN_CPU = ["taskset", "-c", "1"];
/** How long a server may take to start. */
const START_TIMEOUT_MS = 30_000;

/** A started server: its process, where to reach it, and its idle RSS. */
interface Running {
  process: ServerProcess;
  url: string;
  rssIdleKb: number;
}

/**
 * Starts one instance of `spec`; its stderr goes to `<dataDir>/stderr-<index>.log`. Instances of
 * one run share `dataDir` (our KV file) and `env` (`REDIS_URL`).
 */
async function startServer(
  spec: ServerSpec,
  pin: boolean,
  dataDir: string,
  env: Record<string, string> = {},
  index = 0,
): Promise<Running> {
  const port = freePort();
  const options = {
    name: spec.name,
    prefix: pin ? SERVER_CPU : undefined,
    fdLimit: FD_LIMIT,
    env: { ...spec.env(port, dataDir), ...env },
    cwd: ROOT_DIR,
    stdout: "drop" as const,
    stderrLog: `${dataDir}/stderr-${index}.log`,
    stopGraceMs: 15_000,
  };
  const started = spec.argv
    ? await spawnServerProcess({
      ...options,
      argv: spec.argv,
      ready: { port },
      readyTimeoutMs: START_TIMEOUT_MS,
    })
    : await spawnMain({ ...options, permissions: ["-A"], listenTimeoutMs: START_TIMEOUT_MS });
  await sleep(1000);
  return { process: started, url: started.url, rssIdleKb: rssKb(started.pid) };
}

/** A redis-server for one run of T: a free port, no persistence, on the servers' CPU. */
async function startRedis(pin: boolean): Promise<Running> {
  const port = freePort();
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
  const started = await spawnServerProcess({
    argv: ["redis-server", ...args],
    prefix: pin ? SERVER_CPU : undefined,
    ready: { port },
    stdout: "drop",
    readyTimeoutMs: START_TIMEOUT_MS,
    stopGraceMs: 15_000,
  });
  return { process: started, url: `redis://127.0.0.1:${port}`, rssIdleKb: rssKb(started.pid) };
}

/** The key the servers sign BW's webhooks with (the receiver does not check them). */
const WEBHOOK_SECRET = `whsec_${btoa("bench-webhook-secret-0123456789ab")}`;

/**
 * BW's webhook receiver (`bench/webhook_receiver.ts`): its own process, on the load generator's
 * CPU when pinned, so what it costs never lands on the server's.
 */
async function startReceiver(pin: boolean): Promise<Running> {
  const port = freePort();
  const started = await spawnServerProcess({
    argv: [Deno.execPath(), "run", "-A", `${BENCH_DIR}webhook_receiver.ts`],
    prefix: pin ? LOADGEN_CPU : undefined,
    env: { PORT: String(port) },
    ready: { port },
    stdout: "drop",
    readyTimeoutMs: START_TIMEOUT_MS,
    stopGraceMs: 5_000,
  });
  return { process: started, url: `http://127.0.0.1:${port}`, rssIdleKb: rssKb(started.pid) };
}

/** The server's webhook settings for BW: every `message.created` to `receiver`. */
function webhookEnv(receiver: Running): Record<string, string> {
  return {
    WEBHOOK_URL: `${receiver.url}/hook`,
    WEBHOOK_SECRET,
    WEBHOOK_EVENTS: "message.created",
  };
}

async function runLoadgen(args: string[], pin: boolean): Promise<LoadResult> {
  const [program, ...argv] = [
    ...(pin ? LOADGEN_CPU : []),
    ...withFdLimit([Deno.execPath(), "run", "-A", `${BENCH_DIR}loadgen.ts`, ...args], FD_LIMIT),
  ];
  const { stdout, stderr, success } = await new Deno.Command(program, { args: argv, cwd: ROOT_DIR })
    .output();
  if (!success) throw new Error(`loadgen failed: ${new TextDecoder().decode(stderr)}`);
  const lines = new TextDecoder().decode(stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

/** Starts `spec` (and Redis for several instances), runs one load, stops them. */
async function measure(
  spec: ServerSpec,
  scenario: string,
  load: Load,
  options: BenchOptions,
): Promise<RunFigures> {
  const dataDir = await Deno.makeTempDir({ prefix: "chat-bench-" });
  const servers: Running[] = [];
  let redis: Running | undefined;
  let receiver: Running | undefined;
  // Durable, as in production: fsync at each commit, as the KV file does.
  const postgres = spec.postgres ? await startPostgres({ durable: true }) : undefined;
  try {
    const databaseUrl: Record<string, string> = postgres
      ? { DATABASE_URL: await postgres.createDatabase() }
      : {};
    if (load.instances) redis = await startRedis(options.pin);
    if (load.webhooks) receiver = await startReceiver(options.pin);
    const hooks = receiver ? webhookEnv(receiver) : {};
    for (let index = 0; index < (load.instances ?? 1); index++) {
      const env: Record<string, string> = redis
        ? { ...databaseUrl, ...hooks, REDIS_URL: redis.url, INSTANCE_ID: `bench-${index}` }
        : { ...databaseUrl, ...hooks };
      servers.push(await startServer(spec, options.pin, dataDir, env, index));
    }
    const result = await runLoadgen([
      "--url",
      servers.map((server) => server.url).join(","),
      "--secret",
      JWT_SECRET,
      "--pid",
      servers.map((server) => server.process.pid).join(","),
      ...(redis ? ["--redis-pid", String(redis.process.pid)] : []),
      ...(postgres ? ["--postgres-pid", String(postgres.pid())] : []),
      "--seed",
      String(HISTORY),
      "--clients",
      String(load.clients),
      "--rate",
      String(load.rate),
      "--warmup",
      String(options.warmupSeconds),
      "--duration",
      String(options.durationSeconds),
      ...(load.mode ? ["--mode", load.mode] : []),
      ...(load.rooms ? ["--rooms", String(load.rooms)] : []),
      ...(load.senders ? ["--senders", String(load.senders)] : []),
      ...(load.messages ? ["--messages", String(load.messages)] : []),
      ...(load.reactEvery ? ["--react-every", String(load.reactEvery)] : []),
      ...(receiver ? ["--webhook-receiver", receiver.url] : []),
      ...(spec.metrics ? ["--metrics"] : []),
    ], options.pin);
    const r = result;
    const rssPerClient = rssPerClientKb(r, load.clients, sumIdle(servers));
    // A run with no delivery in the window has no latency: JSON turns NaN into null.
    const num = (value: number | null | undefined, digits = 0) => (value ?? NaN).toFixed(digits);
    const others = `loadgen ${num(r.loadgenCpuPercent)}%, other ${num(r.otherCpuPercent)}%`;
    const history = `history ${r.historyLength}`;
    console.error(
      `  ${scenario} ${spec.name.padEnd(9)} N=${load.clients} R=${load.rate}: ` +
        (load.mode === "connect"
          ? `${num(r.connectsPerSecond)} connects/s, ${num(rssPerClient, 1)} KB/client, ${history}`
          : load.mode === "fanout"
          ? `last client ${r.fanout?.lastMs.map((ms) => num(ms)).join("/")} ms, ` +
            `p50 ${r.fanout?.p50Ms.map((ms) => num(ms)).join("/")} ms, lost ${r.lost}, ` +
            `connected in ${num(r.connectMs)} ms, ${num(rssPerClient, 1)} KB/client, ${history}, ` +
            `loadgen RSS ${num(r.loadgenRssKb / 1024)} MB, ` +
            others
          : load.mode === "rooms-storm"
          ? `${num(r.storm?.joinsPerSecond)} joins/s, join p99 ${num(r.storm?.p99Ms, 1)} ms, ` +
            `${num(r.storm?.cpuMicrosPerJoin, 1)} µs/join, refused ${r.storm?.refused}, ${others}`
          : `${num(r.deliveriesPerSecond)} deliveries/s, ` +
            `${num(r.server?.cpuMicrosPerDelivery, 1)} µs/delivery, p99 ${num(r.p99Ms, 1)} ms, ` +
            `lost ${r.lost}, probe foreign ${r.probe.foreign}, ` +
            (redis
              ? `redis ${
                num(
                  (r.server?.redisCpuMicros ?? NaN) / (r.deliveriesPerSecond * r.windowSeconds),
                  2,
                )
              } µs, `
              : "") +
            (postgres
              ? `postgres ${
                num(
                  (r.server?.postgresCpuMicros ?? NaN) / (r.deliveriesPerSecond * r.windowSeconds),
                  2,
                )
              } µs, `
              : "") +
            `${num(r.messagesPerFrame, 2)} msg/frame, ${num(rssPerClient, 1)} KB/client, ` +
            (r.reactions
              ? `reactions ${r.reactions.sent} sent, ${r.reactions.refused} refused, ` +
                `${num(r.reactions.deliveriesPerSecond)} reaction deliveries/s, `
              : "") +
            (r.webhooks
              ? `webhooks ${r.webhooks.received}/${r.webhooks.expected} received ` +
                `(${r.webhooks.duplicates} duplicates) after ${
                  num(r.webhooks.receivedAllMs)
                } ms, ` +
                `outbox empty after ${num(r.webhooks.drainMs)} ms, `
              : "") +
            `${history}, ${others}`),
    );
    return { server: spec.name, scenario, ...load, rssIdleKb: sumIdle(servers), result };
  } finally {
    for (const server of servers) await server.process.stop();
    await redis?.process.stop();
    await receiver?.process.stop();
    await postgres?.[Symbol.asyncDispose]();
    await Deno.remove(dataDir, { recursive: true });
  }
}

function sumIdle(servers: Running[]): number {
  return servers.reduce((sum, server) => sum + server.rssIdleKb, 0);
}

/** Rates the saturation sweep tries, in order, until throughput stops rising or loss appears. */
const SWEEP_RATES = [250, 500, 1000, 2000, 4000, 8000, 16000];

async function sweep(spec: ServerSpec, options: BenchOptions): Promise<RunFigures[]> {
  const runs: RunFigures[] = [];
  let best = 0;
  for (const rate of SWEEP_RATES) {
    const run = await measure(spec, "C", { clients: 100, rate }, options);
    runs.push(run);
    const { deliveriesPerSecond, lost, disconnects } = run.result;
    if (lost > 0 || disconnects > 0 || deliveriesPerSecond < best * 1.05) break;
    best = deliveriesPerSecond;
  }
  return runs;
}

async function environment(options: BenchOptions, pinned: boolean): Promise<Environment> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  const meminfo = await Deno.readTextFile("/proc/meminfo");
  const denoJson = JSON.parse(await Deno.readTextFile(`${ROOT_DIR}deno.json`));
  // Installed only when the reference runs.
  const referenceSocketIo = options.servers.includes("reference")
    ? JSON.parse(
      await Deno.readTextFile(`${REFERENCE_DIR}node_modules/socket.io/package.json`),
    ).version
    : "not run";
  return {
    date: new Date().toISOString(),
    cores: navigator.hardwareConcurrency,
    memoryGb: Number(meminfo.match(/MemTotal:\s+(\d+)/)![1]) / 1024 / 1024,
    cpuModel: cpuinfo.match(/model name\s*:\s*(.+)/)?.[1] ?? "unknown",
    deno: Deno.version.deno,
    node: await output(["node", "--version"]),
    // Other work lands in src/ all the time: say which code "ours" was.
    revision: await output(["git", "describe", "--always", "--dirty"]),
    oursSocketIo: String(denoJson.imports["socket.io"]).replace("npm:socket.io@", ""),
    referenceSocketIo,
    redis: options.scenarios.includes("T")
      ? (await output(["redis-server", "--version"])).match(/v=(\S+)/)?.[1]
      : undefined,
    loadAverageStart: (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" "),
    loadAverageEnd: "",
    pinned,
    runs: options.runs,
    warmupSeconds: options.warmupSeconds,
    durationSeconds: options.durationSeconds,
  };
}

async function loadAverage(): Promise<number> {
  return Number((await Deno.readTextFile("/proc/loadavg")).split(" ")[0]);
}

/** Other work skews every figure: wait up to `IDLE_WAIT_MS` for the machine to quiet down. */
const IDLE_WAIT_MS = 180_000;
const IDLE_LOAD_AVERAGE = 1;

async function waitForQuiet(): Promise<void> {
  const deadline = Date.now() + IDLE_WAIT_MS;
  while (await loadAverage() >= IDLE_LOAD_AVERAGE && Date.now() < deadline) {
    console.error(`bench: load average ${await loadAverage()}, waiting for it to drop below 1`);
    await sleep(15_000);
  }
}

function stamp(date: Date): string {
  const pad = (value: number) => String(value).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}-` +
    `${pad(date.getHours())}${pad(date.getMinutes())}`;
}

async function main(): Promise<void> {
  const options = parseArgs(Deno.args);
  if (options.render) {
    return await writeResults(JSON.parse(await Deno.readTextFile(options.render)));
  }
  const pinned = options.pin && await hasTaskset();
  options.pin = pinned;
  const specs = [
    ...SERVERS.filter((spec) => options.servers.includes(spec.name)),
    ...options.variants,
  ];
  if (specs.some((spec) => spec.name === "reference")) await ensureReferenceInstalled();
  if (options.waitForQuiet) await waitForQuiet();
  const env = await environment(options, pinned);
  console.error(`bench: load average ${env.loadAverageStart}; pinned: ${pinned}`);

  const runs: RunFigures[] = [];
  const scenarios: Record<string, Load> = {
    A: { clients: 100, rate: 500 },
    B: { clients: 1000, rate: 50 },
    D: { clients: 1000, rate: 0, mode: "connect" },
    // A trickle: what a quiet chat's latency is.
    L: { clients: 100, rate: 10 },
    // B's 50,000 deliveries/s: 500 msg/s over 10 rooms of 100, 10 senders a room at 5 msg/s each.
    R: { clients: 1000, rate: 500, mode: "rooms", rooms: 10, senders: 100 },
    J: { clients: 500, rate: 0, mode: "rooms-storm", rooms: 10 },
    // B over two instances sharing one redis-server: 500 clients each, everyone gets everything.
    T: { clients: 1000, rate: 50, instances: 2 },
    // 10,000 clients; one message at a time, 5 messages 2 s apart.
    F: { clients: 10_000, rate: 0, mode: "fanout", messages: 5 },
    // F at the open-file cap: 19,000 clients where it allows.
    S: { clients: await stormClients(), rate: 0, mode: "fanout", messages: 5 },
    // B, and each sender reacts to the last message it got after one of every ten it sends.
    BX: { clients: 1000, rate: 50, reactEvery: 10 },
    // B, with every message's `message.created` POSTed to a receiver the run starts.
    BW: { clients: 1000, rate: 50, webhooks: true },
  };
  if (options.scenarios.includes("S") && scenarios.S.clients < STORM_CLIENTS) {
    console.error(
      `bench: S scaled down to ${scenarios.S.clients} clients: the hard ulimit -n leaves no room ` +
        `for ${STORM_CLIENTS}`,
    );
  }
  const servers = specs.map(({ name, label }) => ({ name, label }));
  await Deno.mkdir(RESULTS_DIR, { recursive: true });
  // Saved after every measurement, so a crash keeps what was measured (`--render` it).
  const checkpoint = `${RESULTS_DIR}${stamp(new Date(env.date))}.json`;
  const save = () => Deno.writeTextFile(checkpoint, JSON.stringify({ env, servers, runs }) + "\n");
  for (const group of scenarioGroups(options.scenarios)) {
    const runnable = new Map(group.map((scenario) => [scenario, runnableFor(specs, scenario)]));
    if (group[0] === "C") {
      for (const spec of runnable.get("C")!) {
        runs.push(...await sweep(spec, options));
        await save();
      }
      continue;
    }
    // The servers take turns, and so do B and what is read against it, so a disturbance on the
    // machine hits them more evenly.
    for (let run = 0; run < options.runs; run++) {
      for (const [scenario, specsOf] of runnable) {
        for (const spec of specsOf) {
          runs.push(await measure(spec, scenario, scenarios[scenario], options));
          await save();
        }
      }
    }
  }
  env.loadAverageEnd = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");

  const report: Report = { env, servers, runs };
  await writeResults(report);
}

/** Writes `<date>-<time>.md` and `.json`, and `latest.md`, `latest.json`, `latest.svg`. */
async function writeResults(report: Report): Promise<void> {
  report.targets = computeTargets(report);
  const markdown = renderMarkdown(report);
  const name = stamp(new Date(report.env.date));
  await Deno.mkdir(RESULTS_DIR, { recursive: true });
  const json = JSON.stringify(report, null, 2) + "\n";
  const files: [string, string][] = [
    [`${RESULTS_DIR}${name}.md`, markdown],
    [`${RESULTS_DIR}${name}.json`, json],
    [`${RESULTS_DIR}latest.md`, markdown],
    [`${RESULTS_DIR}latest.json`, json],
  ];
  for (const [path, text] of files) await Deno.writeTextFile(path, text);
  const svg = `${RESULTS_DIR}latest.svg`;
  await Deno.writeTextFile(svg, renderSvg(report));
  // The results are committed; keep them as `deno fmt --check` wants them.
  const paths = files.map(([path]) => path);
  await new Deno.Command("deno", { args: ["fmt", "--quiet", ...paths, svg], cwd: ROOT_DIR })
    .output();
  console.log(await Deno.readTextFile(paths[2]));
  console.error(`bench: wrote ${paths.join(", ")}, ${RESULTS_DIR}latest.svg`);
}

if (import.meta.main) await main();
