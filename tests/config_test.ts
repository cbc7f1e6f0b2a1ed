import assert from "node:assert/strict";
import { AUTH_DEFAULTS } from "../src/auth/settings.ts";
import {
  CONFIGURATION_PAGE,
  configurationTable,
  findConfigurationTable,
} from "../scripts/config_table.ts";
import {
  ALL_SETTINGS,
  ConfigError,
  configWarnings,
  DEFAULTS,
  largestHistoryBytes,
  loadConfig,
  MAX_HISTORY_BYTES,
} from "../src/config.ts";
import { tempFile } from "./helpers/dispose.ts";

const BASE = { JWT_SECRET: "s3cr3t" };
const SECRET_AUTH = {
  key: { kind: "secret", secret: "s3cr3t" },
  algorithms: ["HS256"],
  requireWriteScope: false,
  clockToleranceSeconds: 5,
};

function refusal(env: Record<string, string>): ConfigError {
  try {
    loadConfig({ ...BASE, ...env });
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error;
  }
  assert.fail(`accepted ${JSON.stringify(env)}`);
}

Deno.test("config: defaults apply when only JWT_SECRET is set", () => {
  const config = loadConfig(BASE);
  assert.deepEqual(config.auth, SECRET_AUTH);
  assert.equal(config.port, DEFAULTS.port);
  assert.equal(config.hostname, "0.0.0.0");
  assert.equal(config.kvPath, "./data/chat.kv");
  assert.equal(config.kvLeaseMs, 15_000);
  assert.equal(config.historyLimit, 50);
  assert.equal(config.maxMessageLength, 2000);
  assert.equal(config.pingInterval, 25_000);
  assert.equal(config.pingTimeout, 20_000);
  assert.equal(config.maxHttpBufferSize, 1_000_000);
  assert.equal(config.corsOrigin, undefined);
  assert.equal(config.tls, undefined);
  assert.equal(config.catchupLimit, 1000);
  assert.equal(config.historyMaxAgeMs, undefined);
  assert.equal(config.membershipMaxAgeMs, 90 * 86_400_000);
  assert.equal(config.historyMaxCount, undefined);
  assert.equal(config.rateLimitPerMinute, 60);
  assert.equal(config.rateLimitBurst, 20);
  assert.equal(config.handshakeLimitPerMinute, 120);
  assert.deepEqual(config.trustedProxies, []);
  assert.equal(config.maxSocketsPerUser, 10);
  assert.equal(config.connectionRecoveryMs, 0);
  assert.equal(config.typingLimitPerMinute, 120);
  assert.equal(config.historyLimitPerMinute, 60);
  assert.equal(config.refreshLimitPerMinute, 10);
  assert.equal(config.devLogin, false);
  assert.equal(config.metricsToken, undefined);
  assert.equal(config.logLevel, "info");
  assert.equal(config.shutdownTimeoutMs, 10_000);
});

Deno.test("config: JWT_SECRET is required", () => {
  assert.throws(() => loadConfig({}), (error: ConfigError) => error.variable === "JWT_SECRET");
  assert.throws(() => loadConfig({ JWT_SECRET: "" }), ConfigError);
});

const WEBHOOK_SECRET = "whsec_" + btoa("0123456789abcdef0123456789abcdef");

