/**
 * Every environment variable the server reads, parsed and validated in one place.
 *
 * @example
 * ```ts
 * const config = loadConfig(Deno.env.toObject());
 * console.log(config.port); // 3000 unless PORT is set
 * ```
 * @module
 */
import { parseAddressRange } from "./client_address.ts";
import { parseDuration } from "./duration.ts";
import { LOG_LEVELS } from "./log.ts";

/** Server configuration, with the defaults documented on each field. */
export interface Config {
  /** How client tokens are verified (`JWT_*`, `REQUIRE_WRITE_SCOPE`); see {@link AuthConfig}. */
  auth: AuthConfig;
  /** TCP port (`PORT`, default 3000; 0 picks a free port). */
  port: number;
  /** Interface to listen on (`HOSTNAME`, default `0.0.0.0`). */
  hostname: string;
  /**
   * Deno KV location: a file (`KV_PATH`, default `./data/chat.kv`; `:memory:` keeps nothing) or a
   * KV Connect URL (`KV_URL`, with `DENO_KV_ACCESS_TOKEN`) shared by several instances.
   */
  kvPath: string;
  /**
   * How long this instance's claim on a KV file outlives it after a crash (`KV_LEASE`, default
   * `15s`); a second instance on the same file without Redis is refused while it runs.
   */
  kvLeaseMs: number;
  /** Redis for fan-out across instances (`REDIS_URL`; unset = one instance, in-memory adapter). */
  redisUrl?: string;
  /** This instance's name in logs and message ids (`INSTANCE_ID`, default random). */
  instanceId: string;
  /** Messages sent in `load` on connect (`HISTORY_LIMIT`, default 50). */
  historyLimit: number;
  /** Longest accepted message, in characters (`MAX_MESSAGE_LENGTH`, default 2000). */
  maxMessageLength: number;
  /** Allowed CORS origins (`CORS_ORIGIN`, comma-separated or `*`; unset = no CORS headers). */
  corsOrigin?: string[] | "*";
  /** PEM certificate and key files; both set → HTTPS/WSS (`TLS_CERT_FILE`, `TLS_KEY_FILE`). */
  tls?: { certFile: string; keyFile: string };
  /** Milliseconds between server pings (`PING_INTERVAL`, default 25000). */
  pingInterval: number;
  /** Milliseconds to wait for a pong (`PING_TIMEOUT`, default 20000). */
  pingTimeout: number;
  /** Largest accepted Engine.IO payload in bytes (`MAX_HTTP_BUFFER_SIZE`, default 1000000). */
  maxHttpBufferSize: number;
  /** Most messages in a reconnecting client's catch-up `load` (`CATCHUP_LIMIT`, default 1000). */
  catchupLimit: number;
  /** Messages expire this many ms after they are sent (`HISTORY_MAX_AGE`, e.g. `30d`; unset = never). */
  historyMaxAgeMs?: number;
  /** Keep at most this many messages (`HISTORY_MAX_COUNT`; unset = all; ≥ HISTORY_LIMIT). */
  historyMaxCount?: number;
  /** Messages per user per minute (`RATE_LIMIT_PER_MIN`, default 60). */
  rateLimitPerMinute: number;
  /** Messages a user may send at once (`RATE_LIMIT_BURST`, default 20). */
  rateLimitBurst: number;
  /** `typing` events per user per minute (`RATE_LIMIT_TYPING_PER_MIN`, default 120; burst a sixth). */
  typingLimitPerMinute: number;
  /** `history` requests per user per minute (`RATE_LIMIT_HISTORY_PER_MIN`, default 60; burst a sixth). */
  historyLimitPerMinute: number;
  /** `auth:refresh` requests per user per minute (`RATE_LIMIT_REFRESH_PER_MIN`, default 10; burst a sixth). */
  refreshLimitPerMinute: number;
  /** New connections per client IP per minute (`HANDSHAKE_LIMIT_PER_MIN`, default 120; 0 = off). */
  handshakeLimitPerMinute: number;
  /**
   * Reverse proxies whose `X-Forwarded-For` names the client (`TRUSTED_PROXIES`, comma-separated
   * addresses and CIDRs; default none: the TCP peer is the client).
   */
  trustedProxies: readonly string[];
  /** Simultaneous connections per user (`MAX_SOCKETS_PER_USER`, default 10). */
  maxSocketsPerUser: number;
  /** The room every connection is in; events without a room go there (`DEFAULT_ROOM`, `general`). */
  defaultRoom: string;
  /** Room ids or `prefix-*` patterns anyone may join (`PUBLIC_ROOMS`, comma-separated; `general`). */
  publicRooms: readonly string[];
  /** Most rooms one connection may be in at once (`MAX_ROOMS_PER_SOCKET`, default 100). */
  maxRoomsPerSocket: number;
  /** `join` and `leave` per user per minute (`RATE_LIMIT_JOIN_PER_MIN`, default 60; burst a sixth). */
  joinLimitPerMinute: number;
  /** `read` markers per user per minute (`RATE_LIMIT_READ_PER_MIN`, default 120; burst a sixth). */
  readLimitPerMinute: number;
  /** `rooms` lists per user per minute (`RATE_LIMIT_ROOMS_PER_MIN`, default 12; burst a sixth). */
  roomsLimitPerMinute: number;
  /**
   * Packets one connection may send per second, ten seconds' worth at once; more closes it
   * (`MAX_PACKETS_PER_SECOND`, default 50; 0 = off).
   */
  maxPacketsPerSecond: number;
  /** Serve `POST /dev/token` so the demo page can log in without an issuer (`DEV_LOGIN`, default off). */
  devLogin: boolean;
  /** Bearer token required on `/metrics` (`METRICS_TOKEN`; unset = open). */
  metricsToken?: string;
  /** Lowest log level written (`LOG_LEVEL`: debug, info, warn, error; default info). */
  logLevel: "debug" | "info" | "warn" | "error";
  /** Most ms a graceful shutdown may take before the process exits anyway (`SHUTDOWN_TIMEOUT`, default `10s`). */
  shutdownTimeoutMs: number;
  /**
   * How long socket.io keeps a dropped session for recovery (`CONNECTION_RECOVERY`, default 0 =
   * off). When on, socket.io appends its offset to every broadcast: clients other than the
   * JavaScript one then see an extra argument.
   */
  connectionRecoveryMs: number;
  /** Large WebSocket frames are written without a copy (`DENO_USE_WRITEV`, default on; see main.ts). */
  vectoredWrites: boolean;
  /** Under load, ms to gather messages into the next KV commit (`COMMIT_GATHER`, default `1ms`; 0 = off). */
  commitGatherMs: number;
}

