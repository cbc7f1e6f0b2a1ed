/**
 * Room ids and who may join what. A room id is 1–64 characters of `a-z`, `0-9`, `_`, `-` and `.`,
 * starting with a letter or digit; a direct-message room is `dm:<a>:<b>`, the two user ids in
 * sorted order. Who may join is decided here, from the server's config and the token, never from
 * the client: public rooms (`PUBLIC_ROOMS`), the token's `rooms` claim, and a DM's two users.
 *
 * @example
 * ```ts
 * import { RoomPolicy, dmRoom } from "./rooms.ts";
 *
 * const policy = new RoomPolicy(["general", "team-*"]);
 * const identity = { user: { id: "alice", name: "Alice" }, scopes: [], rooms: ["ops"] };
 * policy.canJoin(identity, "team-red"); // true: a public pattern
 * policy.canJoin(identity, "ops"); // true: the token's claim
 * policy.canJoin(identity, dmRoom("bob", "alice")); // true: "dm:alice:bob"
 * policy.canJoin(identity, "dm:bob:carol"); // false
 * policy.isOpenTo("alice", "ops"); // false: only a token opens it
 * ```
 * @module
 */
import type { Identity } from "../auth/token.ts";
import { CodedError, type ErrorDetails } from "../errors.ts";

/** A room id other than a DM. */
export const ROOM_ID_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
/** A user id that can take part in a DM room (no `:`, at most 64 characters). */
const DM_USER_PATTERN = /^[A-Za-z0-9_.@+-]{1,64}$/;
const DM_PREFIX = "dm:";

/** The DM room of two users: `dm:<a>:<b>` with the ids sorted. */
export function dmRoom(a: string, b: string): string {
  return a < b ? `${DM_PREFIX}${a}:${b}` : `${DM_PREFIX}${b}:${a}`;
}

/** The two users of a DM room, or undefined when `room` is not a well-formed DM id. */
export function dmUsers(room: string): [string, string] | undefined {
  if (!room.startsWith(DM_PREFIX)) return undefined;
  const parts = room.slice(DM_PREFIX.length).split(":");
  if (parts.length !== 2) return undefined;
  const [a, b] = parts;
  if (!DM_USER_PATTERN.test(a) || !DM_USER_PATTERN.test(b) || a >= b) return undefined;
  return [a, b];
}

/** Whether `room` is a well-formed room id (a named room or a DM). */
export function isRoomId(room: unknown): room is string {
  return typeof room === "string" && (ROOM_ID_PATTERN.test(room) || dmUsers(room) !== undefined);
}

/** Reads a room id from a payload field; `fallback` when absent. */
export function readRoom(value: unknown, fallback?: string): string {
  if (value === undefined && fallback !== undefined) return fallback;
  if (!isRoomId(value)) {
    throw new CodedError(
      "invalid_payload",
      "`room` must be 1-64 of a-z 0-9 _ - . (starting with a letter or digit), or dm:<a>:<b>",
    );
  }
  return value;
}

/** Whether `room` matches an id or a `prefix*` pattern (`*` alone matches every named room). */
function matches(pattern: string, room: string): boolean {
  return pattern.endsWith("*") ? room.startsWith(pattern.slice(0, -1)) : pattern === room;
}

/** Decides who may join which room. */
export class RoomPolicy {
  /** @param publicRooms ids or `prefix-*` patterns anyone may join (`PUBLIC_ROOMS`) */
  constructor(readonly publicRooms: readonly string[]) {}

  /** Whether this identity may join, read and write `room`. */
  canJoin(identity: Identity, room: string): boolean {
    const dm = dmUsers(room);
    if (dm) return dm.includes(identity.user.id);
    if (room.startsWith(DM_PREFIX)) return false;
    return this.publicRooms.some((pattern) => matches(pattern, room)) ||
      identity.rooms.some((pattern) => matches(pattern, room));
  }

  /** Whether anyone may join `room` (`PUBLIC_ROOMS`), whatever their token claims. */
  isPublic(room: string): boolean {
    return !room.startsWith(DM_PREFIX) &&
      this.publicRooms.some((pattern) => matches(pattern, room));
  }

  /**
   * Whether `userId` may read `room` whatever token they hold: a DM is theirs, or the room is
   * public. A room only a token's claim opens is not: with no connection there is no token to ask,
   * so a user away is told nothing of it.
   */
  isOpenTo(userId: string, room: string): boolean {
    const dm = dmUsers(room);
    return dm ? dm.includes(userId) : this.isPublic(room);
  }

  /** The rooms named outright (not by a pattern) that this identity may join. */
  namedRooms(identity: Identity): string[] {
    const named = [...this.publicRooms, ...identity.rooms].filter((room) =>
      !room.endsWith("*") && isRoomId(room)
    );
    return [...new Set(named)];
  }

  /** Throws `forbidden` unless this identity may use `room`. */
  check(identity: Identity, room: string): void {
    if (!this.canJoin(identity, room)) {
      throw new CodedError("forbidden", `you may not use room "${room}"`);
    }
  }
}

/** The refusal of one room too many for a connection (`MAX_ROOMS_PER_SOCKET`). */
export function tooManyRooms(maxRoomsPerSocket: number, details: ErrorDetails = {}): CodedError {
  return new CodedError(
    "too_many_rooms",
    `a connection may be in at most ${maxRoomsPerSocket} rooms; leave one first`,
    details,
  );
}