Deno.test("config: webhooks need a whsec_ secret of 24–64 bytes, http(s) URLs and known events", () => {
  const refused = (env: Record<string, string>, variable: string, pattern: RegExp) =>
    assert.throws(
      () => loadConfig({ ...BASE, ...env }),
      (error: ConfigError) => error.variable === variable && pattern.test(error.message),
    );
  const url = { WEBHOOK_URL: "https://a.example/hooks" };
  refused(url, "WEBHOOK_SECRET", /required with WEBHOOK_URL/);
  refused({ ...url, WEBHOOK_SECRET: "not-whsec" }, "WEBHOOK_SECRET", /whsec_/);
  refused({ ...url, WEBHOOK_SECRET: "whsec_" + btoa("short") }, "WEBHOOK_SECRET", /24 to 64/);
  refused({ ...url, WEBHOOK_SECRET: "whsec_%%%" }, "WEBHOOK_SECRET", /base64/);
  refused({ WEBHOOK_URL: "ftp://a.example/" }, "WEBHOOK_URL", /http/);
  const nine = Array.from({ length: 9 }, (_, n) => `https://h${n}.example/`).join(",");
  refused({ WEBHOOK_URL: nine }, "WEBHOOK_URL", /at most 8 URLs, got 9/);
  const publish = { PUBLISH_HOOK_URL: "https://a.example/publish" };
  refused(publish, "WEBHOOK_SECRET", /required with PUBLISH_HOOK_URL/);
  refused(
    { ...publish, WEBHOOK_SECRET, PUBLISH_HOOK_FAILURE: "maybe" },
    "PUBLISH_HOOK_FAILURE",
    /allow, deny/,
  );
  refused({ WEBHOOK_EVENTS: "message.created,message.exploded" }, "WEBHOOK_EVENTS", /exploded/);
  const config = loadConfig({ ...BASE, ...url, WEBHOOK_SECRET });
  assert.equal(config.webhookEvents.length, 8, "all by default");
  // A refusal never repeats the secret.
  assert.throws(
    () => loadConfig({ ...BASE, ...url, WEBHOOK_SECRET: "whsec_c2VjcmV0" }),
    (error: ConfigError) => !error.message.includes("c2VjcmV0"),
  );
  assert.deepEqual(loadConfig(BASE).webhookUrls, [], "off by default");
});

