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
 * await presence.count(); // 1
 * ```
 * @module
 */
import type { User } from "../types.ts";

/** One connection, as presence sees it. */
export interface Connection {
  socketId: string;
  user: User;
  /** When the connection was made (ms since epoch). */
  since: number;
}

/** Where presence is kept. */
export interface Presence {
  /**
   * Whether other instances read it (a newcomer there may be listed this instance's users at any
   * moment): then a join and a leave never cancel out, as someone may have seen the first.
   */
  readonly shared: boolean;
  /** Records a new connection; true when it makes the user come online (announce the join). */
  arrive(connection: Connection): Promise<boolean>;
  /** Records a closed connection; true when the user went offline (announce the leave). */
  depart(connection: Connection): Promise<boolean>;
  /** How many connections the user has open. */
  connections(userId: string): Promise<number>;
  /** Everyone online, each once; at most `limit` (default: all). */
  online(limit?: number): Promise<User[]>;
  /**
   * How many users are online. Across instances each counts its own users and the counts are
   * added: a user connected to two instances counts twice (one number crosses per instance, not
   * the users).
   */
  count(): Promise<number>;
}

/** Online users of this process. */
export class LocalPresence implements Presence {
  readonly shared = false;
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

  count(): Promise<number> {
    return Promise.resolve(this.#users.size);
  }
}

/** Every instance's live connections (socket.io's `fetchSockets()` across the adapter). */
export interface ConnectionDirectory {
  /** The user's connections on every instance, this one included once it is registered. */
  ofUser(userId: string): Promise<Connection[]>;
  /** Users with a connection on any instance, each once, at most `limit`. */
  users(limit: number): Promise<User[]>;
  /** Each instance's count of its connected users, added up. */
  count(): Promise<number>;
}

/**
 * Presence across instances. Nothing is stored: each question goes to the directory, so the
 * users of a crashed instance drop out as soon as its connections stop answering.
 */
export class ClusterPresence implements Presence {
  readonly shared = true;

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

  count(): Promise<number> {
    return this.directory.count();
  }
}

/** Share of `MAX_LISTED_USERS` online at or under which a feed that stopped naming users resumes. */
export const RELIST_SHARE = 0.9;

/**
 * Whether the presence feed names who comes and goes. Each change named is a frame to every
 * client, so with N users connecting that is N² frames: above `maxListed` users online (the most a
 * snapshot lists) the feed sends counts instead, and it names users again only once at most
 * {@link RELIST_SHARE} of `maxListed` are online, so a count hovering at the limit does not make
 * every client rebuild its list again and again.
 *
 * @example
 * ```ts
 * const listing = new PresenceListing(1000);
 * listing.update(1001); // true: no longer listed
 * listing.update(950); // false: still counted, until 900
 * listing.listed; // false
 * ```
 */
export class PresenceListing {
  #listed = true;
  /** When the feed last went from naming users to counting them (`now()`'s clock). */
  #countingSince = -Infinity;

  /**
   * @param holdMs how long the feed keeps counting at least, once it started (default
   * {@link RELIST_HOLD_MS}): naming users again sends every client a snapshot, so users going over
   * and back under the limit together must not make that happen on every batch.
   */
  constructor(
    readonly maxListed: number,
    readonly holdMs: number = RELIST_HOLD_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Whether users are named (`user:joined` / `user:left`) rather than counted. */
  get listed(): boolean {
    return this.#listed;
  }

  /** The most users online at which a feed that counts names users again. */
  get relistAt(): number {
    return Math.floor(this.maxListed * RELIST_SHARE);
  }

  /** When a feed counting few enough users may name them again (`now()`'s clock). */
  get relistFrom(): number {
    return this.#countingSince + this.holdMs;
  }

  /** Takes a switch made elsewhere (by another instance sharing the presence). */
  follow(listed: boolean): void {
    if (this.#listed && !listed) this.#countingSince = this.now();
    this.#listed = listed;
  }

  /**
   * Takes the number of users online now; true when that switches between naming and counting.
   * Few enough to name again within {@link holdMs} of the switch to counting: still counted
   * ({@link relistFrom} says until when).
   */
  update(online: number): boolean {
    let listed = online <= (this.#listed ? this.maxListed : this.relistAt);
    if (listed && !this.#listed && this.now() < this.relistFrom) listed = false;
    const switched = listed !== this.#listed;
    if (switched && !listed) this.#countingSince = this.now();
    this.#listed = listed;
    return switched;
  }

  /** Whether `online` users would be named now but for the hold. */
  heldBack(online: number): boolean {
    return !this.#listed && online <= this.relistAt && this.now() < this.relistFrom;
  }
}

/** How long a feed that started counting users keeps counting at least. */
export const RELIST_HOLD_MS = 5000;

/** How long announcements wait per client that will receive them, in a big room. */
export const PRESENCE_MS_PER_RECIPIENT = 0.1;
/** The longest announcements wait, reached at 10,000 recipients. */
export const PRESENCE_MAX_WINDOW_MS = 1000;
/**
 * A batch goes out as soon as this many users are pending, window or not: every recipient's
 * socket gets its own copy of the frame at once, so while changes trickle in over a long window
 * this keeps each frame near 10 KB (at 10,000 recipients, 100 MB in flight). Changes noted all in
 * one go (a mass disconnect) still go out together, as they would in a 100 ms batch.
 */
export const PRESENCE_MAX_BATCH_USERS = 250;

/** One timer that fires at the earliest time asked of it (on the `performance.now()` clock). */
export class EarliestTimer {
  #timer?: ReturnType<typeof setTimeout>;
  #due = 0;

  constructor(private readonly fire: () => void) {}

  /** Fires at `due`, unless already set to fire earlier. */
  at(due: number): void {
    if (this.#timer !== undefined && this.#due <= due) return;
    clearTimeout(this.#timer);
    this.#due = due;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.fire();
    }, Math.max(0, due - performance.now()));
  }

  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** How presence changes are gathered. */
export interface PresenceBatching {
  /** The shortest gathering, in ms (default 100). */
  batchMs?: number;
  /**
   * Whether a join and a leave of one user within a batch cancel out (default true). Off where
   * others may have seen the first (presence shared across instances).
   */
  cancelOut?: boolean;
}

/**
 * How long presence changes are gathered for an audience of `recipients`: `batchMs`, or
 * {@link PRESENCE_MS_PER_RECIPIENT} per recipient up to {@link PRESENCE_MAX_WINDOW_MS}, whichever
 * is longer. Every announcement is a frame to each recipient, so this keeps presence to about a
 * tenth of a core however many connect at once.
 */
export function presenceWindowMs(batchMs: number, recipients: number): number {
  return Math.max(
    batchMs,
    Math.min(PRESENCE_MAX_WINDOW_MS, recipients * PRESENCE_MS_PER_RECIPIENT),
  );
}

/**
 * Announces joins and leaves in batches: during a connect storm every client gets one
 * `user:joined` per batch instead of one per user, which keeps a storm of N connections from
 * costing N² messages. A join and a leave of the same user within one batch cancel out, unless a
 * newcomer's snapshot went out between them and showed the first.
 *
 * A batch is `batchMs` long, and longer for a big audience ({@link presenceWindowMs}), but
 * goes out once it holds {@link PRESENCE_MAX_BATCH_USERS} changes while they are named.
 * Newcomers waiting for their first snapshot of who is online are batched every
 * `batchMs` whatever the audience (one snapshot built and encoded per batch, not per connection);
 * changes still pending then follow later, and clients apply them as set operations.
 *
 * @example
 * ```ts
 * const feed = new PresenceFeed((joined, left, welcomed) => {
 *   // send `welcomed` a snapshot, then `joined` and `left` to everyone
 * }, { audience: () => 2_000 }); // 2,000 recipients: changes wait 200 ms
 * feed.joined({ id: "u1", name: "Ada" });
 * feed.welcome("socket-1");
 * ```
 */
export class PresenceFeed {
  /** `seen`: a newcomer's snapshot went out while the change was pending, so it cannot cancel. */
  #pending = new Map<string, { user: User; change: "joined" | "left"; seen: boolean }>();
  /** When the oldest pending change was noted (`performance.now()`). */
  #pendingSince = 0;
  #welcome: string[] = [];
  #timer = new EarliestTimer(() => this.#announce(false));
  #closed = false;

  private readonly batchMs: number;
  private readonly audience: () => number;
  private readonly listed: () => boolean;
  private readonly cancelOut: boolean;

  constructor(
    private readonly announce: (joined: User[], left: User[], welcomed: string[]) => void,
    options: PresenceBatching & {
      /** How many clients an announcement reaches (default 0: the batch). */
      audience?: () => number;
      /**
       * Whether the announcement names the users (default: always). While it only counts them
       * ({@link PresenceListing}), its frame is small however many changed: a batch then waits its
       * window rather than going out at {@link PRESENCE_MAX_BATCH_USERS}.
       */
      listed?: () => boolean;
    } = {},
  ) {
    this.batchMs = options.batchMs ?? 100;
    this.audience = options.audience ?? (() => 0);
    this.listed = options.listed ?? (() => true);
    this.cancelOut = options.cancelOut ?? true;
  }

  /** How long changes are gathered for, given the audience now. */
  windowMs(): number {
    return presenceWindowMs(this.batchMs, this.audience());
  }

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
    if (this.#closed) return;
    this.#welcome.push(socketId);
    this.#schedule();
  }

  /**
   * A snapshot of who is online was just taken: the changes pending now may show in it, so none
   * of them may cancel out any more. Called for each welcome batch, and again when its snapshot
   * arrives (it may be built after more changes came in).
   */
  observed(): void {
    for (const pending of this.#pending.values()) pending.seen = true;
  }

  /** Announces everything pending now, whatever its window. */
  flush(): void {
    this.#announce(true);
  }

  /** Drops what is pending and ignores what comes after (shutdown). */
  close(): void {
    this.#closed = true;
    this.#timer.clear();
    this.#pending.clear();
    this.#welcome = [];
  }

  /** Announces the welcomes, and the changes if `all` or their window has passed. */
  #announce(all: boolean): void {
    this.#timer.clear();
    const joined: User[] = [];
    const left: User[] = [];
    // A small audience has one batch for all; a timer fires no earlier than asked, and the
    // millisecond covers rounding.
    if (all || this.#changesDue(performance.now() + 1)) {
      for (const { user, change } of this.#pending.values()) {
        (change === "joined" ? joined : left).push(user);
      }
      this.#pending.clear();
    }
    const welcomed = this.#welcome;
    this.#welcome = [];
    // The newcomers' snapshot shows the changes still pending: undoing one is news to them.
    if (welcomed.length > 0) this.observed();
    if (joined.length > 0 || left.length > 0 || welcomed.length > 0) {
      this.announce(joined, left, welcomed);
    }
    if (this.#pending.size > 0) this.#schedule();
  }

  /** Whether the pending changes go out at `time`: a small audience's batch, a full one, or late. */
  #changesDue(time: number): boolean {
    const window = this.windowMs();
    return window <= this.batchMs || this.#full() || time >= this.#pendingSince + window;
  }

  /** Whether the pending changes make a batch of their own: as many as a named batch holds. */
  #full(): boolean {
    return this.#pending.size >= PRESENCE_MAX_BATCH_USERS && this.listed();
  }

  #note(user: User, change: "joined" | "left"): void {
    if (this.#closed) return;
    if (this.#pending.size === 0) this.#pendingSince = performance.now();
    const pending = this.#pending.get(user.id);
    // A join and a leave cancel out, unless a snapshot showed the first: then the latest stands
    // (and stays seen, so a later pair cannot hide it either).
    if (pending && pending.change !== change && !pending.seen && this.cancelOut) {
      this.#pending.delete(user.id);
    } else this.#pending.set(user.id, { user, change, seen: pending?.seen ?? false });
    this.#schedule();
  }

  /** Fires at the next welcome batch or when the pending changes are due, whichever first. */
  #schedule(): void {
    const now = performance.now();
    const changes = this.#pending.size === 0
      ? Infinity
      : this.#full()
      ? now
      : this.#pendingSince + this.windowMs();
    const welcomes = this.#welcome.length > 0 ? now + this.batchMs : Infinity;
    const due = Math.min(changes, welcomes);
    if (due !== Infinity) this.#timer.at(due);
  }
}
