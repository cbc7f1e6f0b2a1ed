/**
 * The newest messages kept in memory, so `load` on connect and a reconnecting client's catch-up
 * are served without a KV read. Only valid while this process is the store's only writer.
 *
 * @example
 * ```ts
 * import { RecentWindow } from "./recent.ts";
 *
 * const recent = new RecentWindow(512);
 * recent.seed([]); // the newest 512 read from the store: none yet
 * const user = { id: "u1", name: "Ada" };
 * recent.add([{ id: "m1", room: "general", user, message: "hi", createdAt: new Date().toISOString() }]);
 * recent.newest(51); // the newest 51, oldest first — or undefined when the window cannot tell
 * ```
 * @module
 */
import type { ChatMessage } from "../types.ts";

/** A bounded, ordered window of the newest messages. */
export class RecentWindow {
  #messages: ChatMessage[] = [];
  /** True while the window holds the whole history (it never had to drop one). */
  #complete = false;

  constructor(readonly size: number) {}

  /** Starts from the newest `size` messages (oldest first) read from the store. */
  seed(newest: ChatMessage[]): void {
    this.#messages = newest.slice(-this.size);
    this.#complete = newest.length < this.size;
  }

  /** Adds messages just stored, in id order. */
  add(messages: readonly ChatMessage[]): void {
    this.#messages.push(...messages);
    const excess = this.#messages.length - this.size;
    if (excess > 0) {
      this.#messages.splice(0, excess);
      this.#complete = false;
    }
  }

  /**
   * The newest `limit` messages after `afterId` (all, without it) whose id is at least
   * `youngestId`, oldest first; `undefined` when the answer may include messages the window
   * has dropped.
   */
  newest(limit: number, afterId?: string, youngestId?: string): ChatMessage[] | undefined {
    const all = this.#messages;
    let start = 0;
    if (youngestId !== undefined) {
      while (start < all.length && all[start].id < youngestId) start++;
    }
    // Expired messages were dropped, so nothing older than the window's rest is missing.
    const expiredSome = start > 0;
    if (afterId !== undefined) {
      const covered = this.#complete || expiredSome || (all.length > 0 && afterId >= all[0].id);
      if (!covered) return undefined;
      while (start < all.length && all[start].id <= afterId) start++;
    } else if (all.length - start < limit && !this.#complete && !expiredSome) {
      return undefined;
    }
    return all.slice(Math.max(start, all.length - limit));
  }
}
