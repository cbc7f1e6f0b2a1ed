/**
 * Many deadlines on one timer. Each connection's heartbeat and token expiry are entries in a
 * bucket of {@link DEADLINE_RESOLUTION_MS}, not timers of their own: in Deno 2 every `setTimeout`
 * is a Node `Timeout` object with two closures and a runtime timer behind it, which at 19,000
 * connections is two of each per connection, and a pong or a connect that moves one costs a clear
 * and a set.
 *
 * @example
 * ```ts
 * import { Deadlines } from "./deadlines.ts";
 *
 * const deadlines = new Deadlines<string>((name) => console.log(`${name} is due`));
 * const key = deadlines.set("ping s1", performance.now() + 25_000);
 * deadlines.cancel("ping s1", key); // nothing fires; the timer is cleared with the last entry
 * ```
 * @module
 */

/** Entries due within the same this many milliseconds fire together (never early). */
export const DEADLINE_RESOLUTION_MS = 10;

/** The longest delay a timer takes (setTimeout fires at once beyond it). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Entries of type `T` that each fire once at their deadline (`performance.now()` clock). */
export class Deadlines<T> {
  /** Entries by bucket: the bucket's end, in units of the resolution. */
  #buckets = new Map<number, Set<T>>();
  /** The buckets' keys as a binary min-heap: the first is the next to fire. */
  #keys: number[] = [];
  #size = 0;
  #timer?: ReturnType<typeof setTimeout>;
  #timerKey = Infinity;
  /** Set while due entries fire: what they set is armed for once they all have. */
  #running = false;

  constructor(private readonly fire: (entry: T) => void) {}

  /** Entries waiting. */
  get size(): number {
    return this.#size;
  }

  /**
   * Fires `entry` at `due` (within {@link DEADLINE_RESOLUTION_MS} after it); returns the key
   * {@link cancel} takes. An entry set twice fires twice: cancel the first.
   */
  set(entry: T, due: number): number {
    const key = Math.ceil(due / DEADLINE_RESOLUTION_MS);
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      bucket = new Set();
      this.#buckets.set(key, bucket);
      pushKey(this.#keys, key);
    }
    if (!bucket.has(entry)) {
      bucket.add(entry);
      this.#size++;
    }
    if (!this.#running && key < this.#timerKey) this.#arm();
    return key;
  }

  /** Drops `entry` from the bucket `key` names, if it is still there. */
  cancel(entry: T, key: number): void {
    if (!this.#buckets.get(key)?.delete(entry)) return;
    // The last entry gone: no timer may keep the process (or a test) waiting for nothing.
    if (--this.#size === 0) this.#disarm();
  }

  /** Drops every entry and the timer. */
  clear(): void {
    this.#buckets.clear();
    this.#keys = [];
    this.#size = 0;
    this.#disarm();
  }

  #arm(): void {
    this.#disarm();
    // Buckets emptied by cancels stay in the heap until their time: skip them here.
    while (this.#keys.length > 0 && !this.#buckets.get(this.#keys[0])?.size) {
      this.#buckets.delete(popKey(this.#keys));
    }
    if (this.#keys.length === 0) return;
    const key = this.#keys[0];
    const delay = key * DEADLINE_RESOLUTION_MS - performance.now();
    this.#timerKey = key;
    this.#timer = setTimeout(() => this.#run(), Math.min(Math.max(0, delay), MAX_TIMER_MS));
  }

  #disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerKey = Infinity;
  }

  #run(): void {
    this.#timer = undefined;
    this.#timerKey = Infinity;
    this.#running = true;
    try {
      const now = performance.now();
      while (this.#keys.length > 0 && this.#keys[0] * DEADLINE_RESOLUTION_MS <= now) {
        const key = popKey(this.#keys);
        const bucket = this.#buckets.get(key);
        this.#buckets.delete(key);
        if (bucket === undefined) continue;
        this.#size -= bucket.size;
        for (const entry of bucket) this.fire(entry);
      }
    } finally {
      this.#running = false;
      if (this.#size > 0) this.#arm();
    }
  }
}

function pushKey(heap: number[], key: number): void {
  let at = heap.push(key) - 1;
  while (at > 0) {
    const parent = (at - 1) >> 1;
    if (heap[parent] <= key) break;
    heap[at] = heap[parent];
    at = parent;
  }
  heap[at] = key;
}

function popKey(heap: number[]): number {
  const first = heap[0];
  const last = heap.pop()!;
  if (heap.length === 0) return first;
  let at = 0;
  while (true) {
    const left = 2 * at + 1;
    if (left >= heap.length) break;
    const right = left + 1;
    const child = right < heap.length && heap[right] < heap[left] ? right : left;
    if (heap[child] >= last) break;
    heap[at] = heap[child];
    at = child;
  }
  heap[at] = last;
  return first;
}
