import assert from "node:assert/strict";
import {
  addModules,
  type Cycle,
  findCycles,
  type ImportGraph,
  layerViolations,
} from "../scripts/check_cycles.ts";

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

Deno.test("check_cycles: an import up a layer or across a sibling concern is a violation", () => {
  const url = (path: string) => `file:///p/${path}`;
  const graph: ImportGraph = new Map([
    [url("src/engine/server.ts"), new Set([url("src/chat/mod.ts"), url("src/ops/log.ts")])],
    [url("src/store/kv.ts"), new Set([url("src/auth/token.ts"), url("src/store/id.ts")])],
    [url("src/chat/mod.ts"), new Set([url("src/store/mod.ts"), url("src/errors.ts")])],
    [url("src/http/mod.ts"), new Set([url("src/chat/mod.ts"), url("src/config.ts")])],
  ]);
  const relative = (module: string) => module.replace("file:///p/", "");
  assert.deepEqual(layerViolations(graph, relative), [
    "src/engine/server.ts → src/chat/mod.ts",
    "src/store/kv.ts → src/auth/token.ts",
  ]);
});