Deno.test("config: every variable is parsed", () => {
  const config = loadConfig({
    ...BASE,
    PORT: "8080",
    HOST: "127.0.0.1",
    KV_PATH: ":memory:",
    KV_LEASE: "30s",
    HISTORY_LIMIT: "20",
    MAX_MESSAGE_LENGTH: "500",
    CORS_ORIGIN: "https://a.example, http://localhost:5173",
    TLS_CERT_FILE: "cert.pem",
    TLS_KEY_FILE: "key.pem",
    PING_INTERVAL: "1000",
    PING_TIMEOUT: "800",
    MAX_HTTP_BUFFER_SIZE: "2048",
    CATCHUP_LIMIT: "300",
    HISTORY_MAX_AGE: "30d",
    HISTORY_MAX_COUNT: "5000",
    RATE_LIMIT_PER_MIN: "30",
    RATE_LIMIT_BURST: "5",
    RATE_LIMIT_TYPING_PER_MIN: "90",
    RATE_LIMIT_HISTORY_PER_MIN: "30",
    RATE_LIMIT_REFRESH_PER_MIN: "4",
    HANDSHAKE_LIMIT_PER_MIN: "0",
    TRUSTED_PROXIES: "10.0.0.0/8, 127.0.0.1,fd00::/8",
    MAX_SOCKETS_PER_USER: "3",
    MAX_PACKETS_PER_SECOND: "20",
    DEFAULT_ROOM: "lobby",
    PUBLIC_ROOMS: "lobby, team-*",
    MAX_ROOMS_PER_SOCKET: "7",
    MAX_LISTED_USERS: "25",
    EDIT_WINDOW: "5m",
    MAX_ERROR_EVENTS_PER_SECOND: "3",
    RATE_LIMIT_JOIN_PER_MIN: "30",
    RATE_LIMIT_READ_PER_MIN: "40",
    READ_RECEIPTS: "0",
    RATE_LIMIT_ROOMS_PER_MIN: "5",
    RATE_LIMIT_REACT_PER_MIN: "7",
    CONNECTION_RECOVERY: "30s",
    COMMIT_GATHER: "5ms",
    DENO_USE_WRITEV: "0",
    DEV_LOGIN: "1",
    API_AUTH_FAILURES_PER_MIN: "12",
    METRICS_TOKEN: "scrape-me",
    PUSH_PRIVATE_ENDPOINTS: "1",
    LOG_LEVEL: "DEBUG",
    SHUTDOWN_TIMEOUT: "3s",
    REDIS_URL: "redis://127.0.0.1:6379/0",
    INSTANCE_ID: "chat-1",
    DATABASE_POOL_SIZE: "5",
    DATABASE_STATEMENT_TIMEOUT: "5s",
    WEBHOOK_URL: "https://a.example/hooks, http://b.internal:8080/",
    WEBHOOK_SECRET: WEBHOOK_SECRET,
    WEBHOOK_EVENTS: "message.created, message.missed",
    WEBHOOK_TIMEOUT: "2s",
    WEBHOOK_MAX_AGE: "1h",
    WEBHOOK_OUTBOX_MAX: "500",
    WEBHOOK_DEBOUNCE: "1s",
    MISSED_AFTER: "1m",
    PUBLISH_HOOK_URL: "https://a.example/publish",
    PUBLISH_HOOK_TIMEOUT: "500ms",
    PUBLISH_HOOK_FAILURE: "Allow",
  });
  assert.deepEqual(config, {
    auth: SECRET_AUTH,
    port: 8080,
    hostname: "127.0.0.1",
    kvPath: ":memory:",
    kvLeaseMs: 30_000,
    databasePoolSize: 5,
    databaseStatementTimeoutMs: 5000,
    redisUrl: "redis://127.0.0.1:6379/0",
    instanceId: "chat-1",
    historyLimit: 20,
    maxMessageLength: 500,
    corsOrigin: ["https://a.example", "http://localhost:5173"],
    trustedProxies: ["10.0.0.0/8", "127.0.0.1", "fd00::/8"],
    tls: { certFile: "cert.pem", keyFile: "key.pem" },
    pingInterval: 1000,
    pingTimeout: 800,
    maxHttpBufferSize: 2048,
    catchupLimit: 300,
    commitGather: 5,
    vectoredWrites: false,
    historyMaxAgeMs: 30 * 86_400_000,
    membershipMaxAgeMs: 30 * 86_400_000,
    historyMaxCount: 5000,
    rateLimitPerMinute: 30,
    rateLimitBurst: 5,
    typingLimitPerMinute: 90,
    historyLimitPerMinute: 30,
    refreshLimitPerMinute: 4,
    handshakeLimitPerMinute: 0,
    maxSocketsPerUser: 3,
    maxPacketsPerSecond: 20,
    defaultRoom: "lobby",
    publicRooms: ["lobby", "team-*"],
    maxRoomsPerSocket: 7,
    maxListedUsers: 25,
    editWindowMs: 300_000,
    errorEventsPerSecond: 3,
    joinLimitPerMinute: 30,
    readLimitPerMinute: 40,
    readReceipts: false,
    roomsLimitPerMinute: 5,
    reactLimitPerMinute: 7,
    connectionRecoveryMs: 30_000,
    devLogin: true,
    apiAuthFailuresPerMinute: 12,
    metricsToken: "scrape-me",
    pushPrivateEndpoints: true,
    logLevel: "debug",
    shutdownTimeoutMs: 3000,
    webhookUrls: ["https://a.example/hooks", "http://b.internal:8080/"],
    webhookSecret: WEBHOOK_SECRET,
    webhookEvents: ["message.created", "message.missed"],
    webhookTimeoutMs: 2000,
    webhookMaxAgeMs: 3_600_000,
    webhookOutboxMax: 500,
    webhookDebounceMs: 1000,
    missedAfterMs: 60_000,
    publishHookUrl: "https://a.example/publish",
    publishHookTimeoutMs: 500,
    publishHookFailure: "allow",
  });
  assert.equal(loadConfig({ ...BASE, CORS_ORIGIN: "*" }).corsOrigin, "*");
  const remote = loadConfig({ ...BASE, KV_URL: "https://kv.example/db" });
  assert.equal(remote.kvPath, "https://kv.example/db");
  assert.throws(
    () => loadConfig({ ...BASE, KV_URL: "https://kv.example/db", KV_PATH: "x.kv" }),
    (error: ConfigError) => error.variable === "KV_URL",
  );
  assert.match(loadConfig(BASE).instanceId, /^[0-9a-f]{8}$/);
});

