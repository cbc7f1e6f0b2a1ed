/**
 * The message store contract the timeline depends on, and the Deno KV implementation of it.
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

import type { AppendResult, ChatMessage, NewMessage } from "../types.ts";

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
  /** The newest `limit` messages, oldest first; only those after `afterId` when given. */
  latest(limit: number, afterId?: string): Promise<ChatMessage[]>;
  /** Messages strictly after `id`, oldest first, at most `limit` (default 1000). */
  after(id: string, limit?: number): Promise<ChatMessage[]>;
  /** Up to `limit` messages strictly before `id`, oldest first (the ones right before id). */
  before(id: string, limit: number): Promise<ChatMessage[]>;
  /** Resolves when the backend answers a read (a readiness probe); rejects otherwise. */
  ping(): Promise<void>;
  close(): void;
}

export { PartialAppendError } from "./append_error.ts";
export { isKvFile, KvMessageStore, openKv, openKvStore, StoreError } from "./kv.ts";
export { LEASE_DEFAULTS, LeaseHeld, type LeaseHolder, WriterLease } from "./lease.ts";
export type { KvStoreOptions, StoreErrorCode } from "./kv.ts";
export { createIdGenerator, instanceNumber, isMessageId, timeOfId } from "./id.ts";
export type { MessageIdGenerator } from "./id.ts";
