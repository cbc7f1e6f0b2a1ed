/**
 * Environment variables declared once each: a setting names its variable, its kind (how the text
 * is parsed and what it may be), its default and what it is for. A table of settings is read with
 * {@link readSettings}, gives its defaults with {@link settingDefaults}, and documents itself with
 * {@link settingsTable}; every bad value is a {@link ConfigError} that says what was expected.
 *
 * @example
 * ```ts
 * const SETTINGS = {
 *   port: integer("PORT", { default: 3000, min: 0, max: 65_535, doc: "TCP port." }),
 *   redisUrl: url("REDIS_URL", { protocols: ["redis:"], doc: "Redis.", defaultDoc: "unset" }),
 * };
 * const { port, redisUrl } = readSettings(SETTINGS, { PORT: "8080" }); // 8080, undefined
 * ```
 * @module
 */
import { formatDuration, parseDuration } from "./duration.ts";

/** A configuration error; `variable` names the offending environment variable. */
export class ConfigError extends Error {
  readonly code = "invalid_config";
  constructor(readonly variable: string, detail: string) {
    super(`${variable}: ${detail}`);
    this.name = "ConfigError";
  }
}

/** Environment variables by name, as `Deno.env.toObject()` returns them. */
export type Env = Record<string, string | undefined>;

/** One environment variable: how its text becomes a value, its default and its documentation. */
export interface Setting<T> {
  /** The environment variable. */
  readonly variable: string;
  /** What it is for, in markdown (the configuration table's meaning column). */
  readonly doc: string;
  /** The values it accepts, in markdown (the configuration table's allowed column). */
  readonly allowed: string;
  /** What applies while it is unset, in markdown (the configuration table's default column). */
  readonly defaultDoc: string;
  /** The value while it is unset; a setting without one is optional. */
  readonly default?: T;
  /** Whether surrounding whitespace belongs to the value (a secret's may); otherwise it is trimmed. */
  readonly keepsWhitespace?: boolean;
  /**
   * The value of the variable's text (never empty: empty is unset); undefined when the text names
   * nothing, like a list of commas. Throws {@link ConfigError} when the text is not allowed.
   */
  parse(text: string): T | undefined;
}

/** A setting that always has a value. */
export interface DefaultedSetting<T> extends Setting<T> {
  readonly default: T;
}

/** What every setting declares besides its kind: its doc, and its default or what unset means. */
export type SettingOptions<T> =
  & {
    doc: string;
    /** Replaces the kind's description of the values it accepts. */
    allowed?: string;
  }
  & (
    | { default: T; defaultDoc?: string }
    | { default?: undefined; defaultDoc: string }
  );

/** The setting a kind's options declare: defaulted when they give a default. */
export type Declared<T, Options> = Options extends { default: T } ? DefaultedSetting<T>
  : Setting<T>;

type SettingTable = Readonly<Record<string, Setting<unknown>>>;
type ValueOf<S> = S extends Setting<infer T> ? T : never;
type DefaultedKeys<Table> = {
  [K in keyof Table]: Table[K] extends DefaultedSetting<unknown> ? K : never;
}[keyof Table];

/** The defaults of a table of settings, by key. */
export type SettingDefaults<Table extends SettingTable> = {
  -readonly [K in DefaultedKeys<Table>]: ValueOf<Table[K]>;
};

/** What a table of settings reads to: optional where a setting has no default. */
export type SettingValues<Table extends SettingTable> =
  & SettingDefaults<Table>
  & { -readonly [K in Exclude<keyof Table, DefaultedKeys<Table>>]?: ValueOf<Table[K]> };

/** How a kind reads text; `refuse` throws the variable's {@link ConfigError}. */
interface Kind<T> {
  allowed: string;
  parse(text: string, refuse: (detail: string) => never): T | undefined;
  show?: (value: T) => string;
  keepsWhitespace?: boolean;
}