/** The defaults used when a variable is unset. */
export const DEFAULTS = {
  port: 3000,
  hostname: "0.0.0.0",
  kvPath: "./data/chat.kv",
  kvLeaseMs: 15_000,
  historyLimit: 50,
  maxMessageLength: 2000,
  pingInterval: 25_000,
  pingTimeout: 20_000,
  maxHttpBufferSize: 1_000_000,
  catchupLimit: 1000,
  rateLimitPerMinute: 60,
  rateLimitBurst: 20,
  typingLimitPerMinute: 120,
  historyLimitPerMinute: 60,
  refreshLimitPerMinute: 10,
  handshakeLimitPerMinute: 120,
  trustedProxies: [],
  maxSocketsPerUser: 10,
  defaultRoom: "general",
  publicRooms: ["general"],
  maxRoomsPerSocket: 100,
  joinLimitPerMinute: 60,
  readLimitPerMinute: 120,
  roomsLimitPerMinute: 12,
  maxPacketsPerSecond: 50,
  connectionRecoveryMs: 0,
  commitGatherMs: 1,
  vectoredWrites: true,
  devLogin: false,
  logLevel: "info",
  shutdownTimeoutMs: 10_000,
} as const;

// ---- auth: JWT_SECRET | JWT_PUBLIC_KEY | JWT_JWKS_URL, JWT_ALGORITHMS, JWT_ISSUER, JWT_AUDIENCE,
// ---- REQUIRE_WRITE_SCOPE (owned by the auth work; keep other settings outside this block)

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

