/**
 * The chat server: read config → open store → build app → Deno.serve → graceful shutdown.
 * @module
 */
import { createApp } from "./src/app.ts";
import { type Config, ConfigError, loadConfig } from "./src/config.ts";
import { createLogger } from "./src/log.ts";
import { pageRoutes } from "./src/page.ts";
import { type Cluster, connectCluster } from "./src/cluster.ts";
import {
  createIdGenerator,
  instanceNumber,
  type KvMessageStore,
  openKvStore,
} from "./src/store/mod.ts";

let config: Config;
try {
  config = loadConfig(Deno.env.toObject());
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`chat server: configuration error: ${error.message}`);
  Deno.exit(1);
}
const log = createLogger(config.logLevel);

// Deno keeps each WebSocket's write buffer as large as the largest frame it copied: the history
// and presence frames every client gets on connect would pin tens of KB per connection. Vectored
// writes send large frames without that copy. The runtime reads the variable at its first
// WebSocket write, and takes any non-empty value as on: pass it on as config understood it.
if (config.vectoredWrites) Deno.env.set("DENO_USE_WRITEV", "1");
else Deno.env.delete("DENO_USE_WRITEV");

let store: KvMessageStore;
try {
  store = await openKvStore(config.kvPath, {
    maxAgeMs: config.historyMaxAgeMs,
    maxCount: config.historyMaxCount,
    generateId: createIdGenerator(Date.now, instanceNumber(config.instanceId)),
    // Serve history from memory, unless other instances write to the same store.
    recentWindow: config.redisUrl ? 0 : Math.max(config.historyLimit, config.catchupLimit) + 1,
  });
} catch (error) {
  const reason = error instanceof Error ? error.message : String(error);
  const variable = /^https?:/.test(config.kvPath) ? "KV_URL" : "KV_PATH";
  console.error(`chat server: cannot open ${variable} "${config.kvPath}": ${reason}`);
  if (error instanceof Deno.errors.NotCapable) {
    console.error("chat server: `deno task start` may write only under ./data; see README");
  }
  Deno.exit(1);
}

let cluster: Cluster | undefined;
if (config.redisUrl) {
  try {
    cluster = await connectCluster(config.redisUrl, log);
  } catch (error) {
    console.error(`chat server: ${error instanceof Error ? error.message : error}`);
    store.close();
    Deno.exit(1);
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
const routes = pageRoutes(devLoginSecret ? { devLogin: { secret: devLoginSecret } } : {});
const app = createApp(config, store, { log, cluster, routes });
const tls = config.tls
  ? {
    cert: await Deno.readTextFile(config.tls.certFile),
    key: await Deno.readTextFile(config.tls.keyFile),
  }
  : {};

const server = Deno.serve({
  port: config.port,
  hostname: config.hostname,
  ...tls,
  onListen({ hostname, port }) {
    const scheme = config.tls ? "https" : "http";
    console.log(`chat server listening on ${scheme}://${hostname}:${port} (kv: ${config.kvPath})`);
    log.info("server.started", {
      hostname,
      port,
      instance: config.instanceId,
      tls: Boolean(config.tls),
      redis: Boolean(cluster),
    });
  },
}, app.handler);

let shuttingDown = false;
async function shutdown(signal: string): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  console.log(`chat server: ${signal} received, shutting down`);
  log.info("shutdown.started", { signal, timeoutMs: config.shutdownTimeoutMs });
  const deadline = setTimeout(() => {
    log.error("shutdown.timeout", { timeoutMs: config.shutdownTimeoutMs });
    Deno.exit(1);
  }, config.shutdownTimeoutMs);
  app.beginShutdown();
  await app.close();
  await server.shutdown();
  await cluster?.close();
  store.close();
  clearTimeout(deadline);
  log.info("shutdown.finished", { signal });
  Deno.exit(0);
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => void shutdown(signal));
}
