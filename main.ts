/**
 * The chat server: read config → open store → build app → Deno.serve → graceful shutdown.
 *
 * stdout carries only JSON log lines (one object per line, each with `instance`); what a person
 * starting the server should read — the address, warnings, why it could not start — goes to
 * stderr, one line each. Every startup failure is one line naming the setting, and exit code 1.
 * @module
 */
import { createApp } from "./src/app.ts";
import { type Config, ConfigError, configWarnings, loadConfig, redactUrl } from "./src/config.ts";
import { createLogger } from "./src/ops/log.ts";
import { pageRoutes } from "./src/http/page.ts";
import { type Cluster, connectCluster } from "./src/cluster/redis.ts";
import {
  createIdGenerator,
  instanceNumber,
  isKvFile,
  KvFileBusy,
  KvFileLock,
  KvMessageStore,
  LeaseHeld,
  type MessageStore,
  openKv,
  WriterLease,
} from "./src/store/mod.ts";

let config: Config;
try {
  config = loadConfig(Deno.env.toObject());
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`chat server: configuration error: ${error.message}`);
  Deno.exit(1);
}
const log = createLogger(config.logLevel, undefined, { instance: config.instanceId });

/** Tells the operator why the server cannot start, in one line, and exits 1. */
function fail(line: string): never {
  console.error(`chat server: ${line}`);
  log.error("server.failed", { reason: line });
  Deno.exit(1);
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
for (const warning of configWarnings(config)) {
  console.warn(`chat server: WARNING: ${warning}`);
  log.warn("config.warning", { warning });
}

// Deno keeps each WebSocket's write buffer as large as the largest frame it copied: the history
// and presence frames every client gets on connect would pin tens of KB per connection. Vectored
// writes send large frames without that copy. The runtime reads the variable at its first
// WebSocket write, and takes any non-empty value as on: pass it on as config understood it.
if (config.vectoredWrites) Deno.env.set("DENO_USE_WRITEV", "1");
else Deno.env.delete("DENO_USE_WRITEV");

const isRemoteKv = /^https?:/.test(config.kvPath);

function cannotOpenStore(error: unknown): never {
  const variable = isRemoteKv ? "KV_URL" : "KV_PATH";
  const hint = error instanceof Deno.errors.NotCapable
    ? " (`deno task start` may write only under ./data; see docs/operations.md)"
    : "";
  fail(`cannot open ${variable} "${config.kvPath}": ${reasonOf(error)}${hint}`);
}

/** The one line for a KV held by an instance this one cannot share it with; exits 1. */
function kvInUse(variable: string, error: KvFileBusy | LeaseHeld): never {
  const rule = error.code === "kv_redis_differs"
    ? "instances share one KV file only when every one sets the same REDIS_URL"
    : "one instance per KV file, unless every instance sets REDIS_URL";
  console.error(
    `chat server: ${variable} "${config.kvPath}" is in use, ${error.message} (${rule})`,
  );
  Deno.exit(1);
}

let fileLock: KvFileLock | undefined;
let lease: WriterLease | undefined;
let store: MessageStore;
if (config.databaseUrl) {
  store = await openDatabase(config.databaseUrl);
} else {
  store = await openKvFile();
}

/** Opens PostgreSQL and brings its schema up to date; exits 1 with one line when it cannot. */
async function openDatabase(url: string): Promise<MessageStore> {
  // Loaded only here: a KV server never loads the driver.
  const { containDriverFaults, isDriverFault, isDriverTypeLookupFailure, openPostgresStore } =
    await import("./src/store/postgres.ts");
  try {
    const store = await openPostgresStore(url, {
      poolSize: config.databasePoolSize,
      statementTimeoutMs: config.databaseStatementTimeoutMs,
      maxAgeMs: config.historyMaxAgeMs,
      membershipMaxAgeMs: config.membershipMaxAgeMs,
      maxCount: config.historyMaxCount,
      defaultRoom: config.defaultRoom,
    });
    // The driver's known fault (a write to a connection that died mid-transaction) is thrown
    // where nothing can catch it: the server keeps running on a fresh pool instead of exiting.
    const recover = (error: unknown) => {
      log.error("store.driver_fault", { error });
      store.recycle();
    };
    // Thrown from its deferred write, it is kept inside that callback: let out, it can break the
    // runtime's queue of the callbacks after it, and the process exits all the same.
    containDriverFaults(recover);
    // Anywhere else, it reaches the global handler.
    globalThis.addEventListener("error", (event) => {
      if (!isDriverFault(event.error)) return;
      event.preventDefault();
      recover(event.error);
    });
    // The driver's own type lookup, cut off by the database going away, rejects where nothing
    // can catch it either; the connection looks the types up again when it reconnects.
    globalThis.addEventListener("unhandledrejection", (event) => {
      if (!isDriverTypeLookupFailure(event.reason)) return;
      event.preventDefault();
      log.warn("store.driver_type_lookup_failed", { error: event.reason });
    });
    return store;
  } catch (error) {
    fail(`cannot open DATABASE_URL "${redactUrl(url)}": ${reasonOf(error)}`);
  }
}

/** Takes the KV's lock (or lease) and opens it; exits 1 with one line when it cannot. */
async function openKvFile(): Promise<KvMessageStore> {
  // Instances sharing a KV through Redis see each other's messages; any other second writer would
  // serve stale history from memory and could repeat message ids. On a local file the kernel keeps
  // that rule: a lock it drops when the process dies, so a killed server restarts at once.
  if (isKvFile(config.kvPath)) {
    try {
      fileLock = await KvFileLock.acquire(config.kvPath, {
        instanceId: config.instanceId,
        ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}),
      });
    } catch (error) {
      if (!(error instanceof KvFileBusy)) cannotOpenStore(error);
      kvInUse("KV_PATH", error);
    }
  }

  let kv: Deno.Kv;
  try {
    kv = await openKv(config.kvPath);
  } catch (error) {
    fileLock?.release();
    cannotOpenStore(error);
  }

  // A remote KV has no lock to take: a lease in the database itself, which a killed holder keeps
  // until it runs out.
  if (isRemoteKv && !config.redisUrl) {
    try {
      lease = await WriterLease.acquire(kv, {
        instanceId: config.instanceId,
        durationMs: config.kvLeaseMs,
        onLost(holder) {
          console.error(`chat server: lost KV_URL to instance "${holder?.instanceId ?? "?"}"`);
          log.error("kv.lease_lost", { holder: holder?.instanceId ?? null });
          void shutdown("KV_URL taken over", 1);
        },
      });
    } catch (error) {
      kv.close();
      if (!(error instanceof LeaseHeld)) cannotOpenStore(error);
      kvInUse("KV_URL", error);
    }
  }

  let kvStore: KvMessageStore;
  try {
    kvStore = new KvMessageStore(kv, {
      maxAgeMs: config.historyMaxAgeMs,
      membershipMaxAgeMs: config.membershipMaxAgeMs,
      maxCount: config.historyMaxCount,
      generateId: createIdGenerator(Date.now, instanceNumber(config.instanceId)),
      defaultRoom: config.defaultRoom,
      // Serve history from memory, unless other instances write to the same store.
      recentWindow: config.redisUrl ? 0 : Math.max(config.historyLimit, config.catchupLimit) + 1,
      roomWindow: config.redisUrl ? 0 : config.historyLimit + 1,
    });
    await kvStore.warm();
  } catch (error) {
    await lease?.release();
    kv.close();
    fileLock?.release();
    cannotOpenStore(error);
  }
  return kvStore;
}

