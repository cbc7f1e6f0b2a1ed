/**
 * Structured logs: one JSON object per line with `level`, `time` and `event`, then fields.
 * Callers never pass tokens; message text only at debug level.
 *
 * @example
 * ```ts
 * const log = createLogger("info");
 * log.info("socket.connected", { socket: "abc", user: "alice" });
 * // {"level":"info","time":"2026-11-25T22:00:00.000Z","event":"socket.connected","socket":"abc","user":"alice"}
 * ```
 * @module
 */

/** Log levels, lowest first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

/** A log level. */
export type LogLevel = typeof LOG_LEVELS[number];

/** Extra fields of a log line. */
export type LogFields = Record<string, unknown>;

/** Writes structured log lines at or above its level. */
export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

function errorFields(value: unknown): unknown {
  return value instanceof Error ? { name: value.name, message: value.message } : value;
}

/**
 * A logger writing lines at `level` and above to `write` (stdout by default); every line carries
 * `base` (the server passes `{ instance }`).
 */
export function createLogger(
  level: LogLevel,
  write: (line: string) => void = (line) => console.log(line),
  base: LogFields = {},
): Logger {
  const threshold = LOG_LEVELS.indexOf(level);
  const logAt = (at: LogLevel) => (event: string, fields: LogFields = {}) => {
    if (LOG_LEVELS.indexOf(at) < threshold) return;
    const line: LogFields = { level: at, time: new Date().toISOString(), event, ...base };
    for (const [key, value] of Object.entries(fields)) line[key] = errorFields(value);
    write(JSON.stringify(line));
  };
  return { debug: logAt("debug"), info: logAt("info"), warn: logAt("warn"), error: logAt("error") };
}

/** A logger that writes nothing (tests, embedding). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