Deno.test("config: DATABASE_URL puts the history in PostgreSQL, instead of KV, never both", () => {
  const kv = loadConfig(BASE);
  assert.equal(kv.databaseUrl, undefined);
  assert.equal(kv.databasePoolSize, 10);
  assert.equal(kv.databaseStatementTimeoutMs, 10_000);
  const url = "postgres://chat:pw@db.internal:5432/chat?sslmode=verify-full";
  const config = loadConfig({
    ...BASE,
    DATABASE_URL: url,
    DATABASE_POOL_SIZE: "25",
    DATABASE_STATEMENT_TIMEOUT: "30s",
  });
  assert.equal(config.databaseUrl, url);
  assert.equal(config.databasePoolSize, 25);
  assert.equal(config.databaseStatementTimeoutMs, 30_000);
  assert.equal(
    loadConfig({ ...BASE, DATABASE_STATEMENT_TIMEOUT: "0" }).databaseStatementTimeoutMs,
    0,
  );
  const kvSettings: Record<string, string>[] = [
    { KV_PATH: "./data/chat.kv" },
    { KV_URL: "https://kv.example/db" },
  ];
  for (const kvSetting of kvSettings) {
    const error = refusal({ DATABASE_URL: url, ...kvSetting });
    assert.equal(error.variable, "DATABASE_URL");
    assert.match(error.message, /not both/);
  }
  const badScheme = refusal({ DATABASE_URL: "mysql://chat:hunter2@db.internal/chat" });
  assert.ok(!badScheme.message.includes("hunter2"), "a refusal never repeats the password");
});

Deno.test("config: invalid values are refused with the variable's name", () => {
  const cases: [string, string][] = [
    ["PORT", "http"],
    ["PORT", "70000"],
    ["PORT", "3.5"],
    ["HISTORY_LIMIT", "-1"],
    ["HISTORY_LIMIT", "1001"],
    ["MAX_MESSAGE_LENGTH", "0"],
    ["MAX_MESSAGE_LENGTH", "20000"],
    ["PING_INTERVAL", "10"],
    ["PING_TIMEOUT", "soon"],
    ["MAX_HTTP_BUFFER_SIZE", "1"],
    ["CORS_ORIGIN", "not a url"],
    ["CORS_ORIGIN", "https://a.example/path"],
    ["TLS_CERT_FILE", "cert.pem"],
    ["CATCHUP_LIMIT", "0"],
    ["HISTORY_MAX_AGE", "forever"],
    ["HISTORY_MAX_AGE", "10s"],
    ["HISTORY_MAX_COUNT", "10"],
    ["MEMBERSHIP_MAX_AGE", "10s"],
    ["RATE_LIMIT_PER_MIN", "0"],
    ["RATE_LIMIT_BURST", "many"],
    ["MAX_SOCKETS_PER_USER", "0"],
    ["CONNECTION_RECOVERY", "2 minutes"],
    ["COMMIT_GATHER", "1s"],
    ["DENO_USE_WRITEV", "yes"],
    ["COMMIT_GATHER", "-1"],
    ["DEV_LOGIN", "yes"],
    ["LOG_LEVEL", "verbose"],
    ["SHUTDOWN_TIMEOUT", "10ms"],
    ["REDIS_URL", "http://127.0.0.1:6379"],
    ["REDIS_URL", "not a url"],
    ["KV_URL", "redis://kv.example"],
    ["INSTANCE_ID", "has spaces"],
    ["TRUSTED_PROXIES", "10.0.0.0/33"],
    ["KV_LEASE", "500ms"],
    ["KV_LEASE", "1h"],
    ["KV_LEASE", "long"],
    ["TRUSTED_PROXIES", "127.0.0.1, proxy.internal"],
    ["DATABASE_URL", "mysql://db.internal/chat"],
    ["DATABASE_URL", "postgres://db.internal/chat?sslmode=sometimes"],
    ["DATABASE_POOL_SIZE", "0"],
    ["DATABASE_STATEMENT_TIMEOUT", "2h"],
  ];
  for (const [variable, value] of cases) {
    const error = refusal({ [variable]: value });
    const named = variable === "TLS_CERT_FILE" ? "TLS_KEY_FILE" : variable;
    assert.equal(error.variable, named, `${variable}=${value}`);
    assert.ok(error.message.startsWith(`${named}: `), error.message);
  }
});

