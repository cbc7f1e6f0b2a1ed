/**
 * Who is connecting: JWT verification (via `jose`) against the operator's key source — a shared
 * secret, a PEM public key or certificate, or a remote JWKS — turned into an {@link Identity}, with
 * every failure reported as an {@link AuthError} whose `code` clients can act on.
 *
 * @example
 * A sketch of admission: `config`, `handshake` and `refuse` belong to the server around it.
 * ```ts ignore
 * const verify = createTokenVerifier(config.auth);
 * const token = extractToken(handshake.auth, handshake.headers);
 * const identity = await verify(token ?? ""); // throws AuthError("auth_required") when absent
 * if (config.auth.requireWriteScope && !hasScope(identity, WRITE_SCOPE)) refuse();
 * ```
 * @module
 */

import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  importSPKI,
  importX509,
  type JWTPayload,
  jwtVerify,
  type JWTVerifyGetKey,
  SignJWT,
} from "jose";
import { AUTH_DEFAULTS, type AuthConfig, type AuthKeySource } from "./settings.ts";
import { CodedError } from "../errors.ts";
import type { User } from "../types.ts";

/** Stable reasons a client is refused. */
export type AuthErrorCode =
  | "auth_required"
  | "invalid_token"
  | "token_expired"
  | "auth_unavailable";

/** A refused token; `code` is stable, the message is a sentence for humans. */
export class AuthError extends CodedError<AuthErrorCode> {
  constructor(code: AuthErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, {}, options);
    this.name = "AuthError";
  }
}

/** A verified client. */
export interface Identity {
  user: User;
  /** OAuth scopes granted by the token (`scope`, space-separated, or `scp`); [] when none. */
  scopes: string[];
  /** token expiry, ms since epoch, if the token has exp */
  expiresAt?: number;
  /**
   * Rooms this user may join besides the public ones: ids or `prefix-*` patterns from the token's
   * `rooms` claim (an array, or space-separated); [] when none.
   */
  rooms: string[];
}

/** The scope a token needs to send messages when `REQUIRE_WRITE_SCOPE` is on. */
export const WRITE_SCOPE = "chat:write";

/**
 * Options for {@link createTokenVerifier}: the server's {@link AuthConfig} (only `key` is required;
 * `algorithms` defaults by key kind), or just `{ secret }` for HS256.
 */
export type VerifierOptions =
  | (
    & Pick<AuthConfig, "key">
    & Partial<Pick<AuthConfig, "algorithms" | "issuer" | "audience" | "clockToleranceSeconds">>
  )
  | { secret: string; clockToleranceSeconds?: number };

/** What {@link signToken} puts in a token. */
export interface TokenClaims {
  /** The user id (`sub`). */
  sub: string;
  /** Display name; readers fall back to `sub` when absent. */
  name?: string;
  /** Space-separated OAuth scopes (`scope`), e.g. `chat:write`. */
  scope?: string;
  /** Rooms beyond the public ones this user may join: ids or `prefix-*` patterns (`rooms`). */
  rooms?: string[];
  /** Lifetime in seconds (default 3600). */
  ttlSeconds?: number;
}

const SIGNING_ALGORITHM = "HS256";
const DEFAULT_TTL_SECONDS = 3600;
/** Longest user id (`sub`), in UTF-16 code units. */
export const MAX_USER_ID_LENGTH = 256;
/** Longest display name a token or the server API may give, in UTF-16 code units. */
export const MAX_NAME_LENGTH = 100;
/**
 * Characters that show nothing or change the direction of what follows: format (Cf: bidi controls,
 * zero-width spaces and joiners, the soft hyphen…) and control (Cc) characters, line and paragraph
 * separators, the combining grapheme joiner and the Hangul fillers.
 */
const INVISIBLE_CHARACTERS = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\u034F\u115F\u1160\u3164\uFFA0]/gu;
/** Shown for a user whose name and id are both invisible. */
const NAMELESS = "anonymous";
const BEARER_PATTERN = /^Bearer[ \t]+(\S+)[ \t]*$/i;
const HMAC_PREFIX = "HS";
/** Remote key sets: refreshed every 10 min, refetched for an unknown `kid` at most every 30 s. */
const JWKS_OPTIONS = { cacheMaxAge: 10 * 60_000, cooldownDuration: 30_000, timeoutDuration: 5000 };

function secretKey(secret: string): Uint8Array<ArrayBuffer> {
  if (secret === "") throw new TypeError("the token secret must not be empty");
  return new TextEncoder().encode(secret);
}

function invalidToken(message: string): AuthError {
  return new AuthError("invalid_token", message);
}

/** The configured key cannot be used with the token's algorithm (e.g. an RSA key for ES256). */
class KeyAlgorithmMismatch extends Error {}

