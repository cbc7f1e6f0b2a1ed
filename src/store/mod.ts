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

export type {
  MessageStore,
  PushSubscriptionRecord,
  ReactionChange,
  ReactionLimits,
  ReactionOutcome,
  ReadPosition,
} from "./message_store.ts";
export { PartialAppendError } from "./append_error.ts";
export { isKvFile, KvMessageStore, openKv, openKvStore } from "./kv.ts";
export { DEFAULT_ROOM, KeyedQueue, mentionedOthers, StoreError } from "./rules.ts";
export {
  KvFileBusy,
  type KvFileBusyCode,
  KvFileLock,
  type KvLockHolder,
  type KvLockOptions,
  lockPathOf,
  redisIdentity,
  setupLockPathOf,
} from "./kv_lock.ts";
export { LEASE_DEFAULTS, LeaseHeld, type LeaseHolder, WriterLease } from "./lease.ts";
export type { KvStoreOptions } from "./kv.ts";
export type {
  OutboxClaim,
  OutboxDraft,
  OutboxEntry,
  OutboxLimits,
  OutboxSettlement,
  OutboxStats,
  OutboxStore,
  OutboxTransition,
  OutboxTrimmed,
  OutboxWriter,
} from "./outbox.ts";
export { REFERENCE_DRAFT_BYTES } from "./outbox.ts";
export type { StoreErrorCode } from "./rules.ts";
export { createIdGenerator, instanceNumber, isMessageId, timeOfId } from "./id.ts";
export type { MessageIdGenerator } from "./id.ts";
