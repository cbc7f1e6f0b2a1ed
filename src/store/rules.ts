/**
 * What every `MessageStore` backend applies alike: the argument checks and their errors, the
 * defaults, the throttle that keeps touches of a room from costing a write each, and the order in
 * which changes of one message apply.
 *
 * @example
 * ```ts
 * const touches = new TouchMemory(DEFAULT_MEMBERSHIP_MAX_AGE_MS);
 * touches.note("members", "alice", "team", Date.now(), true);
 * console.log(touches.stale(["members", "reads"], "alice", "team", Date.now())); // ["reads"]
 * ```
 * @module
 */
import type { ChatMessage } from "../types.ts";
import { isMessageId } from "./id.ts";

/** Why a store call was refused. */
export type StoreErrorCode = "invalid_id" | "invalid_limit";

/** A store call rejected for its arguments; `code` is stable, the message is for humans. */
export class StoreError extends Error {
  constructor(readonly code: StoreErrorCode, message: string) {
    super(message);
    this.name = "StoreError";
  }
}

/** Refuses what is not a message id. */
export function checkId(id: string): void {
  if (!isMessageId(id)) {
    throw new StoreError("invalid_id", `"${String(id)}" is not a message id`);
  }
}

/** Refuses a limit that is not a whole number ≥ 0. */
export function checkLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new StoreError("invalid_limit", `limit must be a whole number ≥ 0, got ${limit}`);
  }
}

/** The default room when none is configured. */
export const DEFAULT_ROOM = "general";
/** How long read markers and memberships outlive the user's last touch of the room, by default. */
export const DEFAULT_MEMBERSHIP_MAX_AGE_MS = 90 * 24 * 60 * 60 * 1000;
/** Memberships one user may create in others' room lists per minute, by default. */
export const DEFAULT_PEER_MEMBERSHIPS_PER_MINUTE = 30;
/** How long a `clientId` is remembered for deduplication, by default. */
export const DEFAULT_DEDUPE_TTL_MS = 24 * 60 * 60 * 1000;
/** Most messages `after` returns without a limit. */
export const DEFAULT_AFTER_LIMIT = 1000;

/**
 * A touched marker or membership is rewritten at most this often (or a tenth of its lifetime when
 * shorter), so sending and reading do not cost a write each.
 */
const MAX_REFRESH_INTERVAL_MS = 60 * 60 * 1000;
/** Touches remembered to throttle refreshes; the least recently refreshed are forgotten first. */
const MAX_REMEMBERED_TOUCHES = 10_000;

/** What a touch refreshes: a membership or a read marker. */
export type TouchKind = "members" | "reads";

/**
 * When this instance last wrote each marker or membership, and whether it exists: a touch within
 * the refresh interval costs nothing.
 */
export class TouchMemory {
  readonly refreshIntervalMs: number;
  readonly #touches = new Map<string, { at: number; present: boolean }>();

  constructor(membershipMaxAgeMs: number) {
    this.refreshIntervalMs = Math.min(membershipMaxAgeMs / 10, MAX_REFRESH_INTERVAL_MS);
  }

  /** Whether this entry was written, present, within the refresh interval. */
  isFresh(kind: TouchKind, userId: string, room: string, now: number): boolean {
    const known = this.#touches.get(touchKey(kind, userId, room));
    return known !== undefined && known.present && now - known.at < this.refreshIntervalMs;
  }

  /** The kinds not refreshed (present or not) within the interval: those a touch must write. */
  stale(kinds: readonly TouchKind[], userId: string, room: string, now: number): TouchKind[] {
    return kinds.filter((kind) => {
      const known = this.#touches.get(touchKey(kind, userId, room));
      return known === undefined || now - known.at >= this.refreshIntervalMs;
    });
  }

  /** Records a write (or a check that found nothing to refresh: `present` false). */
  note(kind: TouchKind, userId: string, room: string, at: number, present: boolean): void {
    const key = touchKey(kind, userId, room);
    // Re-inserted, so the map's order is refresh order and the first entry the stalest.
    this.#touches.delete(key);
    if (this.#touches.size >= MAX_REMEMBERED_TOUCHES) {
      this.#touches.delete(this.#touches.keys().next().value!);
    }
    this.#touches.set(key, { at, present });
  }
}

function touchKey(kind: TouchKind, userId: string, room: string): string {
  return `${kind}\u0000${userId}\u0000${room}`;
}

/**
 * Runs the operations given for one key one after the other, in the order asked (a map of
 * pending tails, an entry dropped once idle): the order of `MessageStore.changeMessage`.
 */
export class KeyedQueue {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, operation: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const result = previous.then(operation);
    const tail = result.catch(() => {});
    this.#tails.set(key, tail);
    tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }
}

/** The users a message mentions, its author left out: whose unread mentions it counts in. */
export function mentionedOthers(message: Pick<ChatMessage, "user" | "mentions">): string[] {
  return message.mentions?.filter((userId) => userId !== message.user.id) ?? [];
}