/** The remote key set could not be fetched or parsed. */
class KeySetUnavailable extends Error {}

function publicKeyResolver(pem: string): JWTVerifyGetKey {
  const importKey = pem.includes("-----BEGIN CERTIFICATE-----") ? importX509 : importSPKI;
  // jose needs the algorithm to import a PEM; jose has checked `alg` against the allow-list first.
  const keysByAlgorithm = new Map<string, ReturnType<typeof importKey>>();
  return ({ alg }) => {
    let key = keysByAlgorithm.get(alg);
    if (key === undefined) {
      key = importKey(pem, alg).catch((cause) => {
        throw new KeyAlgorithmMismatch(`token algorithm ${alg} does not match the server's key`, {
          cause,
        });
      });
      keysByAlgorithm.set(alg, key);
    }
    return key;
  };
}

function jwksResolver(url: string): JWTVerifyGetKey {
  const keySet = createRemoteJWKSet(new URL(url), JWKS_OPTIONS);
  return async (header, token) => {
    try {
      return await keySet(header, token);
    } catch (error) {
      if (
        error instanceof errors.JWKSNoMatchingKey ||
        error instanceof errors.JWKSMultipleMatchingKeys
      ) {
        throw error;
      }
      throw new KeySetUnavailable("the identity provider's signing keys could not be fetched", {
        cause: error,
      });
    }
  };
}

function keyResolver(key: AuthKeySource): JWTVerifyGetKey {
  switch (key.kind) {
    case "secret": {
      // Import the secret once per HMAC hash instead of on every verification.
      const secret = secretKey(key.secret);
      const keysByAlgorithm = new Map<string, Promise<CryptoKey>>();
      return ({ alg }) => {
        let imported = keysByAlgorithm.get(alg);
        if (!imported) {
          const hash = `SHA-${alg.slice(2)}`;
          imported = crypto.subtle.importKey("raw", secret, { name: "HMAC", hash }, false, [
            "verify",
          ]);
          keysByAlgorithm.set(alg, imported);
        }
        return imported;
      };
    }
    case "publicKey":
      return publicKeyResolver(key.pem);
    case "jwks":
      return jwksResolver(key.url);
  }
}

function tokenAlgorithm(token: string): string {
  try {
    return String(decodeProtectedHeader(token).alg);
  } catch {
    return "(none)";
  }
}

function describeVerifyFailure(error: unknown, token: string): AuthError {
  if (error instanceof KeySetUnavailable) {
    return new AuthError("auth_unavailable", `${error.message}; try again later`, { cause: error });
  }
  if (error instanceof KeyAlgorithmMismatch) return invalidToken(error.message);
  if (error instanceof errors.JWTExpired) {
    return new AuthError("token_expired", "token has expired");
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    const missing = error.reason === "missing";
    if (error.claim === "nbf") return invalidToken("token is not valid yet");
    if (error.claim === "iss") {
      return invalidToken(missing ? "token has no issuer" : "token issuer is not accepted");
    }
    if (error.claim === "aud") {
      return invalidToken(missing ? "token has no audience" : "token audience is not accepted");
    }
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return invalidToken("token signature is invalid");
  }
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return invalidToken(`token algorithm ${tokenAlgorithm(token)} is not accepted`);
  }
  if (error instanceof errors.JWKSNoMatchingKey) {
    return invalidToken("token key id (kid) is not in the identity provider's key set");
  }
  if (error instanceof errors.JWKSMultipleMatchingKeys) {
    return invalidToken("token does not name one key of the identity provider's key set");
  }
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) {
    return invalidToken("token is malformed");
  }
  return invalidToken("token is invalid");
}

/** Scopes from `scope` (space-separated, OAuth) or else `scp` (array, or space-separated). */
function readScopes(payload: JWTPayload): string[] {
  const claim = payload.scope ?? payload.scp;
  const scopes = typeof claim === "string"
    ? claim.split(/\s+/)
    : Array.isArray(claim)
    ? claim.filter((scope): scope is string => typeof scope === "string")
    : [];
  return [...new Set(scopes.filter((scope) => scope !== ""))];
}

/** Most room ids or patterns taken from one token's `rooms` claim. */
const MAX_ROOM_CLAIMS = 100;

/** The `rooms` claim (array, or space-separated): room ids or `prefix-*` patterns. */
function readRooms(payload: JWTPayload): string[] {
  const claim = payload.rooms;
  const rooms = typeof claim === "string"
    ? claim.split(/\s+/)
    : Array.isArray(claim)
    ? claim.filter((room): room is string => typeof room === "string")
    : [];
  return [...new Set(rooms.filter((room) => room !== "" && room.length <= 130))].slice(
    0,
    MAX_ROOM_CLAIMS,
  );
}

