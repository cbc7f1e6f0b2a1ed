/**
 * Who is online, counted per user, so a user with several tabs is listed once and joins/leaves
 * only with their first/last connection. {@link LocalPresence} counts this process's
 * connections; {@link ClusterPresence} asks a directory of every instance's connections.
 *
 * @example
 * ```ts
 * const presence = new LocalPresence();
 * await presence.arrive({ socketId: "s1", user: { id: "u1", name: "Ada" }, since: Date.now() }); // true
 * await presence.online(); // [{ id: "u1", name: "Ada" }]
 * ```
 * @module
 */
import type { User } from "./types.ts";

/** One connection, as presence sees it. */
export interface Connection {
  socketId: string;
  user: User;
  /** When the connection was made (ms since epoch). */
  since: number;
}

/** Where presence is kept. */
export interface Presence {
  /** Records a new connection; true when it makes the user come online (announce the join). */
  arrive(connection: Connection): Promise<boolean>;
  /** Records a closed connection; true when the user went offline (announce the leave). */
  depart(connection: Connection): Promise<boolean>;
  /** How many connections the user has open. */
  connections(userId: string): Promise<number>;
  /** Everyone online, each once; at most `limit` (default: all). */
  online(limit?: number): Promise<User[]>;
}

/** Online users of this process. */
export class LocalPresence implements Presence {
  #users = new Map<string, { user: User; connections: number }>();

  arrive({ user }: Connection): Promise<boolean> {
    const entry = this.#users.get(user.id);
    if (entry) entry.connections++;
    else this.#users.set(user.id, { user, connections: 1 });
    return Promise.resolve(!entry);
  }

  depart({ user }: Connection): Promise<boolean> {
    const entry = this.#users.get(user.id);
    if (!entry) return Promise.resolve(false);
    if (--entry.connections > 0) return Promise.resolve(false);
    this.#users.delete(user.id);
    return Promise.resolve(true);
  }

  connections(userId: string): Promise<number> {
    return Promise.resolve(this.#users.get(userId)?.connections ?? 0);
  }

  online(limit = Infinity): Promise<User[]> {
    const users: User[] = [];
    for (const { user } of this.#users.values()) {
      if (users.length >= limit) break;
      users.push(user);
    }
    return Promise.resolve(users);
  }
}

/** Every instance's live connections (socket.io's `fetchSockets()` across the adapter). */
export interface ConnectionDirectory {
  /** The user's connections on every instance, this one included once it is registered. */
  ofUser(userId: string): Promise<Connection[]>;
  /** Users with a connection on any instance, each once, at most `limit`. */
  users(limit: number): Promise<User[]>;
}

/**
 * Presence across instances. Nothing is stored: each question goes to the directory, so the
 * users of a crashed instance drop out as soon as its connections stop answering.
 */
export class ClusterPresence implements Presence {
  constructor(private readonly directory: ConnectionDirectory) {}

  async arrive(connection: Connection): Promise<boolean> {
    const connections = await this.directory.ofUser(connection.user.id);
    // When two tabs connect at once, both see each other: the older one announces.
    return connections.every((other) =>
      other.since > connection.since ||
      (other.since === connection.since && other.socketId >= connection.socketId)
    );
  }

  async depart(connection: Connection): Promise<boolean> {
    return (await this.directory.ofUser(connection.user.id)).length === 0;
  }

  async connections(userId: string): Promise<number> {
    return (await this.directory.ofUser(userId)).length;
  }

  online(limit = Infinity): Promise<User[]> {
    return this.directory.users(limit);
  }
}

/**
 * Announces joins and leaves in batches: during a connect storm every client gets one
 * `user:joined` per batch instead of one per user, which keeps a storm of N connections from
 * costing N² messages. A join and a leave of the same user within one batch cancel out.
 * Newcomers waiting for their first presence snapshot are batched the same way, so one snapshot
 * is built and encoded per batch rather than one per connection.
 *
 * @example
 * ```ts
 * const feed = new PresenceFeed((joined, left, welcomed) => {
 *   // send `welcomed` a snapshot, then `joined` and `left` to everyone
 * });
 * feed.joined({ id: "u1", name: "Ada" });
 * feed.welcome("socket-1");
 * ```
 */
export class PresenceFeed {
  #pending = new Map<string, { user: User; change: "joined" | "left" }>();
  #welcome: string[] = [];
  #timer?: ReturnType<typeof setTimeout>;

  constructor(
    private readonly announce: (joined: User[], left: User[], welcomed: string[]) => void,
    private readonly batchMs = 100,
  ) {}

  /** A user came online. */
  joined(user: User): void {
    this.#note(user, "joined");
  }

  /** A user went offline. */
  left(user: User): void {
    this.#note(user, "left");
  }

  /** A connection (by socket id) waits for its first snapshot of who is online. */
  welcome(socketId: string): void {
    this.#welcome.push(socketId);
    this.#schedule();
  }

  /** Announces what is pending now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const joined: User[] = [];
    const left: User[] = [];
    for (const { user, change } of this.#pending.values()) {
      (change === "joined" ? joined : left).push(user);
    }
    this.#pending.clear();
    const welcomed = this.#welcome;
    this.#welcome = [];
    if (joined.length > 0 || left.length > 0 || welcomed.length > 0) {
      this.announce(joined, left, welcomed);
    }
  }

  /** Drops what is pending (shutdown). */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending.clear();
    this.#welcome = [];
  }

  #note(user: User, change: "joined" | "left"): void {
    const pending = this.#pending.get(user.id);
    if (pending && pending.change !== change) this.#pending.delete(user.id);
    else this.#pending.set(user.id, { user, change });
    this.#schedule();
  }

  #schedule(): void {
    this.#timer ??= setTimeout(() => this.flush(), this.batchMs);
  }
}
