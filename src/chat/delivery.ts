/**
 * How messages reach clients as `load` events: live ones to the chat room as they are stored,
 * history to one socket on connect. Both are cut into frames of bounded text, so one big history
 * is several moderate frames rather than one the transport must hold whole.
 * @module
 */
import { encodeEvent, writeEncoded } from "../cluster/socketio_internals.ts";
import { mentionedOthers } from "../store/mod.ts";
import type { ChatMessage, NewMessage, Reaction, ThreadSummary } from "../types.ts";
import type { ReadPosition } from "./contract.ts";
import { userRoom } from "./directory.ts";
import { LiveBatch } from "./live_batch.ts";
import { MAX_MENTIONS } from "./payloads.ts";
import { dmUsers, type RoomPolicy } from "./rooms.ts";
import type { Timeline } from "./timeline.ts";
import type { ChatObserver, ChatServer, ChatSocket, LoadedInfo } from "./types.ts";

/** Every connected, authenticated socket is in this room and hears who comes and goes. */
export const CHAT_ROOM = "chat";

/** The socket.io room of a chat room's members: they receive its live messages. */
export function roomKey(room: string): string {
  return `room:${room}`;
}

/** The chat rooms a socket is in. */
export function joinedRooms(socket: ChatSocket): Set<string> {
  const rooms = new Set<string>();
  for (const name of socket.rooms) {
    if (name.startsWith(ROOM_KEY_PREFIX)) rooms.add(name.slice(ROOM_KEY_PREFIX.length));
  }
  return rooms;
}
const ROOM_KEY_PREFIX = roomKey("");

/** Most message text in one `load`: more is split over several frames. */
export const LOAD_MAX_CHARS = 32 * 1024;

/** Cuts `messages` into runs of at most {@link LOAD_MAX_CHARS} of text (one message at least). */
export function framesOf(messages: ChatMessage[]): ChatMessage[][] {
  const frames: ChatMessage[][] = [];
  let start = 0;
  let chars = 0;
  for (let end = 0; end < messages.length; end++) {
    chars += messages[end].message.length;
    if (end > start && chars > LOAD_MAX_CHARS) {
      frames.push(messages.slice(start, end));
      [start, chars] = [end, messages[end].message.length];
    }
  }
  frames.push(start === 0 ? messages : messages.slice(start));
  return frames;
}

/**
 * Sends committed messages to the sockets in their room as live `load` events, oldest first,
 * and reports each with how long it took from `receivedAt` (`performance.now()`, one per
 * message). Messages of one room stored by one commit share a frame: under load, one socket
 * write per recipient carries several.
 */
export function deliverTo(
  io: ChatServer,
  observer: Pick<ChatObserver, "broadcast">,
): (messages: ChatMessage[], receivedAt: readonly number[]) => void {
  return (messages, receivedAt) => {
    if (messages.length === 0) return;
    const room = messages[0].room;
    if (messages.every((message) => message.room === room)) {
      for (const frame of framesOf(messages)) io.to(roomKey(room)).emit("load", frame);
    } else {
      const byRoom = Map.groupBy(messages, (message) => message.room);
      for (const [room, ofRoom] of byRoom) {
        for (const frame of framesOf(ofRoom)) io.to(roomKey(room)).emit("load", frame);
      }
    }
    const deliveredAt = performance.now();
    for (const at of receivedAt) observer.broadcast((deliveredAt - at) / 1000);
  };
}

/**
 * A history's `load` packets, encoded: the connections the timeline admits together share one
 * history array, so a connect storm encodes each history once, not once per connection.
 */
const encodedHistories = new WeakMap<ChatMessage[], unknown[]>();

/**
 * Sends a connection a room's history: one or more `load`s (always at least one), then
 * `loaded`. With `recovery` (socket.io's connection state recovery), every emit takes socket.io's
 * own path, which keeps it for the session; otherwise the encoded frames are shared.
 */
export function sendHistory(
  socket: ChatSocket,
  history: ChatMessage[],
  info: LoadedInfo,
  recovery = false,
): void {
  if (recovery) {
    for (const frame of framesOf(history)) socket.emit("load", frame);
  } else {
    let encoded = encodedHistories.get(history);
    if (!encoded) {
      encoded = framesOf(history).flatMap((frame) => encodeEvent(socket, ["load", frame]));
      encodedHistories.set(history, encoded);
    }
    writeEncoded(socket, encoded);
  }
  socket.emit("loaded", info);
}

/** Tells a message's room that it was edited (`message:updated`) or deleted (`message:deleted`). */
export function announceChange(io: ChatServer, message: ChatMessage): void {
  const room = io.to(roomKey(message.room));
  if (message.deleted) room.emit("message:deleted", { id: message.id, room: message.room });
  else room.emit("message:updated", message);
}

/** How long changes beside messages (reactions, threads) are gathered before rooms are told. */
export const CHANGES_BATCH_MS = 50;

/** A message whose reactions or thread changed. */
export interface ChangedMessage {
  room: string;
  id: string;
}

/**
 * Changes beside messages, batched: each batch reads what changed as stored when it goes out and
 * tells each message's room once. The read and the telling run in the timeline, between joins: a
 * joiner gets each change either in its history or as an event.
 */
