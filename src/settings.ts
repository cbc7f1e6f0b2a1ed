/**
 * Reading environment variables: the error every bad value becomes, and the readers shared by the
 * modules that declare settings.
 * @module
 */

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

/** The trimmed value of `name`; undefined when unset or blank. */
export function readString(env: Env, name: string): string | undefined {
  const raw = env[name]?.trim();
  return raw === undefined || raw === "" ? undefined : raw;
}

/** A comma-separated list; undefined when it names nothing. */
export function readList(env: Env, name: string): string[] | undefined {
  const values = readString(env, name)?.split(",").map((value) => value.trim()).filter(Boolean);
  return values === undefined || values.length === 0 ? undefined : values;
}

/** `1`/`true` or `0`/`false`, any case; `fallback` when unset. */
export function readBoolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = readString(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (raw === "1" || raw === "true") return true;
  if (raw === "0" || raw === "false") return false;
  throw new ConfigError(name, `expected 1, true, 0 or false, got "${raw}"`);
}
