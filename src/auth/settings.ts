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
import {
  boolean,
  ConfigError,
  custom,
  type Env,
  list,
  readSetting,
  readSettings,
  settingText,
  type SettingValues,
  splitList,
  url,
} from "../settings.ts";

/** Where the keys that verify client tokens come from: exactly one source. */
export type AuthKeySource =
  /** A shared HMAC secret (`JWT_SECRET`). */
  | { kind: "secret"; secret: string }
  /** One PEM public key (SPKI) or X.509 certificate (`JWT_PUBLIC_KEY`). */
  | { kind: "publicKey"; pem: string }
  /** A JSON Web Key Set fetched over HTTP(S) and cached (`JWT_JWKS_URL`). */
  | { kind: "jwks"; url: string };

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

/** Shortest HMAC secret, in bytes, that is as strong as HS256 itself (RFC 7518 §3.2). */
export const MIN_SECRET_BYTES = 32;

const PEM_BLOCK_PATTERN =
  /-----BEGIN (PUBLIC KEY|CERTIFICATE)-----[A-Za-z0-9+/=\s]+-----END \1-----/;

/** Where the verifying keys come from: exactly one of these is set. */
const KEY_SOURCES = {
  secret: custom("JWT_SECRET", (text) => text, {
    allowed: `text, ${MIN_SECRET_BYTES} bytes or more advised`,
    defaultDoc: "one key source required",
    doc: "Shared secret for HS256/384/512 tokens; a shorter one than advised is accepted with a " +
      "warning. Set **exactly one** of `JWT_SECRET`, `JWT_PUBLIC_KEY`, `JWT_JWKS_URL` (none or " +
      "several: the server exits 1).",
    keepsWhitespace: true,
  }),
  publicKey: custom("JWT_PUBLIC_KEY", parsePublicKeyPem, {
    allowed: "PEM, or `@` and a file path",
    defaultDoc: "unset",
    doc: "Your identity provider's PEM public key (`-----BEGIN PUBLIC KEY-----`) or X.509 " +
      "certificate: the PEM itself (literal `\\n` allowed) or `@/path/to/key.pem`.",
  }),
  jwksUrl: url("JWT_JWKS_URL", {
    protocols: ["https:", "http:"],
    defaultDoc: "unset",
    doc: "Your identity provider's JSON Web Key Set; fetched on first use, cached 10 minutes, " +
      "refetched for an unknown `kid` at most every 30 s.",
  }),
};

/** What a token must be to be accepted. */
const TOKEN_SETTINGS = {
  algorithms: custom("JWT_ALGORITHMS", parseAlgorithms, {
    allowed: "JWS algorithm names, comma-separated",
    defaultDoc: `\`${AUTH_DEFAULTS.secretAlgorithms.join()}\` with a secret, ` +
      `\`${AUTH_DEFAULTS.publicKeyAlgorithms.join()}\` with a key or JWKS`,
    doc: "Allow-list of token `alg`s. `none` is always refused; `HS*` only with `JWT_SECRET`, " +
      "`RS*`/`PS*`/`ES*`/`EdDSA` only with a key or JWKS.",
  }),
  issuer: list("JWT_ISSUER", {
    defaultDoc: "unset (not checked)",
    doc: "Accepted `iss` values; when set, tokens must match one.",
  }),
  audience: list("JWT_AUDIENCE", {
    defaultDoc: "unset (not checked)",
    doc: "Accepted `aud` values; when set, tokens must match one.",
  }),
  requireWriteScope: boolean("REQUIRE_WRITE_SCOPE", {
    default: AUTH_DEFAULTS.requireWriteScope,
    doc: "`1`/`true`: sending messages needs the `chat:write` scope in the token.",
  }),
};

/** Every auth setting, in the order docs/configuration.md lists them. */
export const AUTH_SETTINGS = { ...KEY_SOURCES, ...TOKEN_SETTINGS };

/** How client tokens are verified. */
export interface AuthConfig extends Omit<SettingValues<typeof TOKEN_SETTINGS>, "algorithms"> {
  /** The key source: `JWT_SECRET`, `JWT_PUBLIC_KEY` or `JWT_JWKS_URL` (exactly one). */
  key: AuthKeySource;
  /** Accepted `alg` values: `JWT_ALGORITHMS`, else the defaults for the key's kind. */
  algorithms: string[];
  /** Clock skew forgiven when checking `exp` and `nbf`, in seconds (not configurable). */
  clockToleranceSeconds: number;
}