function normalizeOptions(options: VerifierOptions) {
  if ("secret" in options) {
    return {
      key: { kind: "secret", secret: options.secret } satisfies AuthKeySource,
      algorithms: [...AUTH_DEFAULTS.secretAlgorithms],
      clockToleranceSeconds: options.clockToleranceSeconds,
    };
  }
  const withSecret = options.key.kind === "secret";
  const algorithms = options.algorithms ??
    [...(withSecret ? AUTH_DEFAULTS.secretAlgorithms : AUTH_DEFAULTS.publicKeyAlgorithms)];
  // Config refuses this too; checked again because mixing families is the HS/RS confusion attack.
  const mixed = algorithms.find((alg) => alg.startsWith(HMAC_PREFIX) !== withSecret);
  if (algorithms.length === 0 || mixed !== undefined || algorithms.includes("none")) {
    throw new TypeError(
      `algorithms [${algorithms.join(", ")}] do not suit a ${options.key.kind} key source`,
    );
  }
  return { ...options, algorithms };
}

/**
 * Returns a function verifying a token → {@link Identity}, or throwing {@link AuthError}. Keys are
 * imported lazily (once per algorithm); a JWKS is fetched on first use and cached.
 */
export function createTokenVerifier(
  options: VerifierOptions,
): (token: string) => Promise<Identity> {
  const { key, algorithms, issuer, audience, clockToleranceSeconds } = normalizeOptions(options);
  const getKey = keyResolver(key);
  const verifyOptions = {
    algorithms,
    issuer,
    audience,
    clockTolerance: clockToleranceSeconds ?? AUTH_DEFAULTS.clockToleranceSeconds,
  };
  return async (token) => {
    if (typeof token !== "string" || token === "") {
      throw new AuthError("auth_required", "a token is required");
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey, verifyOptions));
    } catch (error) {
      throw describeVerifyFailure(error, token);
    }
    const { sub, name, exp } = payload;
    if (!isUserId(sub)) throw invalidToken(`token subject is not a user id: ${USER_ID_RULE}`);
    if (name !== undefined && (typeof name !== "string" || name.length > MAX_NAME_LENGTH)) {
      throw invalidToken(`token name must be a string of at most ${MAX_NAME_LENGTH} characters`);
    }
    const identity: Identity = {
      user: { id: sub, name: displayNameOf(sub, name) },
      scopes: readScopes(payload),
      rooms: readRooms(payload),
    };
    if (exp !== undefined) identity.expiresAt = exp * 1000;
    return identity;
  };
}

/** The rule {@link isUserId} applies, in words for error messages and docs. */
export const USER_ID_RULE =
  `1-${MAX_USER_ID_LENGTH} characters of well-formed Unicode without control characters`;

/**
 * Whether `value` can be a user id: the one rule for a token's `sub` and for every user id the
 * server API takes, so any user who can connect can be named, banned and disconnected. Ids are
 * compared exactly as given (no normalisation): an identity provider's subjects stay distinct.
 */
export function isUserId(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= MAX_USER_ID_LENGTH &&
    value.isWellFormed() && !CONTROL_CHARACTER.test(value);
}
const CONTROL_CHARACTER = /\p{Cc}/u;

/**
 * A name that is safe to show next to others': without bidi controls and invisible characters
 * (which could reverse or hide the text around it, or make two names look the same), NFC-normalized
 * and trimmed. Empty when nothing visible is left.
 */
export function cleanDisplayName(name: string): string {
  return name.replace(INVISIBLE_CHARACTERS, "").normalize("NFC").trim();
}

/**
 * The name shown for user `id` who gave `name` (a token's `name`, the server API's `userName`):
 * the name cleaned by {@link cleanDisplayName}, else the cleaned id, else "anonymous".
 */
export function displayNameOf(id: string, name?: string): string {
  return cleanDisplayName(name ?? "") || cleanDisplayName(id) || NAMELESS;
}

/** True when the token behind `identity` granted `scope` (e.g. {@link WRITE_SCOPE}). */
export function hasScope(identity: Identity, scope: string): boolean {
  return identity.scopes.includes(scope);
}

/** True once the token behind `identity` has expired, forgiving `toleranceMs` of clock skew. */
export function isExpired(
  identity: Identity,
  nowMs: number = Date.now(),
  toleranceMs: number = AUTH_DEFAULTS.clockToleranceSeconds * 1000,
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
  const payload: JWTPayload = {};
  if (claims.name !== undefined) payload.name = claims.name;
  if (claims.rooms !== undefined) payload.rooms = claims.rooms;
  if (claims.scope !== undefined) payload.scope = claims.scope;
  return await new SignJWT(payload)
    .setProtectedHeader({ alg: SIGNING_ALGORITHM, typ: "JWT" })
    .setSubject(claims.sub)
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + ttlSeconds)
    .sign(secretKey(secret));
}