function readList(env: Env, name: string): string[] | undefined {
  const values = readString(env, name)?.split(",").map((value) => value.trim()).filter(Boolean);
  return values === undefined || values.length === 0 ? undefined : values;
}

function readBoolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = readString(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (raw === "1" || raw === "true") return true;
  if (raw === "0" || raw === "false") return false;
  throw new ConfigError(name, `expected 1, true, 0 or false, got "${raw}"`);
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

// ---- end auth

/** A configuration error; `variable` names the offending environment variable. */
export class ConfigError extends Error {
  readonly code = "invalid_config";
  constructor(readonly variable: string, detail: string) {
    super(`${variable}: ${detail}`);
    this.name = "ConfigError";
  }
}

type Env = Record<string, string | undefined>;

function readInteger(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `expected a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) {
    throw new ConfigError(name, `expected a number from ${min} to ${max}, got ${value}`);
  }
  return value;
}

function readString(env: Env, name: string): string | undefined {
  const raw = env[name]?.trim();
  return raw === undefined || raw === "" ? undefined : raw;
}

function readDuration(env: Env, name: string, fallback?: number): number | undefined {
  const raw = readString(env, name);
  if (raw === undefined) return fallback;
  const ms = parseDuration(raw);
  if (ms === undefined) {
    throw new ConfigError(name, `expected a duration like 90s, 15m, 12h or 30d, got "${raw}"`);
  }
  return ms;
}

function readUrl(env: Env, name: string, protocols: string[]): string | undefined {
  const raw = readString(env, name);
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, `"${raw}" is not a URL`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(
      name,
      `expected a ${protocols.join(" or ")}// URL, got "${url.protocol}"`,
    );
  }
  return raw;
}

function readKvLocation(env: Env): string {
  const url = readUrl(env, "KV_URL", ["http:", "https:"]);
  const path = readString(env, "KV_PATH");
  if (url !== undefined && path !== undefined) {
    throw new ConfigError("KV_URL", "set KV_PATH or KV_URL, not both");
  }
  return url ?? path ?? DEFAULTS.kvPath;
}

function readKvLease(env: Env): number {
  const leaseMs = readDuration(env, "KV_LEASE", DEFAULTS.kvLeaseMs)!;
  if (leaseMs < 1000 || leaseMs > 600_000) {
    throw new ConfigError("KV_LEASE", "must be from 1s to 10m");
  }
  return leaseMs;
}

function readInstanceId(env: Env): string {
  const raw = readString(env, "INSTANCE_ID");
  if (raw === undefined) return crypto.randomUUID().slice(0, 8);
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(raw)) {
    throw new ConfigError("INSTANCE_ID", "use 1-64 letters, digits, '.', '_' or '-'");
  }
  return raw;
}

function readCors(env: Env): string[] | "*" | undefined {
  const raw = readString(env, "CORS_ORIGIN");
  if (raw === undefined) return undefined;
  if (raw === "*") return "*";
  const origins = raw.split(",").map((origin) => origin.trim()).filter(Boolean);
  for (const origin of origins) {
    let parsed: URL;
    try {
      parsed = new URL(origin);
    } catch {
      throw new ConfigError(
        "CORS_ORIGIN",
        `"${origin}" is not an origin like https://chat.example`,
      );
    }
    if (parsed.origin !== origin) {
      throw new ConfigError("CORS_ORIGIN", `"${origin}" is not an origin (try "${parsed.origin}")`);
    }
  }
  return origins;
}

