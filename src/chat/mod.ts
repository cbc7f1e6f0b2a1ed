/**
 * The chat on top of socket.io: admission, the history `load` on connect, live delivery,
 * presence, token expiry, and the client events (see `handlers.ts`). Knows nothing of transports
 * or of how history is stored.
 *
 * @example
 * A sketch: `options` are the timeline, verifier, budgets and the rest that `app.ts` builds.
 * ```ts ignore
 * const io: ChatServer = new Server();
 * const chat = attachChat(io, options); // options: see ChatOptions
 * // on shutdown
 * chat.close();
 * ```
 * @module
 */
import { type Identity, isExpired } from "../auth/token.ts";
import { CodedError, toWireError, type WireError } from "../errors.ts";
import type { Logger } from "../ops/log.ts";
import { readLastId, readLastIds } from "./payloads.ts";
import type { RoomPolicy } from "./rooms.ts";
import {
  type Connection as PresenceEntry,
  EarliestTimer,
  type Presence,
  PresenceFeed,
  PresenceListing,
} from "../cluster/presence.ts";
import type { Timeline } from "./timeline.ts";
import { Admission } from "./admission.ts";
import type { Namespace } from "socket.io";
import { loadRooms } from "./catch_up.ts";
import { CHAT_ROOM, joinedRooms, roomKey } from "./delivery.ts";
import { askOthers, userRoom, usersConnected } from "./directory.ts";
import { dispatchEvent, type EventBudgets, type EventContext, EventGate } from "./events.ts";
import type { ChatContext, Subscription } from "./handlers.ts";
import { PacedBroadcasts } from "./paced.ts";
import { RoomPresence } from "./room_presence.ts";
import type { ChatService } from "./service.ts";
import type { ReadPosition, ServerToClientEvents } from "./contract.ts";
import type { ChatObserver, ChatServer, ChatSocket } from "./types.ts";
import type { Ban, User } from "../types.ts";
import { Deadlines } from "../deadlines.ts";

export {
  announceChange,
  CHAT_ROOM,
  deliverTo,
  framesOf,
  LOAD_MAX_CHARS,
  mentionNotifier,
  missableBy,
  mostMissableBy,
  reactionFeed,
  readFeed,
  roomKey,
  threadFeed,
} from "./delivery.ts";
export { dmRoom, dmUsers, isRoomId, RoomPolicy } from "./rooms.ts";
export { disconnectEverywhere, socketDirectory, userRoom } from "./directory.ts";
export {
  ChatService,
  type ChatServiceOptions,
  MODERATE_SCOPE,
  type Principal,
  REACTION_LIMITS,
  SYSTEM_USER,
} from "./service.ts";
export type { EventBudgets } from "./events.ts";
export { budgetsOf, CLIENT_EVENTS, type ClientEventName } from "./client_events.ts";
export { TYPING_THROTTLE_MS } from "./handlers.ts";
export type * from "./types.ts";

