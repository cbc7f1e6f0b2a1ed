/**
 * A throwaway `redis-server` on a free loopback port, with persistence off, for cluster tests.
 * @module
 */
import { freePort, type ServerProcess, spawnServerProcess } from "../../scripts/server_process.ts";

const REDIS_SERVER = "/usr/bin/redis-server";

/** Whether Debian's redis-server is installed (`.ci/run` installs it). */
export function hasRedis(): boolean {
  try {
    return Deno.statSync(REDIS_SERVER).isFile;
  } catch {
    return false;
  }
}

/** A running redis-server; `await using` stops it. */
export interface RedisServer extends AsyncDisposable {
  url: string;
  /** Stops it (SIGKILL) and waits for the exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port (after {@link stop}). */
  start(): Promise<void>;
}

/** Starts redis-server on a free port with no persistence. */
export async function startRedis(): Promise<RedisServer> {
  const port = freePort();
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
  let server: ServerProcess | undefined;
  const start = async () => {
    server = await spawnServerProcess({
      argv: [REDIS_SERVER, ...args],
      ready: { port },
      stdout: "drop",
      readyTimeoutMs: 5000,
      stopGraceMs: 0,
    });
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      await server?.stop();
      server = undefined;
    },
    start,
    [Symbol.asyncDispose]: () => server?.stop() ?? Promise.resolve(),
  };
}