function readTrustedProxies(env: Env): string[] {
  const entries = readList(env, "TRUSTED_PROXIES") ?? [];
  for (const entry of entries) {
    if (parseAddressRange(entry) === undefined) {
      throw new ConfigError(
        "TRUSTED_PROXIES",
        `"${entry}" is not an IPv4/IPv6 address or CIDR (like 10.0.0.0/8 or fd00::/8)`,
      );
    }
  }
  return entries;
}

function readTls(env: Env): Config["tls"] {
  const certFile = readString(env, "TLS_CERT_FILE");
  const keyFile = readString(env, "TLS_KEY_FILE");
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined) {
    throw new ConfigError("TLS_CERT_FILE", "is required with TLS_KEY_FILE");
  }
  if (keyFile === undefined) {
    throw new ConfigError("TLS_KEY_FILE", "is required with TLS_CERT_FILE");
  }
  return { certFile, keyFile };
}

/**
 * The most bytes one character of message text takes in a frame: a control character or a lone
 * surrogate is escaped by JSON as `\uXXXX`.
 */
const MAX_BYTES_PER_CHARACTER = 6;
/** A message's id, author, time and JSON punctuation, at most (ids and names are bounded). */
const MESSAGE_OVERHEAD_BYTES = 512;
/** The largest history (on connect or as a catch-up) the server agrees to deliver: 64 MiB. */
export const MAX_HISTORY_BYTES = 64 * 2 ** 20;

/** The most bytes one connection's history can take, however its messages are written. */
export function largestHistoryBytes(
  config: Pick<Config, "historyLimit" | "catchupLimit" | "maxMessageLength">,
): number {
  const messages = Math.max(config.historyLimit, config.catchupLimit);
  return messages * (config.maxMessageLength * MAX_BYTES_PER_CHARACTER + MESSAGE_OVERHEAD_BYTES);
}

/** Refuses history settings whose largest history could never be delivered to one client. */
function checkDeliverable(config: Config): void {
  const bytes = largestHistoryBytes(config);
  if (bytes <= MAX_HISTORY_BYTES) return;
  const variable = config.catchupLimit >= config.historyLimit ? "CATCHUP_LIMIT" : "HISTORY_LIMIT";
  const megabytes = (bytes / 2 ** 20).toFixed(0);
  throw new ConfigError(
    variable,
    `${variable} × MAX_MESSAGE_LENGTH allows a history of up to ${megabytes} MiB, over the ` +
      `${MAX_HISTORY_BYTES / 2 ** 20} MiB one connection may be sent; lower one of them`,
  );
}

/** Parses and validates the whole configuration; throws {@link ConfigError} on the first bad value. */
export function loadConfig(env: Env): Config {
  const hostname = readString(env, "HOSTNAME") ?? DEFAULTS.hostname;
  const historyLimit = readInteger(env, "HISTORY_LIMIT", DEFAULTS.historyLimit, 0, 1000);
  const config: Config = {
    auth: readAuthConfig(env),
    port: readInteger(env, "PORT", DEFAULTS.port, 0, 65_535),
    hostname,
    kvPath: readKvLocation(env),
    kvLeaseMs: readKvLease(env),
    redisUrl: readUrl(env, "REDIS_URL", ["redis:", "rediss:"]),
    instanceId: readInstanceId(env),
    historyLimit,
    maxMessageLength: readInteger(
      env,
      "MAX_MESSAGE_LENGTH",
      DEFAULTS.maxMessageLength,
      1,
      // A Deno KV value holds at most 64 KiB: 10,000 characters fit even at 4 bytes each.
      10_000,
    ),
    corsOrigin: readCors(env),
    trustedProxies: readTrustedProxies(env),
    tls: readTls(env),
    pingInterval: readInteger(env, "PING_INTERVAL", DEFAULTS.pingInterval, 100, 3_600_000),
    pingTimeout: readInteger(env, "PING_TIMEOUT", DEFAULTS.pingTimeout, 100, 3_600_000),
    maxHttpBufferSize: readInteger(
      env,
      "MAX_HTTP_BUFFER_SIZE",
      DEFAULTS.maxHttpBufferSize,
      1024,
      100_000_000,
    ),
    ...readDeliveryConfig(env, historyLimit),
    ...readOperationsConfig(env),
  };
  checkDeliverable(config);
  return config;
}

