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
import { Adapter, SessionAwareAdapter } from "socket.io-adapter";
import { installSingleRoomWalk } from "./socketio_internals.ts";

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
