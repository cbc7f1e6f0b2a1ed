/**
 * socket.io's in-memory adapters with a leaner broadcast walk. A broadcast to one room with no
 * exceptions (every chat message) visits the room's members directly, without the set of visited
 * ids the general walk builds to deduplicate sockets found in several rooms: one fewer hash insert
 * per recipient. Every other broadcast takes socket.io's own walk.
 *
 * @example
 * ```ts
 * import { Server } from "socket.io";
 * import { adapterFor } from "./adapter.ts";
 *
 * const io = new Server({ adapter: adapterFor({ recovery: true }) });
 * ```
 * @module
 */
import { Adapter, type BroadcastOptions, SessionAwareAdapter } from "socket.io-adapter";
import type { Socket } from "socket.io";

/** The parts of an adapter the walk uses; `apply` is private in socket.io-adapter's typings. */
interface Walker {
  apply(opts: BroadcastOptions, callback: (socket: Socket) => void): void;
  rooms: Map<string, Set<string>>;
  nsp: { sockets: Map<string, Socket> };
}

/** Replaces `apply` on `target`'s prototype, falling back to `base`'s for general broadcasts. */
function installSingleRoomWalk(target: typeof Adapter, base: typeof Adapter): void {
  const generalWalk = (base.prototype as unknown as Walker).apply;
  (target.prototype as unknown as Walker).apply = function (this: Walker, opts, callback) {
    const { rooms, except } = opts;
    if (rooms.size !== 1 || (except !== undefined && except.size > 0)) {
      return generalWalk.call(this, opts, callback);
    }
    const [room] = rooms;
    const members = this.rooms.get(room);
    if (members === undefined) return;
    const sockets = this.nsp.sockets;
    for (const id of members) {
      const socket = sockets.get(id);
      if (socket !== undefined) callback(socket);
    }
  };
}

/** socket.io's in-memory adapter with the single-room broadcast walk. */
export class LeanAdapter extends Adapter {}
installSingleRoomWalk(LeanAdapter, Adapter);

/** socket.io's connection-state-recovery adapter with the single-room broadcast walk. */
export class LeanSessionAwareAdapter extends SessionAwareAdapter {}
installSingleRoomWalk(LeanSessionAwareAdapter, SessionAwareAdapter);

/** The adapter class for a single-instance server, with or without connection state recovery. */
export function adapterFor(options: { recovery: boolean }): typeof Adapter {
  return options.recovery ? LeanSessionAwareAdapter : LeanAdapter;
}