/** Shortest HMAC secret, in bytes, that is as strong as HS256 itself (RFC 7518 §3.2). */
export const MIN_SECRET_BYTES = 32;

/**
 * Settings that are accepted but weaken the server, one sentence each for the operator: a
 * `JWT_SECRET` shorter than {@link MIN_SECRET_BYTES}.
 */
export function configWarnings(config: Config): string[] {
  const warnings: string[] = [];
  const { key } = config.auth;
  if (key.kind === "secret") {
    const bytes = new TextEncoder().encode(key.secret).length;
    if (bytes < MIN_SECRET_BYTES) {
      warnings.push(
        `JWT_SECRET is ${bytes} bytes; HS256 secrets should be at least ${MIN_SECRET_BYTES} bytes ` +
          "(RFC 7518 §3.2), or tokens can be forged by guessing it: use `openssl rand -base64 48`",
      );
    }
  }
  return warnings;
}

/** Dev login, metrics, logs and shutdown: the operator's settings. */
function readOperationsConfig(env: Env) {
  const logLevel = readString(env, "LOG_LEVEL")?.toLowerCase() ?? DEFAULTS.logLevel;
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(
      "LOG_LEVEL",
      `expected one of ${LOG_LEVELS.join(", ")}, got "${logLevel}"`,
    );
  }
  const shutdownTimeoutMs = readDuration(env, "SHUTDOWN_TIMEOUT", DEFAULTS.shutdownTimeoutMs)!;
  if (shutdownTimeoutMs < 100) throw new ConfigError("SHUTDOWN_TIMEOUT", "must be at least 100ms");
  const devLogin = readBoolean(env, "DEV_LOGIN", DEFAULTS.devLogin);
  if (devLogin && readString(env, "JWT_SECRET") === undefined) {
    throw new ConfigError("DEV_LOGIN", "needs JWT_SECRET: dev tokens are signed with it");
  }
  return {
    devLogin,
    metricsToken: readString(env, "METRICS_TOKEN"),
    logLevel: logLevel as Config["logLevel"],
    shutdownTimeoutMs,
    vectoredWrites: readBoolean(env, "DENO_USE_WRITEV", DEFAULTS.vectoredWrites),
  };
}

/** A room pattern: a room id, or a prefix of one ending in `*`. */
const ROOM_PATTERN = /^(?:[a-z0-9][a-z0-9_.-]{0,63}|[a-z0-9_.-]{0,63}\*)$/;

/** Rooms: the default room, who may join what, and the room events' budgets. */
function readRoomsConfig(env: Env) {
  const defaultRoom = readString(env, "DEFAULT_ROOM") ?? DEFAULTS.defaultRoom;
  if (!/^[a-z0-9][a-z0-9_.-]{0,63}$/.test(defaultRoom)) {
    throw new ConfigError(
      "DEFAULT_ROOM",
      `expected 1-64 of a-z 0-9 _ - . starting with a letter or digit, got "${defaultRoom}"`,
    );
  }
  const publicRooms = readList(env, "PUBLIC_ROOMS") ?? [...DEFAULTS.publicRooms];
  for (const pattern of publicRooms) {
    if (!ROOM_PATTERN.test(pattern)) {
      throw new ConfigError(
        "PUBLIC_ROOMS",
        `"${pattern}" is neither a room id nor a pattern like team-*`,
      );
    }
  }
  const covers = (pattern: string) =>
    pattern.endsWith("*") ? defaultRoom.startsWith(pattern.slice(0, -1)) : pattern === defaultRoom;
  if (!publicRooms.some(covers)) {
    throw new ConfigError(
      "PUBLIC_ROOMS",
      `must include DEFAULT_ROOM "${defaultRoom}" (every connection is in it)`,
    );
  }
  const perMinute = (name: string, fallback: number) =>
    readInteger(env, name, fallback, 1, 1_000_000);
  return {
    defaultRoom,
    publicRooms,
    maxRoomsPerSocket: readInteger(
      env,
      "MAX_ROOMS_PER_SOCKET",
      DEFAULTS.maxRoomsPerSocket,
      1,
      10_000,
    ),
    joinLimitPerMinute: perMinute("RATE_LIMIT_JOIN_PER_MIN", DEFAULTS.joinLimitPerMinute),
    readLimitPerMinute: perMinute("RATE_LIMIT_READ_PER_MIN", DEFAULTS.readLimitPerMinute),
    roomsLimitPerMinute: perMinute("RATE_LIMIT_ROOMS_PER_MIN", DEFAULTS.roomsLimitPerMinute),
  };
}

