/**
 * Human durations for configuration and tools: `500ms`, `90s`, `15m`, `1h`, `30d`, or plain
 * seconds.
 *
 * @example
 * ```ts
 * parseDuration("30d"); // 2592000000 (ms)
 * parseDuration("soon"); // undefined
 * formatDuration(600_000); // "10m"
 * ```
 * @module
 */

const DURATION_PATTERN = /^(\d+)(ms|s|m|h|d)?$/;

const MS_PER_UNIT: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Parses a duration into milliseconds; `undefined` when the text is not one. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text.trim());
  if (match === null) return undefined;
  const [, amount, unit = "s"] = match;
  const ms = Number(amount) * MS_PER_UNIT[unit];
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** Writes milliseconds in the largest unit that holds them whole: `parseDuration` reads it back. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0";
  const units = Object.entries(MS_PER_UNIT).reverse();
  const [unit, size] = units.find(([, size]) => ms % size === 0) ?? ["ms", 1];
  return `${ms / size}${unit}`;
}
