/**
 * Who is connecting: HS256 JWT verification (via `jose`) turned into an {@link Identity}, with
 * every failure reported as an {@link AuthError} whose `code` clients can act on.
 *
 * @example
 * ```ts
 * const verify = createTokenVerifier({ secret: config.jwtSecret });
 * const token = extractToken(handshake.auth, handshake.headers);
 * const identity = await verify(token ?? ""); // throws AuthError("auth_required") when absent
 * console.log(identity.user.name);
 * ```
 * @module
 */

import { errors, type JWTPayload, jwtVerify, SignJWT } from "jose";
import type { User } from "./store/mod.ts";

/** Stable reasons a client is refused. */
export type AuthErrorCode = "auth_required" | "invalid_token" | "token_expired";

/** A refused token; `code` is stable, the message is a sentence for humans. */
export class AuthError extends Error {
  constructor(readonly code: AuthErrorCode, message: string) {
    super(message);
    this.name = "AuthError";
  }
}

/** A verified client. */
export interface Identity {
  user: User;
  /** token expiry, ms since epoch, if the token has exp */
  expiresAt?: number;
}

/** Options for {@link createTokenVerifier}. */
export interface VerifierOptions {
  /** The HS256 secret tokens are signed with. */
  secret: string;
  /** Clock skew forgiven when checking `exp` and `nbf` (default 5). */
  clockToleranceSeconds?: number;
}

/** What {@link signToken} puts in a token. */
export interface TokenClaims {
  /** The user id (`sub`). */
  sub: string;
  /** Display name; readers fall back to `sub` when absent. */
  name?: string;
  /** Lifetime in seconds (default 3600). */
  ttlSeconds?: number;
}

const ALGORITHM = "HS256";
const DEFAULT_CLOCK_TOLERANCE_SECONDS = 5;
const DEFAULT_TTL_SECONDS = 3600;
const MAX_SUBJECT_LENGTH = 256;
const MAX_NAME_LENGTH = 100;
const BEARER_PATTERN = /^Bearer[ \t]+(\S+)[ \t]*$/i;

function secretKey(secret: string): Uint8Array {
  if (secret === "") throw new TypeError("the token secret must not be empty");
  return new TextEncoder().encode(secret);
}

function invalidToken(message: string): AuthError {
  return new AuthError("invalid_token", message);
}

function describeVerifyFailure(error: unknown): AuthError {
  if (error instanceof errors.JWTExpired) {
    return new AuthError("token_expired", "token has expired");
  }
  if (error instanceof errors.JWTClaimValidationFailed && error.claim === "nbf") {
    return invalidToken("token is not valid yet");
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return invalidToken("token signature is invalid");
  }
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return invalidToken(`token must be signed with ${ALGORITHM}`);
  }
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) {
    return invalidToken("token is malformed");
  }
  return invalidToken("token is invalid");
}

/** Returns a function verifying an HS256 token → Identity, or throwing AuthError. */
export function createTokenVerifier(
  options: VerifierOptions,
): (token: string) => Promise<Identity> {
  const key = secretKey(options.secret);
  const clockTolerance = options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS;
  return async (token) => {
    if (typeof token !== "string" || token === "") {
      throw new AuthError("auth_required", "a token is required");
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key, { algorithms: [ALGORITHM], clockTolerance }));
    } catch (error) {
      throw describeVerifyFailure(error);
    }
    const { sub, name, exp } = payload;
    if (typeof sub !== "string" || sub === "" || sub.length > MAX_SUBJECT_LENGTH) {
      throw invalidToken(
        `token subject must be a non-empty string of at most ${MAX_SUBJECT_LENGTH} characters`,
      );
    }
    if (name !== undefined && (typeof name !== "string" || name.length > MAX_NAME_LENGTH)) {
      throw invalidToken(`token name must be a string of at most ${MAX_NAME_LENGTH} characters`);
    }
    const identity: Identity = { user: { id: sub, name: name || sub } };
    if (exp !== undefined) identity.expiresAt = exp * 1000;
    return identity;
  };
}

/** True once the token behind `identity` has expired, forgiving `toleranceMs` of clock skew. */
export function isExpired(
  identity: Identity,
  nowMs: number = Date.now(),
  toleranceMs: number = DEFAULT_CLOCK_TOLERANCE_SECONDS * 1000,
): boolean {
  return identity.expiresAt !== undefined && nowMs >= identity.expiresAt + toleranceMs;
}

/**
 * Finds the client's token: `auth.token` (a string) first, else `Authorization: Bearer <jwt>` from
 * the handshake headers (a plain object of lower-case header names, values string | string[] |
 * undefined). Returns undefined when neither is present/non-empty.
 */
export function extractToken(
  auth: unknown,
  headers: Record<string, string | string[] | undefined>,
): string | undefined {
  if (typeof auth === "object" && auth !== null && "token" in auth) {
    const { token } = auth;
    if (typeof token === "string" && token.trim() !== "") return token.trim();
  }
  const header = headers.authorization;
  const value = Array.isArray(header) ? header[0] : header;
  if (typeof value !== "string") return undefined;
  return BEARER_PATTERN.exec(value.trim())?.[1];
}

/** Signs an HS256 token (for the dev `token` task and tests). */
export async function signToken(secret: string, claims: TokenClaims): Promise<string> {
  const ttlSeconds = claims.ttlSeconds ?? DEFAULT_TTL_SECONDS;
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new RangeError(`ttlSeconds must be a whole number above 0, got ${ttlSeconds}`);
  }
  const issuedAt = Math.floor(Date.now() / 1000);
  const payload = claims.name === undefined ? {} : { name: claims.name };
  return await new SignJWT(payload)
    .setProtectedHeader({ alg: ALGORITHM, typ: "JWT" })
    .setSubject(claims.sub)
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + ttlSeconds)
    .sign(secretKey(secret));
}
