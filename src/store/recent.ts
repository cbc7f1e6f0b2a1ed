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

  /**
   * Starts from the newest `size` messages (oldest first) read from the store; fewer than `size`
   * means the whole history, unless `complete` says otherwise.
   */
  seed(newest: ChatMessage[], { complete = newest.length < this.size } = {}): void {
    this.#messages = newest.slice(-this.size);
    this.#complete = complete && newest.length <= this.size;
  }

  /** Puts a changed message (an edit, a tombstone) where the one with its id is, if held. */
  replace(message: ChatMessage): void {
    const index = this.#messages.findLastIndex((held) => held.id === message.id);
    if (index >= 0) this.#messages[index] = message;
  }

  /** Messages held. */
  get length(): number {
    return this.#messages.length;
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

/**
 * Recent windows of many rooms, the least recently read dropped beyond `maxRooms`, so memory
 * stays bounded however many rooms there are. A room's window is filled on its first read; what
 * is stored meanwhile is kept aside and merged in, so nothing slips between the read and the
 * window.
 *
 * @example
 * ```ts
 * import { RoomWindows } from "./recent.ts";
 *
 * const windows = new RoomWindows(51, 256);
 * await windows.fill("team-red", () => Promise.resolve([])); // the room's newest 51
 * windows.newest("team-red", 50); // [] — served from memory from now on
 * ```
 */
export class RoomWindows {
  /** Each room's window, least recently used first. */
  #windows = new Map<string, RecentWindow>();
  /** Rooms being filled, and what was stored in them meanwhile. */
  #filling = new Map<string, ChatMessage[]>();
  /** Rooms being filled, and the messages changed in them meanwhile, by id. */
  #changing = new Map<string, Map<string, ChatMessage>>();

  constructor(readonly windowSize: number, readonly maxRooms: number) {}

  /** Rooms held in memory. */
  get rooms(): number {
    return this.#windows.size;
  }

  /** Messages held in memory, over every room. */
  get messages(): number {
    let total = 0;
    for (const window of this.#windows.values()) total += window.length;
    return total;
  }

  /** Puts a changed message where the one with its id is, in its room's window. */
  replace(message: ChatMessage): void {
    this.#windows.get(message.room)?.replace(message);
    this.#changing.get(message.room)?.set(message.id, message);
  }

  /** Whether `room` has a window (or is getting one). */
  has(room: string): boolean {
    return this.#windows.has(room) || this.#filling.has(room);
  }

  /** Adds messages just stored, in id order, to their rooms' windows. */
  add(messages: readonly ChatMessage[]): void {
    for (const message of messages) {
      const window = this.#windows.get(message.room);
      if (window) window.add([message]);
      else this.#filling.get(message.room)?.push(message);
    }
  }

  /** As {@link RecentWindow.newest} for `room`; `undefined` without a window or an exact answer. */
  newest(
    room: string,
    limit: number,
    afterId?: string,
    youngestId?: string,
  ): ChatMessage[] | undefined {
    const window = this.#windows.get(room);
    if (!window) return undefined;
    this.#windows.delete(room);
    this.#windows.set(room, window);
    return window.newest(limit, afterId, youngestId);
  }

  /** Gives `room` a window from `readNewest` (its newest `windowSize` messages, oldest first). */
  async fill(room: string, readNewest: () => Promise<ChatMessage[]>): Promise<void> {
    if (this.has(room)) return;
    const storedMeanwhile: ChatMessage[] = [];
    const changedMeanwhile = new Map<string, ChatMessage>();
    this.#filling.set(room, storedMeanwhile);
    this.#changing.set(room, changedMeanwhile);
    try {
      const read = await readNewest();
      const byId = new Map([...read, ...storedMeanwhile].map((message) => [message.id, message]));
      for (const [id, changed] of changedMeanwhile) if (byId.has(id)) byId.set(id, changed);
      const merged = [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      const window = new RecentWindow(this.windowSize);
      // Fewer than a window's worth read means the room's whole history is here.
      window.seed(read.length < this.windowSize ? merged : merged.slice(-this.windowSize), {
        complete: read.length < this.windowSize,
      });
      this.#windows.set(room, window);
      for (const oldest of this.#windows.keys()) {
        if (this.#windows.size <= this.maxRooms) break;
        this.#windows.delete(oldest);
      }
    } finally {
      this.#filling.delete(room);
      this.#changing.delete(room);
    }
  }
}
