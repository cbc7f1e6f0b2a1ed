/**
 * Fails when the project's own modules import each other in a cycle, type-only and dynamic
 * imports included, and prints each cycle's path; and when a module under `src/` imports one of a
 * layer above its own ({@link LAYERS}), or one of a sibling concern of the same layer. `deno task check` runs it over `main.ts` and
 * every `.ts` file under `src/`, `tests/`, `bench/` and `scripts/`; the graph is `deno info`'s.
 *
 * ```sh
 * deno run --allow-read --allow-run scripts/check_cycles.ts            # the whole project
 * deno run --allow-read --allow-run scripts/check_cycles.ts src/app.ts # one entry point
 * ```
 * @module
 */

/** Local module (a `file:` URL) → the local modules it imports. */
export type ImportGraph = Map<string, Set<string>>;

/** The parts of `deno info --json` read here. */
export interface ModuleInfo {
  modules: {
    specifier: string;
    error?: string;
    dependencies?: {
      code?: { specifier: string };
      type?: { specifier: string };
    }[];
  }[];
}

/** Where the project's own modules live, relative to its root. */
const SOURCE_DIRS = ["src", "tests", "bench", "scripts"];
const PROJECT_ROOT = new URL("../", import.meta.url);

/** Adds one `deno info --json` graph to `graph`, keeping only edges between local modules. */
export function addModules(graph: ImportGraph, info: ModuleInfo): void {
  for (const module of info.modules) {
    if (!module.specifier.startsWith("file:")) continue;
    if (module.error) throw new Error(`${module.specifier}: ${module.error}`);
    const imports = graph.get(module.specifier) ?? new Set<string>();
    graph.set(module.specifier, imports);
    for (const dependency of module.dependencies ?? []) {
      for (const target of [dependency.code?.specifier, dependency.type?.specifier]) {
        if (target?.startsWith("file:")) imports.add(target);
      }
    }
  }
}

/** Modules that all reach each other through imports, and one cycle among them. */
export interface Cycle {
  /** Every module of the group (a strongly connected component), sorted. */
  modules: string[];
  /** The shortest cycle through the group's first module: it starts and ends there. */
  path: string[];
}

/** One {@link Cycle} per group of modules that import each other; none when the graph is acyclic. */
export function findCycles(graph: ImportGraph): Cycle[] {
  return stronglyConnected(graph)
    .filter((group) => group.length > 1 || graph.get(group[0])?.has(group[0]))
    .map((modules) => ({ modules, path: cycleThrough(graph, new Set(modules)) }));
}

/** Tarjan's algorithm, iterative so a deep graph cannot overflow the stack. */
function stronglyConnected(graph: ImportGraph): string[][] {
  const index = new Map<string, number>();
  const lowLink = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const groups: string[][] = [];
  for (const start of [...graph.keys()].sort()) {
    if (index.has(start)) continue;
    const work: { node: string; next: Iterator<string> }[] = [];
    const visit = (node: string) => {
      index.set(node, index.size);
      lowLink.set(node, index.get(node)!);
      stack.push(node);
      onStack.add(node);
      work.push({ node, next: [...(graph.get(node) ?? [])].sort()[Symbol.iterator]() });
    };
    visit(start);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      const step = frame.next.next();
      if (!step.done) {
        const target = step.value;
        if (!index.has(target)) visit(target);
        else if (onStack.has(target)) {
          lowLink.set(frame.node, Math.min(lowLink.get(frame.node)!, index.get(target)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) {
        lowLink.set(parent.node, Math.min(lowLink.get(parent.node)!, lowLink.get(frame.node)!));
      }
      if (lowLink.get(frame.node) === index.get(frame.node)) {
        const group: string[] = [];
        let member;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          group.push(member);
        } while (member !== frame.node);
        groups.push(group.sort());
      }
    }
  }
  return groups;
}

/** The shortest path from the group's first module back to itself, staying inside the group. */
function cycleThrough(graph: ImportGraph, group: Set<string>): string[] {
  const [start] = group;
  const cameFrom = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const node = queue[i];
    for (const target of [...(graph.get(node) ?? [])].sort()) {
      if (!group.has(target)) continue;
      if (target === start) {
        const path = [start, node];
        for (let back = node; back !== start;) path.push(back = cameFrom.get(back)!);
        return path.reverse();
      }
      if (!cameFrom.has(target)) {
        cameFrom.set(target, node);
        queue.push(target);
      }
    }
  }
  throw new Error(`no cycle through ${start}`);
}