/** Reads `JWT_SECRET` alone (the dev token script signs with it). */
export function readJwtSecret(env: Env): string {
  const secret = readSetting(KEY_SOURCES.secret, env);
  if (secret === undefined) {
    throw new ConfigError("JWT_SECRET", "is required (the HS256 secret that signs client tokens)");
  }
  return secret;
}

/** Parses the auth variables; throws {@link ConfigError} naming the first bad one. */
export function readAuthConfig(env: Env): AuthConfig {
  const key = readKeySource(env);
  const { algorithms, ...checks } = readSettings(TOKEN_SETTINGS, env);
  if (algorithms !== undefined) checkAlgorithmsSuit(algorithms, key);
  const withSecret = key.kind === "secret";
  return {
    key,
    algorithms: algorithms ??
      [...(withSecret ? AUTH_DEFAULTS.secretAlgorithms : AUTH_DEFAULTS.publicKeyAlgorithms)],
    ...checks,
    clockToleranceSeconds: AUTH_DEFAULTS.clockToleranceSeconds,
  };
}

function readKeySource(env: Env): AuthKeySource {
  const sources = Object.values(KEY_SOURCES);
  // Set means non-empty here, even if blank: a blank key or URL is refused, not skipped.
  const found = sources.filter((setting) => (env[setting.variable] ?? "") !== "");
  if (found.length === 0) {
    throw new ConfigError(
      "JWT_SECRET",
      "is required unless JWT_PUBLIC_KEY or JWT_JWKS_URL is set (set exactly one key source)",
    );
  }
  if (found.length > 1) {
    throw new ConfigError(
      sources.map((setting) => setting.variable).join(", "),
      `set exactly one key source (found ${
        found.map((setting) => setting.variable).join(" and ")
      })`,
    );
  }
  const [source] = found;
  const value = source.parse(settingText(source, env) ?? "") ?? "";
  if (source === KEY_SOURCES.secret) return { kind: "secret", secret: value };
  if (source === KEY_SOURCES.publicKey) return { kind: "publicKey", pem: value };
  return { kind: "jwks", url: value };
}

function parsePublicKeyPem(raw: string, refuse: (detail: string) => never): string {
  let text = raw.replaceAll("\\n", "\n");
  if (raw.startsWith("@")) {
    const path = raw.slice(1);
    try {
      text = Deno.readTextFileSync(path);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      refuse(`cannot read "${path}": ${reason}`);
    }
  }
  // A certificate chain starts with the signer's own certificate: that block is the one used.
  const pem = PEM_BLOCK_PATTERN.exec(text)?.[0];
  if (pem !== undefined) return pem;
  if (text.includes("PRIVATE KEY-----")) {
    refuse("is a private key; give the public key or certificate");
  }
  return refuse(
    "expected a PEM public key (-----BEGIN PUBLIC KEY-----) or certificate " +
      "(-----BEGIN CERTIFICATE-----), or @/path/to/key.pem",
  );
}

const KNOWN_ALGORITHMS: readonly string[] = [...HMAC_ALGORITHMS, ...PUBLIC_KEY_ALGORITHMS];

function parseAlgorithms(text: string, refuse: (detail: string) => never): string[] {
  const algorithms = [...new Set(splitList(text))];
  if (algorithms.length === 0) refuse("expected a comma-separated list like RS256,ES256");
  for (const algorithm of algorithms) {
    if (algorithm.toLowerCase() === "none") refuse("none is never accepted (unsigned tokens)");
    if (!KNOWN_ALGORITHMS.includes(algorithm)) {
      refuse(`"${algorithm}" is not a JWS algorithm (known: ${KNOWN_ALGORITHMS.join(", ")})`);
    }
  }
  return algorithms;
}

/** Mixing the families is what lets a public key be abused as an HMAC secret. */
function checkAlgorithmsSuit(algorithms: string[], key: AuthKeySource): void {
  const hmac: readonly string[] = HMAC_ALGORITHMS;
  for (const algorithm of algorithms) {
    if (key.kind === "secret" && !hmac.includes(algorithm)) {
      throw new ConfigError(
        "JWT_ALGORITHMS",
        `${algorithm} needs JWT_PUBLIC_KEY or JWT_JWKS_URL; JWT_SECRET allows only HS256, HS384, HS512`,
      );
    }
    if (key.kind !== "secret" && hmac.includes(algorithm)) {
      throw new ConfigError(
        "JWT_ALGORITHMS",
        `${algorithm} needs JWT_SECRET; a public key or JWKS never verifies HMAC tokens`,
      );
    }
  }
}
