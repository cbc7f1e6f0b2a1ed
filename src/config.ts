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
import { type AuthConfig, readAuthConfig } from "./auth_config.ts";
import { ConfigError, type Env, readBoolean, readList, readString } from "./settings.ts";

export { ConfigError } from "./settings.ts";

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
  maxPacketsPerSecond: 50,
  connectionRecoveryMs: 0,
  commitGatherMs: 1,
  vectoredWrites: true,
  devLogin: false,
  logLevel: "info",
  shutdownTimeoutMs: 10_000,
} as const;

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