/** What the chat needs. */
export interface ChatOptions {
  timeline: Timeline;
  /** Read markers, memberships and unread counts. */
  store: ChatContext["store"];
  /** Who may use which room. */
  policy: RoomPolicy;
  /** The room every connection is in and events without a room go to (`DEFAULT_ROOM`). */
  defaultRoom: string;
  /** Whether Web Push is on (`VAPID_*` set). */
  pushEnabled?: boolean;
  /** Most rooms one connection may be in (`MAX_ROOMS_PER_SOCKET`). */
  maxRoomsPerSocket: number;
  /**
   * Most users a `presence` snapshot or a join's `online` lists (`MAX_LISTED_USERS`); with more
   * online, the feed counts them (`presence:count`) instead of naming them.
   */
  maxListedUsers: number;
  /** The chat's rules, shared with the server API. */
  service: ChatService;
  verifyToken: (token: string) => Promise<Identity>;
  /** Longest accepted message in characters (Unicode code points), after trimming. */
  maxMessageLength: number;
  /** Whether socket.io's connection state recovery is on (it must see every emit). */
  connectionRecovery?: boolean;
  /** Most messages a reconnecting client's catch-up of one room carries. */
  catchupLimit: number;
  /** Messages a joining client's history holds (the timeline's `historyLimit`). */
  historyLimit: number;
  /** Per-user budget of each client event. */
  budgets: EventBudgets;
  /** `error` events one connection receives per second at most (default 10). */
  errorEventsPerSecond?: number;
  /** Most simultaneous connections per user. */
  maxSocketsPerUser: number;
  /** The user's ban, while it lasts (refused at connect with `banned`). */
  banOf?: (userId: string) => Promise<Ban | undefined>;
  /** The user's connections on other instances (with Redis). */
  connectionsElsewhere?: (userId: string) => Promise<number>;
  /** Who is online: this process's connections, or every instance's. */
  presence: Presence;
  /** How long joins and leaves are gathered before they are announced (default 100 ms). */
  presenceBatchMs?: number;
  /** How long the feed counts users at least once it started (default 5 s; tests shorten it). */
  presenceHoldMs?: number;
  /** Clock skew forgiven on a token's `exp`, in ms. */
  clockToleranceMs: number;
  /** The clock (tests move it). */
  now?: () => number;
  log: Logger;
  observer: Pick<ChatObserver, "connectRefused" | "errorSent">;
  /** Told of comings and goings (webhooks). */
  hooks?: PresenceHooks;
}

/** Who is told when users come online, go offline, and enter and leave rooms. */
export interface PresenceHooks {
  /** The user's first connection anywhere. */
  online(user: User): void;
  /** The user's last connection anywhere closed. */
  offline(user: User): void;
  /** The user's first connection in `room` on this instance (never the default room). */
  joined(room: string, user: User): void;
  /** The user's last connection in `room` on this instance left it. */
  left(room: string, user: User): void;
}

/** What {@link attachChat} leaves running. */
export interface Chat {
  /** The users with a connection in `room` now, on every instance (at most `MAX_LISTED_USERS`). */
  membersOf(room: string): Promise<User[]>;
  /** Distinct users with a connection to this instance. */
  usersOnline(): number;
  /** Rooms other than the default with someone in them on this instance (room presence's map). */
  roomsOccupied(): number;
  /** Stops pending presence announcements (call on shutdown). */
  close(): void;
}

/** How long a cluster-wide question about a room's members waits for the other instances. */
const DIRECTORY_TIMEOUT_MS = 1000;

/** What every connection's context shares: built once per server. */
interface Shared extends ChatPresence {
  readonly io: ChatServer;
  readonly options: ChatOptions;
  readonly now: () => number;
  readonly gate: EventGate;
  readonly admission: Admission;
  /** A room's read positions for a connect's `loaded`; connects asking at once share one read. */
  readonly readsOf: (room: string) => Promise<ReadPosition[]>;
  /** Every connection's token expiry, on one timer. */
  readonly expiries: Deadlines<Connection>;
}

/** Who is where, announced in batches: the server's presence feed and each room's. */
interface ChatPresence {
  /**
   * The default room's comings and goings: `user:joined`, `user:left` (or `presence:count` with
   * many online), newcomers' snapshots.
   */
  readonly feed: PresenceFeed;
  /** Other rooms' comings and goings: `room:presence`. */
  readonly roomPresence: RoomPresence;
  /** Drops the presence broadcasts not yet written (shutdown). */
  readonly closeAnnouncer: () => void;
  /**
   * Puts the socket in the room, unless its identity now (a token refreshed meanwhile) no longer
   * opens it: then false.
   */
  readonly enterRoom: (socket: ChatSocket, room: string) => boolean;
  readonly leaveRoom: (socket: ChatSocket, room: string) => void;
  readonly membersOf: (room: string) => Promise<User[]>;
}

/**
 * One connection's {@link ChatContext}. Its own state lives in a few fields and everything else on
 * the prototype: thousands of connections cost one small object each, not a closure per
 * capability.
 */
