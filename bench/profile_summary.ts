/**
 * Summarises a V8 `.cpuprofile` (from `deno run --cpu-prof`): the top functions by self time with
 * file:line, then self time per file, so a profile can be read in a terminal or pasted in a report.
 *
 * ```sh
 * deno run -A bench/profile_summary.ts /tmp/prof/CPU.*.cpuprofile [--top 25]
 * deno run -A bench/profile_summary.ts /tmp/prof/CPU.*.cpuprofile --under src/hooks/ --under fetch
 * ```
 *
 * `--under PATTERN` (repeatable) adds the time of the samples with a frame whose
 * `file:function` contains PATTERN anywhere on their stack: a part's inclusive time (an `await`
 * resumes its function on a fresh stack, so the time after it counts as that function's only).
 * @module
 */

/** The parts of a `.cpuprofile` this reads. */
interface CpuProfile {
  nodes: {
    id: number;
    children?: number[];
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  }[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const IDLE = "(idle)";
/** This checkout's root, shortened away from file URLs. */
const REPOSITORY = new URL("..", import.meta.url).href;

/** A function's (or file's) share of the profile. */
export interface SelfTime {
  name: string;
  location: string;
  selfMs: number;
  percent: number;
}

/** Shortens a script URL to something readable: npm package path or repository path. */
function shortenUrl(url: string): string {
  if (!url) return "";
  const npm = url.match(/registry\.npmjs\.org\/(.+)$/) ?? url.match(/node_modules\/(.+)$/);
  if (npm) return npm[1].replace(/^\.deno\/[^/]+\/node_modules\//, "");
  if (url.startsWith(REPOSITORY)) return url.slice(REPOSITORY.length);
  return url.replace(/^ext:/, "ext:");
}

/** Self time per function (name + file:line) and per file, largest first. */
export function summarize(
  profile: CpuProfile,
): { functions: SelfTime[]; files: SelfTime[]; busyMs: number; idleMs: number } {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const byFunction = new Map<string, SelfTime>();
  const byFile = new Map<string, SelfTime>();
  let busyUs = 0;
  let idleUs = 0;
  profile.samples.forEach((id, index) => {
    const deltaUs = profile.timeDeltas[index] ?? 0;
    const { functionName, url, lineNumber } = nodes.get(id)!.callFrame;
    // Idle is the event loop waiting; shares are of the time the isolate was busy.
    if (functionName === IDLE) return void (idleUs += deltaUs);
    busyUs += deltaUs;
    const file = shortenUrl(url);
    const location = file ? `${file}:${lineNumber + 1}` : "";
    const name = functionName || "(anonymous)";
    const key = `${name} ${location}`;
    const entry = byFunction.get(key) ?? { name, location, selfMs: 0, percent: 0 };
    entry.selfMs += deltaUs / 1000;
    byFunction.set(key, entry);
    const fileKey = file || name;
    const fileEntry = byFile.get(fileKey) ?? { name: fileKey, location: "", selfMs: 0, percent: 0 };
    fileEntry.selfMs += deltaUs / 1000;
    byFile.set(fileKey, fileEntry);
  });
  const rank = (entries: Iterable<SelfTime>) =>
    [...entries].map((entry) => ({ ...entry, percent: (entry.selfMs * 1000 / busyUs) * 100 }))
      .sort((a, b) => b.selfMs - a.selfMs);
  return {
    functions: rank(byFunction.values()),
    files: rank(byFile.values()),
    busyMs: busyUs / 1000,
    idleMs: idleUs / 1000,
  };
}

/** Busy time of the samples with a frame matching each pattern (`file:function`) on the stack. */
export function inclusiveTimes(profile: CpuProfile, patterns: string[]): Map<string, number> {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parents.set(child, node.id);
  }
  const totals = new Map(patterns.map((pattern) => [pattern, 0]));
  profile.samples.forEach((id, index) => {
    if (nodes.get(id)!.callFrame.functionName === IDLE) return;
    const frames: string[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parents.get(at)) {
      const { url, functionName } = nodes.get(at)!.callFrame;
      frames.push(`${shortenUrl(url)}:${functionName}`);
    }
    for (const pattern of patterns) {
      if (frames.some((frame) => frame.includes(pattern))) {
        totals.set(pattern, totals.get(pattern)! + (profile.timeDeltas[index] ?? 0) / 1000);
      }
    }
  });
  return totals;
}

/** Markdown tables of the top `top` functions and files. */
export function renderSummary(profile: CpuProfile, top = 25): string {
  const { functions, files, busyMs, idleMs } = summarize(profile);
  const row = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [
    `${profile.samples.length} samples: main thread busy ${(busyMs / 1000).toFixed(1)} s, idle ` +
    `${(idleMs / 1000).toFixed(1)} s. Shares are of the busy time.`,
    "",
    row(["#", "self ms", "self %", "function", "file:line"]),
    row(["---", "---", "---", "---", "---"]),
    ...functions.slice(0, top).map((entry, index) =>
      row([
        String(index + 1),
        entry.selfMs.toFixed(0),
        entry.percent.toFixed(1),
        `\`${entry.name}\``,
        entry.location ? `\`${entry.location}\`` : "",
      ])
    ),
    "",
    row(["self ms", "self %", "file"]),
    row(["---", "---", "---"]),
    ...files.slice(0, 15).map((entry) =>
      row([entry.selfMs.toFixed(0), entry.percent.toFixed(1), `\`${entry.name}\``])
    ),
    "",
  ].join("\n");
}

if (import.meta.main) {
  let top = 25;
  const under: string[] = [];
  const paths: string[] = [];
  for (let index = 0; index < Deno.args.length; index++) {
    const arg = Deno.args[index];
    if (arg === "--top") top = Number(Deno.args[++index]);
    else if (arg === "--under") under.push(Deno.args[++index]);
    else paths.push(arg);
  }
  if (paths.length === 0) {
    console.error(
      "usage: deno run -A bench/profile_summary.ts <file.cpuprofile> [--top 25] [--under PATTERN]",
    );
    Deno.exit(2);
  }
  for (const path of paths) {
    const profile: CpuProfile = JSON.parse(await Deno.readTextFile(path));
    console.log(`## ${path}\n`);
    console.log(renderSummary(profile, top));
    if (under.length === 0) continue;
    console.log("| under | busy ms |\n| --- | --- |");
    for (const [pattern, ms] of inclusiveTimes(profile, under)) {
      console.log(`| \`${pattern}\` | ${ms.toFixed(0)} |`);
    }
    console.log("");
  }
}
