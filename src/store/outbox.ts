/**
 * The transactional outbox every store keeps: events written in the same commit as the change they
 * describe (a message stored, edited, deleted), or on their own (presence), then handed out to one
 * sender at a time through claims that run out, so a crashed sender's events go to the next one.
 * Entries of one stream (a room, a user) are handed out one after another, in the order they were
 * stored; streams do not wait for each other. What the entries mean is the sender's business
 * (`src/hooks/`): the store keeps an opaque body.
 *
 * @example
 * ```ts
 * import { openKvStore } from "./mod.ts";
 *
 * const store = await openKvStore(":memory:");
 * const body = JSON.stringify({ type: "user.online", data: { user: { id: "u1" } } });
 * await store.outbox.enqueueOutbox([{ id: "evt_1", target: "https://backend.example/hooks", stream: "user:u1", body }]);
 * const [entry] = await store.outbox.claimOutbox({ owner: "chat-1", limit: 10, perStream: 5, leaseMs: 30_000 });
 * // … POST entry.body to entry.target …
 * await store.outbox.settleOutbox("chat-1", [{ key: entry.key, outcome: "done" }]);
 * store.close();
 * ```
 * @module
 */
import type { ChatMessage, NewMessage } from "../types.ts";

/** An event for the outbox, before it is stored. */
export interface OutboxDraft {
  /** The event's id (the `webhook-id`): the same on every attempt. */
  id: string;
  /** Where it goes: a webhook URL, or `""` for the server's own deferred work. */
  target: string;
  /** Entries of one stream are handed out one after another, in the order they were stored. */
  stream: string;
  /** What is sent, as stored (JSON text). */
  body: string;
  /** Not handed out before this time (ms since epoch; default: at once). */
  notBefore?: number;
}

/** A stored outbox entry, as a claim hands it out. */
export interface OutboxEntry extends OutboxDraft {
  /** The store's key for it; keys sort in the order entries were stored. */
  key: string;
  /** When it was stored (ms since epoch, the store's clock). */
  createdAt: number;
  /** Failed attempts so far. */
  attempts: number;
  /** When it may be handed out (next). */
  dueAt: number;
}

/** What {@link OutboxStore.claimOutbox} asks for. */
export interface OutboxClaim {
  /** Who claims: settlements of other owners' claims are ignored. */
  owner: string;
  /** Most entries handed out. */
  limit: number;
  /** Most entries of one stream handed out, from its oldest. */
  perStream: number;
  /** How long the claim keeps others off the entries (ms); then they may be claimed again. */
  leaseMs: number;
}

/** What became of a claimed entry. */
export type OutboxSettlement =
  | { key: string; outcome: "done" }
  | { key: string; outcome: "retry"; dueAt: number }
  | { key: string; outcome: "release" };

/**
 * A state change that makes the drafts worth enqueueing: they are stored only if the state kept
 * under `key` is not `state` already, and it becomes `state` in the same commit.
 */
export interface OutboxTransition {
  key: string;
  state: string;
}

/** How big the outbox is. */
export interface OutboxStats {
  /** Entries stored, the server's deferred work included. */
  depth: number;
  /** When the oldest was stored (ms since epoch); undefined when empty. */
  oldestAt?: number;
}

/** The outbox's bounds, applied by {@link OutboxStore.trimOutbox}. */
export interface OutboxLimits {
  /** Most entries kept: past it the oldest are dropped. */
  maxDepth: number;
  /** Entries stored before this time (ms since epoch) are dropped. */
  storedAfter: number;
}

/** What {@link OutboxStore.trimOutbox} dropped, by reason. */
export interface OutboxTrimmed {
  /** Oldest entries dropped because the outbox was over `maxDepth`. */
  full: number;
  /** Entries dropped because they were stored before `storedAfter`. */
  expired: number;
}

/**
 * Most bytes a draft holds that is not a copy of its message but names it: a few ids (a user's,
 * the room's, the message's), as a `message.missed` candidate does.
 */
