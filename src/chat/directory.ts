/**
 * Every instance's chat connections, found through the socket.io adapter (`fetchSockets`): what
 * cluster presence and the cluster-wide connection cap ask.
 * @module
 */
import type { Logger } from "../log.ts";
import type { ConnectionDirectory } from "../presence.ts";
import type { ChatServer, SocketData } from "./types.ts";

/** The room holding every connection of one user, on every instance. */
export function userRoom(userId: string): string {
  return `user:${userId}`;
}

/** How long a cluster-wide socket query waits for the other instances. */
const DIRECTORY_TIMEOUT_MS = 1000;

type Found = { id: string; data: SocketData; handshake: { issued: number } };

/**
 * Every instance's connections. When an instance does not answer in time (it just died), this
 * instance's own connections are used.
 */
export function socketDirectory(io: ChatServer, log: Logger): ConnectionDirectory & {
  /** How many connections the user has on the other instances. */
  elsewhere(userId: string): Promise<number>;
} {
  const toConnections = (sockets: Found[]) =>
    sockets.map((socket) => ({
      socketId: socket.id,
      user: socket.data.identity.user,
      since: socket.handshake.issued,
    }));
  const fetch = async (room?: string): Promise<Found[]> => {
    const everywhere = room === undefined ? io : io.in(room);
    try {
      return await everywhere.timeout(DIRECTORY_TIMEOUT_MS).fetchSockets();
    } catch (error) {
      log.warn("presence.partial", { error });
      return await (room === undefined ? io.local : io.local.in(room)).fetchSockets();
    }
  };
  return {
    ofUser: async (userId) => toConnections(await fetch(userRoom(userId))),
    all: async () => toConnections(await fetch()),
    async elsewhere(userId) {
      const local = io.sockets.sockets;
      return (await fetch(userRoom(userId))).filter((socket) => !local.has(socket.id)).length;
    },
  };
}
