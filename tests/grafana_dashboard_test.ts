/**
 * `docs/grafana-dashboard.json` against a real `/metrics` scrape: a renamed or dropped metric
 * must not leave an empty panel behind.
 * @module
 */
import assert from "node:assert/strict";
import dashboard from "../docs/grafana-dashboard.json" with { type: "json" };
import { startChat } from "./helpers/chat_server.ts";

/** PromQL words that are not metric names. */
const KEYWORDS = new Set(["and", "or", "unless", "bool"]);
/** The series a histogram is exposed as, besides its name. */
const HISTOGRAM_SUFFIX = /_(bucket|sum|count)$/;

/** The metric names a PromQL expression reads. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, "") // label values
    .replace(/\{[^}]*\}/g, "") // label matchers
    .replace(/\[[^\]]*\]/g, "") // range selectors
    .replace(/\boffset\s+-?[\w.]+/g, "")
    .replace(/(?<![\w:])\d[\w.]*/g, "") // numbers
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "");
  const names = [];
  // A name followed by "(" is a function.
  for (const [name] of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*(?!\s*\(|[a-zA-Z0-9_:])/g)) {
    if (!KEYWORDS.has(name)) names.push(name);
  }
  return names;
}

/** Metric name → type, from the `# TYPE` lines of a Prometheus text exposition. */
function exportedTypes(exposition: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const [, name, type] of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    types.set(name, type);
  }
  return types;
}

Deno.test("dashboard: the PromQL reader finds metric names and nothing else", () => {
  assert.deepEqual(
    metricNames(
      'histogram_quantile(0.99, sum by (le) (rate(chat_kv_write_seconds_bucket{instance=~"$instance"}[$__rate_interval])))',
    ),
    ["chat_kv_write_seconds_bucket"],
  );
  assert.deepEqual(metricNames("sum by (code) (rate(a_total[5m])) / ignoring(code) b"), [
    "a_total",
    "b",
  ]);
  assert.deepEqual(metricNames("process_open_fds > bool 100 and up offset 5m"), [
    "process_open_fds",
    "up",
  ]);
});

Deno.test("dashboard: every metric docs/grafana-dashboard.json queries is in a real /metrics scrape", async () => {
  let exposition;
  {
    await using server = await startChat();
    exposition = await (await fetch(`${server.url}/metrics`)).text();
  }
  const exported = exportedTypes(exposition);
  const exists = (name: string) => {
    if (exported.has(name)) return true;
    const type = exported.get(name.replace(HISTOGRAM_SUFFIX, ""));
    return HISTOGRAM_SUFFIX.test(name) && type === "histogram";
  };

  const queries: [where: string, names: string[]][] = [];
  for (const panel of dashboard.panels) {
    assert.ok(panel.targets.length > 0, `panel "${panel.title}" has no query`);
    for (const target of panel.targets) {
      queries.push([`panel "${panel.title}" ${target.refId}`, metricNames(target.expr)]);
    }
  }
  for (const variable of dashboard.templating.list) {
    if (variable.type !== "query") continue;
    const [, name] = variable.definition?.match(/^label_values\((\w+),/) ?? [];
    queries.push([`variable ${variable.name}`, name ? [name] : []]);
  }
  for (const [where, names] of queries) {
    assert.ok(names.length > 0, `${where} reads no metric`);
    for (const name of names) assert.ok(exists(name), `${where}: ${name} is not exported`);
  }
});
