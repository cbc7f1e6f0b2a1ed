/**
 * Who is in each room, as this instance sees it: users come into a room with their first
 * connection in it and leave with their last. Changes are gathered for a moment and announced
 * per room in one `room:presence` event, so a join storm costs one event per room and batch, not
 * one per connection. A big room gathers longer ({@link presenceWindowMs}: each event is a frame
 * to every member), up to {@link PRESENCE_MAX_BATCH_USERS} changes.
 *
 * @example
 * ```ts
 * import { RoomPresence } from "./room_presence.ts";
 *
 * const presence = new RoomPresence((room, joined, left) => console.log(room, joined, left));
 * presence.enter("team-red", { id: "alice", name: "Alice" }); // announced within 100 ms
 * presence.exit("team-red", { id: "alice", name: "Alice" });
 * presence.close();
 * ```
 * @module
 */
import {
  EarliestTimer,
  PRESENCE_MAX_BATCH_USERS,
  type PresenceBatching,
  presenceWindowMs,
} from "../cluster/presence.ts";
import type { User } from "../types.ts";

interface PendingChanges {
  joined: Map<string, User>;
  left: Map<string, User>;
  /** When the room's first pending change was noted (`performance.now()`). */
  since: number;
  /** A list of the room's members was taken meanwhile: a change it may show cannot cancel out. */
  seen: boolean;
}

/** Per-room connection counts of this instance, and their batched announcements. */
export class RoomPresence {
  /** room → user id → connections of that user in the room. */
  #counts = new Map<string, Map<string, number>>();
  #pending = new Map<string, PendingChanges>();
  #timer = new EarliestTimer(() => this.#flush());

  private readonly batchMs: number;
  private readonly cancelOut: boolean;

  constructor(
    private readonly announce: (room: string, joined: User[], left: User[]) => void,
    options: PresenceBatching = {},
  ) {
    this.batchMs = options.batchMs ?? 100;
    this.cancelOut = options.cancelOut ?? true;
  }

  /** A connection of `user` entered `room`. */
  enter(room: string, user: User): void {
    const users = this.#counts.get(room) ?? new Map<string, number>();
    this.#counts.set(room, users);
    const count = users.get(user.id) ?? 0;
    users.set(user.id, count + 1);
    if (count === 0) this.#note(room, user, "joined");
  }

  /** A connection of `user` left `room` (or closed while in it). */
  exit(room: string, user: User): void {
    const users = this.#counts.get(room);
    const count = users?.get(user.id) ?? 0;
    if (!users || count === 0) return;
    if (count > 1) return void users.set(user.id, count - 1);
    users.delete(user.id);
    if (users.size === 0) this.#counts.delete(room);
    this.#note(room, user, "left");
  }

  /** How many rooms have someone in them (bounded by connections × rooms per connection). */
  get rooms(): number {
    return this.#counts.size;
  }

  /** Drops pending announcements (shutdown). */
  close(): void {
    this.#timer.clear();
    this.#pending.clear();
  }

  /**
   * A list of `room`'s members is being taken (a `join` ack's `online`): its pending changes may
   * show in it, so they no longer cancel out. Call it before and after taking the list.
   */
  observed(room: string): void {
    const pending = this.#pending.get(room);
    if (pending) pending.seen = true;
  }

  /** How long `room`'s changes are gathered, given its members on this instance now. */
  windowMs(room: string): number {
    return presenceWindowMs(this.batchMs, this.#counts.get(room)?.size ?? 0);
  }

  #note(room: string, user: User, change: "joined" | "left"): void {
    let pending = this.#pending.get(room);
    if (!pending) {
      pending = { joined: new Map(), left: new Map(), since: performance.now(), seen: false };
      this.#pending.set(room, pending);
    }
    const opposite = change === "joined" ? pending.left : pending.joined;
    // A join and a leave within one batch cancel out, unless someone was given the room's members
    // between them: then the latest stands.
    const cancels = opposite.delete(user.id);
    if (!cancels || pending.seen || !this.cancelOut) pending[change].set(user.id, user);
    this.#timer.at(this.#due(room, pending));
  }

  /** When `room`'s changes go out: at the end of its window, or at once when the batch is full. */
  #due(room: string, { joined, left, since }: PendingChanges): number {
    return joined.size + left.size >= PRESENCE_MAX_BATCH_USERS
      ? performance.now()
      : since + this.windowMs(room);
  }

  /** Announces the rooms whose window has passed, and waits again for the others. */
  #flush(): void {
    // A timer fires no earlier than asked; the millisecond covers rounding.
    const now = performance.now() + 1;
    let next = Infinity;
    for (const [room, pending] of this.#pending) {
      const { joined, left } = pending;
      const due = this.#due(room, pending);
      if (due > now) {
        next = Math.min(next, due);
        continue;
      }
      this.#pending.delete(room);
      if (joined.size > 0 || left.size > 0) {
        this.announce(room, [...joined.values()], [...left.values()]);
      }
    }
    if (next !== Infinity) this.#timer.at(next);
  }
}
