/**
 * The one partial outcome of `MessageStore.appendMany`: a batch too big for one KV commit is
 * stored in several, and a later commit failed after earlier ones were stored.
 * @module
 */
import type { AppendResult } from "../types.ts";

/**
 * `appendMany` stored the first `stored.length` messages of the batch (in order), then failed on
 * the rest with `cause`. The stored ones are in the history: their senders must be answered.
 */
export class PartialAppendError extends Error {
  readonly code = "partial_append";
  constructor(readonly stored: AppendResult[], cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`stored ${stored.length} messages of the batch, then failed: ${reason}`, { cause });
    this.name = "PartialAppendError";
  }
}
