/**
 * Point reads gathered into one: while a read is under way, the keys asked meanwhile wait and go
 * together in the next. A connect storm asks for each user's ban twice; gathered, a burst of them
 * costs one `getMany` per ten users instead of a read each. A read always starts after every
 * request it answers was made, so it sees every write that came before any of them: nothing is
 * cached.
 *
 * @example
 * ```ts
 * import { ReadBatch } from "./read_batch.ts";
 *
 * const batch = new ReadBatch<number>((keys) => Promise.resolve(keys.map((key) => key.length)));
 * const [a, b] = await Promise.all([batch.read("ab"), batch.read("abc")]); // one read: 2, 3
 * ```
 * @module
 */

/** Gathers reads by key; `readMany` answers the keys it is given, in their order. */
export class ReadBatch<T> {
  #waiting = new Map<string, PromiseWithResolvers<T>[]>();
  #reading = false;

  constructor(private readonly readMany: (keys: string[]) => Promise<T[]>) {}

  /** The value of `key`, read after this call. */
  read(key: string): Promise<T> {
    const request = Promise.withResolvers<T>();
    const waiters = this.#waiting.get(key);
    if (waiters) waiters.push(request);
    else this.#waiting.set(key, [request]);
    // Started in a microtask: requests made in the same turn join the first read.
    if (!this.#reading) {
      this.#reading = true;
      queueMicrotask(() => void this.#drain());
    }
    return request.promise;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#waiting.size > 0) {
        const batch = this.#waiting;
        this.#waiting = new Map();
        const keys = [...batch.keys()];
        try {
          const values = await this.readMany(keys);
          keys.forEach((key, index) => {
            for (const waiter of batch.get(key)!) waiter.resolve(values[index]);
          });
        } catch (error) {
          for (const waiters of batch.values()) {
            for (const waiter of waiters) waiter.reject(error);
          }
        }
      }
    } finally {
      this.#reading = false;
    }
  }
}