Deno.test("config: a refusal says what is allowed, and where a limit comes from", () => {
  const cases: [Record<string, string>, string][] = [
    [{ HISTORY_LIMIT: "-1" }, 'HISTORY_LIMIT: expected a whole number from 0 to 1000, got "-1"'],
    [{ PORT: "70000" }, 'PORT: expected a whole number from 0 to 65535, got "70000"'],
    [
      { HISTORY_MAX_COUNT: "10" },
      'HISTORY_MAX_COUNT: expected a whole number from 50 (HISTORY_LIMIT) to 10000000, got "10"',
    ],
    [
      { HISTORY_LIMIT: "0", HISTORY_MAX_COUNT: "0" },
      'HISTORY_MAX_COUNT: expected a whole number from 1 to 10000000, got "0"',
    ],
    [
      { KV_LEASE: "500ms" },
      'KV_LEASE: expected a duration from 1s to 10m (like 500ms, 90s, 15m, 12h or 30d), got "500ms"',
    ],
    [{ COMMIT_GATHER: "1s" }, "COMMIT_GATHER: expected auto or a duration of at most 100ms"],
    [{ HISTORY_MAX_AGE: "forever" }, "HISTORY_MAX_AGE: expected a duration of at least 1m"],
    [
      { LOG_LEVEL: "verbose" },
      'LOG_LEVEL: expected one of debug, info, warn, error, got "verbose"',
    ],
    [{ DEV_LOGIN: "yes" }, 'DEV_LOGIN: expected 1, true, 0 or false, got "yes"'],
    [
      { REDIS_URL: "http://127.0.0.1:6379" },
      'REDIS_URL: expected a URL starting with redis:// or rediss://, got "http://127.0.0.1:6379"',
    ],
    [{ INSTANCE_ID: "has spaces" }, "INSTANCE_ID: expected 1 to 64 letters, digits"],
  ];
  for (const [env, message] of cases) {
    const { message: actual } = refusal(env);
    assert.ok(actual.startsWith(message), actual);
  }
});

// Auth variables. Config checks only the PEM's shape; tests/auth_keys_test.ts uses real keys.
const PEM =
  "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n" +
  "-----END PUBLIC KEY-----";
const JWKS_URL = "https://idp.example/.well-known/jwks.json";

function authRefusal(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
  assert.fail(`accepted ${JSON.stringify(env)}`);
}

Deno.test("config auth: exactly one key source is required", () => {
  const none = authRefusal({});
  assert.equal(none.variable, "JWT_SECRET");
  assert.match(none.message, /JWT_PUBLIC_KEY or JWT_JWKS_URL/);
  const several = authRefusal({ JWT_SECRET: "s", JWT_JWKS_URL: JWKS_URL });
  assert.equal(
    several.message,
    "JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL: set exactly one key source " +
      "(found JWT_SECRET and JWT_JWKS_URL)",
  );
  const all = authRefusal({ JWT_SECRET: "s", JWT_PUBLIC_KEY: PEM, JWT_JWKS_URL: JWKS_URL });
  assert.match(all.message, /found JWT_SECRET and JWT_PUBLIC_KEY and JWT_JWKS_URL/);
});

Deno.test("config auth: JWT_PUBLIC_KEY takes a PEM, with literal \\n, or @file", async () => {
  const inline = loadConfig({ JWT_PUBLIC_KEY: PEM }).auth;
  assert.deepEqual(inline, {
    key: { kind: "publicKey", pem: PEM },
    algorithms: ["RS256", "ES256", "EdDSA"],
    requireWriteScope: false,
    clockToleranceSeconds: AUTH_DEFAULTS.clockToleranceSeconds,
  });
  const escaped = loadConfig({ JWT_PUBLIC_KEY: PEM.replaceAll("\n", "\\n") }).auth;
  assert.deepEqual(escaped.key, { kind: "publicKey", pem: PEM });
  const certificate = PEM.replaceAll("PUBLIC KEY", "CERTIFICATE");
  assert.deepEqual(loadConfig({ JWT_PUBLIC_KEY: certificate }).auth.key, {
    kind: "publicKey",
    pem: certificate,
  });
  await using file = await tempFile({ suffix: ".pem" });
  await Deno.writeTextFile(file.path, `# the IdP's key\n${PEM}\n`);
  assert.deepEqual(loadConfig({ JWT_PUBLIC_KEY: `@${file.path}` }).auth.key, {
    kind: "publicKey",
    pem: PEM,
  });
});

