/**
 * Prints a signed development token for a user, signed with `JWT_SECRET`.
 *
 * @example
 * ```sh
 * JWT_SECRET=dev deno task token alice --name "Alice" --ttl 2h
 * ```
 * @module
 */

import { parseArgs } from "node:util";
import { signToken, type TokenClaims } from "../src/auth.ts";
import { ConfigError, readJwtSecret } from "../src/config.ts";

/** How to call the script, printed with every argument error. */
export const USAGE = "usage: deno task token <user> [--name NAME] [--ttl 90s|15m|1h|7d|SECONDS]";

/** Bad command-line arguments; the message says which. */
export class UsageError extends Error {
  readonly code = "invalid_arguments";
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const SECONDS_PER_UNIT: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };
const DURATION_PATTERN = /^(\d+)([smhd]?)$/;
const MAX_TTL_SECONDS = 365 * 86_400;

/** Seconds in `90s`, `15m`, `1h`, `7d` or plain `3600`; undefined when not a positive duration. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text.trim());
  if (match === null) return undefined;
  const [, amount, unit] = match;
  const seconds = Number(amount) * (SECONDS_PER_UNIT[unit] ?? 1);
  return seconds > 0 && seconds <= MAX_TTL_SECONDS ? seconds : undefined;
}

/** Turns the script's arguments into token claims, or throws {@link UsageError}. */
export function parseTokenArgs(args: string[]): TokenClaims {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { name: { type: "string" }, ttl: { type: "string" } },
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const { positionals, values } = parsed;
  if (positionals.length !== 1 || positionals[0].trim() === "") {
    throw new UsageError("expected exactly one user id");
  }
  const claims: TokenClaims = { sub: positionals[0].trim() };
  if (values.name !== undefined) {
    if (values.name.trim() === "") throw new UsageError("--name must not be empty");
    claims.name = values.name.trim();
  }
  if (values.ttl !== undefined) {
    const ttlSeconds = parseDuration(values.ttl);
    if (ttlSeconds === undefined) {
      throw new UsageError(`--ttl "${values.ttl}" is not a duration like 90s, 15m, 1h or 7d`);
    }
    claims.ttlSeconds = ttlSeconds;
  }
  return claims;
}

async function main(): Promise<number> {
  let claims: TokenClaims;
  try {
    claims = parseTokenArgs(Deno.args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${error.message}\n${USAGE}`);
    return 2;
  }
  let secret: string;
  try {
    secret = readJwtSecret(Deno.env.toObject());
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    return 1;
  }
  console.log(await signToken(secret, claims));
  return 0;
}

if (import.meta.main) Deno.exit(await main());