export const REFERENCE_DRAFT_BYTES = 4096;

/**
 * Turns what a store call wrote into outbox drafts, stored in that call's commit. `maxDraftsFor`
 * bounds how many drafts a message will give, known before it is stored, so a batch is split into
 * commits that fit; `draftsFor` gives no more. `maxCopiesFor` bounds how many of them hold a copy
 * of the message; the others hold at most {@link REFERENCE_DRAFT_BYTES} (without it, every draft
 * may be a copy).
 */
export interface OutboxWriter {
  maxDraftsFor(message: NewMessage): number;
  maxCopiesFor?(message: NewMessage): number;
  draftsFor(message: ChatMessage): OutboxDraft[];
}

/** The outbox methods of a `MessageStore`. */
export interface OutboxStore {
  /**
   * Stores the drafts in one commit; with a `transition`, only when it changes the state kept
   * under its key (then true), which it sets in the same commit.
   */
  enqueueOutbox(drafts: readonly OutboxDraft[], transition?: OutboxTransition): Promise<boolean>;
  /**
   * Claims due entries for `owner` until the lease runs out: of each stream whose oldest entry is
   * due and not claimed by someone else, up to `perStream` entries from the oldest on (younger
   * ones need not be due: they follow their stream's head), at most `limit` in all, oldest first.
   */
  claimOutbox(claim: OutboxClaim): Promise<OutboxEntry[]>;
  /**
   * Applies what became of `owner`'s claimed entries in one commit, with `then` enqueued in it:
   * `done` deletes the entry (whoever holds it now), `retry` counts a failed attempt and makes it
   * due at `dueAt`, `release` gives it back as it was. A retry or release of an entry that is no
   * longer `owner`'s claim is ignored; an entry gone already is skipped.
   */
  settleOutbox(
    owner: string,
    settlements: readonly OutboxSettlement[],
    then?: readonly OutboxDraft[],
  ): Promise<void>;
  /** How many entries are stored, and when the oldest was. */
  outboxStats(): Promise<OutboxStats>;
  /** Drops the oldest entries past `maxDepth`, and those stored before `storedAfter`. */
  trimOutbox(limits: OutboxLimits): Promise<OutboxTrimmed>;
}

/** How long a transition's state is remembered after it last changed. */
export const TRANSITION_TTL_MS = 30 * 86_400_000;
/** Most entries one claim looks at, from the oldest: a claim's cost is bounded by it. */
export const CLAIM_SCAN_LIMIT = 1000;
/** Most entries one claim hands out (a KV commit checks at most 100 keys). */
export const MAX_CLAIM = 100;

/** What a claim needs to know of a stored entry. */
export interface ClaimView {
  stream: string;
  dueAt: number;
  owner?: string | null;
  claimedUntil?: number | null;
}

/**
 * Picks the entries a claim takes from `entries` (oldest first): the rule both backends apply,
 * so they hand out the same entries. Returns their indexes.
 */
export function selectClaims(
  entries: readonly ClaimView[],
  claim: Pick<OutboxClaim, "limit" | "perStream">,
  now: number,
): number[] {
  const limit = Math.min(claim.limit, MAX_CLAIM);
  const blocked = new Set<string>();
  const taken = new Map<string, number>();
  const picked: number[] = [];
  for (const [index, entry] of entries.entries()) {
    if (picked.length >= limit) break;
    if (blocked.has(entry.stream)) continue;
    const count = taken.get(entry.stream) ?? 0;
    const held = (entry.claimedUntil ?? 0) > now;
    // A stream whose head is held or not due waits; so do the rest of it past `perStream`.
    if (held || (count === 0 && entry.dueAt > now) || count >= claim.perStream) {
      blocked.add(entry.stream);
      continue;
    }
    taken.set(entry.stream, count + 1);
    picked.push(index);
  }
  return picked;
}
