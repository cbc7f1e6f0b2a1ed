/**
 * How client tokens are verified, read from the environment: the key source (`JWT_SECRET`,
 * `JWT_PUBLIC_KEY` or `JWT_JWKS_URL`), the accepted algorithms, issuers and audiences, and
 * `REQUIRE_WRITE_SCOPE`.
 *
 * @example
 * ```ts
 * const auth = readAuthConfig({ JWT_JWKS_URL: "https://idp.example/jwks.json" });
 * auth.algorithms; // ["RS256", "ES256", "EdDSA"]
 * ```
 * @module
 */
import { ConfigError, type Env, readBoolean, readList, readString } from "./settings.ts";

/** Where the keys that verify client tokens come from: exactly one source. */
export type AuthKeySource =
  /** A shared HMAC secret (`JWT_SECRET`). */
  | { kind: "secret"; secret: string }
  /** One PEM public key (SPKI) or X.509 certificate (`JWT_PUBLIC_KEY`). */
  | { kind: "publicKey"; pem: string }
  /** A JSON Web Key Set fetched over HTTP(S) and cached (`JWT_JWKS_URL`). */
  | { kind: "jwks"; url: string };

/** How client tokens are verified. */
export interface AuthConfig {
  /** The key source: `JWT_SECRET`, `JWT_PUBLIC_KEY` or `JWT_JWKS_URL` (exactly one). */
  key: AuthKeySource;
  /**
   * Accepted `alg` values (`JWT_ALGORITHMS`, comma-separated; default `HS256` with a secret,
   * `RS256,ES256,EdDSA` with a public key or JWKS). HMAC only with a secret, never with a key.
   */
  algorithms: string[];
  /** Accepted `iss` values (`JWT_ISSUER`, comma-separated; unset = not checked). */
  issuer?: string[];
  /** Accepted `aud` values (`JWT_AUDIENCE`, comma-separated; unset = not checked). */
  audience?: string[];
  /** Sending needs the `chat:write` scope (`REQUIRE_WRITE_SCOPE`, default false). */
  requireWriteScope: boolean;
  /** Clock skew forgiven when checking `exp` and `nbf`, in seconds (5; not configurable). */
  clockToleranceSeconds: number;
}

/** JWS algorithms that verify with a shared secret. */
export const HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"] as const;
/** JWS algorithms that verify with a public key. */
export const PUBLIC_KEY_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
] as const;

/** The auth defaults used when a variable is unset. */
export const AUTH_DEFAULTS = {
  secretAlgorithms: ["HS256"],
  publicKeyAlgorithms: ["RS256", "ES256", "EdDSA"],
  requireWriteScope: false,
  clockToleranceSeconds: 5,
} as const;

const KEY_SOURCE_VARIABLES = ["JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_JWKS_URL"] as const;
const PEM_BLOCK_PATTERN =
  /-----BEGIN (PUBLIC KEY|CERTIFICATE)-----[A-Za-z0-9+/=\s]+-----END \1-----/;

/** Reads `JWT_SECRET` alone (the dev token script signs with it). */
export function readJwtSecret(env: Env): string {
  const secret = env.JWT_SECRET;
  if (secret === undefined || secret === "") {
    throw new ConfigError("JWT_SECRET", "is required (the HS256 secret that signs client tokens)");
  }
  return secret;
}

function readKeySource(env: Env): AuthKeySource {
  const found = KEY_SOURCE_VARIABLES.filter((name) => env[name] !== undefined && env[name] !== "");
  if (found.length === 0) {
    throw new ConfigError(
      "JWT_SECRET",
      "is required unless JWT_PUBLIC_KEY or JWT_JWKS_URL is set (set exactly one key source)",
    );
  }
  if (found.length > 1) {
    throw new ConfigError(
      KEY_SOURCE_VARIABLES.join(", "),
      `set exactly one key source (found ${found.join(" and ")})`,
    );
  }
  if (found[0] === "JWT_SECRET") return { kind: "secret", secret: readJwtSecret(env) };
  if (found[0] === "JWT_PUBLIC_KEY") return { kind: "publicKey", pem: readPublicKeyPem(env) };
  return { kind: "jwks", url: readJwksUrl(env) };
}

