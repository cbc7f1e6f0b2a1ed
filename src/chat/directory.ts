/**
 * Every instance's chat connections, found through the socket.io adapter (`fetchSockets`, and a
 * server-side event for who is online): what cluster presence and the cluster-wide connection cap
 * ask.
 * @module
 */
import type { Logger } from "../ops/log.ts";
import type { ConnectionDirectory } from "../cluster/presence.ts";
import type { User } from "../types.ts";
import type { ChatServer, SocketData } from "./types.ts";

/** The room holding every connection of one user, on every instance. */
export function userRoom(userId: string): string {
  return `user:${userId}`;
}

/** How long a cluster-wide socket query waits for the other instances. */
const DIRECTORY_TIMEOUT_MS = 1000;

/** How long {@link disconnectEverywhere} waits for other instances to close a user's sockets. */
const DISCONNECT_TIMEOUT_MS = 3000;
/** How often it looks again meanwhile. */
const DISCONNECT_RECHECK_MS = 25;

/**
 * Closes every socket of `userId` on every instance, and resolves once none is left (or after
 * {@link DISCONNECT_TIMEOUT_MS}, with a warning): a ban's answer means the user is out.
 */
export async function disconnectEverywhere(
  io: ChatServer,
  userId: string,
  log: Logger,
): Promise<void> {
  const sockets = () => io.in(userRoom(userId));
  const deadline = performance.now() + DISCONNECT_TIMEOUT_MS;
  for (;;) {
    sockets().disconnectSockets(true);
    let left: number;
    try {
      left = (await sockets().timeout(DIRECTORY_TIMEOUT_MS).fetchSockets()).length;
    } catch (error) {
      log.warn("disconnect.partial", { user: userId, error });
      return;
    }
    if (left === 0) return;
    if (performance.now() > deadline) {
      return log.warn("disconnect.slow", { user: userId, sockets: left });
    }
    await new Promise((resolve) => setTimeout(resolve, DISCONNECT_RECHECK_MS));
  }
}

/** How many distinct users have a connection to this instance. */
export function usersConnected(io: ChatServer): number {
  const users = new Set<string>();
  for (const socket of io.of("/").sockets.values()) users.add(socket.data.identity.user.id);
  return users.size;
}

/**
 * The other instances' answers to a server-side question. socket.io's own wait for them is 5 s;
 * one that died would hold every question that long: past {@link DIRECTORY_TIMEOUT_MS} (or on a
 * failure) there are none, and this instance's own answer stands alone.
 */
export async function askOthers(ask: () => Promise<unknown[]>, log: Logger): Promise<unknown[]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return await Promise.race([
    ask().catch((error) => {
      log.warn("presence.partial", { error });
      return [];
    }),
    new Promise<unknown[]>((resolve) => {
      timer = setTimeout(() => {
        log.warn("presence.partial", { error: "an instance did not answer in time" });
        resolve([]);
      }, DIRECTORY_TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

type Found = { id: string; data: SocketData; handshake: { issued: number } };

/**
 * Every instance's connections. When an instance does not answer in time (it just died), this
 * instance's own connections are used.
 */
export function socketDirectory(io: ChatServer, log: Logger): ConnectionDirectory & {
  /** How many connections the user has on the other instances. */
  elsewhere(userId: string): Promise<number>;
} {
  /** This instance's connected users, each once, at most `limit`. */
  const localUsers = (limit: number): User[] => {
    const users = new Map<string, User>();
    for (const socket of io.of("/").sockets.values()) {
      if (users.size >= limit) break;
      const { user } = socket.data.identity;
      if (!users.has(user.id)) users.set(user.id, user);
    }
    return [...users.values()];
  };
  // Only users cross between instances, not whole sockets as `fetchSockets` would send.
  // A limit of "all" (Infinity) crosses Redis as JSON's null.
  io.on("presence:users", (limit, answer) => {
    answer(localUsers(Number.isFinite(limit) && limit >= 0 ? Math.floor(limit) : Infinity));
  });
  io.on("presence:count", (answer) => answer(usersConnected(io)));
  const toConnections = (sockets: Found[]) =>
    sockets.map((socket) => ({
      socketId: socket.id,
      user: socket.data.identity.user,
      since: socket.handshake.issued,
    }));
  const fetch = async (room: string): Promise<Found[]> => {
    try {
      return await io.in(room).timeout(DIRECTORY_TIMEOUT_MS).fetchSockets();
    } catch (error) {
      log.warn("presence.partial", { error });
      return await io.local.in(room).fetchSockets();
    }
  };
  return {
    ofUser: async (userId) => toConnections(await fetch(userRoom(userId))),
    async users(limit) {
      const found = new Map<string, User>();
      const add = (users: readonly User[]) => {
        for (const user of users) {
          if (found.size >= limit) return;
          if (!found.has(user.id)) found.set(user.id, user);
        }
      };
      add(localUsers(limit));
      const answers = await askOthers(() => io.serverSideEmitWithAck("presence:users", limit), log);
      for (const users of answers) if (Array.isArray(users)) add(users);
      return [...found.values()];
    },
    async count() {
      const answers = await askOthers(() => io.serverSideEmitWithAck("presence:count"), log);
      return answers.reduce<number>(
        (total, count) => total + (typeof count === "number" ? count : 0),
        usersConnected(io),
      );
    },
    async elsewhere(userId) {
      const local = io.sockets.sockets;
      return (await fetch(userRoom(userId))).filter((socket) => !local.has(socket.id)).length;
    },
  };
}