function changeFeed<T>(
  timeline: Pick<Timeline, "run">,
  read: (room: string, ids: string[]) => Promise<Map<string, T>>,
  announce: (room: string, id: string, found: T | undefined) => void,
  failed: (error: unknown) => void,
  batchMs: number,
): LiveBatch<ChangedMessage> {
  return new LiveBatch<ChangedMessage>((changed) => {
    const byRoom = Map.groupBy(changed.values(), (target) => target.room);
    timeline.run(async () => {
      for (const [room, targets] of byRoom) {
        const found = await read(room, targets.map((target) => target.id));
        for (const { id } of targets) announce(room, id, found.get(id));
      }
    }).catch(failed);
  }, batchMs);
}

/** Tells rooms of changed reactions: `message:reactions {room, id, reactions}`, all of them now. */
export function reactionFeed(
  io: ChatServer,
  timeline: Pick<Timeline, "run">,
  read: (room: string, ids: string[]) => Promise<Map<string, Reaction[]>>,
  failed: (error: unknown) => void,
  batchMs: number = CHANGES_BATCH_MS,
): LiveBatch<ChangedMessage> {
  return changeFeed(
    timeline,
    read,
    (room, id, reactions) => {
      io.to(roomKey(room)).emit("message:reactions", { room, id, reactions: reactions ?? [] });
    },
    failed,
    batchMs,
  );
}

/** Tells rooms of threads that grew: `message:thread {room, id, thread}`. */
export function threadFeed(
  io: ChatServer,
  timeline: Pick<Timeline, "run">,
  read: (room: string, ids: string[]) => Promise<Map<string, ThreadSummary>>,
  failed: (error: unknown) => void,
  batchMs: number = CHANGES_BATCH_MS,
): LiveBatch<ChangedMessage> {
  return changeFeed(
    timeline,
    read,
    (room, id, thread) => {
      if (thread) io.to(roomKey(room)).emit("message:thread", { room, id, thread });
    },
    failed,
    batchMs,
  );
}

/** How long a mention in a claimed room waits for the other instances' connections. */
const MENTION_LOOKUP_TIMEOUT_MS = 1000;

/**
 * Tells the users a new message mentions (its author left out) on every connection, in its room
 * or not: `mention {room, message}`. Only connections that may read the room hear it: those of a
 * user it is open to ({@link RoomPolicy.isOpenTo}: their DM, a public room); in a room only a
 * token's claim opens, each connection whose own identity may join it (looked up on every
 * instance), so a mention never shows a room to someone it is closed to.
 */
export function mentionNotifier(
  io: ChatServer,
  policy: RoomPolicy,
  failed: (error: unknown) => void,
): (message: ChatMessage) => void {
  return (message) => {
    const { room } = message;
    const event = { room, message };
    const mentioned = mentionedOthers(message);
    const open = mentioned.filter((userId) => policy.isOpenTo(userId, room));
    if (open.length > 0) io.to(open.map(userRoom)).emit("mention", event);
    // No token opens a DM to anyone else; elsewhere a claim may.
    const claimed = dmUsers(room) ? [] : mentioned.filter((userId) => !open.includes(userId));
    if (claimed.length === 0) return;
    io.in(claimed.map(userRoom)).timeout(MENTION_LOOKUP_TIMEOUT_MS).fetchSockets().then(
      (sockets) => {
        const allowed = sockets.filter((socket) => policy.canJoin(socket.data.identity, room));
        if (allowed.length > 0) io.to(allowed.map((socket) => socket.id)).emit("mention", event);
      },
    ).catch(failed);
  };
}

/**
 * Most users one message may be missed by, known before it is stored: in a DM its two users (the
 * backend may write as neither), elsewhere the users it mentions (at most {@link MAX_MENTIONS}).
 */
export function mostMissableBy(message: Pick<NewMessage, "room" | "mentions">): number {
  if (message.room !== undefined && dmUsers(message.room)) return 2;
  return Math.min(MAX_MENTIONS, message.mentions?.length ?? 0);
}

/**
 * The users who may miss `message` while away (`message.missed`, Web Push): a DM's other user,
 * and the users it mentions whom its room is open to ({@link RoomPolicy.isOpenTo}), each once,
 * never its author; at most {@link mostMissableBy}. Bans are checked when the message is due.
 */
export function missableBy(message: ChatMessage, policy: RoomPolicy): string[] {
  const recipients = new Set(dmUsers(message.room) ?? []);
  for (const userId of mentionedOthers(message)) recipients.add(userId);
  recipients.delete(message.user.id);
  return [...recipients].filter((userId) => policy.isOpenTo(userId, message.room))
    .slice(0, mostMissableBy(message));
}

/** A read marker that moved, in its room. */
export interface MovedMarker extends ReadPosition {
  room: string;
}

/**
 * Tells rooms of moved read markers (read receipts): `room:read {room, reads}`, gathered like
 * reactions, each user once a batch with their latest marker. Only the room's members hear it:
 * a DM's receipts reach its two users alone.
 */
export function readFeed(
  io: ChatServer,
  batchMs: number = CHANGES_BATCH_MS,
): LiveBatch<MovedMarker> {
  return new LiveBatch<MovedMarker>((moved) => {
    for (const [room, markers] of Map.groupBy(moved.values(), (marker) => marker.room)) {
      const reads = markers.map(({ user, lastId }) => ({ user, lastId }));
      io.to(roomKey(room)).emit("room:read", { room, reads });
    }
  }, batchMs);
}