function readPublicKeyPem(env: Env): string {
  const raw = readString(env, "JWT_PUBLIC_KEY") ?? "";
  let text = raw.replaceAll("\\n", "\n");
  if (raw.startsWith("@")) {
    const path = raw.slice(1);
    try {
      text = Deno.readTextFileSync(path);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new ConfigError("JWT_PUBLIC_KEY", `cannot read "${path}": ${reason}`);
    }
  }
  // A certificate chain starts with the signer's own certificate: that block is the one used.
  const pem = PEM_BLOCK_PATTERN.exec(text)?.[0];
  if (pem !== undefined) return pem;
  if (text.includes("PRIVATE KEY-----")) {
    throw new ConfigError("JWT_PUBLIC_KEY", "is a private key; give the public key or certificate");
  }
  throw new ConfigError(
    "JWT_PUBLIC_KEY",
    "expected a PEM public key (-----BEGIN PUBLIC KEY-----) or certificate " +
      "(-----BEGIN CERTIFICATE-----), or @/path/to/key.pem",
  );
}

function readJwksUrl(env: Env): string {
  const raw = readString(env, "JWT_JWKS_URL") ?? "";
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError("JWT_JWKS_URL", `"${raw}" is not a URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new ConfigError("JWT_JWKS_URL", `expected an https:// or http:// URL, got "${raw}"`);
  }
  return url.href;
}

function readAlgorithms(env: Env, key: AuthKeySource): string[] {
  const raw = readString(env, "JWT_ALGORITHMS");
  const withSecret = key.kind === "secret";
  if (raw === undefined) {
    return [...(withSecret ? AUTH_DEFAULTS.secretAlgorithms : AUTH_DEFAULTS.publicKeyAlgorithms)];
  }
  const algorithms = [...new Set(raw.split(",").map((name) => name.trim()).filter(Boolean))];
  if (algorithms.length === 0) {
    throw new ConfigError("JWT_ALGORITHMS", "expected a comma-separated list like RS256,ES256");
  }
  const hmac: readonly string[] = HMAC_ALGORITHMS;
  const publicKey: readonly string[] = PUBLIC_KEY_ALGORITHMS;
  for (const algorithm of algorithms) {
    if (algorithm.toLowerCase() === "none") {
      throw new ConfigError("JWT_ALGORITHMS", "none is never accepted (unsigned tokens)");
    }
    if (!hmac.includes(algorithm) && !publicKey.includes(algorithm)) {
      throw new ConfigError(
        "JWT_ALGORITHMS",
        `"${algorithm}" is not a JWS algorithm (known: ${[...hmac, ...publicKey].join(", ")})`,
      );
    }
    // Mixing the families is what lets a public key be abused as an HMAC secret.
    if (withSecret && !hmac.includes(algorithm)) {
      throw new ConfigError(
        "JWT_ALGORITHMS",
        `${algorithm} needs JWT_PUBLIC_KEY or JWT_JWKS_URL; JWT_SECRET allows only HS256, HS384, HS512`,
      );
    }
    if (!withSecret && hmac.includes(algorithm)) {
      throw new ConfigError(
        "JWT_ALGORITHMS",
        `${algorithm} needs JWT_SECRET; a public key or JWKS never verifies HMAC tokens`,
      );
    }
  }
  return algorithms;
}

/** Parses the auth variables; throws {@link ConfigError} naming the first bad one. */
export function readAuthConfig(env: Env): AuthConfig {
  const key = readKeySource(env);
  const auth: AuthConfig = {
    key,
    algorithms: readAlgorithms(env, key),
    requireWriteScope: readBoolean(env, "REQUIRE_WRITE_SCOPE", AUTH_DEFAULTS.requireWriteScope),
    clockToleranceSeconds: AUTH_DEFAULTS.clockToleranceSeconds,
  };
  const issuer = readList(env, "JWT_ISSUER");
  const audience = readList(env, "JWT_AUDIENCE");
  if (issuer !== undefined) auth.issuer = issuer;
  if (audience !== undefined) auth.audience = audience;
  return auth;
}
