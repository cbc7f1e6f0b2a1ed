import assert from "node:assert/strict";
import { formatDuration, parseDuration } from "../src/duration.ts";

Deno.test("duration: units and plain seconds are parsed; anything else is not", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("90"), 90_000);
  assert.equal(parseDuration(" 30d "), 30 * 86_400_000);
  for (const text of ["soon", "-1", "1.5s", "2 minutes", ""]) {
    assert.equal(parseDuration(text), undefined, text);
  }
});

Deno.test("duration: formatDuration uses the largest whole unit and reads back", () => {
  const cases: [number, string][] = [
    [0, "0"],
    [1, "1ms"],
    [100, "100ms"],
    [1500, "1500ms"],
    [15_000, "15s"],
    [600_000, "10m"],
    [5_400_000, "90m"],
    [86_400_000, "1d"],
  ];
  for (const [ms, text] of cases) {
    assert.equal(formatDuration(ms), text);
    assert.equal(parseDuration(text), ms);
  }
});
