/**
 * The message store contract the timeline and the app depend on; `KvMessageStore` implements it.
 * @module
 */
import type { AppendResult, ChatMessage, NewMessage } from "../types.ts";

/** Ordered, append-only message history. Ids sort in creation order. */
export interface MessageStore {
  /** Stores the message (durably, before resolving) and returns it with its id and createdAt. */
  append(input: NewMessage): Promise<ChatMessage>;
  /**
   * Stores several messages, in order, in as few commits as the backend allows. When a later
   * commit fails after earlier ones were stored, rejects with a `PartialAppendError` naming
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
