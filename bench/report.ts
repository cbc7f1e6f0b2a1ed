/**
 * Turns the benchmark's runs into the results file (markdown tables, medians of runs, and the
 * targets with PASS or MISS) and a small hand-made SVG bar chart (CPU µs per delivery and p99
 * latency, per server and scenario).
 * @module
 */
import type { LoadResult } from "./loadgen.ts";

/** One scenario run's figures, as stored and reported. */
export interface RunFigures {
  server: string;
  scenario: string;
  rate: number;
  clients: number;
  /** Server processes (T: two sharing one redis-server); one when unset. */
  instances?: number;
  /** Summed over the instances. */
  rssIdleKb: number;
  result: LoadResult;
}

/** One target line: what was aimed at, what was measured, and whether it was met. */
export interface Target {
  target: string;
  measured: string;
  /** `not measured` when a server or scenario it needs did not run. */
  result: "PASS" | "MISS" | "not measured";
}

/** Where and how the benchmark ran. */
export interface Environment {
  date: string;
  cores: number;
  memoryGb: number;
  cpuModel: string;
  deno: string;
  node: string;
  /** `git describe --always --dirty` of the tree "ours" ran from. */
  revision: string;
  oursSocketIo: string;
  referenceSocketIo: string;
  /** redis-server's version, when T ran. */
  redis?: string;
  loadAverageStart: string;
  loadAverageEnd: string;
  pinned: boolean;
  runs: number;
  warmupSeconds: number;
  durationSeconds: number;
}

/** Everything one benchmark run produced. */
export interface Report {
  env: Environment;
  servers: { name: string; label: string }[];
  runs: RunFigures[];
  /** Filled in from the runs when the results are written. */
  targets?: Target[];
}

const COLORS: Record<string, string> = {
  "ours-kv": "#1f77b4",
  "ours-mem": "#6baed6",
  reference: "#ff7f0e",
  limit: "#7f7f7f",
};

function median(values: number[]): number {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return NaN;
  const middle = Math.floor(finite.length / 2);
  return finite.length % 2 ? finite[middle] : (finite[middle - 1] + finite[middle]) / 2;
}