Deno.test("config auth: a bad JWT_PUBLIC_KEY is refused", () => {
  const cases = [
    "not a key",
    "@/nonexistent/dir/key.pem",
    PEM.replaceAll("PUBLIC KEY", "RSA PUBLIC KEY"),
    PEM.replaceAll("PUBLIC KEY", "PRIVATE KEY"),
  ];
  for (const value of cases) {
    const error = authRefusal({ JWT_PUBLIC_KEY: value });
    assert.equal(error.variable, "JWT_PUBLIC_KEY", value);
  }
  assert.match(authRefusal({ JWT_PUBLIC_KEY: "@/nonexistent/key.pem" }).message, /cannot read/);
  assert.match(
    authRefusal({ JWT_PUBLIC_KEY: PEM.replaceAll("PUBLIC", "PRIVATE") }).message,
    /private key/,
  );
});

Deno.test("config auth: JWT_JWKS_URL must be an http(s) URL", () => {
  assert.deepEqual(loadConfig({ JWT_JWKS_URL: JWKS_URL }).auth.key, {
    kind: "jwks",
    url: JWKS_URL,
  });
  assert.equal(
    loadConfig({ JWT_JWKS_URL: "http://127.0.0.1:8080/jwks" }).auth.algorithms.join(),
    "RS256,ES256,EdDSA",
  );
  for (const value of ["idp.example/jwks", "ftp://idp.example/jwks", "file:///etc/jwks.json"]) {
    assert.equal(authRefusal({ JWT_JWKS_URL: value }).variable, "JWT_JWKS_URL", value);
  }
});

Deno.test("config auth: JWT_ALGORITHMS is an allow-list of known, key-appropriate names", () => {
  assert.deepEqual(
    loadConfig({ JWT_SECRET: "s", JWT_ALGORITHMS: " HS512, HS256,HS512 " }).auth.algorithms,
    ["HS512", "HS256"],
  );
  assert.deepEqual(
    loadConfig({ JWT_JWKS_URL: JWKS_URL, JWT_ALGORITHMS: "ES256" }).auth.algorithms,
    ["ES256"],
  );
  assert.deepEqual(
    loadConfig({ JWT_PUBLIC_KEY: PEM, JWT_ALGORITHMS: "PS256,Ed25519,ES384" }).auth.algorithms,
    ["PS256", "Ed25519", "ES384"],
  );
  const refused: [Record<string, string>, RegExp][] = [
    [{ JWT_SECRET: "s", JWT_ALGORITHMS: "none" }, /none is never accepted/],
    [{ JWT_PUBLIC_KEY: PEM, JWT_ALGORITHMS: "RS256,NONE" }, /none is never accepted/],
    [{ JWT_SECRET: "s", JWT_ALGORITHMS: "HS1024" }, /not a JWS algorithm/],
    [{ JWT_PUBLIC_KEY: PEM, JWT_ALGORITHMS: "rs256" }, /not a JWS algorithm/],
    [{ JWT_SECRET: "s", JWT_ALGORITHMS: ", ," }, /comma-separated/],
    [{ JWT_SECRET: "s", JWT_ALGORITHMS: "HS256,RS256" }, /RS256 needs JWT_PUBLIC_KEY/],
    [{ JWT_SECRET: "s", JWT_ALGORITHMS: "EdDSA" }, /EdDSA needs JWT_PUBLIC_KEY/],
    [{ JWT_PUBLIC_KEY: PEM, JWT_ALGORITHMS: "RS256,HS256" }, /HS256 needs JWT_SECRET/],
    [{ JWT_JWKS_URL: JWKS_URL, JWT_ALGORITHMS: "HS512" }, /HS512 needs JWT_SECRET/],
  ];
  for (const [env, message] of refused) {
    const error = authRefusal(env);
    assert.equal(error.variable, "JWT_ALGORITHMS", JSON.stringify(env));
    assert.match(error.message, message);
  }
});

Deno.test("config auth: JWT_ISSUER and JWT_AUDIENCE are optional lists", () => {
  const auth = loadConfig({
    JWT_JWKS_URL: JWKS_URL,
    JWT_ISSUER: "https://idp.example/",
    JWT_AUDIENCE: "chat, chat-staging,",
  }).auth;
  assert.deepEqual(auth.issuer, ["https://idp.example/"]);
  assert.deepEqual(auth.audience, ["chat", "chat-staging"]);
  const unset = loadConfig({ JWT_JWKS_URL: JWKS_URL, JWT_ISSUER: " ", JWT_AUDIENCE: "" }).auth;
  assert.equal("issuer" in unset, false);
  assert.equal("audience" in unset, false);
});

