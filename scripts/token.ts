/**
 * Prints a signed development token for a user, signed with `JWT_SECRET`.
 *
 * @example
 * ```sh
 * JWT_SECRET=dev deno task token alice --name "Alice" --ttl 2h --scope "chat:read chat:write"
 * ```
 * @module
 */

import { parseArgs } from "node:util";
import { signToken, type TokenClaims } from "../src/auth/token.ts";
import { readJwtSecret } from "../src/auth/settings.ts";
import { ConfigError } from "../src/settings.ts";
import { parseDuration } from "../src/duration.ts";

/** How to call the script, printed with every argument error. */
export const USAGE =
  "usage: deno task token <user> [--name NAME] [--ttl 90s|15m|1h|7d|SECONDS] [--scope SCOPES]";

/** Bad command-line arguments; the message says which. */
export class UsageError extends Error {
  readonly code = "invalid_arguments";
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const MAX_TTL_SECONDS = 365 * 86_400;

/** Seconds in a `--ttl` (`90s`, `15m`, `1h`, `7d` or plain seconds), up to a year; else undefined. */
export function parseTtl(text: string): number | undefined {
  const ms = parseDuration(text);
  if (ms === undefined || ms % 1000 !== 0) return undefined;
  const seconds = ms / 1000;
  return seconds > 0 && seconds <= MAX_TTL_SECONDS ? seconds : undefined;
}

/** Turns the script's arguments into token claims, or throws {@link UsageError}. */
export function parseTokenArgs(args: string[]): TokenClaims {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { name: { type: "string" }, ttl: { type: "string" }, scope: { type: "string" } },
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
    const ttlSeconds = parseTtl(values.ttl);
    if (ttlSeconds === undefined) {
      throw new UsageError(`--ttl "${values.ttl}" is not a duration like 90s, 15m, 1h or 7d`);
    }
    claims.ttlSeconds = ttlSeconds;
  }
  if (values.scope !== undefined) {
    const scope = values.scope.trim().split(/\s+/).filter(Boolean).join(" ");
    if (scope === "") throw new UsageError("--scope needs at least one scope, like chat:write");
    claims.scope = scope;
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
