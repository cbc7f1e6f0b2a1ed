/**
 * The one Bearer parser: a middleware that lets a request through only with
 * `Authorization: Bearer <secret>`, compared in constant time, and otherwise answers 401
 * `unauthorized` with `WWW-Authenticate`. With a `limiter`, wrong secrets are counted per client
 * address: past the budget the address is answered 429 `rate_limited` (with `Retry-After`)
 * without its secret being compared at all, until the budget refills.
 *
 * Hono's own `bearerAuth` refuses tokens outside RFC 6750's `b64token` characters with a 400,
 * while `API_KEY` and `METRICS_TOKEN` may hold any non-space character: hence this one.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { bearer } from "./auth.ts";
 *
 * const app = new Hono().use(
 *   bearer({ secret: "scrape-secret", realm: "metrics", message: "metrics need a Bearer token" }),
 * );
 * ```
 * @module
 */
import type { Context, Env, MiddlewareHandler } from "hono";
import type { RateLimiter } from "../rate_limit.ts";
import { HttpError } from "./errors.ts";

/** Options of {@link bearer}. */
export interface BearerOptions<E extends Env = Env> {
  /** The secret the request must present. */
  secret: string;
  /** Named in `WWW-Authenticate: Bearer realm="…"`. */
  realm: string;
  /** The 401's message. */
  message: string;
  /** Counts wrong secrets per key (see `clientKey`); none: no limit. */
  limiter?: RateLimiter;
  /** The limiter's key for a request: its client address. */
  clientKey?: (c: Context<E>) => string;
}

const BEARER = /^Bearer\s+(\S+)$/i;

/** The token of `Authorization: Bearer <token>`, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  return header === undefined ? undefined : BEARER.exec(header)?.[1];
}

/** Compares two strings in time independent of where they differ. */
export function sameSecret(given: string, expected: string): boolean {
  const a = new TextEncoder().encode(given);
  const b = new TextEncoder().encode(expected);
  let difference = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) difference |= (a[i] ?? 0) ^ b[i];
  return difference === 0;
}

function limited(retryAfterMs: number): HttpError {
  return new HttpError("rate_limited", "too many wrong keys from this address", {}, {
    retryAfterMs,
  });
}

/** A middleware that requires `Authorization: Bearer <secret>`. */
export function bearer<E extends Env>(options: BearerOptions<E>): MiddlewareHandler<E> {
  const { secret, realm, message, limiter, clientKey = () => "" } = options;
  return async (c, next) => {
    const key = limiter ? clientKey(c) : "";
    const blocked = limiter?.peek(key);
    if (blocked && !blocked.ok) throw limited(blocked.retryAfterMs);
    const given = bearerToken(c.req.header("authorization"));
    if (given === undefined || !sameSecret(given, secret)) {
      limiter?.take(key);
      throw new HttpError("unauthorized", message, {
        "WWW-Authenticate": `Bearer realm="${realm}"`,
      });
    }
    await next();
  };
}
