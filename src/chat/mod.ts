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
import { type Presence, PresenceFeed } from "../cluster/presence.ts";
import type { Timeline } from "./timeline.ts";
import { Admission, type RecoveringAdapter } from "./admission.ts";
import { loadRooms } from "./catch_up.ts";
import { CHAT_ROOM, roomKey } from "./delivery.ts";
import { userRoom } from "./directory.ts";
import { dispatchEvent, type EventBudgets, type EventContext, EventGate } from "./events.ts";
import type { ChatContext, Subscription } from "./handlers.ts";
import { RoomPresence } from "./room_presence.ts";
import type { ChatService } from "./service.ts";
import type { ChatObserver, ChatServer, ChatSocket } from "./types.ts";
import type { Ban, User } from "../types.ts";

export {
  announceChange,
  CHAT_ROOM,
  deliverTo,
  framesOf,
  LOAD_MAX_CHARS,
  mentionNotifier,
  reactionFeed,
  readFeed,
  roomKey,
  threadFeed,
} from "./delivery.ts";
export { dmRoom, isRoomId, RoomPolicy } from "./rooms.ts";
export { disconnectEverywhere, socketDirectory, userRoom } from "./directory.ts";
export {
  ChatService,
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
  /** Most rooms one connection may be in (`MAX_ROOMS_PER_SOCKET`). */
  maxRoomsPerSocket: number;
  /** Most users a `presence` snapshot or a join's `online` lists (`MAX_LISTED_USERS`). */
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
  /** Clock skew forgiven on a token's `exp`, in ms. */
  clockToleranceMs: number;
  /** The clock (tests move it). */
  now?: () => number;
  log: Logger;
  observer: Pick<ChatObserver, "connectRefused" | "errorSent">;
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

/** The longest delay a timer takes (setTimeout fires at once beyond it). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** What every connection's context shares: built once per server. */
interface Shared {
  readonly io: ChatServer;
  readonly options: ChatOptions;
  readonly now: () => number;
  readonly gate: EventGate;
  readonly enterRoom: (socket: ChatSocket, room: string) => void;
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
  #expiryTimer?: ReturnType<typeof setTimeout>;
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
        if (this.socket.connected) this.shared.enterRoom(this.socket, room);
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
    clearTimeout(this.#expiryTimer);
    const { expiresAt } = this.identity;
    if (expiresAt === undefined) return;
    const delay = expiresAt + this.shared.options.clockToleranceMs - this.now();
    this.#expiryTimer = setTimeout(checkExpiry, Math.min(Math.max(0, delay), MAX_TIMER_MS), this);
  }

  stopWatchingExpiry(): void {
    clearTimeout(this.#expiryTimer);
  }

  endExpired(): void {
    this.report(
      "connection",
      toWireError(new CodedError("token_expired", "token has expired; reconnect with a new one")),
    );
    this.socket.disconnect(true);
  }
}

/** A connection's expiry timer fired: a timer may run early by the clock's reckoning. */
function checkExpiry(connection: Connection): void {
  if (connection.expired()) connection.endExpired();
  else connection.watchExpiry();
}

/** Reads the user's ban once more; a banned user's socket is told and closed. */
async function stillUnbanned(
  connection: Connection,
  banOf: (userId: string) => Promise<Ban | undefined>,
): Promise<boolean> {
  const ban = await banOf(connection.identity.user.id);
  if (!ban) return true;
  const details = ban.until ? { until: ban.until } : {};
  connection.report(
    "connection",
    toWireError(new CodedError("banned", "this user is banned", details)),
  );
  connection.socket.disconnect(true);
  return false;
}

/** The chat rooms a socket is in. */
function joinedRooms(socket: ChatSocket): Set<string> {
  const rooms = new Set<string>();
  for (const name of socket.rooms) {
    if (name.startsWith(ROOM_KEY_PREFIX)) rooms.add(name.slice(ROOM_KEY_PREFIX.length));
  }
  return rooms;
}
const ROOM_KEY_PREFIX = roomKey("");

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
  const { log, observer, presence } = options;
  const now = options.now ?? Date.now;
  // Batches are announced in order, each after the snapshot its newcomers get: a slow snapshot
  // (asked across instances) must not let a later batch overtake an earlier one.
  let announced = Promise.resolve();
  const batching = { batchMs: options.presenceBatchMs, cancelOut: !presence.shared };
  const feed = new PresenceFeed(
    (joined, left, welcomed) => {
      announced = announced.then(async () => {
        if (welcomed.length > 0) {
          try {
            const online = await presence.online(options.maxListedUsers);
            feed.observed();
            // Newcomers are this instance's own sockets: no other instance needs the snapshot.
            io.local.to(welcomed).emit("presence", online);
          } catch (error) {
            log.warn("presence.failed", { sockets: welcomed.length, error });
          }
        }
        if (joined.length > 0) io.to(CHAT_ROOM).emit("user:joined", joined);
        if (left.length > 0) io.to(CHAT_ROOM).emit("user:left", left);
      });
    },
    {
      ...batching,
      // A big audience makes changes wait longer (a frame each): this instance's share of it.
      audience: () => io.of("/").adapter.rooms.get(CHAT_ROOM)?.size ?? 0,
    },
  );
  // The default room's comings and goings are the global presence events.
  const roomPresence = new RoomPresence((room, joined, left) => {
    io.to(roomKey(room)).emit("room:presence", { room, joined, left });
  }, batching);
  const enterRoom = (socket: ChatSocket, room: string) => {
    if (socket.rooms.has(roomKey(room))) return;
    socket.join(roomKey(room));
    if (room !== options.defaultRoom) roomPresence.enter(room, socket.data.identity.user);
  };
  const leaveRoom = (socket: ChatSocket, room: string) => {
    if (!socket.rooms.has(roomKey(room))) return;
    socket.leave(roomKey(room));
    if (room !== options.defaultRoom) roomPresence.exit(room, socket.data.identity.user);
  };
  const membersOf = async (room: string): Promise<User[]> => {
    // Changes pending now or while the list is fetched may show in it: they may not cancel out.
    // The default room's comings and goings are the feed's (user:joined / user:left).
    const observed = () =>
      room === options.defaultRoom ? feed.observed() : roomPresence.observed(room);
    observed();
    let sockets;
    try {
      sockets = await io.in(roomKey(room)).timeout(DIRECTORY_TIMEOUT_MS).fetchSockets();
    } catch (error) {
      log.warn("presence.partial", { room, error });
      sockets = await io.local.in(roomKey(room)).fetchSockets();
    }
    observed();
    const users = new Map<string, User>();
    for (const { data } of sockets) {
      if (users.size === options.maxListedUsers) break;
      users.set(data.identity.user.id, data.identity.user);
    }
    return [...users.values()];
  };
  const gate = new EventGate(options.budgets, log, observer, now, options.errorEventsPerSecond);
  const admission = new Admission(options);
  io.use(admission.middleware);
  if (options.connectionRecovery) {
    const clockTolerance = options.clockToleranceMs;
    admission.guardRecovery(
      io.of("/").adapter as unknown as RecoveringAdapter,
      (identity) => isExpired(identity, now(), clockTolerance),
    );
  }
  const shared: Shared = { io, options, now, gate, enterRoom, leaveRoom, membersOf };

  io.on("connection", (socket: ChatSocket) => {
    const connection = new Connection(socket, shared);
    if (!admission.adopt(socket)) {
      connection.report("connection", admission.tooMany());
      return void socket.disconnect(true);
    }
    admission.connected(socket);
    const user = socket.data.identity.user;
    // A ban set while this socket was admitted found no socket to close: once the socket is in its
    // user room (below) a ban's disconnect reaches it, so the ban is read again, and until it is,
    // the socket's events wait and it is sent no history.
    let unbanned: Promise<boolean> | undefined = options.banOf
      ? stillUnbanned(connection, options.banOf).finally(() => unbanned = undefined)
      : undefined;
    // One middleware takes every client event and handles it; socket.io never emits them, so a
    // connection holds no listener per event, and an event's arguments are checked before anything
    // spreads them. A timer may run late: the expiry is checked on every event too.
    socket.use((event) => {
      if (connection.expired()) return connection.endExpired();
      if (unbanned) {
        return void unbanned.then((ok) => {
          if (ok) void dispatchEvent(connection, gate, event);
        });
      }
      void dispatchEvent(connection, gate, event);
    });
    connection.watchExpiry();

    log.info("socket.connected", {
      socket: socket.id,
      user: user.id,
      transport: socket.conn.transport.name,
      address: socket.handshake.address,
      recovered: socket.recovered,
    });
    const presenceEntry = { socketId: socket.id, user, since: socket.handshake.issued };
    socket.on("disconnecting", () => {
      for (const room of joinedRooms(socket)) roomPresence.exit(room, user);
    });
    socket.on("disconnect", (reason) => {
      admission.release(socket);
      connection.stopWatchingExpiry();
      log.info("socket.disconnected", { socket: socket.id, user: user.id, reason });
      presence.depart(presenceEntry).then((wentOffline) => {
        if (wentOffline) feed.left(user);
      }).catch((error) => log.warn("presence.failed", { socket: socket.id, error }));
    });
    // A recovered session skipped the token check at admission: its token may have expired since.
    if (connection.expired()) return connection.endExpired();
    socket.join(userRoom(user.id));

    const admit = async () => {
      if (unbanned && !(await unbanned)) return;
      if (await presence.arrive(presenceEntry)) feed.joined(user);
      // A socket.io session recovery replays what was missed and restores the rooms.
      if (socket.recovered) return void feed.welcome(socket.id);
      const rooms = catchUpsOf(
        socket.handshake.auth,
        options.defaultRoom,
        (error) => connection.report("connection", error),
      );
      await loadRooms(
        socket,
        rooms,
        { ...options, gate },
        (error) => connection.report("connection", error),
        (room) => {
          enterRoom(socket, room);
          if (room !== options.defaultRoom) return;
          socket.join(CHAT_ROOM);
          feed.welcome(socket.id);
        },
      );
    };
    admit().catch((error) => {
      log.warn("admit.failed", { socket: socket.id, error });
      connection.report("connection", { code: "internal", message: "history could not be loaded" });
    });
  });
  return {
    membersOf,
    // Counted from this instance's sockets: presence may span the cluster.
    roomsOccupied: () => roomPresence.rooms,
    usersOnline() {
      const users = new Set<string>();
      for (const socket of io.of("/").sockets.values()) users.add(socket.data.identity.user.id);
      return users.size;
    },
    close() {
      feed.close();
      roomPresence.close();
    },
  };
}
