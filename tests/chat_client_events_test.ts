/**
 * The table of client events (src/chat/client_events.ts) is where each event's facts live; the
 * docs' tables of events and budgets and the settings they name are checked against it.
 */
import assert from "node:assert/strict";
import { budgetsOf, CLIENT_EVENTS, type ClientEventSpec } from "../src/chat/client_events.ts";
import { DEFAULTS, SETTINGS } from "../src/config.ts";

const page = await Deno.readTextFile(new URL("../docs/events.md", import.meta.url));

/** The first column's `code` cells of the markdown table that follows `heading`. */
function firstColumn(after: string): string[] {
  const start = page.indexOf(after);
  assert.ok(start >= 0, `docs/events.md has "${after}"`);
  const rows = page.slice(start).split("\n").slice(1);
  const table = rows.slice(rows.findIndex((line) => line.startsWith("|")));
  const cells: string[] = [];
  for (const line of table) {
    if (!line.startsWith("|")) break;
    const match = line.match(/^\|\s*`([^`]+)`/);
    if (match) cells.push(match[1]);
  }
  return cells;
}

/** The budget row the table gives an event, as docs/events.md writes it. */
function budgetRow(event: string, spec: ClientEventSpec): string {
  const perMinute = `\`${SETTINGS[spec.budget.perMinute].variable}\``;
  const burst = spec.budget.burst === undefined
    ? "a sixth of it"
    : `\`${SETTINGS[spec.budget.burst].variable}\``;
  const over = spec.dropWhenOver ? "dropped" : "`rate_limited`";
  return `| \`${event}\` | ${perMinute} | ${burst} | ${over} |`;
}

Deno.test("client events: docs/events.md's client table lists exactly the table's events", () => {
  assert.deepEqual(firstColumn("Client → server").sort(), Object.keys(CLIENT_EVENTS).sort());
});

Deno.test("client events: docs/events.md's budget table is the one the event table gives", () => {
  const start = page.indexOf("### Budgets");
  assert.ok(start >= 0, "docs/events.md has a Budgets section");
  const rows = page.slice(start).split("\n").filter((line) => line.startsWith("| `"));
  const expected = Object.entries(CLIENT_EVENTS).map(([event, spec]) => budgetRow(event, spec));
  const squeeze = (row: string) => row.replace(/\s+/g, " ");
  assert.deepEqual(rows.slice(0, expected.length).map(squeeze), expected, expected.join("\n"));
});

Deno.test("client events: every event has a budget from the settings, a burst of at least one", () => {
  for (const [event, budget] of Object.entries(budgetsOf(DEFAULTS))) {
    assert.ok(budget.perMinute >= 1 && budget.burst >= 1, event);
  }
});
