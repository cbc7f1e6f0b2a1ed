/**
 * Who is in each room, as this instance sees it: users come into a room with their first
 * connection in it and leave with their last. Changes are gathered for a moment and announced
 * per room in one `room:presence` event, so a join storm costs one event per room and batch, not
 * one per connection.
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
import type { User } from "../types.ts";

interface PendingChanges {
  joined: Map<string, User>;
  left: Map<string, User>;
}

/** Per-room connection counts of this instance, and their batched announcements. */
export class RoomPresence {
  /** room → user id → connections of that user in the room. */
  #counts = new Map<string, Map<string, number>>();
  #pending = new Map<string, PendingChanges>();
  #timer?: ReturnType<typeof setTimeout>;

  constructor(
    private readonly announce: (room: string, joined: User[], left: User[]) => void,
    private readonly batchMs = 100,
  ) {}

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
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending.clear();
  }

  #note(room: string, user: User, change: "joined" | "left"): void {
    const pending = this.#pending.get(room) ?? { joined: new Map(), left: new Map() };
    this.#pending.set(room, pending);
    const opposite = change === "joined" ? pending.left : pending.joined;
    // A join and a leave within one batch cancel out.
    if (opposite.has(user.id)) opposite.delete(user.id);
    else pending[change].set(user.id, user);
    this.#timer ??= setTimeout(() => this.#flush(), this.batchMs);
  }

  #flush(): void {
    this.#timer = undefined;
    const pending = this.#pending;
    this.#pending = new Map();
    for (const [room, { joined, left }] of pending) {
      if (joined.size > 0 || left.size > 0) {
        this.announce(room, [...joined.values()], [...left.values()]);
      }
    }
  }
}