Deno.test("config auth: REQUIRE_WRITE_SCOPE is a boolean, off by default", () => {
  const read = (value: string) => loadConfig({ ...BASE, REQUIRE_WRITE_SCOPE: value }).auth;
  assert.equal(loadConfig(BASE).auth.requireWriteScope, false);
  for (const value of ["1", "true", "TRUE"]) assert.equal(read(value).requireWriteScope, true);
  for (const value of ["0", "false", ""]) assert.equal(read(value).requireWriteScope, false);
  for (const value of ["yes", "2", "on"]) {
    assert.equal(
      authRefusal({ ...BASE, REQUIRE_WRITE_SCOPE: value }).variable,
      "REQUIRE_WRITE_SCOPE",
    );
  }
});

Deno.test("config: TRUSTED_PROXIES names the bad entry in one line", () => {
  const error = refusal({ TRUSTED_PROXIES: "10.0.0.1, 300.1.1.1/8" });
  assert.equal(
    error.message,
    'TRUSTED_PROXIES: "300.1.1.1/8" is not an IPv4/IPv6 address or CIDR ' +
      "(like 10.0.0.0/8 or fd00::/8)",
  );
});

Deno.test("config: a JWT_SECRET under 32 bytes is accepted with one warning", () => {
  const short = loadConfig({ JWT_SECRET: "x".repeat(31) });
  assert.equal(short.auth.key.kind, "secret");
  const warnings = configWarnings(short);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /^JWT_SECRET is 31 bytes; .*at least 32 bytes \(RFC 7518 §3\.2\)/);
  assert.doesNotMatch(warnings[0], /\n/);
  // Bytes, not characters: 11 two-byte letters are 22 bytes.
  assert.match(configWarnings(loadConfig({ JWT_SECRET: "é".repeat(11) }))[0], /is 22 bytes/);
  assert.deepEqual(configWarnings(loadConfig({ JWT_SECRET: "x".repeat(32) })), []);
  assert.deepEqual(configWarnings(loadConfig({ JWT_SECRET: "é".repeat(16) })), []);
  assert.deepEqual(configWarnings(loadConfig({ JWT_JWKS_URL: "https://idp.example/jwks" })), []);
});

Deno.test("config: DEV_LOGIN needs JWT_SECRET", () => {
  assert.throws(
    () => loadConfig({ JWT_JWKS_URL: "https://idp.example/jwks.json", DEV_LOGIN: "1" }),
    (error: ConfigError) => error.variable === "DEV_LOGIN",
  );
});

Deno.test("config: MEMBERSHIP_MAX_AGE follows HISTORY_MAX_AGE unless set", () => {
  assert.equal(loadConfig(BASE).membershipMaxAgeMs, 90 * 86_400_000);
  assert.equal(loadConfig({ ...BASE, HISTORY_MAX_AGE: "12h" }).membershipMaxAgeMs, 43_200_000);
  const both = loadConfig({ ...BASE, HISTORY_MAX_AGE: "12h", MEMBERSHIP_MAX_AGE: "7d" });
  assert.equal(both.membershipMaxAgeMs, 7 * 86_400_000);
});

Deno.test("config: history settings that could never be delivered are refused, naming the setting", () => {
  assert.throws(
    () => loadConfig({ ...BASE, CATCHUP_LIMIT: "10000", MAX_MESSAGE_LENGTH: "10000" }),
    (error: ConfigError) =>
      error.variable === "CATCHUP_LIMIT" && /MAX_MESSAGE_LENGTH/.test(error.message) &&
      /64 MiB/.test(error.message),
  );
  const defaults = loadConfig(BASE);
  assert.ok(largestHistoryBytes(defaults) <= MAX_HISTORY_BYTES);
  // The largest deliverable combination at the longest messages.
  assert.ok(loadConfig({ ...BASE, CATCHUP_LIMIT: "1000", MAX_MESSAGE_LENGTH: "10000" }));
});

/** A markdown table's rows as trimmed cells, so that column padding does not count. */
function tableCells(table: string): string[][] {
  return table.trim().split("\n").map((row) =>
    row.slice(1, -1).split(/(?<!\\)\|/).map((cell) => cell.trim())
  );
}

