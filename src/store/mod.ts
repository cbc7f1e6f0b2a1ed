/**
 * The message store contract the chat layer depends on, and the Deno KV implementation of it.
 *
 * @example
 * ```ts
 * const store = await openKvStore(":memory:");
 * const saved = await store.append({ user: { id: "u1", name: "Ada" }, message: "hi" });
 * console.log(await store.latest(50)); // [saved]
 * store.close();
 * ```
 * @module
 */

/** Who wrote a message, as established by their token. */
export interface User {
  id: string;
  name: string;
}

/** A stored chat message. `createdAt` is an ISO-8601 string. */
export interface ChatMessage {
  id: string;
  /** The room (conversation) it belongs to. */
  room: string;
  user: User;
  message: string;
  createdAt: string;
}

/** A message before it is stored: the store assigns `id` and `createdAt`. */
export interface NewMessage {
  /** The room it goes to (default: the store's default room). */
  room?: string;
  user: User;
  message: string;
  /**
   * The sender's own id for this message (≤ 64 chars). A second append with the same user and
   * `clientId` stores nothing and returns the first message.
   */
  clientId?: string;
}

/** The outcome of one append: the stored message, and whether this call created it. */
export interface AppendResult {
  message: ChatMessage;
  /** False when `clientId` matched an earlier message, which is returned instead. */
  created: boolean;
}

/** Ordered, append-only message history. Ids sort in creation order. */
export interface MessageStore {
  /** Stores the message (durably, before resolving) and returns it with its id and createdAt. */
  append(input: NewMessage): Promise<ChatMessage>;
  /**
   * Stores several messages, in order, in as few commits as the backend allows. When a later
   * commit fails after earlier ones were stored, rejects with {@link PartialAppendError} naming
   * the stored ones (a prefix of `inputs`); any other rejection stored nothing.
   */
  appendMany(inputs: readonly NewMessage[]): Promise<AppendResult[]>;
  /**
   * The newest `limit` messages of `room` (default: the default room), oldest first; only those
   * after `afterId` when given.
   */
  latest(limit: number, afterId?: string, room?: string): Promise<ChatMessage[]>;
  /** Messages of `room` strictly after `id`, oldest first, at most `limit` (default 1000). */
  after(id: string, limit?: number, room?: string): Promise<ChatMessage[]>;
  /** Up to `limit` messages of `room` strictly before `id`, oldest first (the ones right before id). */
  before(id: string, limit: number, room?: string): Promise<ChatMessage[]>;
  /** How many messages of `room` come after `afterId` (all, without it), counting up to `cap`. */
  countAfter(room: string, afterId: string | undefined, cap: number): Promise<number>;
  /** Stores `userId`'s read marker in `room`: the last message they have seen. */
  setReadMarker(userId: string, room: string, lastId: string): Promise<void>;
  /** `userId`'s read marker in each of `rooms` (undefined where none). */
  readMarkers(userId: string, rooms: readonly string[]): Promise<(string | undefined)[]>;
  /** Records that `userId` takes part in `room` (joined it, or a DM was started with them). */
  addMembership(userId: string, room: string): Promise<void>;
  /** The rooms `userId` takes part in, at most `limit`, in name order. */
  memberships(userId: string, limit: number): Promise<string[]>;
  /** Resolves when the backend answers a read (a readiness probe); rejects otherwise. */
  ping(): Promise<void>;
  close(): void;
}

export { PartialAppendError } from "./append_error.ts";
export { DEFAULT_ROOM, isKvFile, KvMessageStore, openKv, openKvStore, StoreError } from "./kv.ts";
export { LEASE_DEFAULTS, LeaseHeld, type LeaseHolder, WriterLease } from "./lease.ts";
export type { KvStoreOptions, StoreErrorCode } from "./kv.ts";
export { createIdGenerator, instanceNumber, isMessageId, timeOfId } from "./id.ts";
export type { MessageIdGenerator } from "./id.ts";
