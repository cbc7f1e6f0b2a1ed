/**
 * Summarises a V8 `.cpuprofile` (from `deno run --cpu-prof`): the top functions by self time with
 * file:line, then self time per file, so a profile can be read in a terminal or pasted in a report.
 *
 * ```sh
 * deno run -A bench/profile_summary.ts /tmp/prof/CPU.*.cpuprofile [--top 25]
 * ```
 * @module
 */

/** The parts of a `.cpuprofile` this reads. */
interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  }[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const IDLE = "(idle)";

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
  const repo = url.match(/\/work\/main\/(.+)$/);
  if (repo) return repo[1];
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
  const topIndex = Deno.args.indexOf("--top");
  const top = topIndex >= 0 ? Number(Deno.args[topIndex + 1]) : 25;
  const paths = Deno.args.filter((_, index) =>
    topIndex < 0 || (index !== topIndex && index !== topIndex + 1)
  );
  if (paths.length === 0) {
    console.error("usage: deno run -A bench/profile_summary.ts <file.cpuprofile> [--top 25]");
    Deno.exit(2);
  }
  for (const path of paths) {
    console.log(`## ${path}\n`);
    console.log(renderSummary(JSON.parse(await Deno.readTextFile(path)), top));
  }
}
