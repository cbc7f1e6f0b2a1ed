/**
 * Prints the configuration table, generated from the settings declared in `src/config.ts` and
 * `src/auth_config.ts`; with `--write`, replaces the table in docs/configuration.md.
 *
 * @example
 * ```sh
 * deno task config-table          # print the table
 * deno task config-table --write  # update docs/configuration.md
 * ```
 * @module
 */

import { ALL_SETTINGS } from "../src/config.ts";
import { settingsTable } from "../src/settings.ts";

/** The page the table lives in. */
export const CONFIGURATION_PAGE = new URL("../docs/configuration.md", import.meta.url);

/** The configuration table in markdown: one row per variable, auth first. */
export function configurationTable(): string {
  return settingsTable(ALL_SETTINGS);
}

/** Where the page's first table sits in `page`, as character offsets. */
export function findConfigurationTable(page: string): { start: number; end: number } {
  const start = page.startsWith("|") ? 0 : page.indexOf("\n|") + 1;
  if (start === 0) throw new Error("docs/configuration.md has no table");
  let end = start;
  while (page.startsWith("|", end)) {
    const lineEnd = page.indexOf("\n", end);
    end = lineEnd === -1 ? page.length : lineEnd + 1;
  }
  return { start, end };
}

if (import.meta.main) {
  const table = configurationTable();
  if (Deno.args.includes("--write")) {
    const page = await Deno.readTextFile(CONFIGURATION_PAGE);
    const { start, end } = findConfigurationTable(page);
    await Deno.writeTextFile(
      CONFIGURATION_PAGE,
      `${page.slice(0, start)}${table}\n${page.slice(end)}`,
    );
  } else {
    console.log(table);
  }
}
