/**
 * A connecting client's history: the default room's, then the rooms it names in `auth.lastIds` to
 * catch up on after a reconnect. It costs what the events that fetch the same would: each room
 * besides the default spends a `join`, and a catch-up longer than a join's history spends a
 * `history` unit per page of {@link MAX_HISTORY_PAGE} messages, from the user's budgets shared by
 * all their sockets. Rooms load one after another, each once the client has read most of the one
 * before, so a client that stops reading holds one room's history at most.
 * @module
 */
import { toWireError, type WireError } from "../errors.ts";
import { MAX_HISTORY_PAGE } from "./payloads.ts";
import type { Timeline } from "./timeline.ts";
import { joinedRooms, sendHistory } from "./delivery.ts";
import type { EventGate } from "./events.ts";
import { type RoomPolicy, tooManyRooms } from "./rooms.ts";
import type { ChatSocket } from "./types.ts";
import type { ReadPosition } from "./contract.ts";

/** The next room loads once the client has less than this left to read. */
export const CATCH_UP_BACKLOG_BYTES = 256 * 1024;
/** How often a paused catch-up looks whether the client has read on. */
const PACE_MS = 20;

/** What {@link loadRooms} needs. */
export interface CatchUpOptions {
  timeline: Timeline;
  gate: EventGate;
  policy: RoomPolicy;
  defaultRoom: string;
  maxRoomsPerSocket: number;
  /** Messages a plain join's history holds (`HISTORY_LIMIT`): a catch-up gets this many free. */
  historyLimit: number;
  /** Most messages one room's catch-up carries (`CATCHUP_LIMIT`). */
  catchupLimit: number;
  /** Whether socket.io's connection state recovery is on (it must see every emit). */
  connectionRecovery?: boolean;
  /** The room's read positions, as a join's ack lists them. */
  readsOf: (room: string) => Promise<ReadPosition[]>;
}

/** The parts of a transport session the pacing reads (the engine's; others are not paced). */
interface Backlogged {
  backlogBytes?: number;
}

/**
 * Sends `socket` the history of each of `rooms` (room → the last id it saw, if any), the default
 * room first, and calls `entered` with each room right after its history, so live messages follow
 * it without a gap. A room that may not be used or is over a budget is reported and skipped.
 */
export async function loadRooms(
  socket: ChatSocket,
  rooms: Map<string, string | undefined>,
  options: CatchUpOptions,
  report: (error: WireError) => void,
  entered: (room: string) => void,
): Promise<void> {
  for (const [room, afterId] of rooms) {
    if (!socket.connected) return;
    // A `join` while the catch-up paused put the socket in the room already, with its history.
    if (joinedRooms(socket).has(room)) continue;
    if (room !== options.defaultRoom) {
      const refusal = refusalOf(socket, room, options);
      if (refusal) {
        report(refusal);
        continue;
      }
    }
    await loadRoom(socket, room, afterId, options, entered);
    await readDown(socket);
  }
}

/**
 * Why `room` may not be rejoined now, naming it (`room`), as a `join` of it would be refused;
 * spends its `join` when it may.
 */
function refusalOf(
  socket: ChatSocket,
  room: string,
  options: CatchUpOptions,
): WireError | undefined {
  const identity = socket.data.identity;
  if (!options.policy.canJoin(identity, room)) {
    return { code: "forbidden", message: `you may not use room "${room}"`, room };
  }
  if (joinedRooms(socket).size >= options.maxRoomsPerSocket) {
    return toWireError(tooManyRooms(options.maxRoomsPerSocket, { room }));
  }
  const refusal = options.gate.take("join", identity.user.id);
  if (refusal) {
    return { ...refusal, message: `room "${room}" was not rejoined: too many joins`, room };
  }
}

/** One room's history (after `afterId`, when given), paid for by the user's `history` budget. */
async function loadRoom(
  socket: ChatSocket,
  room: string,
  afterId: string | undefined,
  options: CatchUpOptions,
  entered: (room: string) => void,
): Promise<void> {
  const { gate, historyLimit, catchupLimit } = options;
  const userId = socket.data.identity.user.id;
  const free = Math.max(1, historyLimit);
  const pages = afterId === undefined || catchupLimit <= free
    ? 0
    : gate.takeUpTo("history", userId, Math.ceil((catchupLimit - free) / MAX_HISTORY_PAGE));
  const limit = afterId === undefined
    ? undefined
    : Math.min(catchupLimit, free + pages * MAX_HISTORY_PAGE);
  let loaded = 0;
  try {
    // Asked before the history, as a join's are: a marker moved later is a `room:read` to come.
    const reads = await options.readsOf(room);
    await options.timeline.join((history, { hasMore }) => {
      loaded = history.length;
      if (!socket.connected) return;
      const info = { room, hasMore, catchUp: afterId !== undefined, reads };
      sendHistory(socket, history, info, options.connectionRecovery);
      entered(room);
    }, { room, afterId, limit });
  } finally {
    const used = Math.ceil(Math.max(0, loaded - free) / MAX_HISTORY_PAGE);
    gate.giveBack("history", userId, pages - used);
  }
}

/** Waits until the client has read all but {@link CATCH_UP_BACKLOG_BYTES}, or is gone. */
async function readDown(socket: ChatSocket): Promise<void> {
  const session = socket.conn as unknown as Backlogged;
  while (socket.connected && (session.backlogBytes ?? 0) > CATCH_UP_BACKLOG_BYTES) {
    await new Promise((resolve) => setTimeout(resolve, PACE_MS));
  }
}
