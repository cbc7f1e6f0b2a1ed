/**
 * A throwaway `redis-server` on a free loopback port, with persistence off, for cluster tests.
 * @module
 */
import { within } from "./chat_server.ts";

/** Whether Debian's redis-server is installed (`.ci/run` installs it). */
export function hasRedis(): boolean {
  try {
    return Deno.statSync("/usr/bin/redis-server").isFile;
  } catch {
    return false;
  }
}

/** A running redis-server. */
export interface RedisServer {
  url: string;
  /** Stops it (SIGKILL) and waits for the exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port (after {@link stop}). */
  start(): Promise<void>;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function waitUntilListening(port: number): Promise<void> {
  await within(
    (async () => {
      while (true) {
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port })).close();
          return;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    })(),
    5000,
    "redis-server to listen",
  );
}

/** Starts redis-server on a free port with no persistence. */
export async function startRedis(): Promise<RedisServer> {
  const port = freePort();
  let child: Deno.ChildProcess | undefined;
  const start = async () => {
    child = new Deno.Command("/usr/bin/redis-server", {
      args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitUntilListening(port);
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (!child) return;
      try {
        child.kill("SIGKILL");
      } catch { /* already exited */ }
      await child.status;
      child = undefined;
    },
    start,
  };
}