/** History, catch-up and limits: the delivery settings. */
function readDeliveryConfig(env: Env, historyLimit: number) {
  const historyMaxCount = readString(env, "HISTORY_MAX_COUNT") === undefined
    ? undefined
    : readInteger(env, "HISTORY_MAX_COUNT", 0, Math.max(1, historyLimit), 10_000_000);
  const historyMaxAgeMs = readDuration(env, "HISTORY_MAX_AGE");
  if (historyMaxAgeMs !== undefined && historyMaxAgeMs < 60_000) {
    throw new ConfigError("HISTORY_MAX_AGE", "must be at least 1m");
  }
  const connectionRecoveryMs = readDuration(
    env,
    "CONNECTION_RECOVERY",
    DEFAULTS.connectionRecoveryMs,
  )!;
  const commitGatherMs = readDuration(env, "COMMIT_GATHER", DEFAULTS.commitGatherMs)!;
  if (commitGatherMs > 100) throw new ConfigError("COMMIT_GATHER", "must be at most 100ms");
  return {
    catchupLimit: readInteger(env, "CATCHUP_LIMIT", DEFAULTS.catchupLimit, 1, 10_000),
    commitGatherMs,
    historyMaxAgeMs,
    historyMaxCount,
    rateLimitPerMinute: readInteger(
      env,
      "RATE_LIMIT_PER_MIN",
      DEFAULTS.rateLimitPerMinute,
      1,
      1_000_000,
    ),
    rateLimitBurst: readInteger(env, "RATE_LIMIT_BURST", DEFAULTS.rateLimitBurst, 1, 1_000_000),
    typingLimitPerMinute: readInteger(
      env,
      "RATE_LIMIT_TYPING_PER_MIN",
      DEFAULTS.typingLimitPerMinute,
      1,
      1_000_000,
    ),
    historyLimitPerMinute: readInteger(
      env,
      "RATE_LIMIT_HISTORY_PER_MIN",
      DEFAULTS.historyLimitPerMinute,
      1,
      1_000_000,
    ),
    refreshLimitPerMinute: readInteger(
      env,
      "RATE_LIMIT_REFRESH_PER_MIN",
      DEFAULTS.refreshLimitPerMinute,
      1,
      1_000_000,
    ),
    handshakeLimitPerMinute: readInteger(
      env,
      "HANDSHAKE_LIMIT_PER_MIN",
      DEFAULTS.handshakeLimitPerMinute,
      0,
      1_000_000,
    ),
    maxSocketsPerUser: readInteger(
      env,
      "MAX_SOCKETS_PER_USER",
      DEFAULTS.maxSocketsPerUser,
      1,
      10_000,
    ),
    ...readRoomsConfig(env),
    maxPacketsPerSecond: readInteger(
      env,
      "MAX_PACKETS_PER_SECOND",
      DEFAULTS.maxPacketsPerSecond,
      0,
      1_000_000,
    ),
    connectionRecoveryMs,
  };
}
