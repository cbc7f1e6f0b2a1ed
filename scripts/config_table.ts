/**
 * Prints the README's configuration table, generated from the settings declared in
 * `src/config.ts` and `src/auth_config.ts`; with `--write`, replaces the table in README.md.
 *
 * @example
 * ```sh
 * deno task config-table          # print the table
 * deno task config-table --write  # update README.md
 * ```
 * @module
 */

import { ALL_SETTINGS } from "../src/config.ts";
import { settingsTable } from "../src/settings.ts";

const README = new URL("../README.md", import.meta.url);
const SECTION = "\n## Configuration\n";

/** The configuration table in markdown: one row per variable, auth first. */
export function configurationTable(): string {
  return settingsTable(ALL_SETTINGS);
}

/** Where the first table under `## Configuration` sits in `readme`, as character offsets. */
export function findConfigurationTable(readme: string): { start: number; end: number } {
  const section = readme.indexOf(SECTION);
  if (section === -1) throw new Error(`README.md has no "${SECTION.trim()}" section`);
  const start = readme.indexOf("\n|", section) + 1;
  if (start === 0) throw new Error("README.md has no table under its configuration section");
  let end = start;
  while (readme.startsWith("|", end)) {
    const lineEnd = readme.indexOf("\n", end);
    end = lineEnd === -1 ? readme.length : lineEnd + 1;
  }
  return { start, end };
}

if (import.meta.main) {
  const table = configurationTable();
  if (Deno.args.includes("--write")) {
    const readme = await Deno.readTextFile(README);
    const { start, end } = findConfigurationTable(readme);
    await Deno.writeTextFile(README, `${readme.slice(0, start)}${table}\n${readme.slice(end)}`);
  } else {
    console.log(table);
  }
}