function declare<T, Options extends SettingOptions<T>>(
  variable: string,
  options: Options,
  kind: Kind<T>,
): Declared<T, Options> {
  const refuse = (detail: string): never => {
    throw new ConfigError(variable, detail);
  };
  const show = kind.show ?? ((value: T) => `\`${value}\``);
  const setting: Setting<T> = {
    variable,
    doc: options.doc,
    allowed: options.allowed ?? kind.allowed,
    // Options without a default must say what unset means.
    defaultDoc: options.defaultDoc ?? show(options.default as T),
    default: options.default,
    keepsWhitespace: kind.keepsWhitespace ?? false,
    parse: (text) => kind.parse(text, refuse),
  };
  return setting as Declared<T, Options>;
}

/** The bounds of an {@link integer} setting, for checks that depend on other settings. */
export interface IntegerRange {
  readonly min: number;
  readonly max: number;
}

/** A whole number from `min` to `max`. */
export function integer<Options extends SettingOptions<number> & IntegerRange>(
  variable: string,
  options: Options,
): Declared<number, Options> & IntegerRange {
  const { min, max } = options;
  const setting = declare(variable, options, {
    allowed: `${min}–${max}`,
    parse(text, refuse) {
      const value = /^\d+$/.test(text) ? Number(text) : NaN;
      if (value >= min && value <= max) return value;
      return refuse(`expected a whole number from ${min} to ${max}, got "${text}"`);
    },
  });
  return { ...setting, min, max };
}

/** `1`/`true` or `0`/`false`, in any case. */
export function boolean<Options extends SettingOptions<boolean>>(
  variable: string,
  options: Options,
): Declared<boolean, Options> {
  return declare(variable, options, {
    allowed: "`1`/`true`, `0`/`false`",
    show: (value) => value ? "`1`" : "`0`",
    parse(text, refuse) {
      const lower = text.toLowerCase();
      if (lower === "1" || lower === "true") return true;
      if (lower === "0" || lower === "false") return false;
      return refuse(`expected 1, true, 0 or false, got "${lower}"`);
    },
  });
}

/** A duration like `90s` or `15m` (see `parseDuration`), in milliseconds, from `min` to `max`. */
export function duration<
  Options extends SettingOptions<number> & { min?: number; max?: number },
>(variable: string, options: Options): Declared<number, Options> {
  const { min = 0, max = Infinity } = options;
  const [from, to] = [formatDuration(min), formatDuration(max)];
  const [range, shortRange] = min > 0 && max < Infinity
    ? [` from ${from} to ${to}`, `, ${from}–${to}`]
    : min > 0
    ? [` of at least ${from}`, `, at least ${from}`]
    : max < Infinity
    ? [` of at most ${to}`, `, at most ${to}`]
    : ["", ""];
  return declare(variable, options, {
    allowed: `duration${shortRange}`,
    show: (value) => `\`${formatDuration(value)}\``,
    parse(text, refuse) {
      const ms = parseDuration(text);
      if (ms !== undefined && ms >= min && ms <= max) return ms;
      return refuse(
        `expected a duration${range} (like 500ms, 90s, 15m, 12h or 30d), got "${text}"`,
      );
    },
  });
}

/** Any text, or text matching `pattern`, which `expected` describes for the error. */
export function text<
  Options extends SettingOptions<string> & { allowed: string; pattern?: RegExp; expected?: string },
>(variable: string, options: Options): Declared<string, Options> {
  const { pattern, expected = options.allowed } = options;
  return declare(variable, options, {
    allowed: options.allowed,
    parse(text, refuse) {
      if (pattern === undefined || pattern.test(text)) return text;
      return refuse(`expected ${expected}, got "${text}"`);
    },
  });
}

