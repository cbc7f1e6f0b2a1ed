/**
 * The tests' one vocabulary for waiting: `sleep` for a moment, `within` for a promise with a
 * deadline, `until` for a condition polled to a deadline. A hung test then says what it waited for.
 *
 * @example
 * ```ts
 * import { sleep, until, within } from "./time.ts";
 *
 * let done = false;
 * setTimeout(() => done = true, 10);
 * await until(() => done, 1000, "the flag");
 * await within(sleep(5), 1000, "a short nap");
 * ```
 * @module
 */

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Blocks the event loop for `ms`, as a loaded machine does now and then: timers due meanwhile
 * fire late, and requests sent meanwhile are read after it.
 */
export function stall(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // Busy on purpose.
  }
}

/** Rejects after `ms` with `what` in the message, unless `promise` settles first. */
export function within<T>(promise: Promise<T>, ms = 2_000, what = "a promise"): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves once `condition` holds, checked every 5 ms; rejects after `ms`. */
export async function until(condition: () => boolean, ms = 2_000, what = "a condition") {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}
