/** scripts/lint_plugin.ts: functions under src/ are held to MAX_FUNCTION_LINES lines. */
import assert from "node:assert/strict";
import plugin, { MAX_FUNCTION_LINES } from "../scripts/lint_plugin.ts";

/** A function whose source spans `lines` lines. */
function functionOf(lines: number, shape: "declaration" | "arrow" | "method"): string {
  const body = Array.from({ length: lines - 2 }, (_, n) => `  const v${n} = ${n};`).join("\n");
  if (shape === "declaration") return `export function f() {\n${body}\n}\n`;
  if (shape === "arrow") return `export const f = () => {\n${body}\n};\n`;
  return `export class C {\n  m() {\n${body}\n  }\n}\n`;
}

Deno.test("lint plugin: a function under src/ over the limit is reported, at the limit it is not", () => {
  for (const shape of ["declaration", "arrow", "method"] as const) {
    const over = Deno.lint.runPlugin(
      plugin,
      "/p/src/x.ts",
      functionOf(MAX_FUNCTION_LINES + 1, shape),
    );
    assert.equal(over.length, 1, shape);
    assert.match(over[0].message, new RegExp(`${MAX_FUNCTION_LINES + 1} lines long`));
    const at = Deno.lint.runPlugin(plugin, "/p/src/x.ts", functionOf(MAX_FUNCTION_LINES, shape));
    assert.deepEqual(at, [], shape);
  }
  const test = Deno.lint.runPlugin(plugin, "/p/tests/x_test.ts", functionOf(200, "declaration"));
  assert.deepEqual(test, [], "tests are not held to it");
});