/** A URL whose scheme is one of `protocols` (written like `"https:"`). */
export function url<Options extends SettingOptions<string> & { protocols: readonly string[] }>(
  variable: string,
  options: Options,
): Declared<string, Options> {
  const schemes = options.protocols.map((protocol) => `${protocol}//`);
  const expected = `a URL starting with ${schemes.join(" or ")}`;
  return declare(variable, options, {
    allowed: `${schemes.map((scheme) => `\`${scheme}\``).join(" or ")} URL`,
    parse(text, refuse) {
      if (URL.canParse(text) && options.protocols.includes(new URL(text).protocol)) return text;
      return refuse(`expected ${expected}, got "${text}"`);
    },
  });
}

/** Comma-separated values, blanks dropped; a list naming nothing is unset. */
export function list<Options extends SettingOptions<string[]>>(
  variable: string,
  options: Options,
): Declared<string[], Options> {
  return declare(variable, options, {
    allowed: "comma-separated list",
    parse: (text) => {
      const values = splitList(text);
      return values.length === 0 ? undefined : values;
    },
  });
}

/** One of `values`, in any case. */
export function oneOf<Value extends string, Options extends SettingOptions<Value>>(
  variable: string,
  values: readonly Value[],
  options: Options,
): Declared<Value, Options> {
  return declare(variable, options, {
    allowed: values.map((value) => `\`${value}\``).join(", "),
    parse(text, refuse) {
      const lower = text.toLowerCase();
      const value = values.find((value) => value === lower);
      return value ?? refuse(`expected one of ${values.join(", ")}, got "${lower}"`);
    },
  });
}

/** A kind of its own: `parse` reads the text, calling `refuse` with what is wrong. */
export function custom<
  T,
  Options extends SettingOptions<T> & { allowed: string; keepsWhitespace?: boolean },
>(
  variable: string,
  parse: (text: string, refuse: (detail: string) => never) => T | undefined,
  options: Options,
): Declared<T, Options> {
  return declare(variable, options, {
    allowed: options.allowed,
    keepsWhitespace: options.keepsWhitespace,
    parse,
  });
}

/** Splits comma-separated text, trimming each value and dropping blanks. */
export function splitList(text: string): string[] {
  return text.split(",").map((value) => value.trim()).filter(Boolean);
}

/** The variable's text as its setting reads it; undefined while unset or blank. */
export function settingText(setting: Setting<unknown>, env: Env): string | undefined {
  const raw = env[setting.variable];
  const text = setting.keepsWhitespace ? raw : raw?.trim();
  return text === "" ? undefined : text;
}

/** Reads one setting: its parsed value, else its default. */
export function readSetting<T>(setting: DefaultedSetting<T>, env: Env): T;
export function readSetting<T>(setting: Setting<T>, env: Env): T | undefined;
export function readSetting<T>(setting: Setting<T>, env: Env): T | undefined {
  const text = settingText(setting, env);
  return (text === undefined ? undefined : setting.parse(text)) ?? setting.default;
}

/**
 * Reads every setting of `table`, in order; a setting without a value is left out. Throws the
 * {@link ConfigError} of the first bad one.
 */
export function readSettings<Table extends SettingTable>(
  table: Table,
  env: Env,
): SettingValues<Table> {
  const values: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(table)) {
    const value = readSetting(setting, env);
    if (value !== undefined) values[key] = value;
  }
  return values as SettingValues<Table>;
}

/** The defaults of `table`'s settings, by key. */
export function settingDefaults<Table extends SettingTable>(
  table: Table,
): Readonly<SettingDefaults<Table>> {
  const defaults = Object.entries(table).filter(([, setting]) => setting.default !== undefined);
  return Object.freeze(Object.fromEntries(
    defaults.map(([key, setting]) => [key, setting.default]),
  )) as SettingDefaults<Table>;
}

const TABLE_HEADER = ["variable", "default", "allowed", "meaning"];

/** The settings as a markdown table, one row per variable, columns aligned as `deno fmt` does. */
export function settingsTable(settings: Iterable<Setting<unknown>>): string {
  const rows = [...settings].map((setting) =>
    [`\`${setting.variable}\``, setting.defaultDoc, setting.allowed, setting.doc]
      .map((cell) => cell.replaceAll("|", "\\|"))
  );
  const width = (cell: string) => [...cell].length;
  const widths = TABLE_HEADER.map((_, column) =>
    Math.max(...[TABLE_HEADER, ...rows].map((row) => width(row[column])))
  );
  const line = (cells: string[]) =>
    `| ${
      cells.map((cell, column) => cell + " ".repeat(widths[column] - width(cell))).join(" | ")
    } |`;
  const rule = widths.map((columnWidth) => "-".repeat(columnWidth));
  return [TABLE_HEADER, rule, ...rows].map(line).join("\n");
}