/** `main.ts` and every `.ts` file under the source directories. */
async function projectModules(): Promise<URL[]> {
  const files = [new URL("main.ts", PROJECT_ROOT)];
  const walk = async (dir: URL) => {
    for await (const entry of Deno.readDir(dir)) {
      // Installed packages (bench/reference's node_modules) are not the project's modules.
      if (entry.isDirectory && entry.name !== "node_modules") {
        await walk(new URL(`${entry.name}/`, dir));
      } else if (entry.isFile && entry.name.endsWith(".ts")) files.push(new URL(entry.name, dir));
    }
  };
  for (const dir of SOURCE_DIRS) await walk(new URL(`${dir}/`, PROJECT_ROOT));
  return files.sort((a, b) => a.href.localeCompare(b.href));
}

async function denoInfo(module: URL): Promise<ModuleInfo> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", module.href],
    cwd: PROJECT_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    const reason = new TextDecoder().decode(output.stderr).trim();
    throw new Error(`deno info ${module.href}: ${reason}`);
  }
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

/**
 * The layers of `src/`, lowest first: a module may import its own folder and anything of a lower
 * layer. The concerns of one layer (engine, store, auth, cluster) know nothing of each other.
 */
export const LAYERS: readonly (readonly string[])[] = [
  [
    "src/types.ts",
    "src/errors.ts",
    "src/settings.ts",
    "src/duration.ts",
    "src/rate_limit.ts",
    "src/deadlines.ts",
  ],
  ["src/ops/"],
  ["src/engine/", "src/store/", "src/auth/", "src/cluster/"],
  ["src/hooks/"],
  ["src/chat/"],
  ["src/http/", "src/config.ts"],
  ["src/app.ts"],
];

/** Where a `src/` module sits: its layer and its concern (the folder or file that matched). */
function placeOf(path: string): { layer: number; concern: string } | undefined {
  for (const [layer, concerns] of LAYERS.entries()) {
    const concern = concerns.find((prefix) => path === prefix || path.startsWith(prefix));
    if (concern) return { layer, concern };
  }
}

/** Every import in `src/` that runs up a layer or across to a sibling concern, as lines. */
export function layerViolations(graph: ImportGraph, relative: (url: string) => string): string[] {
  const violations: string[] = [];
  for (const [module, imports] of graph) {
    const from = placeOf(relative(module));
    if (!from) continue;
    for (const target of imports) {
      const to = placeOf(relative(target));
      if (!to || to.concern === from.concern) continue;
      if (to.layer > from.layer || (to.layer === from.layer && from.layer === 2)) {
        violations.push(`${relative(module)} → ${relative(target)}`);
      }
    }
  }
  return violations.sort();
}

async function main(args: string[]): Promise<number> {
  const cwd = new URL(`file://${Deno.cwd()}/`);
  const entries = args.length > 0 ? args.map((path) => new URL(path, cwd)) : await projectModules();
  const graph: ImportGraph = new Map();
  for (const entry of entries) {
    // A module already in the graph arrived with everything it imports.
    if (!graph.has(entry.href)) addModules(graph, await denoInfo(entry));
  }
  const cycles = findCycles(graph);
  const relative = (url: string) => url.replace(PROJECT_ROOT.href, "");
  for (const { modules, path } of cycles) {
    console.error(`import cycle: ${path.map(relative).join(" → ")}`);
    // Cutting this one may leave others among the same modules.
    if (modules.length > path.length - 1) {
      console.error(`  in a group that imports each other: ${modules.map(relative).join(", ")}`);
    }
  }
  const violations = layerViolations(graph, relative);
  for (const line of violations) console.error(`import up a layer (or across one): ${line}`);
  if (cycles.length > 0 || violations.length > 0) return 1;
  console.log(`no import cycles among ${graph.size} modules, none up a layer`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