class Connection implements EventContext {
  typingState?: Map<string, { typing: boolean; at: number }>;
  /** The connection's entry in the shared expiries (-1: none). */
  #expiryKey = -1;
  /** `error` events sent in the current one-second window, and when it began. */
  #errorsSent = 0;
  #errorWindowStart = 0;

  constructor(readonly socket: ChatSocket, readonly shared: Shared) {}

  get identity(): Identity {
    return this.socket.data.identity;
  }
  set identity(identity: Identity) {
    this.socket.data.identity = identity;
  }
  get timeline(): Timeline {
    return this.shared.options.timeline;
  }
  get store(): ChatContext["store"] {
    return this.shared.options.store;
  }
  get service(): ChatService {
    return this.shared.options.service;
  }
  get policy(): RoomPolicy {
    return this.shared.options.policy;
  }
  get defaultRoom(): string {
    return this.shared.options.defaultRoom;
  }
  get pushEnabled(): boolean {
    return this.shared.options.pushEnabled ?? false;
  }
  get maxRoomsPerSocket(): number {
    return this.shared.options.maxRoomsPerSocket;
  }
  get maxMessageLength(): number {
    return this.shared.options.maxMessageLength;
  }
  get maxListedUsers(): number {
    return this.shared.options.maxListedUsers;
  }
  now(): number {
    return this.shared.now();
  }
  verifyToken(token: string): Promise<Identity> {
    return this.shared.options.verifyToken(token);
  }
  joined(): ReadonlySet<string> {
    return joinedRooms(this.socket);
  }
  subscribe(room: string): Promise<Subscription> {
    return new Promise((resolve, reject) => {
      this.timeline.join((messages, { hasMore }) => {
        if (this.socket.connected && !this.shared.enterRoom(this.socket, room)) {
          return reject(new CodedError("forbidden", `you may not use room "${room}"`));
        }
        resolve({ messages, hasMore });
      }, { room }).catch(reject);
    });
  }
  unsubscribe(room: string): void {
    this.shared.leaveRoom(this.socket, room);
  }
  membersOf(room: string): Promise<User[]> {
    return this.shared.membersOf(room);
  }
  sendTyping(room: string, typing: boolean): void {
    const user = this.identity.user;
    this.socket.to(roomKey(room)).volatile.emit("typing", { room, user, typing });
  }
  onIdentityChanged(): void {
    this.watchExpiry();
  }

