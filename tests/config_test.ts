import assert from "node:assert/strict";
import { ConfigError, DEFAULTS, loadConfig } from "../src/config.ts";

const BASE = { JWT_SECRET: "s3cr3t" };

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
  assert.equal(config.jwtSecret, "s3cr3t");
  assert.equal(config.port, DEFAULTS.port);
  assert.equal(config.hostname, "0.0.0.0");
  assert.equal(config.kvPath, "./data/chat.kv");
  assert.equal(config.historyLimit, 50);
  assert.equal(config.maxMessageLength, 2000);
  assert.equal(config.pingInterval, 25_000);
  assert.equal(config.pingTimeout, 20_000);
  assert.equal(config.maxHttpBufferSize, 1_000_000);
  assert.equal(config.corsOrigin, undefined);
  assert.equal(config.tls, undefined);
});

Deno.test("config: JWT_SECRET is required", () => {
  assert.throws(() => loadConfig({}), (error: ConfigError) => error.variable === "JWT_SECRET");
  assert.throws(() => loadConfig({ JWT_SECRET: "" }), ConfigError);
});

Deno.test("config: every variable is parsed", () => {
  const config = loadConfig({
    ...BASE,
    PORT: "8080",
    HOSTNAME: "127.0.0.1",
    KV_PATH: ":memory:",
    HISTORY_LIMIT: "20",
    MAX_MESSAGE_LENGTH: "500",
    CORS_ORIGIN: "https://a.example, http://localhost:5173",
    TLS_CERT_FILE: "cert.pem",
    TLS_KEY_FILE: "key.pem",
    PING_INTERVAL: "1000",
    PING_TIMEOUT: "800",
    MAX_HTTP_BUFFER_SIZE: "2048",
  });
  assert.deepEqual(config, {
    jwtSecret: "s3cr3t",
    port: 8080,
    hostname: "127.0.0.1",
    kvPath: ":memory:",
    historyLimit: 20,
    maxMessageLength: 500,
    corsOrigin: ["https://a.example", "http://localhost:5173"],
    tls: { certFile: "cert.pem", keyFile: "key.pem" },
    pingInterval: 1000,
    pingTimeout: 800,
    maxHttpBufferSize: 2048,
  });
  assert.equal(loadConfig({ ...BASE, CORS_ORIGIN: "*" }).corsOrigin, "*");
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
  ];
  for (const [variable, value] of cases) {
    const error = refusal({ [variable]: value });
    const named = variable === "TLS_CERT_FILE" ? "TLS_KEY_FILE" : variable;
    assert.equal(error.variable, named, `${variable}=${value}`);
    assert.ok(error.message.startsWith(`${named}: `), error.message);
  }
});
