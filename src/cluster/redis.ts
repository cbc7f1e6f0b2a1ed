/**
 * Scale-out: the official socket.io Redis Streams adapter over the `redis` client, so several
 * instances behave as one chat. Loaded only when `REDIS_URL` is set.
 *
 * @example
 * ```ts
 * import { Server } from "socket.io";
 * import { connectCluster } from "./redis.ts";
 * import { silentLogger } from "../ops/log.ts";
 *
 * const cluster = await connectCluster("redis://127.0.0.1:6379", silentLogger);
 * const io = new Server({ adapter: cluster.adapter });
 * cluster.healthy(); // false while Redis is unreachable
 * await cluster.close();
 * ```
 * @module
 */
import type { Logger } from "../ops/log.ts";

/** A connected Redis fan-out. */
export interface Cluster {
  /** The socket.io adapter constructor to pass to `new Server({ adapter })`. */
  // deno-lint-ignore no-explicit-any
  adapter: any;
  /** Whether Redis is reachable right now. */
  healthy(): boolean;
  /** Closes the Redis connections. */
  close(): Promise<void>;
}

/** Why the cluster could not start. */
export class ClusterError extends Error {
  readonly code = "redis_unavailable";
}

/** How long the first connection may take before start-up fails. */
const CONNECT_TIMEOUT_MS = 5_000;
/** Longest pause between reconnection attempts. */
const MAX_RECONNECT_DELAY_MS = 2_000;
/** How long one blocking stream read waits: bounds how long a shutdown waits for it. */
const STREAM_BLOCK_MS = 1_000;

/** Connects to Redis and builds the adapter; throws {@link ClusterError} when Redis is down. */
export async function connectCluster(url: string, log: Logger): Promise<Cluster> {
  const [{ createClient }, { createAdapter }] = await Promise.all([
    import("redis"),
    import("@socket.io/redis-streams-adapter"),
  ]);
  let starting = true;
  const client = createClient({
    url,
    socket: {
      connectTimeout: CONNECT_TIMEOUT_MS,
      // At start a refusal is final; once running, keep retrying until Redis is back.
      reconnectStrategy: (retries: number) =>
        starting ? false : Math.min(50 * 2 ** Math.min(retries, 6), MAX_RECONNECT_DELAY_MS),
    },
  });
  let healthy = false;
  let lastError = "";
  client.on("ready", () => {
    if (!healthy && !starting) log.info("redis.reconnected", {});
    healthy = true;
  });
  client.on("error", (error: Error) => {
    if (healthy || error.message !== lastError) {
      log.warn("redis.error", { error: error.message });
    }
    lastError = error.message;
    healthy = false;
  });
  client.on("reconnecting", () => healthy = false);
  try {
    await client.connect();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ClusterError(`cannot connect to REDIS_URL: ${reason}`);
  }
  starting = false;
  healthy = true;
  log.info("redis.connected", {});
  return {
    adapter: createAdapter(client, { blockTimeInMs: STREAM_BLOCK_MS }),
    healthy: () => healthy,
    async close() {
      await client.close().catch(() => client.destroy());
    },
  };
}