Deno.test("config: docs/configuration.md's table is the one the settings generate", async () => {
  const page = await Deno.readTextFile(CONFIGURATION_PAGE);
  const { start, end } = findConfigurationTable(page);
  assert.deepEqual(
    tableCells(page.slice(start, end)),
    tableCells(configurationTable()),
    "docs/configuration.md's table is stale: run `deno task config-table --write`",
  );
});

Deno.test("config: every variable is declared once, with its doc", () => {
  const variables = ALL_SETTINGS.map((setting) => setting.variable);
  assert.deepEqual(variables, [...new Set(variables)]);
  for (const setting of ALL_SETTINGS) {
    assert.ok(setting.doc && setting.allowed && setting.defaultDoc, setting.variable);
  }
});

Deno.test("config: rooms — the default room must be public; ids and patterns are checked", () => {
  assert.throws(
    () => loadConfig({ ...BASE, DEFAULT_ROOM: "lobby" }),
    (error: ConfigError) =>
      error.variable === "PUBLIC_ROOMS" && /DEFAULT_ROOM "lobby"/.test(error.message),
  );
  assert.equal(
    loadConfig({ ...BASE, DEFAULT_ROOM: "lobby", PUBLIC_ROOMS: "lob*" }).defaultRoom,
    "lobby",
  );
  assert.throws(
    () => loadConfig({ ...BASE, DEFAULT_ROOM: "Lobby" }),
    (error: ConfigError) => error.variable === "DEFAULT_ROOM",
  );
  assert.throws(
    () => loadConfig({ ...BASE, PUBLIC_ROOMS: "general, bad room" }),
    (error: ConfigError) => error.variable === "PUBLIC_ROOMS" && /bad room/.test(error.message),
  );
});

Deno.test("config: HOST sets the interface; HOSTNAME, which shells set to the machine name, is not read", () => {
  assert.equal(loadConfig({ ...BASE, HOSTNAME: "build-box-7" }).hostname, "0.0.0.0");
  assert.equal(loadConfig({ ...BASE, HOST: "127.0.0.1", HOSTNAME: "x" }).hostname, "127.0.0.1");
});

Deno.test("config: DEV_LOGIN with JWT_ALGORITHMS that refuse HS256 is refused at start", () => {
  assert.throws(
    () => loadConfig({ ...BASE, DEV_LOGIN: "1", JWT_ALGORITHMS: "HS512" }),
    (error: ConfigError) => error.variable === "DEV_LOGIN" && /HS256/.test(error.message),
  );
  assert.equal(
    loadConfig({ ...BASE, DEV_LOGIN: "1", JWT_ALGORITHMS: "HS256,HS512" }).devLogin,
    true,
  );
});

Deno.test("config: VAPID keys come all three or none, each in its shape", () => {
  const vapid = {
    VAPID_PUBLIC_KEY: "B" + "k".repeat(86),
    VAPID_PRIVATE_KEY: "p".repeat(43),
    VAPID_SUBJECT: "mailto:ops@example.com",
  };
  const config = loadConfig({ ...BASE, ...vapid });
  assert.equal(config.vapidPublicKey, vapid.VAPID_PUBLIC_KEY);
  assert.equal(config.vapidSubject, "mailto:ops@example.com");
  assert.equal(
    loadConfig({ ...BASE, ...vapid, VAPID_SUBJECT: "https://a.example" }).vapidSubject,
    "https://a.example",
  );
  assert.equal(loadConfig(BASE).vapidPublicKey, undefined);
  const { VAPID_SUBJECT: _, ...noSubject } = vapid;
  assert.equal(refusal(noSubject).variable, "VAPID_SUBJECT");
  assert.equal(
    refusal({ VAPID_PRIVATE_KEY: vapid.VAPID_PRIVATE_KEY }).variable,
    "VAPID_PUBLIC_KEY",
  );
  assert.equal(
    refusal({ ...vapid, VAPID_PUBLIC_KEY: "k".repeat(87) }).variable,
    "VAPID_PUBLIC_KEY",
  );
  assert.equal(
    refusal({ ...vapid, VAPID_PRIVATE_KEY: "p".repeat(42) }).variable,
    "VAPID_PRIVATE_KEY",
  );
  assert.equal(refusal({ ...vapid, VAPID_SUBJECT: "http://a.example" }).variable, "VAPID_SUBJECT");
});
