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
import { type Identity, isExpired } from "../auth.ts";
import { CodedError, toWireError, type WireError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { readLastId, readLastIds } from "../payloads.ts";
import type { RoomPolicy } from "./rooms.ts";
import { type Presence, PresenceFeed } from "../presence.ts";
import type { Timeline } from "../timeline.ts";
import { Admission } from "./admission.ts";
import { announceChange, CHAT_ROOM, roomKey, sendHistory } from "./delivery.ts";
import { userRoom } from "./directory.ts";
import { bindEvents, type EventBudgets, EventGate } from "./events.ts";
import type { ChatContext } from "./handlers.ts";
import { RoomPresence } from "./room_presence.ts";
import type { ChatObserver, ChatServer, ChatSocket } from "./types.ts";
import type { Ban, User } from "../types.ts";

export {
  announceChange,
  CHAT_ROOM,
  deliverTo,
  framesOf,
  LOAD_MAX_CHARS,
  roomKey,
} from "./delivery.ts";
export { dmRoom, isRoomId, RoomPolicy } from "./rooms.ts";
export { socketDirectory, userRoom } from "./directory.ts";
export type { EventBudgets } from "./events.ts";
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
  /** How long authors may edit or delete their messages, in ms (`EDIT_WINDOW`). */
  editWindowMs: number;
  verifyToken: (token: string) => Promise<Identity>;
  /** Longest accepted message in characters (Unicode code points), after trimming. */
  maxMessageLength: number;
  /** Most messages a reconnecting client's catch-up carries. */
  catchupLimit: number;
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
  /** Whether this identity may send messages and typing (scopes); everyone may read. */
  canWrite: (identity: Identity) => boolean;
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
  /** The users with a connection in `room` now, on every instance (at most a thousand). */
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
/** Most users a `join` ack lists as online in the room. */
const MAX_LISTED_MEMBERS = 1000;

/** The longest delay a timer takes (setTimeout fires at once beyond it). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Calls `onExpired` once the identity's token has expired (`exp` plus the tolerance), unless
 * `extend` moves the expiry first.
 */
function watchExpiry(
  identity: Identity,
  toleranceMs: number,
  now: () => number,
  onExpired: () => void,
): { extend(identity: Identity): void; stop(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let current = identity;
  const schedule = () => {
    clearTimeout(timer);
    if (current.expiresAt === undefined) return;
    const delay = current.expiresAt + toleranceMs - now();
    timer = setTimeout(check, Math.min(Math.max(0, delay), MAX_TIMER_MS));
  };
  const check = () => (isExpired(current, now(), toleranceMs) ? onExpired() : schedule());
  schedule();
  return {
    extend(identity) {
      current = identity;
      schedule();
    },
    stop: () => clearTimeout(timer),
  };
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
  const { timeline, log, observer, presence } = options;
  const now = options.now ?? Date.now;
  // Batches are announced in order, each after the snapshot its newcomers get: a slow snapshot
  // (asked across instances) must not let a later batch overtake an earlier one.
  let announced = Promise.resolve();
  const feed = new PresenceFeed((joined, left, welcomed) => {
    announced = announced.then(async () => {
      if (welcomed.length > 0) {
        try {
          io.to(welcomed).emit("presence", await presence.online());
        } catch (error) {
          log.warn("presence.failed", { sockets: welcomed.length, error });
        }
      }
      if (joined.length > 0) io.to(CHAT_ROOM).emit("user:joined", joined);
      if (left.length > 0) io.to(CHAT_ROOM).emit("user:left", left);
    });
  }, options.presenceBatchMs);
  // The default room's comings and goings are the global presence events.
  const roomPresence = new RoomPresence((room, joined, left) => {
    io.to(roomKey(room)).emit("room:presence", { room, joined, left });
  }, options.presenceBatchMs);
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
    let sockets;
    try {
      sockets = await io.in(roomKey(room)).timeout(DIRECTORY_TIMEOUT_MS).fetchSockets();
    } catch (error) {
      log.warn("presence.partial", { room, error });
      sockets = await io.local.in(roomKey(room)).fetchSockets();
    }
    const users = new Map<string, User>();
    for (const { data } of sockets) {
      if (users.size === MAX_LISTED_MEMBERS) break;
      users.set(data.identity.user.id, data.identity.user);
    }
    return [...users.values()];
  };
  const gate = new EventGate(options.budgets, log, observer, now, options.errorEventsPerSecond);
  const admission = new Admission(options);
  io.use(admission.middleware);

  io.on("connection", (socket: ChatSocket) => {
    admission.adopt(socket);
    admission.connected(socket);
    const user = socket.data.identity.user;
    const expired = () =>
      new CodedError("token_expired", "token has expired; reconnect with a new one");
    const ctx: ChatContext = {
      get identity() {
        return socket.data.identity;
      },
      set identity(identity) {
        socket.data.identity = identity;
      },
      timeline,
      store: options.store,
      policy: options.policy,
      defaultRoom: options.defaultRoom,
      maxRoomsPerSocket: options.maxRoomsPerSocket,
      maxMessageLength: options.maxMessageLength,
      canWrite: options.canWrite,
      verifyToken: options.verifyToken,
      joined: () => joinedRooms(socket),
      subscribe: (room) =>
        new Promise((resolve, reject) => {
          timeline.join((messages, { hasMore }) => {
            if (socket.connected) enterRoom(socket, room);
            resolve({ messages, hasMore });
          }, { room }).catch(reject);
        }),
      unsubscribe: (room) => leaveRoom(socket, room),
      membersOf,
      editWindowMs: options.editWindowMs,
      announceChange: (message) => announceChange(io, message),
      onModerated: (action, message, by) =>
        log.info("message.changed", {
          action,
          id: message.id,
          room: message.room,
          by,
          author: message.user.id,
        }),
      sendTyping: (room, typing) =>
        socket.to(roomKey(room)).volatile.emit("typing", { room, user, typing }),
      onIdentityChanged: (identity) => expiry.extend(identity),
      onBackgroundError: (error) => log.warn("membership.failed", { user: user.id, error }),
      now,
    };
    const endExpired = () => {
      report("connection", toWireError(expired()));
      socket.disconnect(true);
    };
    // Checked on every packet too: a timer may run late, a packet must not slip through.
    socket.use((_packet, next) => {
      if (!isExpired(socket.data.identity, now(), options.clockToleranceMs)) return next();
      endExpired();
    });
    const report = bindEvents(socket, ctx, gate);
    const expiry = watchExpiry(socket.data.identity, options.clockToleranceMs, now, endExpired);

    log.info("socket.connected", {
      socket: socket.id,
      user: user.id,
      transport: socket.conn.transport.name,
      address: socket.handshake.address,
      recovered: socket.recovered,
    });
    const connection = { socketId: socket.id, user, since: socket.handshake.issued };
    socket.on("disconnecting", () => {
      for (const room of joinedRooms(socket)) roomPresence.exit(room, user);
    });
    socket.on("disconnect", (reason) => {
      admission.release(socket);
      expiry.stop();
      log.info("socket.disconnected", { socket: socket.id, user: user.id, reason });
      presence.depart(connection).then((wentOffline) => {
        if (wentOffline) feed.left(user);
      }).catch((error) => log.warn("presence.failed", { socket: socket.id, error }));
    });
    // A recovered session skipped the token check at admission: its token may have expired since.
    if (isExpired(socket.data.identity, now(), options.clockToleranceMs)) return endExpired();
    socket.join(userRoom(user.id));

    const admit = async () => {
      if (await presence.arrive(connection)) feed.joined(user);
      // A socket.io session recovery replays what was missed and restores the rooms.
      if (socket.recovered) return void feed.welcome(socket.id);
      const rooms = catchUpsOf(
        socket.handshake.auth,
        options.defaultRoom,
        (error) => report("connection", error),
      );
      // The default room always, then the rooms a reconnecting client names, as far as allowed.
      const admitted = [...rooms].filter(([room]) => {
        if (room === options.defaultRoom || ctx.policy.canJoin(ctx.identity, room)) return true;
        report("connection", { code: "forbidden", message: `you may not use room "${room}"` });
        return false;
      }).slice(0, options.maxRoomsPerSocket);
      await Promise.all(admitted.map(([room, afterId]) =>
        timeline.join((history, { hasMore }) => {
          if (!socket.connected) return;
          sendHistory(socket, history, { room, hasMore, catchUp: afterId !== undefined });
          enterRoom(socket, room);
          if (room === options.defaultRoom) {
            socket.join(CHAT_ROOM);
            feed.welcome(socket.id);
          }
        }, { room, afterId, limit: afterId === undefined ? undefined : options.catchupLimit })
      ));
    };
    admit().catch((error) => {
      log.warn("admit.failed", { socket: socket.id, error });
      report("connection", { code: "internal", message: "history could not be loaded" });
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