/** A number for a table cell: `—` when not measured. */
function fmt(value: number | undefined, digits = 0): string {
  if (value === undefined || !Number.isFinite(value)) return "—";
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** Median figures of one server in one scenario (the worst run for losses). */
interface Summary {
  deliveriesPerSecond: number;
  messagesPerFrame: number;
  lostWorst: number;
  probeLost: number;
  probeDuplicates: number;
  /** Messages of other rooms the probe got (R), all runs. */
  probeForeign: number;
  disconnects: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  cpuPerDelivery: number;
  serverCpuPercent: number;
  connectMs: number;
  connectsPerSecond: number;
  connectP50: number;
  connectP99: number;
  cpuPerConnect: number;
  rssIdleMb: number;
  rssPerClientKb: number;
  kvCommitsPerSecond: number;
  loadgenCpuPercent: number;
  otherCpuPercent: number;
  joinsPerSecond: number;
  joinP50: number;
  joinP99: number;
  /** Joins refused, all runs. */
  joinsRefused: number;
  cpuPerJoin: number;
  /** Shortest history `load` a probe got on connect (every run). */
  historyLength: number;
  /** redis-server's CPU per delivery (T; not in `cpuPerDelivery`). */
  redisCpuPerDelivery: number;
  redisCpuPercent: number;
  /** PostgreSQL's CPU per delivery, its backends included (not in `cpuPerDelivery`). */
  postgresCpuPerDelivery: number;
  /** F: per run the median over its messages, then the median of runs. */
  fanoutLast: number;
  fanoutP50: number;
  /** F: every message's "last client" time, all runs. */
  fanoutLastAll: number[];
  /** The load generator's RSS with every client connected. */
  loadgenRssMb: number;
  /** BX: the server's CPU over message deliveries alone (reactions' CPU still in it). */
  cpuPerMessageDelivery: number;
  /** BX: reactions sent per second of window, refused (all runs), `message:reactions` received. */
  reactsPerSecond: number;
  reactsRefused: number;
  reactionDeliveriesPerSecond: number;
  /** BW: per run, ms after sending stopped until the outbox was empty and the receiver had all. */
  webhookDrainAll: number[];
  /** BW: the slowest run's drain (NaN when a run did not drain in time). */
  webhookDrainWorst: number;
  /** BW: the median ms until the receiver had every event. */
  webhookReceivedAll: number;
  /** BW: events never received (worst run), and duplicates (all runs). */
  webhookMissing: number;
  webhookDuplicates: number;
}

/** The median of an array, for F's per-message figures. */
function medianOf(values: number[] | undefined): number {
  return median(values ?? []);
}

function summarize(runs: RunFigures[]): Summary {
  const m = (pick: (run: RunFigures) => number | undefined) =>
    median(runs.map((run) => pick(run) ?? NaN));
  return {
    deliveriesPerSecond: m((run) => run.result.deliveriesPerSecond),
    // Results written before frames were counted have no figure: one message per frame.
    messagesPerFrame: m((run) => run.result.messagesPerFrame ?? 1),
    lostWorst: Math.max(...runs.map((run) => run.result.lost)),
    probeLost: runs.reduce((sum, run) => sum + run.result.probe.lost, 0),
    probeDuplicates: runs.reduce((sum, run) => sum + run.result.probe.duplicates, 0),
    // Results written before rooms have no figure: none.
    probeForeign: runs.reduce((sum, run) => sum + (run.result.probe.foreign ?? 0), 0),
    disconnects: runs.reduce((sum, run) => sum + run.result.disconnects, 0),
    p50: m((run) => run.result.p50Ms),
    p95: m((run) => run.result.p95Ms),
    p99: m((run) => run.result.p99Ms),
    max: m((run) => run.result.maxMs),
    cpuPerDelivery: m((run) => run.result.server?.cpuMicrosPerDelivery),
    serverCpuPercent: m((run) =>
      run.result.server && run.result.server.cpuMicros / (run.result.windowSeconds * 10_000)
    ),
    connectMs: m((run) => run.result.connectMs),
    connectsPerSecond: m((run) => run.result.connectsPerSecond),
    connectP50: m((run) => run.result.connectP50Ms),
    connectP99: m((run) => run.result.connectP99Ms),
    cpuPerConnect: m((run) => run.result.server?.cpuMicrosPerConnect),
    rssIdleMb: m((run) => run.rssIdleKb / 1024),
    rssPerClientKb: m((run) => rssPerClientKb(run.result, run.clients, run.rssIdleKb)),
    kvCommitsPerSecond: m((run) => run.result.server?.kvCommitsPerSecond),
    loadgenCpuPercent: m((run) => run.result.loadgenCpuPercent),
    otherCpuPercent: m((run) => run.result.otherCpuPercent),
    joinsPerSecond: m((run) => run.result.storm?.joinsPerSecond),
    joinP50: m((run) => run.result.storm?.p50Ms),
    joinP99: m((run) => run.result.storm?.p99Ms),
    joinsRefused: runs.reduce((sum, run) => sum + (run.result.storm?.refused ?? 0), 0),
    cpuPerJoin: m((run) => run.result.storm?.cpuMicrosPerJoin),
    // Results written before seeding have no figure.
    historyLength: Math.min(...runs.map((run) => run.result.historyLength ?? NaN)),
    redisCpuPerDelivery: m((run) =>
      run.result.server?.redisCpuMicros !== undefined
        ? run.result.server.redisCpuMicros /
          (run.result.deliveriesPerSecond * run.result.windowSeconds)
        : NaN
    ),
    postgresCpuPerDelivery: m((run) =>
      run.result.server?.postgresCpuMicros !== undefined
        ? run.result.server.postgresCpuMicros /
          (run.result.deliveriesPerSecond * run.result.windowSeconds)
        : NaN
    ),
    redisCpuPercent: m((run) =>
      run.result.server?.redisCpuMicros !== undefined
        ? run.result.server.redisCpuMicros / (run.result.windowSeconds * 10_000)
        : NaN
    ),
    fanoutLast: m((run) => medianOf(run.result.fanout?.lastMs)),
    fanoutP50: m((run) => medianOf(run.result.fanout?.p50Ms)),
    fanoutLastAll: runs.flatMap((run) => run.result.fanout?.lastMs ?? []),
    // Results written before it was recorded have no figure.
    loadgenRssMb: m((run) => (run.result.loadgenRssKb ?? NaN) / 1024),
    ...hookFigures(runs, m),
  };
}

/** The figures of BX (reactions) and BW (webhooks); NaN or nothing for other scenarios. */
function hookFigures(
  runs: RunFigures[],
  m: (pick: (run: RunFigures) => number | undefined) => number,
) {
  const drains = runs.flatMap((run) => run.result.webhooks ? [run.result.webhooks.drainMs] : []);
  return {
    cpuPerMessageDelivery: m((run) =>
      run.result.server && run.result.server.cpuMicros /
        (run.result.deliveriesPerSecond * run.result.windowSeconds)
    ),
    reactsPerSecond: m((run) =>
      run.result.reactions && run.result.reactions.sent / run.result.windowSeconds
    ),
    reactsRefused: runs.reduce((sum, run) => sum + (run.result.reactions?.refused ?? 0), 0),
    reactionDeliveriesPerSecond: m((run) => run.result.reactions?.deliveriesPerSecond),
    webhookDrainAll: drains,
    // A run that never drained (NaN) makes the worst NaN: not a pass.
    webhookDrainWorst: drains.length ? Math.max(...drains) : NaN,
    webhookReceivedAll: m((run) => run.result.webhooks?.receivedAllMs),
    webhookMissing: Math.max(
      ...runs.map((run) =>
        run.result.webhooks ? run.result.webhooks.expected - run.result.webhooks.received : NaN
      ),
    ),
    webhookDuplicates: runs.reduce((sum, run) => sum + (run.result.webhooks?.duplicates ?? 0), 0),
  };
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

/** Median summaries keyed by scenario, then server. */
function summaries(report: Report, scenario: string): Map<string, Summary> {
  const result = new Map<string, Summary>();
  for (const { name } of report.servers) {
    const runs = report.runs.filter((run) => run.scenario === scenario && run.server === name);
    if (runs.length) result.set(name, summarize(runs));
  }
  return result;
}

const SCENARIO_TITLES: Record<string, string> = {
  A: "A — 100 clients, 500 msg/s (≈50k deliveries/s)",
  B: "B — 1000 clients, 50 msg/s (≈50k deliveries/s)",
  L: "L — a trickle: 100 clients, 10 msg/s (≈1k deliveries/s)",
  R: "R — 1000 clients in 10 rooms of 100, 500 msg/s over the rooms (≈50k deliveries/s)",
  T: "T — two instances sharing one Redis, 1000 clients (500 on each), 50 msg/s (≈50k deliveries/s)",
  F: "F — fan-out to 10,000 clients, one message at a time (5 messages, 2 s apart)",
  S: "S — fan-out at the open-file cap (19,000 clients where it allows), one message at a time " +
    "(5 messages, 2 s apart)",
  BX:
    "BX — B with reactions: each sender reacts after one of every ten messages it sends (≈5 reactions/s)",
  BW:
    "BW — B with webhooks: every `message.created` POSTed to a receiver (WEBHOOK_EVENTS=message.created)",
};

/** R's CPU per delivery against B's, per server: rooms should cost at most 10 % more. */
const ROOMS_CPU_TARGET = 1.1;
/** BX's CPU per delivery (messages and reaction events) against B's (issue #25). */
const REACTIONS_CPU_TARGET = 1.1;
/** BW's CPU per delivery against B's (issue #26). */
const WEBHOOKS_CPU_TARGET = 1.15;
/** BW: the outbox empty and every event received within this after the load (issue #26). */
const WEBHOOK_DRAIN_TARGET_MS = 5000;

function trafficSection(report: Report, scenario: string, labels: Map<string, string>): string {
  const rows = [...summaries(report, scenario)].map(([name, s]) => [
    labels.get(name)!,
    fmt(s.deliveriesPerSecond),
    fmt(s.messagesPerFrame, 2),
    fmt(s.lostWorst),
    `${fmt(s.probeLost)} / ${fmt(s.probeDuplicates)}`,
    fmt(s.p50, 1),
    fmt(s.p95, 1),
    fmt(s.p99, 1),
    fmt(s.max, 1),
    fmt(s.cpuPerDelivery, 1),
    fmt(s.postgresCpuPerDelivery, 2),
    fmt(s.serverCpuPercent),
    fmt(s.connectMs),
    fmt(s.rssIdleMb, 1),
    fmt(s.rssPerClientKb, 1),
    fmt(s.kvCommitsPerSecond),
    `${fmt(s.loadgenCpuPercent)} / ${fmt(s.otherCpuPercent)}`,
  ]);
  return `### ${SCENARIO_TITLES[scenario]}\n\n` + table([
    "server",
    "deliveries/s",
    "messages/frame",
    "lost (worst run)",
    "probe lost / dup",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "CPU µs/delivery",
    "PostgreSQL CPU µs/delivery (not included)",
    "server CPU %",
    "connect ms",
    "RSS idle MB",
    "RSS/client KB",
    "KV commits/s",
    "loadgen / other CPU %",
  ], rows);
}

/** Ours against the others in A, B, T and D; empty when only one side ran. */
function ratioSection(report: Report): string {
  const rows: string[][] = [];
  for (const scenario of ["A", "B", "T", "D"]) {
    const s = summaries(report, scenario);
    for (const ours of ["ours-kv", "ours-mem"]) {
      const mine = s.get(ours);
      if (!mine) continue;
      for (const other of ["reference", "limit"]) {
        const theirs = s.get(other);
        if (!theirs) continue;
        const ratio = (pick: (summary: Summary) => number) => fmt(pick(mine) / pick(theirs), 2);
        rows.push(
          scenario === "D"
            ? [scenario, `${ours} / ${other}`, "—", "—", "—", ratio((x) => x.connectsPerSecond)]
            : [
              scenario,
              `${ours} / ${other}`,
              ratio((x) => x.cpuPerDelivery),
              ratio((x) => x.deliveriesPerSecond),
              ratio((x) => x.p99),
              "—",
            ],
        );
      }
    }
  }
  if (rows.length === 0) return "";
  return table(
    ["scenario", "ratio", "CPU µs/delivery", "deliveries/s", "p99", "connects/s"],
    rows,
  );
}

function roomsSection(report: Report, labels: Map<string, string>): string {
  const b = summaries(report, "B");
  const rows = [...summaries(report, "R")].map(([name, r]) => {
    const ratio = r.cpuPerDelivery / (b.get(name)?.cpuPerDelivery ?? NaN);
    return [
      labels.get(name)!,
      fmt(r.cpuPerDelivery, 1),
      fmt(b.get(name)?.cpuPerDelivery, 1),
      Number.isFinite(ratio) ? `${fmt(ratio, 2)} ${ratio <= ROOMS_CPU_TARGET ? "✓" : "✗"}` : "—",
      fmt(r.probeForeign),
    ];
  });
  return table([
    "server",
    "R CPU µs/delivery",
    "B CPU µs/delivery",
    `R / B (target ≤ ${fmt(ROOMS_CPU_TARGET, 2)})`,
    "probe: other rooms' messages",
  ], rows);
}

/** A ratio against its target for a table cell: `1.04 ✓`, or `—`. */
function ratioCell(ratio: number, target: number): string {
  return Number.isFinite(ratio) ? `${fmt(ratio, 2)} ${ratio <= target ? "✓" : "✗"}` : "—";
}

/** BX and BW against B of the same servers in the same run, with what each added. */
function hooksSection(report: Report, labels: Map<string, string>): string {
  const b = summaries(report, "B");
  const rows: string[][] = [];
  for (const [scenario, target] of [["BX", REACTIONS_CPU_TARGET], ["BW", WEBHOOKS_CPU_TARGET]]) {
    for (const [name, s] of summaries(report, scenario as string)) {
      const base = b.get(name)?.cpuPerDelivery ?? NaN;
      rows.push([
        scenario as string,
        labels.get(name)!,
        fmt(s.cpuPerDelivery, 1),
        fmt(base, 1),
        ratioCell(s.cpuPerDelivery / base, target as number),
        `${fmt(s.messagesPerFrame, 2)} / ${fmt(b.get(name)?.messagesPerFrame, 2)}`,
        `${fmt(s.otherCpuPercent)} / ${fmt(b.get(name)?.otherCpuPercent)}`,
        scenario === "BX"
          ? `${fmt(s.reactsPerSecond, 1)} reactions/s (${fmt(s.reactsRefused)} refused), ` +
            `${fmt(s.reactionDeliveriesPerSecond)} reaction deliveries/s; ` +
            `${fmt(s.cpuPerMessageDelivery, 1)} µs per message delivery alone`
          : `drained after ${s.webhookDrainAll.map((ms) => fmt(ms / 1000, 2)).join(", ")} s ` +
            `(receiver had all: ${fmt(s.webhookReceivedAll / 1000, 2)} s median); missing ` +
            `${fmt(s.webhookMissing)}, duplicates ${fmt(s.webhookDuplicates)}`,
      ]);
    }
  }
  return table([
    "scenario",
    "server",
    "CPU µs/delivery",
    "B CPU µs/delivery",
    `over B (target ≤ ${fmt(REACTIONS_CPU_TARGET, 2)} BX, ≤ ${fmt(WEBHOOKS_CPU_TARGET, 2)} BW)`,
    "messages/frame, it / B",
    "other CPU %, it / B",
    "what it added",
  ], rows);
}

function stormSection(report: Report, labels: Map<string, string>): string {
  const rows = [...summaries(report, "J")].map(([name, s]) => [
    labels.get(name)!,
    fmt(s.joinsPerSecond),
    fmt(s.joinP50, 1),
    fmt(s.joinP99, 1),
    fmt(s.joinsRefused),
    fmt(s.cpuPerJoin, 1),
    fmt(s.serverCpuPercent),
    fmt(s.disconnects),
    `${fmt(s.loadgenCpuPercent)} / ${fmt(s.otherCpuPercent)}`,
  ]);
  return table([
    "server",
    "joins/s (acked)",
    "join ack p50 ms",
    "join ack p99 ms",
    "refused",
    "CPU µs/join",
    "server CPU %",
    "disconnects",
    "loadgen / other CPU %",
  ], rows);
}

function sweepSection(report: Report, labels: Map<string, string>): string {
  const rows = report.runs.filter((run) => run.scenario === "C").map((run) => {
    const r = run.result;
    return [
      labels.get(run.server)!,
      fmt(run.rate),
      fmt(r.deliveriesPerSecond),
      fmt(r.lost),
      fmt(r.p50Ms, 1),
      fmt(r.p99Ms, 1),
      fmt(r.server?.cpuMicrosPerDelivery, 1),
      fmt(r.server && r.server.cpuMicros / (r.windowSeconds * 10_000)),
      `${fmt(r.loadgenCpuPercent)} / ${fmt(r.otherCpuPercent)}`,
    ];
  });
  const peaks = report.servers.map(({ name }) => {
    const runs = report.runs.filter((run) => run.scenario === "C" && run.server === name);
    const peak = Math.max(...runs.map((run) => run.result.deliveriesPerSecond));
    return runs.length ? `${labels.get(name)}: **${fmt(peak)}**` : "";
  }).filter(Boolean);
  return table([
    "server",
    "R msg/s",
    "deliveries/s",
    "lost",
    "p50 ms",
    "p99 ms",
    "CPU µs/delivery",
    "server CPU %",
    "loadgen / other CPU %",
  ], rows) + `\n\nPeak deliveries/s: ${peaks.join(", ")}.`;
}

function connectSection(report: Report, labels: Map<string, string>): string {
  const rows = [...summaries(report, "D")].map(([name, s]) => [
    labels.get(name)!,
    fmt(s.connectsPerSecond),
    fmt(s.connectMs),
    fmt(s.connectP50, 1),
    fmt(s.connectP99, 1),
    fmt(s.cpuPerConnect),
    fmt(s.rssIdleMb, 1),
    fmt(s.rssPerClientKb, 1),
  ]);
  return table([
    "server",
    "connects/s",
    "1000 connects, ms",
    "connect p50 ms",
    "connect p99 ms",
    "CPU µs/connect",
    "RSS idle MB",
    "RSS/client KB",
  ], rows);
}

function clusterSection(report: Report, labels: Map<string, string>): string {
  const rows = [...summaries(report, "T")].map(([name, s]) => [
    labels.get(name)!,
    fmt(s.deliveriesPerSecond),
    fmt(s.messagesPerFrame, 2),
    fmt(s.lostWorst),
    `${fmt(s.probeLost)} / ${fmt(s.probeDuplicates)}`,
    fmt(s.p50, 1),
    fmt(s.p99, 1),
    fmt(s.cpuPerDelivery, 1),
    fmt(s.redisCpuPerDelivery, 2),
    fmt(s.postgresCpuPerDelivery, 2),
    fmt(s.serverCpuPercent),
    fmt(s.redisCpuPercent),
    fmt(s.rssPerClientKb, 1),
    `${fmt(s.loadgenCpuPercent)} / ${fmt(s.otherCpuPercent)}`,
  ]);
  return table([
    "server",
    "deliveries/s",
    "messages/frame",
    "lost (worst run)",
    "probe lost / dup",
    "p50 ms",
    "p99 ms",
    "CPU µs/delivery, both instances",
    "redis-server CPU µs/delivery (not included)",
    "PostgreSQL CPU µs/delivery (not included)",
    "instances' CPU %",
    "redis-server CPU %",
    "RSS/client KB",
    "loadgen / other CPU %",
  ], rows);
}

/** F's or S's table: connects, fan-out and memory per server. */
function fanoutSection(report: Report, labels: Map<string, string>, scenario = "F"): string {
  const clients = report.runs.find((run) => run.scenario === scenario)?.clients ?? 10_000;
  const rows = [...summaries(report, scenario)].map(([name, s]) => [
    labels.get(name)!,
    fmt(s.connectMs / 1000, 1),
    fmt(s.connectsPerSecond),
    fmt(s.fanoutLast, 1),
    s.fanoutLastAll.map((ms) => fmt(ms)).join(", "),
    fmt(s.fanoutP50, 1),
    fmt(s.lostWorst),
    fmt(s.disconnects),
    fmt(s.cpuPerDelivery, 1),
    fmt(s.rssPerClientKb, 1),
    fmt(s.loadgenRssMb),
    `${fmt(s.loadgenCpuPercent)} / ${fmt(s.otherCpuPercent)}`,
  ]);
  return table([
    "server",
    `${fmt(clients)} connects, s`,
    "connects/s",
    "last client ms (median)",
    "last client ms, each message",
    "p50 ms (median)",
    "lost (worst run)",
    "disconnects",
    "CPU µs/delivery",
    "RSS/client KB",
    "loadgen RSS MB",
    "loadgen / other CPU %",
  ], rows);
}

/** Ours, as the targets mean it: with a KV file. */
const OURS = "ours-kv";
const REFERENCE = "reference";
/** Our CPU per delivery against the reference's, in B and T. */
const CPU_TARGET = 0.8;
/** Our connects/s against the reference's, in D. */
const CONNECT_TARGET = 1.5;

/**
 * The targets of "Performance round 2", each PASS or MISS: ours (KV file) against the reference
 * (Node socket.io), and ours' rooms against its single room.
 */
export function computeTargets(report: Report): Target[] {
  const both = (scenario: string) => {
    const s = summaries(report, scenario);
    return { ours: s.get(OURS), reference: s.get(REFERENCE) };
  };
  const verdict = (value: number, pass: (value: number) => boolean): Target["result"] =>
    Number.isFinite(value) ? (pass(value) ? "PASS" : "MISS") : "not measured";
  const notMeasured = (target: string, what: string): Target => ({
    target,
    measured: `${what} did not run`,
    result: "not measured",
  });
  /** Ours against the reference on one figure. */
  const compare = (
    target: string,
    scenario: string,
    pick: (summary: Summary) => number,
    unit: string,
    digits: number,
    pass: (ratio: number) => boolean,
    extra: (ours: Summary, reference: Summary) => string = () => "",
  ): Target => {
    const { ours, reference } = both(scenario);
    if (!ours || !reference) return notMeasured(target, `${scenario} for ${OURS} and ${REFERENCE}`);
    const ratio = pick(ours) / pick(reference);
    return {
      target,
      measured: `${fmt(pick(ours), digits)} ${unit} against ${fmt(pick(reference), digits)} ` +
        `${unit}: ${fmt(ratio, 2)}×${extra(ours, reference)}`,
      result: verdict(ratio, pass),
    };
  };
  const targets = [
    compare(
      "Memory per connected client ≤ reference (B: 1,000 authenticated connects, each with a " +
        "50-message history; RSS/client)",
      "B",
      (s) => s.rssPerClientKb,
      "KB",
      1,
      (ratio) => ratio <= 1,
      (ours, reference) =>
        `; history on connect ${fmt(ours.historyLength)} / ${
          fmt(reference.historyLength)
        } messages`,
    ),
    compare("p99 ≤ reference, A", "A", (s) => s.p99, "ms", 1, (ratio) => ratio <= 1),
    compare("p99 ≤ reference, B", "B", (s) => s.p99, "ms", 1, (ratio) => ratio <= 1),
    compare(
      `CPU per delivery ≤ ${CPU_TARGET}× reference, B`,
      "B",
      (s) => s.cpuPerDelivery,
      "µs",
      1,
      (ratio) => ratio <= CPU_TARGET,
      (ours, reference) =>
        `; messages/frame ${fmt(ours.messagesPerFrame, 2)} / ${fmt(reference.messagesPerFrame, 2)}`,
    ),
    compare(
      `connects/s ≥ ${CONNECT_TARGET}× reference, D`,
      "D",
      (s) => s.connectsPerSecond,
      "connects/s",
      0,
      (ratio) => ratio >= CONNECT_TARGET,
    ),
    compare(
      `CPU per delivery over both instances ≤ ${CPU_TARGET}× reference, T (two instances, one Redis)`,
      "T",
      (s) => s.cpuPerDelivery,
      "µs",
      1,
      (ratio) => ratio <= CPU_TARGET,
      (ours, reference) =>
        `; redis-server, not included: ${fmt(ours.redisCpuPerDelivery, 2)} / ` +
        `${fmt(reference.redisCpuPerDelivery, 2)} µs; lost ${fmt(ours.lostWorst)} / ` +
        `${fmt(reference.lostWorst)}`,
    ),
  ];
  const fanout = both("F");
  const fanoutTarget =
    "Fan-out to 10,000 clients completes with nothing lost, F (a figure, no ratio)";
  if (!fanout.ours) targets.push(notMeasured(fanoutTarget, `F for ${OURS}`));
  else {
    const side = (name: string, s: Summary) =>
      `${name}: last client ${fmt(s.fanoutLast)} ms (median), p50 ${fmt(s.fanoutP50)} ms, ` +
      `lost ${fmt(s.lostWorst)}, disconnects ${fmt(s.disconnects)}`;
    const complete = fanout.ours.lostWorst === 0 && fanout.ours.disconnects === 0 &&
      fanout.ours.fanoutLastAll.length > 0;
    targets.push({
      target: fanoutTarget,
      measured: [
        side(OURS, fanout.ours),
        fanout.reference ? side(REFERENCE, fanout.reference) : `${REFERENCE} did not run`,
      ].join("; "),
      result: complete ? "PASS" : "MISS",
    });
  }
  targets.push(...stormTargets(report));
  const rooms = summaries(report, "R").get(OURS);
  const single = summaries(report, "B").get(OURS);
  const roomsTarget = `Rooms: R / B CPU per delivery ≤ ${fmt(ROOMS_CPU_TARGET, 2)} (${OURS})`;
  if (!rooms || !single) targets.push(notMeasured(roomsTarget, `R and B for ${OURS}`));
  else {
    const ratio = rooms.cpuPerDelivery / single.cpuPerDelivery;
    targets.push({
      target: roomsTarget,
      measured: `${fmt(rooms.cpuPerDelivery, 1)} µs against ${fmt(single.cpuPerDelivery, 1)} µs: ` +
        `${fmt(ratio, 2)}×`,
      result: verdict(ratio, (value) => value <= ROOMS_CPU_TARGET),
    });
  }
  targets.push(...hookTargets(report, verdict, notMeasured));
  return targets;
}

/** Round 3's: S's connect time, fan-out and memory, and F's memory against the bare server's. */
const STORM_CONNECT_SECONDS = 15;
const STORM_FANOUT_MS = 300;
const STORM_RSS_KB = 24;
/** F's RSS per client against the bare Deno server's (the limit). */
const FANOUT_RSS_OVER_LIMIT = 1.15;

function stormTargets(report: Report): Target[] {
  const storm = summaries(report, "S").get(OURS);
  const clients = report.runs.find((run) => run.scenario === "S")?.clients ?? 19_000;
  const absolute = (target: string, value: number | undefined, unit: string, limit: number) =>
    value === undefined
      ? { target, measured: `S for ${OURS} did not run`, result: "not measured" as const }
      : {
        target,
        measured: `${fmt(value, 1)} ${unit} (median of runs, ${fmt(clients)} clients)`,
        result: Number.isFinite(value)
          ? (value <= limit ? "PASS" as const : "MISS" as const)
          : "not measured" as const,
      };
  const fanout = summaries(report, "F");
  const ours = fanout.get(OURS);
  const limit = fanout.get("limit");
  const rssTarget = `RSS per client ≤ ${FANOUT_RSS_OVER_LIMIT}× the bare Deno server's, F`;
  return [
    absolute(
      `${fmt(clients)} clients connected in ≤ ${STORM_CONNECT_SECONDS} s, S`,
      storm && storm.connectMs / 1000,
      "s",
      STORM_CONNECT_SECONDS,
    ),
    absolute(
      `One message to all ${fmt(clients)} ≤ ${STORM_FANOUT_MS} ms (last client), S`,
      storm?.fanoutLast,
      "ms",
      STORM_FANOUT_MS,
    ),
    absolute(`RSS per client ≤ ${STORM_RSS_KB} KB, S`, storm?.rssPerClientKb, "KB", STORM_RSS_KB),
    !ours || !limit
      ? {
        target: rssTarget,
        measured: `F for ${OURS} and limit did not run`,
        result: "not measured",
      }
      : {
        target: rssTarget,
        measured: `${fmt(ours.rssPerClientKb, 1)} KB against ${fmt(limit.rssPerClientKb, 1)} KB: ` +
          `${fmt(ours.rssPerClientKb / limit.rssPerClientKb, 2)}×`,
        result: ours.rssPerClientKb / limit.rssPerClientKb <= FANOUT_RSS_OVER_LIMIT
          ? "PASS"
          : "MISS",
      },
  ];
}

/** Issues #25 and #26: BX and BW against B (ours, KV file), and BW's drain. */
function hookTargets(
  report: Report,
  verdict: (value: number, pass: (value: number) => boolean) => Target["result"],
  notMeasured: (target: string, what: string) => Target,
): Target[] {
  const single = summaries(report, "B").get(OURS);
  const against = (scenario: string, limit: number, what: string): Target => {
    const target = `${what}: ${scenario} / B CPU per delivery ≤ ${fmt(limit, 2)} (${OURS})`;
    const s = summaries(report, scenario).get(OURS);
    if (!s || !single) return notMeasured(target, `${scenario} and B for ${OURS}`);
    const ratio = s.cpuPerDelivery / single.cpuPerDelivery;
    return {
      target,
      measured: `${fmt(s.cpuPerDelivery, 1)} µs against ${fmt(single.cpuPerDelivery, 1)} µs: ` +
        `${fmt(ratio, 2)}×`,
      result: verdict(ratio, (value) => value <= limit),
    };
  };
  const drainTarget = `Webhooks: the outbox drains within ${
    fmt(WEBHOOK_DRAIN_TARGET_MS / 1000)
  } s of the end of the load, every run (BW, ${OURS})`;
  const hooked = summaries(report, "BW").get(OURS);
  return [
    against("BX", REACTIONS_CPU_TARGET, "Reactions"),
    against("BW", WEBHOOKS_CPU_TARGET, "Webhooks"),
    hooked
      ? {
        target: drainTarget,
        measured: `${hooked.webhookDrainAll.map((ms) => fmt(ms / 1000, 2)).join(", ")} s ` +
          `(slowest ${fmt(hooked.webhookDrainWorst / 1000, 2)} s); missing ` +
          `${fmt(hooked.webhookMissing)}, duplicates ${fmt(hooked.webhookDuplicates)}`,
        result: hooked.webhookMissing > 0
          ? "MISS"
          : verdict(hooked.webhookDrainWorst, (ms) => ms <= WEBHOOK_DRAIN_TARGET_MS),
      }
      : notMeasured(drainTarget, `BW for ${OURS}`),
  ];
}

function targetsSection(targets: Target[]): string {
  const rows = targets.map(({ target, measured, result }) => [
    target,
    measured,
    result === "not measured" ? result : `**${result}**`,
  ]);
  const passed = targets.filter((target) => target.result === "PASS").length;
  const measured = targets.filter((target) => target.result !== "not measured").length;
  return `${table(["target", "measured (ours, KV file / reference)", "result"], rows)}\n\n` +
    `${passed} of ${measured} measured targets met.`;
}

/**
 * What each client costs the servers: from their memory with one client on each (after the
 * seeding) where the run read it, else (older runs) from idle.
 */
export function rssPerClientKb(
  result: LoadResult,
  clients: number,
  rssIdleKb: number,
): number | undefined {
  const server = result.server;
  if (!server) return undefined;
  return typeof server.rssBeforeClientsKb === "number"
    ? (server.rssWithClientsKb - server.rssBeforeClientsKb) / (clients - (server.warmClients ?? 1))
    : (server.rssWithClientsKb - rssIdleKb) / clients;
}

/** The results file. */
export function renderMarkdown(report: Report): string {
  const { env } = report;
  const labels = new Map(report.servers.map(({ name, label }) => [name, label]));
  const has = (scenario: string) => report.runs.some((run) => run.scenario === scenario);
  const sections = [
    `# Load benchmark, ${env.date.slice(0, 16).replace("T", " ")} UTC`,
    [
      `- Machine: ${env.cores} cores (${env.cpuModel}), ${fmt(env.memoryGb, 1)} GB memory; ` +
      `load average ${env.loadAverageStart} at start, ${env.loadAverageEnd} at the end.`,
      `- Deno ${env.deno}, Node.js ${env.node}; socket.io ${env.oursSocketIo} (ours), ` +
      `${env.referenceSocketIo} (reference); ours at \`${env.revision}\`` +
      (env.redis ? `; redis-server ${env.redis} (T).` : "."),
      `- ${env.runs} run(s) per server and scenario, median shown; warm-up ${env.warmupSeconds} s, ` +
      `measured window ${env.durationSeconds} s; ` +
      (env.pinned
        ? "server pinned to CPU 0, load generator to CPU 1 (`taskset`)."
        : "no CPU pinning."),
      "- Servers: **ours (KV file)** and **ours (KV :memory:)** = `deno run -A main.ts` with `deno task start`'s V8 flags, rate " +
      "and connection limits lifted; **Node socket.io** = `bench/reference/server.mjs` (same contract, " +
      "history in memory); **limit** = `bench/limit_server.ts` (bare `Deno.upgradeWebSocket`, no " +
      "storage or auth).",
      "- Before the clients connect, a separate client sends 50 messages to every server (acked " +
      "one by one), so every connect gets a 50-message history (the limit server keeps none). " +
      "The servers take turns run by run; the C sweep runs one server after the other.",
      ...(has("R") || has("J")
        ? [
          "- R and J run for ours only: the reference and the limit server have no rooms " +
          "contract (`join`, `leave`, `room` on messages).",
        ]
        : []),
      ...(has("BX") || has("BW")
        ? [
          "- BX and BW run for ours only: the reference and the limit server have no reactions " +
          "or webhooks.",
        ]
        : []),
    ].join("\n"),
  ];
  for (const scenario of ["A", "B", "L"]) {
    if (has(scenario)) sections.push(trafficSection(report, scenario, labels));
  }
  if (has("R")) {
    sections.push(
      `${trafficSection(report, "R", labels)}\n\n${roomsSection(report, labels)}`,
    );
  }
  if (has("J")) {
    sections.push(
      "### J — join/leave storm (500 clients, each joins a random `bench-*` room of 10 and " +
        `leaves it, as fast as the acks come back)\n\n${stormSection(report, labels)}`,
    );
  }
  for (const scenario of ["BX", "BW"]) {
    if (has(scenario)) sections.push(trafficSection(report, scenario, labels));
  }
  if (has("BX") || has("BW")) {
    sections.push(`### Reactions and webhooks against B\n\n${hooksSection(report, labels)}`);
  }
  if (has("T")) {
    sections.push(`### ${SCENARIO_TITLES.T}\n\n${clusterSection(report, labels)}`);
  }
  if (has("F")) sections.push(`### ${SCENARIO_TITLES.F}\n\n${fanoutSection(report, labels)}`);
  if (has("S")) {
    sections.push(`### ${SCENARIO_TITLES.S}\n\n${fanoutSection(report, labels, "S")}`);
  }
  const ratios = ratioSection(report);
  if (ratios) sections.push(`### Ratios\n\n${ratios}`);
  if (has("C")) {
    sections.push(
      `### C — saturation sweep (100 clients, one run per rate)\n\n${sweepSection(report, labels)}`,
    );
  }
  if (has("D")) {
    sections.push(
      `### D — connect storm (1000 authenticated clients, 100 in flight, each waits for its \`load\`)\n\n${
        connectSection(report, labels)
      }`,
    );
  }
  sections.push(`### Targets\n\n${targetsSection(report.targets ?? computeTargets(report))}`);
  sections.push([
    "### How to read this",
    "",
    "- **deliveries/s**: live messages received by all clients during the window. " +
    "**messages/frame**: live messages per live `load` frame (ours sends the messages of one KV " +
    "commit in one frame; the others one frame per message). **lost**: " +
    "deliveries expected for messages sent in the window (sent × clients) that never arrived. " +
    "**probe**: the stock `socket.io-client` among the clients (lost / duplicated messages, all runs).",
    "- **latency**: send → delivery, in one clock (the load generator sends and receives).",
    "- **CPU µs/delivery**: server utime + stime (`/proc/<pid>/stat`, 10 ms ticks) over the window, " +
    "divided by deliveries in the window. **server CPU %**: 100 = one core.",
    "- **RSS/client**: (VmRSS with the clients connected − VmRSS once the history was seeded and " +
    "one client on each server connected) / the other clients: what each further client costs, without " +
    "the one-time warm-up (code compiled on first use, the history). **RSS idle**: before " +
    "anything.",
    ...(has("R")
      ? [
        "- **R**: client i joins `bench-<i % 10>`; 10 senders a room send in turn, so rooms get " +
        "even, interleaved shares. **lost** counts each room's messages × its 100 members; the " +
        "probe is in `bench-0` and must get that room's messages once and no other room's. " +
        "**R / B**: R's CPU per delivery over B's for the same server in the same run (a run of R " +
        "always runs B too).",
      ]
      : []),
    ...(has("BX")
      ? [
        "- **BX**: B's load, and each sender, after one of every ten messages it sends, reacts " +
        "(👍) to the last message it received: 5 reactions/s, each a `message:reactions` event " +
        "to all 1000 clients. **CPU µs/delivery** divides the server's CPU by message deliveries " +
        "and `message:reactions` deliveries together (each is one frame written to each client, " +
        "as a message is in B); **per message delivery alone** puts the reactions' whole cost " +
        "on the messages. **BX / B**: against B of the same server in the same run. A " +
        "starved server gathers more messages per commit and frame, which lowers its CPU per " +
        "delivery: a ratio is only as good as the two messages/frame and other CPU figures " +
        "beside it are close.",
      ]
      : []),
    ...(has("BW")
      ? [
        "- **BW**: B's load with `WEBHOOK_URL` on `bench/webhook_receiver.ts` (its own process, on " +
        "the load generator's CPU when pinned; 204 at once, no signature check) and " +
        "`WEBHOOK_EVENTS=message.created`: every message is written to the outbox in its commit " +
        "and POSTed, signed. **drained after**: from the moment the senders stopped until " +
        "`chat_webhook_outbox_depth` on `/metrics` read 0 and the receiver had one event per " +
        "message sent (the 50 seeded included), polled every 50 ms; the server refreshes " +
        "the gauge every second, so it can lag by up to a second. **BW / B**: as BX.",
      ]
      : []),
    ...(has("J")
      ? [
        "- **J**: 499 raw clients join → leave in a loop (the probe stays out); joins acked `ok` " +
        "in the window per second, and the send → ack latency of those joins. Every run starts a " +
        "fresh server, so the rooms are empty and a join ack carries no history. **CPU µs/join** " +
        "counts the leave that follows too.",
      ]
      : []),
    ...(has("T")
      ? [
        "- **T**: two processes of the same server share fan-out through one redis-server started " +
        "for the run (ours: `REDIS_URL`, one KV file; the reference: `REDIS_URL` too, history per " +
        "process), both with `@socket.io/redis-streams-adapter` and `redis`; the clients alternate " +
        "between the instances and every message reaches all 1000. **CPU µs/delivery** sums both " +
        "instances; redis-server's CPU is measured apart and not included. Instances and " +
        "redis-server share the server CPU when pinned.",
      ]
      : []),
    ...(has("F")
      ? [
        "- **F**: 10,000 raw clients connect (100 in flight), then one client sends a message, " +
        "waits until every client has it (or none got it for 5 s), and sends the next 2 s after " +
        "the previous; **last client** is send → the last client's receipt, as the load " +
        "generator (one process reading 10,000 sockets) sees it, median of the 5 messages. " +
        "**CPU µs/delivery**: all the server's CPU from the first send to the last message's " +
        "end (idle time between messages included). **RSS/client**: with the 10,000 connected. " +
        "Ours also sends each newcomer the online list (`presence`, a sample of 1,000 once more " +
        "are online) and everyone its presence batches while they connect (`user:joined` up to " +
        "1,000 online, then one `presence:count` per batch); the reference and the limit server " +
        "have no presence.",
      ]
      : []),
    ...(has("S")
      ? [
        "- **S**: F at the open-file cap: 19,000 clients, or fewer when the hard `ulimit -n` " +
        "(one descriptor per client in the server and in the load generator) leaves less room; " +
        "the table's heading says how many ran. Its targets are absolute: connected in ≤ 15 s, " +
        "the last client ≤ 300 ms, RSS ≤ 24 KB per client.",
      ]
      : []),
    "- **Targets**: ours (KV file) against the reference (Node socket.io) in the same run, medians " +
    "of runs; `not measured` when a server or scenario a target needs did not run.",
    "- **loadgen / other CPU %**: the load generator's CPU, and what everything else on the machine " +
    "used meanwhile; a high loadgen figure means the generator, not the server, may be the limit, " +
    "and a high other figure means the run was disturbed (redis-server's CPU in T is not " +
    "counted as other).",
  ].join("\n"));
  return sections.join("\n\n") + "\n";
}

function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/** One bar panel: groups (scenarios) of bars (servers). */
function panel(
  x0: number,
  title: string,
  groups: { scenario: string; bars: { server: string; value: number }[] }[],
): string {
  const width = 380;
  const height = 240;
  const top = 50;
  const max = Math.max(1e-9, ...groups.flatMap((group) => group.bars.map((bar) => bar.value)))
    .valueOf();
  const groupWidth = width / Math.max(1, groups.length);
  const parts = [
    `<text x="${x0 + width / 2}" y="24" text-anchor="middle" font-weight="bold">${
      escapeXml(title)
    }</text>`,
    `<line x1="${x0}" y1="${top + height}" x2="${x0 + width}" y2="${top + height}" stroke="#333"/>`,
  ];
  groups.forEach((group, g) => {
    const barWidth = (groupWidth - 30) / Math.max(1, group.bars.length);
    group.bars.forEach((bar, b) => {
      const h = Number.isFinite(bar.value) ? (bar.value / max) * (height - 20) : 0;
      const x = x0 + g * groupWidth + 15 + b * barWidth;
      const y = top + height - h;
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(barWidth - 4).toFixed(1)}" ` +
          `height="${h.toFixed(1)}" fill="${COLORS[bar.server] ?? "#999"}"/>`,
        `<text x="${(x + (barWidth - 4) / 2).toFixed(1)}" y="${(y - 4).toFixed(1)}" ` +
          `text-anchor="middle" font-size="11">${fmt(bar.value, bar.value < 100 ? 1 : 0)}</text>`,
      );
    });
    parts.push(
      `<text x="${x0 + g * groupWidth + groupWidth / 2}" y="${top + height + 18}" ` +
        `text-anchor="middle">${escapeXml(SCENARIO_TITLES[group.scenario].split(" (")[0])}</text>`,
    );
  });
  return parts.join("\n");
}

/** The chart: CPU µs per delivery and p99 latency, per server, for scenarios A and B. */
export function renderSvg(report: Report): string {
  const scenarios = ["A", "B"].filter((scenario) =>
    report.runs.some((run) => run.scenario === scenario)
  );
  const groupsOf = (pick: (summary: Summary) => number) =>
    scenarios.map((scenario) => ({
      scenario,
      bars: [...summaries(report, scenario)].map(([server, summary]) => ({
        server,
        value: pick(summary),
      })),
    }));
  const legend = report.servers.map(({ name, label }, index) =>
    `<rect x="${20 + index * 195}" y="345" width="12" height="12" fill="${COLORS[name]}"/>` +
    `<text x="${38 + index * 195}" y="356">${escapeXml(label)}</text>`
  ).join("\n");
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="820" height="370" ` +
    `font-family="sans-serif" font-size="13">`,
    `<rect width="820" height="370" fill="white"/>`,
    panel(20, "Server CPU µs per delivery (lower is better)", groupsOf((s) => s.cpuPerDelivery)),
    panel(430, "p99 send → deliver latency, ms (lower is better)", groupsOf((s) => s.p99)),
    legend,
    "</svg>",
    "",
  ].join("\n");
}
