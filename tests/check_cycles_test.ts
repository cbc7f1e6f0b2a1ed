import assert from "node:assert/strict";
import { addModules, type Cycle, findCycles, type ImportGraph } from "../scripts/check_cycles.ts";

/** A graph from `module: imports` pairs, the way `deno info` would report them. */
function graphOf(edges: Record<string, string[]>): ImportGraph {
  const graph: ImportGraph = new Map();
  addModules(graph, {
    modules: Object.entries(edges).map(([module, imports]) => ({
      specifier: `file:///p/${module}`,
      dependencies: imports.map((target) => ({ code: { specifier: `file:///p/${target}` } })),
    })),
  });
  return graph;
}

function named(cycles: Cycle[]): string[] {
  const name = (url: string) => url.replace("file:///p/", "");
  return cycles.map(({ path }) => path.map(name).join(" → "));
}

Deno.test("check cycles: an acyclic graph has none", () => {
  const graph = graphOf({ "main.ts": ["a.ts", "b.ts"], "a.ts": ["b.ts"], "b.ts": [] });
  assert.deepEqual(findCycles(graph), []);
});

Deno.test("check cycles: a type-only import closes a cycle too", () => {
  const graph: ImportGraph = new Map();
  addModules(graph, {
    modules: [
      { specifier: "file:///p/mod.ts", dependencies: [{ code: { specifier: "file:///p/kv.ts" } }] },
      {
        specifier: "file:///p/kv.ts",
        dependencies: [
          { type: { specifier: "file:///p/mod.ts" } },
          { code: { specifier: "npm:/jose@6.2.18" } },
        ],
      },
      { specifier: "npm:/jose@6.2.18" },
    ],
  });
  assert.deepEqual([...graph.keys()], ["file:///p/mod.ts", "file:///p/kv.ts"]);
  assert.deepEqual(named(findCycles(graph)), ["kv.ts → mod.ts → kv.ts"]);
});

Deno.test("check cycles: each cycle is reported once, by its shortest path", () => {
  const graph = graphOf({
    "a.ts": ["b.ts"],
    "b.ts": ["c.ts", "d.ts"],
    "c.ts": ["d.ts"],
    "d.ts": ["a.ts"],
    "x.ts": ["x.ts"],
    "y.ts": ["a.ts"],
  });
  const cycles = findCycles(graph);
  assert.deepEqual(named(cycles), ["a.ts → b.ts → d.ts → a.ts", "x.ts → x.ts"]);
  assert.deepEqual(
    cycles[0].modules,
    ["a.ts", "b.ts", "c.ts", "d.ts"].map((m) => `file:///p/${m}`),
  );
});

Deno.test("check cycles: a module deno info could not load is an error", () => {
  assert.throws(
    () => addModules(new Map(), { modules: [{ specifier: "file:///p/a.ts", error: "not found" }] }),
    /a\.ts: not found/,
  );
});
