/**
 * Live changes gathered for a moment and announced together: a burst of reactions to one message
 * is one event a batch, however many came, and what it announces is read when it goes out.
 *
 * @example
 * ```ts
 * import { LiveBatch } from "./live_batch.ts";
 *
 * const batch = new LiveBatch<string>((changed) => console.log([...changed.keys()]), 50);
 * batch.note("general/01JDQ7ZJ2K8M6V1T4X3N5P7R9S", "general"); // announced within 50 ms
 * batch.close();
 * ```
 * @module
 */

/** Changes by key (the latest value of each), flushed `batchMs` after the first of a batch. */
export class LiveBatch<V> {
  #pending = new Map<string, V>();
  #timer?: ReturnType<typeof setTimeout>;

  constructor(
    private readonly flush: (changed: Map<string, V>) => void,
    private readonly batchMs: number,
  ) {}

  /** Notes a change of `key`; a later note of the same key in the batch replaces it. */
  note(key: string, value: V): void {
    this.#pending.set(key, value);
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      const changed = this.#pending;
      this.#pending = new Map();
      this.flush(changed);
    }, this.batchMs);
  }

  /** Drops what is pending (shutdown). */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending.clear();
  }
}