let cluster: Cluster | undefined;
if (config.redisUrl) {
  try {
    cluster = await connectCluster(config.redisUrl, log);
  } catch (error) {
    await lease?.release();
    await store.close();
    fileLock?.release();
    fail(reasonOf(error));
  }
}

const devLoginSecret = config.devLogin && config.auth.key.kind === "secret"
  ? config.auth.key.secret
  : undefined;
if (devLoginSecret) {
  console.warn(
    "chat server: DEV_LOGIN=1 — POST /dev/token mints a token for anyone. Never in production.",
  );
  log.warn("dev_login.enabled", {});
}
/** Gives back what was opened before the server could listen. */
async function releaseAll(): Promise<void> {
  await cluster?.close();
  await lease?.release();
  await store.close();
  fileLock?.release();
}

async function readTlsFile(variable: string, path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    await releaseAll();
    fail(`cannot read ${variable} "${path}": ${reasonOf(error)}`);
  }
}

const tls = config.tls
  ? {
    cert: await readTlsFile("TLS_CERT_FILE", config.tls.certFile),
    key: await readTlsFile("TLS_KEY_FILE", config.tls.keyFile),
  }
  : {};

const routes = pageRoutes({
  config,
  ...(devLoginSecret ? { devLogin: { secret: devLoginSecret } } : {}),
});
const app = createApp(config, store, { log, cluster, routes });
let server: Deno.HttpServer<Deno.NetAddr>;
try {
  server = Deno.serve({
    port: config.port,
    hostname: config.hostname,
    ...tls,
    onListen({ hostname, port }) {
      const url = `${config.tls ? "https" : "http"}://${hostname}:${port}`;
      const where = config.databaseUrl
        ? `postgres: ${redactUrl(config.databaseUrl)}`
        : `kv: ${config.kvPath}`;
      console.error(`chat server listening on ${url} (${where})`);
      log.info("server.started", {
        url,
        hostname,
        port,
        tls: Boolean(config.tls),
        redis: Boolean(cluster),
      });
    },
  }, app.handler);
} catch (error) {
  await app.close();
  await releaseAll();
  const where = `${config.hostname}:${config.port}`;
  if (error instanceof Deno.errors.AddrInUse) {
    fail(`cannot listen on ${where}: PORT ${config.port} is in use`);
  }
  if (error instanceof Deno.errors.InvalidData) {
    fail(`cannot listen with TLS_CERT_FILE/TLS_KEY_FILE: ${reasonOf(error)}`);
  }
  fail(`cannot listen on ${where} (HOST, PORT): ${reasonOf(error)}`);
}

let shuttingDown = false;
async function shutdown(reason: string, exitCode = 0): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  console.error(`chat server: ${reason}, shutting down`);
  log.info("shutdown.started", { reason, timeoutMs: config.shutdownTimeoutMs });
  const deadline = setTimeout(() => {
    log.error("shutdown.timeout", { timeoutMs: config.shutdownTimeoutMs });
    Deno.exit(1);
  }, config.shutdownTimeoutMs);
  app.beginShutdown();
  await app.close();
  await server.shutdown();
  await cluster?.close();
  await lease?.release();
  await store.close();
  fileLock?.release();
  clearTimeout(deadline);
  log.info("shutdown.finished", { reason });
  Deno.exit(exitCode);
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => void shutdown(`${signal} received`));
}
