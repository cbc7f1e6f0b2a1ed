/**
 * Deno KV's SQLite backend answers "database is locked" instead of waiting while another process
 * sharing the file writes: {@link whenUnlocked} waits and tries again.
 * @module
 */

/** How long an operation keeps retrying while another process holds the database lock. */
const LOCK_WAIT_MS = 5_000;

/**
 * Runs a KV operation, retrying while another process sharing the same file holds its lock:
 * Deno KV's SQLite backend reports "database is locked" instead of waiting. Nothing was written
 * by a refused attempt, so retrying is safe.
 */
export async function whenUnlocked<T>(operation: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let delay = 2;; delay = Math.min(delay * 2, 50)) {
    try {
      return await operation();
    } catch (error) {
      const locked = error instanceof Error && /database is (locked|busy)/.test(error.message);
      if (!locked || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, delay * (0.5 + Math.random())));
    }
  }
}
