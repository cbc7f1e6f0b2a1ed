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

/** Server configuration, with the defaults documented on each field. */
export interface Config {
  /** HS256 secret that signs client tokens (`JWT_SECRET`, required). */
  jwtSecret: string;
  /** TCP port (`PORT`, default 3000; 0 picks a free port). */
  port: number;
  /** Interface to listen on (`HOSTNAME`, default `0.0.0.0`). */
  hostname: string;
  /** Deno KV path (`KV_PATH`, default `./data/chat.kv`; `:memory:` keeps nothing). */
  kvPath: string;
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
}

/** The defaults used when a variable is unset. */
export const DEFAULTS = {
  port: 3000,
  hostname: "0.0.0.0",
  kvPath: "./data/chat.kv",
  historyLimit: 50,
  maxMessageLength: 2000,
  pingInterval: 25_000,
  pingTimeout: 20_000,
  maxHttpBufferSize: 1_000_000,
} as const;

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

/** Reads `JWT_SECRET`, the one variable the server cannot start without. */
export function readJwtSecret(env: Env): string {
  const secret = env.JWT_SECRET;
  if (secret === undefined || secret === "") {
    throw new ConfigError("JWT_SECRET", "is required (the HS256 secret that signs client tokens)");
  }
  return secret;
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

/** Parses and validates the whole configuration; throws {@link ConfigError} on the first bad value. */
export function loadConfig(env: Env): Config {
  const hostname = readString(env, "HOSTNAME") ?? DEFAULTS.hostname;
  return {
    jwtSecret: readJwtSecret(env),
    port: readInteger(env, "PORT", DEFAULTS.port, 0, 65_535),
    hostname,
    kvPath: readString(env, "KV_PATH") ?? DEFAULTS.kvPath,
    historyLimit: readInteger(env, "HISTORY_LIMIT", DEFAULTS.historyLimit, 0, 1000),
    maxMessageLength: readInteger(
      env,
      "MAX_MESSAGE_LENGTH",
      DEFAULTS.maxMessageLength,
      1,
      // A Deno KV value holds at most 64 KiB: 10,000 characters fit even at 4 bytes each.
      10_000,
    ),
    corsOrigin: readCors(env),
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
  };
}
