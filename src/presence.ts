/**
 * Who is online: connections counted per user, so a user with several tabs is listed once and
 * joins/leaves only with their first/last connection.
 *
 * @example
 * ```ts
 * const presence = new Presence();
 * presence.connect({ id: "u1", name: "Ada" }); // true: first connection, announce the join
 * presence.online(); // [{ id: "u1", name: "Ada" }]
 * ```
 * @module
 */
import type { User } from "./store/mod.ts";

/** Online users of this process. */
export class Presence {
  #users = new Map<string, { user: User; connections: number }>();

  /** Counts a connection; true when it is the user's first (they just came online). */
  connect(user: User): boolean {
    const entry = this.#users.get(user.id);
    if (entry) {
      entry.connections++;
      return false;
    }
    this.#users.set(user.id, { user, connections: 1 });
    return true;
  }

  /** Uncounts a connection; true when it was the user's last (they just went offline). */
  disconnect(userId: string): boolean {
    const entry = this.#users.get(userId);
    if (!entry) return false;
    if (--entry.connections > 0) return false;
    this.#users.delete(userId);
    return true;
  }

  /** How many connections the user has open. */
  connections(userId: string): number {
    return this.#users.get(userId)?.connections ?? 0;
  }

  /** Everyone online, each once, in the order they came online. */
  online(): User[] {
    return [...this.#users.values()].map((entry) => entry.user);
  }
}