  /**
   * Sends a refusal as the `error` event, at most `errorEventsPerSecond` a second (acks carry
   * every one), and counts and logs it.
   */
  report(event: string, error: WireError): void {
    const { gate } = this.shared;
    gate.noteRefusal(this.identity.user.id, this.socket.id, event, error);
    const now = this.now();
    if (now - this.#errorWindowStart >= 1000) [this.#errorWindowStart, this.#errorsSent] = [now, 0];
    if (++this.#errorsSent <= gate.errorEventsPerSecond) this.socket.emit("error", error);
  }

  /** Whether the token has expired (`exp` plus the tolerance). */
  expired(): boolean {
    return isExpired(this.identity, this.now(), this.shared.options.clockToleranceMs);
  }

  /** Ends the connection once its token expires; called again when `auth:refresh` moves it. */
  watchExpiry(): void {
    this.stopWatchingExpiry();
    const { expiresAt } = this.identity;
    if (expiresAt === undefined) return;
    const delay = expiresAt + this.shared.options.clockToleranceMs - this.now();
    this.#expiryKey = this.shared.expiries.set(this, performance.now() + Math.max(0, delay));
  }

  stopWatchingExpiry(): void {
    this.shared.expiries.cancel(this, this.#expiryKey);
    this.#expiryKey = -1;
  }

  endExpired(): void {
    this.report(
      "connection",
      toWireError(new CodedError("token_expired", "token has expired; reconnect with a new one")),
    );
    this.socket.disconnect(true);
  }
}

/** A connection's expiry came: a timer may run early by the clock's reckoning. */
function checkExpiry(connection: Connection): void {
  if (connection.expired()) connection.endExpired();
  else connection.watchExpiry();
}

/**
 * Reads the user's ban once more; a banned user's socket is told and closed. A read that fails
 * closes it too (`internal`): the socket cannot be let in unchecked, and the rejection must not
 * reach the events waiting on it.
 */
async function stillUnbanned(
  connection: Connection,
  banOf: (userId: string) => Promise<Ban | undefined>,
  log: Logger,
): Promise<boolean> {
  let ban: Ban | undefined;
  try {
    ban = await banOf(connection.identity.user.id);
  } catch (error) {
    log.warn("ban.read_failed", { user: connection.identity.user.id, error });
    connection.report("connection", {
      code: "internal",
      message: "the server could not check this connection; reconnect",
    });
    connection.socket.disconnect(true);
    return false;
  }
  if (!ban) return true;
  const details = ban.until ? { until: ban.until } : {};
  connection.report(
    "connection",
    toWireError(new CodedError("banned", "this user is banned", details)),
  );
  connection.socket.disconnect(true);
  return false;
}

/**
 * The rooms a connecting client catches up: `auth.lastIds` (`{ room: lastSeenId }`) and
 * `auth.lastId` for the default room, which is always first. A malformed entry is reported and
 * that room gets its latest history instead.
 */
function catchUpsOf(
  auth: unknown,
  defaultRoom: string,
  report: (error: WireError) => void,
): Map<string, string | undefined> {
  const rooms = new Map<string, string | undefined>([[defaultRoom, undefined]]);
  try {
    rooms.set(defaultRoom, readLastId(auth));
  } catch (error) {
    report({
      ...toWireError(error),
      message: "`lastId` is not a message id; sent the latest history",
    });
  }
  try {
    for (const [room, lastId] of readLastIds(auth)) rooms.set(room, lastId);
  } catch (error) {
    report({ ...toWireError(error), message: "`lastIds` is malformed; sent the latest history" });
  }
  return rooms;
}

/** Attaches the chat rules to a socket.io server. */
export function attachChat(io: ChatServer, options: ChatOptions): Chat {
  const now = options.now ?? Date.now;
  const presence = chatPresence(io, options);
  const gate = new EventGate(
    options.budgets,
    options.log,
    options.observer,
    now,
    options.errorEventsPerSecond,
  );
  const admission = new Admission(options);
  io.use(admission.middleware);
  if (options.connectionRecovery) {
    const clockTolerance = options.clockToleranceMs;
    admission.guardRecovery(
      io.of("/") as unknown as Namespace,
      (identity) => isExpired(identity, now(), clockTolerance),
    );
  }
  const readsOf = sharedReads(options);
  const expiries = new Deadlines<Connection>(checkExpiry);
  const shared: Shared = { io, options, now, gate, admission, readsOf, expiries, ...presence };
  io.on("connection", (socket: ChatSocket) => onConnection(shared, socket));
  return {
    membersOf: presence.membersOf,
    // Counted from this instance's sockets: presence may span the cluster.
    roomsOccupied: () => presence.roomPresence.rooms,
    usersOnline: () => usersConnected(io),
    close() {
      presence.feed.close();
      presence.roomPresence.close();
      presence.closeAnnouncer();
      expiries.clear();
    },
  };
}

/** The presence feed, room presence, and entering, leaving and listing rooms. */
function chatPresence(io: ChatServer, options: ChatOptions): ChatPresence {
  const { log, presence } = options;
  // Batches are announced in order, each after the snapshot its newcomers get: a slow snapshot
  // (asked across instances) must not let a later batch overtake an earlier one.
  let announced = Promise.resolve();
  const enqueue = (work: () => Promise<void>) => {
    announced = announced.then(work).catch((error) => log.warn("presence.failed", { error }));
  };
  const batching = { batchMs: options.presenceBatchMs, cancelOut: !presence.shared };
  const listing = new PresenceListing(options.maxListedUsers, options.presenceHoldMs);
  // A switch back to naming users held back (PresenceListing's hold) is looked at again when the
  // hold ends, whether or not anyone comes or goes by then.
  const recheck = new EarliestTimer(() =>
    enqueue(() => announceBatch(parts, { joined: [], left: [], welcomed: [] }))
  );
  // An instance sharing presence takes the others' listing before its first batch.
  let listingJoined = !presence.shared;
  const feed: PresenceFeed = new PresenceFeed(
    (joined, left, welcomed) =>
      enqueue(async () => {
        if (!listingJoined) {
          listingJoined = true;
          await joinListing(io, listing, log);
        }
        await announceBatch(parts, { joined, left, welcomed });
      }),
    {
      ...batching,
      // A big audience makes changes wait longer (a frame each): this instance's share of it.
      audience: () => io.of("/").adapter.rooms.get(CHAT_ROOM)?.size ?? 0,
      listed: () => listing.listed,
    },
  );
  const parts: FeedParts = {
    options,
    feed,
    listing,
    announce: presenceAnnouncer(io, options),
    // Instances sharing presence switch together: a client told by one that users are counted
    // must not go on getting another's named changes.
    shareSwitch: (listed) => presence.shared && io.serverSideEmit("presence:listing", listed),
    recheckAt: (time) => recheck.at(time),
  };
  if (presence.shared) followListing(io, parts, enqueue);
  // The default room's comings and goings are the global presence events.
  const roomPresence = new RoomPresence((room, joined, left) => {
    io.to(roomKey(room)).emit("room:presence", { room, joined, left });
    for (const user of joined) options.hooks?.joined(room, user);
    for (const user of left) options.hooks?.left(room, user);
  }, batching);
  // Changes pending now or while a room's members are fetched may show in the list: they may not
  // cancel out. The default room's comings and goings are the feed's (user:joined / user:left).
  const observed = (room: string) =>
    room === options.defaultRoom ? feed.observed() : roomPresence.observed(room);
  return {
    feed,
    roomPresence,
    closeAnnouncer() {
      recheck.clear();
      parts.announce.close();
    },
    enterRoom(socket, room) {
      if (socket.rooms.has(roomKey(room))) return true;
      const identity = socket.data.identity;
      // A join or catch-up asked with the token before a refresh that dropped the room.
      if (room !== options.defaultRoom && !options.policy.canJoin(identity, room)) return false;
      socket.join(roomKey(room));
      if (room !== options.defaultRoom) roomPresence.enter(room, identity.user);
      return true;
    },
    leaveRoom(socket, room) {
      if (!socket.rooms.has(roomKey(room))) return;
      socket.leave(roomKey(room));
      if (room !== options.defaultRoom) roomPresence.exit(room, socket.data.identity.user);
    },
    membersOf: (room) => membersOfRoom(io, options, room, () => observed(room)),
  };
}

/**
 * Takes the other instances' listing: one that starts while they count users (and the count is
 * between the two thresholds, where its own would stay listed) must not name its newcomers to
 * everyone. Any instance counting wins; the next batch's count decides from there.
 */
async function joinListing(io: ChatServer, listing: PresenceListing, log: Logger): Promise<void> {
  const answers = await askOthers(() => io.serverSideEmitWithAck("presence:listed"), log);
  if (answers.includes(false)) listing.follow(false);
}

/** Takes the other instances' switches between naming and counting users, and answers theirs. */
function followListing(
  io: ChatServer,
  parts: FeedParts,
  enqueue: (work: () => Promise<void>) => void,
): void {
  const { listing } = parts;
  io.on("presence:listing", (listed) => {
    const counting = !listing.listed;
    listing.follow(listed === true);
    // A count this instance sent before it heard of the switch travels its own path and may
    // reach clients after the other's `listed: true`: say it again, after that count.
    if (listed === true && counting) enqueue(() => relist(parts));
  });
  io.on("presence:listed", (answer) => answer(listing.listed));
}

/**
 * After following another instance's switch back to naming users: `presence:count` with `listed:
 * true` and a fresh snapshot to everyone, behind anything this instance announced while counting.
 */
async function relist({ options, feed, listing, announce }: FeedParts): Promise<void> {
  if (!listing.listed) return;
  const online = await options.presence.count();
  const users = await options.presence.online(options.maxListedUsers);
  feed.observed();
  announce.toEveryone("presence:count", { online, listed: true });
  announce.toEveryone("presence", users);
}

/** What announcing a batch of the default room's presence takes. */
interface FeedParts {
  readonly options: ChatOptions;
  readonly feed: PresenceFeed;
  /** Whether the feed names users or counts them, as of the last batch. */
  readonly listing: PresenceListing;
  readonly announce: PresenceAnnouncer;
  /** Tells the other instances (with Redis) that a batch here switched the listing. */
  readonly shareSwitch: (listed: boolean) => void;
  /** Announces an empty batch at `time` (`performance.now()`): a held-back switch is due then. */
  readonly recheckAt: (time: number) => void;
}

/**
 * Announces one batch of the default room's presence, by how many users are online now. Listed
 * (at most `MAX_LISTED_USERS`): the newcomers' snapshot, then the joins and leaves. Counted (above
 * it): the newcomers' snapshot, a sample, then `presence:count` to everyone instead of the changes,
 * one small frame per batch whoever came and went. Listed again ({@link PresenceListing}'s
 * threshold): `presence:count`, then a fresh snapshot to everyone, which shows this batch's
 * changes; the changes still pending follow as joins and leaves.
 */
async function announceBatch(
  { options, feed, listing, announce, shareSwitch, recheckAt }: FeedParts,
  { joined, left, welcomed }: { joined: User[]; left: User[]; welcomed: string[] },
): Promise<void> {
  const { presence, maxListedUsers, log } = options;
  const online = await presence.count();
  const switched = listing.update(online);
  if (listing.heldBack(online)) recheckAt(listing.relistFrom);
  if (switched) shareSwitch(listing.listed);
  const count = { online, listed: listing.listed };
  const snapshot = async () => {
    const users = await presence.online(maxListedUsers);
    feed.observed();
    return users;
  };
  if (switched && listing.listed) {
    const users = await snapshot();
    announce.toEveryone("presence:count", count);
    return announce.toEveryone("presence", users);
  }
  if (welcomed.length > 0) {
    try {
      announce.toSockets(welcomed, "presence", await snapshot());
    } catch (error) {
      log.warn("presence.failed", { sockets: welcomed.length, error });
    }
  }
  if (listing.listed) {
    if (joined.length > 0) announce.toEveryone("user:joined", joined);
    if (left.length > 0) announce.toEveryone("user:left", left);
  } else if (switched || joined.length > 0 || left.length > 0) {
    announce.toEveryone("presence:count", count);
  } else if (welcomed.length > 0) announce.toSockets(welcomed, "presence:count", count);
}

/** The default room's presence events. */
type PresenceEvents = Pick<
  ServerToClientEvents,
  "presence" | "user:joined" | "user:left" | "presence:count"
>;

/** Sends the default room's presence events. */
interface PresenceAnnouncer {
  /** To this instance's sockets with these ids. */
  toSockets<E extends keyof PresenceEvents>(
    ids: string[],
    event: E,
    payload: Parameters<PresenceEvents[E]>[0],
  ): void;
  /** To every socket in the default room (on every instance). */
  toEveryone<E extends keyof PresenceEvents>(
    event: E,
    payload: Parameters<PresenceEvents[E]>[0],
  ): void;
  /** Drops what is not yet written (shutdown). */
  close(): void;
}

/**
 * How the default room's presence goes out. On one instance, paced ({@link PacedBroadcasts}): a
 * connect storm's announcements reach every socket without holding a copy for each at once. With
 * Redis they must cross to the other instances, and with connection state recovery socket.io must
 * see every emit: there they take socket.io's own broadcast.
 */
function presenceAnnouncer(io: ChatServer, options: ChatOptions): PresenceAnnouncer {
  if (options.presence.shared || options.connectionRecovery) {
    // socket.io's typed `emit` takes no event name of a union type; the announcer's own is typed.
    type Emitter = { emit(event: string, payload: unknown): boolean };
    return {
      // Newcomers are this instance's own sockets: no other instance needs the snapshot.
      toSockets: (ids, event, payload) =>
        void (io.local.to(ids) as unknown as Emitter).emit(event, payload),
      toEveryone: (event, payload) =>
        void (io.to(CHAT_ROOM) as unknown as Emitter).emit(event, payload),
      close: () => {},
    };
  }
  const paced = new PacedBroadcasts(io);
  return {
    toSockets: (ids, event, payload) => paced.toSockets(ids, event, payload),
    toEveryone: (event, payload) => paced.toRoom(CHAT_ROOM, event, payload),
    close: () => paced.close(),
  };
}

/** The users with a connection in `room` on every instance (this one's, if others are slow). */
async function membersOfRoom(
  io: ChatServer,
  options: ChatOptions,
  room: string,
  observed: () => void,
): Promise<User[]> {
  observed();
  let sockets;
  try {
    sockets = await io.in(roomKey(room)).timeout(DIRECTORY_TIMEOUT_MS).fetchSockets();
  } catch (error) {
    options.log.warn("presence.partial", { room, error });
    sockets = await io.local.in(roomKey(room)).fetchSockets();
  }
  observed();
  const users = new Map<string, User>();
  for (const { data } of sockets) {
    if (users.size === options.maxListedUsers) break;
    users.set(data.identity.user.id, data.identity.user);
  }
  return [...users.values()];
}

/** A socket that passed the middleware (or was recovered): it is admitted, then loaded. */
function onConnection(shared: Shared, socket: ChatSocket): void {
  const { admission, options } = shared;
  const connection = new Connection(socket, shared);
  const refusal = admission.adopt(socket);
  if (refusal) {
    connection.report("connection", refusal);
    return void socket.disconnect(true);
  }
  admission.connected(socket);
  const unbanned = gateEvents(shared, connection);
  connection.watchExpiry();
  const user = socket.data.identity.user;
  options.log.info("socket.connected", {
    socket: socket.id,
    user: user.id,
    transport: socket.conn.transport.name,
    address: socket.handshake.address,
    recovered: socket.recovered,
  });
  const arrived = trackPresence(shared, connection, unbanned);
  // A recovered session skipped the token check at admission: its token may have expired since.
  if (connection.expired()) return connection.endExpired();
  socket.join(userRoom(user.id));
  loadHistory(shared, connection, arrived).catch((error) => {
    options.log.warn("admit.failed", { socket: socket.id, error });
    connection.report("connection", { code: "internal", message: "history could not be loaded" });
  });
}

/**
 * Takes every client event of the socket through one middleware, once the user's ban has been
 * read again; resolves whether the socket may stay. A ban set while this socket was admitted found
 * no socket to close: once the socket is in its user room a ban's disconnect reaches it, so the
 * ban is read again, and until it is, the socket's events wait.
 */
function gateEvents(shared: Shared, connection: Connection): Promise<boolean> {
  const { banOf, log } = shared.options;
  let unbanned: Promise<boolean> | undefined = banOf
    ? stillUnbanned(connection, banOf, log).finally(() => unbanned = undefined)
    : undefined;
  const cleared = unbanned ?? Promise.resolve(true);
  // socket.io never emits client events, so a connection holds no listener per event, and an
  // event's arguments are checked before anything spreads them. A timer may run late: the
  // expiry is checked on every event too.
  connection.socket.use((event) => {
    if (connection.expired()) return connection.endExpired();
    if (unbanned) {
      return void unbanned.then((ok) => {
        if (ok) void dispatchEvent(connection, shared.gate, event);
      });
    }
    void dispatchEvent(connection, shared.gate, event);
  });
  return cleared;
}

/**
 * Announces the socket's user once it may stay, and their leaving when it goes. Arrival and
 * departure run in that order: a socket gone before it arrived never arrives, so a connect
 * closed at once (or during the ban's re-read) leaves no one listed online.
 */
function trackPresence(
  shared: Shared,
  connection: Connection,
  unbanned: Promise<boolean>,
): Promise<boolean> {
  const { socket } = connection;
  const user = socket.data.identity.user;
  const entry = { socketId: socket.id, user, since: socket.handshake.issued };
  const arrived = arrive(shared, connection, entry, unbanned);
  watchDeparture(shared, connection, entry, arrived);
  return arrived;
}

/** Lists the user once the connection may stay: see {@link trackPresence}. */
async function arrive(
  shared: Shared,
  connection: Connection,
  entry: PresenceEntry,
  unbanned: Promise<boolean>,
): Promise<boolean> {
  if (!(await unbanned) || !connection.socket.connected) return false;
  if (await shared.options.presence.arrive(entry)) {
    shared.feed.joined(entry.user);
    shared.options.hooks?.online(entry.user);
  }
  return true;
}

/**
 * The socket's leaving: its rooms' presence, its admission and expiry, and its user's departure.
 * Its own function, so the listeners kept for the connection's life hold only what they use.
 */
function watchDeparture(
  shared: Shared,
  connection: Connection,
  entry: PresenceEntry,
  arrived: Promise<boolean>,
): void {
  const { socket } = connection;
  socket.on("disconnecting", () => {
    for (const room of joinedRooms(socket)) shared.roomPresence.exit(room, entry.user);
  });
  socket.on("disconnect", (reason) => {
    const { presence, log } = shared.options;
    shared.admission.release(socket);
    connection.stopWatchingExpiry();
    log.info("socket.disconnected", { socket: socket.id, user: entry.user.id, reason });
    arrived.then((did) => did && presence.depart(entry)).then((wentOffline) => {
      if (!wentOffline) return;
      shared.feed.left(entry.user);
      shared.options.hooks?.offline(entry.user);
    }).catch((error) => log.warn("presence.failed", { socket: socket.id, error }));
  });
}

/**
 * A room's read positions, bounded by `MAX_LISTED_USERS`; the connects of a storm that ask for
 * the same room while a read is under way share it. Whether the connection may use the room was
 * asked before (the default room, or a catch-up's `join` check).
 */
function sharedReads(options: ChatOptions): (room: string) => Promise<ReadPosition[]> {
  const reading = new Map<string, Promise<ReadPosition[]>>();
  return (room) => {
    let reads = reading.get(room);
    if (reads === undefined) {
      reads = options.service.readPositions(room, options.maxListedUsers, { kind: "backend" })
        .finally(() => reading.delete(room));
      reading.set(room, reads);
    }
    return reads;
  };
}

/**
 * Sends the socket its history once it has arrived: the default room's and the catch-up of the
 * rooms it names, as far as allowed. A recovered session had what it missed replayed.
 */
async function loadHistory(
  shared: Shared,
  connection: Connection,
  arrived: Promise<boolean>,
): Promise<void> {
  const { options, gate, feed } = shared;
  const { socket } = connection;
  if (!(await arrived)) return;
  if (socket.recovered) return void feed.welcome(socket.id);
  const report = (error: WireError) => connection.report("connection", error);
  const rooms = catchUpsOf(socket.handshake.auth, options.defaultRoom, report);
  const readsOf = shared.readsOf;
  await loadRooms(socket, rooms, { ...options, gate, readsOf }, report, (room) => {
    if (!shared.enterRoom(socket, room)) {
      return report({ code: "forbidden", message: `you may not use room "${room}"`, room });
    }
    if (room !== options.defaultRoom) return;
    socket.join(CHAT_ROOM);
    feed.welcome(socket.id);
  });
}
