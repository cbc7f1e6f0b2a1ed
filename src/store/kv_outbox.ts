/**
 * The outbox over Deno KV (see `outbox.ts`). Each entry is one KV entry under `["outbox", key]`,
 * keys from an id generator, so KV's key order is the order entries were stored; a claim is a
 * field of the entry, taken in a commit that checks every claimed entry's version, so of two
 * instances sharing the database one wins and the other claims nothing this time. The depth is a
 * counter (`["outbox_depth"]`) changed in the same commits as the entries.
 * @module
 */
import { whenUnlocked } from "./kv_unlocked.ts";
import { createIdGenerator, type MessageIdGenerator } from "./id.ts";
import {
  CLAIM_SCAN_LIMIT,
  type OutboxClaim,
  type OutboxDraft,
  type OutboxEntry,
  type OutboxLimits,
  type OutboxSettlement,
  type OutboxStats,
  type OutboxStore,
  type OutboxTransition,
  type OutboxTrimmed,
  selectClaims,
  TRANSITION_TTL_MS,
} from "./outbox.ts";

const OUTBOX = "outbox";
const DEPTH_KEY = ["outbox_depth"];
const TRANSITIONS = "outbox_state";
/** Entries one commit deletes when trimming (KV checks at most 100 keys per commit). */
const TRIM_BATCH = 100;
const GET_MANY_LIMIT = 10;
/**
 * Most bytes of entries one claim rewrites, counted as at most two a UTF-16 unit: a KV commit takes
 * 800 KiB, which 20 entries each holding a long message (40 KB) would be over.
 */
const MAX_CLAIM_BYTES = 600_000;
/** A commit that lost a race (another instance changed an entry) is tried again this often. */
const MAX_ATTEMPTS = 5;
const U64 = 2n ** 64n;

/** An entry as stored: the claim, when there is one, is part of it. */
interface StoredEntry extends Omit<OutboxEntry, "key"> {
  owner?: string;
  claimedUntil?: number;
}

/** The outbox part of the KV store, on the store's database and clock. */
export class KvOutbox implements OutboxStore {
  readonly #kv: Deno.Kv;
  readonly #now: () => number;
  readonly #generateKey: MessageIdGenerator;

  constructor(kv: Deno.Kv, now: () => number) {
    this.#kv = kv;
    this.#now = now;
    this.#generateKey = createIdGenerator(now);
  }

  /** Adds the drafts to `atomic` (one set each, and one sum): for a caller's own commit. */
  addTo(atomic: Deno.AtomicOperation, drafts: readonly OutboxDraft[]): void {
    if (drafts.length === 0) return;
    const now = this.#now();
    for (const draft of drafts) {
      const entry: StoredEntry = {
        id: draft.id,
        target: draft.target,
        stream: draft.stream,
        body: draft.body,
        createdAt: now,
        attempts: 0,
        dueAt: draft.notBefore ?? now,
      };
      atomic.set([OUTBOX, this.#generateKey()], entry);
    }
    addToDepth(atomic, drafts.length);
  }

  async enqueueOutbox(
    drafts: readonly OutboxDraft[],
    transition?: OutboxTransition,
  ): Promise<boolean> {
    for (let attempt = 1;; attempt++) {
      const atomic = this.#kv.atomic();
      if (transition) {
        const key = [TRANSITIONS, transition.key];
        const current = await whenUnlocked(() => this.#kv.get<string>(key));
        if (current.value === transition.state) return false;
        atomic.check(current).set(key, transition.state, { expireIn: TRANSITION_TTL_MS });
      }
      this.addTo(atomic, drafts);
      if ((await whenUnlocked(() => atomic.commit())).ok) return true;
      // Another instance changed the state meanwhile: read it again.
      if (attempt === MAX_ATTEMPTS) {
        throw new Error(`outbox state ${transition?.key} kept changing`);
      }
    }
  }

  async claimOutbox(claim: OutboxClaim): Promise<OutboxEntry[]> {
    const now = this.#now();
    const entries = await whenUnlocked(() =>
      Array.fromAsync(this.#kv.list<StoredEntry>({ prefix: [OUTBOX] }, { limit: CLAIM_SCAN_LIMIT }))
    );
    const selected = selectClaims(entries.map((entry) => entry.value), claim, now).map((index) =>
      entries[index]
    );
    const picked = fitting(selected, claim.owner);
    if (picked.length === 0) return [];
    const atomic = this.#kv.atomic();
    for (const entry of picked) {
      const claimed = { ...entry.value, owner: claim.owner, claimedUntil: now + claim.leaseMs };
      atomic.check(entry).set(entry.key, claimed);
    }
    // Another instance claimed or settled one of them meanwhile: it goes first, we wait a turn.
    if (!(await whenUnlocked(() => atomic.commit())).ok) return [];
    return picked.map((entry) => toEntry(entry.key, entry.value));
  }

  async settleOutbox(
    owner: string,
    settlements: readonly OutboxSettlement[],
    then: readonly OutboxDraft[] = [],
  ): Promise<void> {
    for (let attempt = 1;; attempt++) {
      const keys = settlements.map((settlement) => [OUTBOX, settlement.key]);
      const current = await this.#getMany(keys);
      const atomic = this.#kv.atomic();
      let deleted = 0;
      settlements.forEach((settlement, index) => {
        const entry = current[index];
        if (entry.value === null) return;
        if (settlement.outcome === "done") {
          atomic.check(entry).delete(entry.key);
          deleted++;
          return;
        }
        // Someone else claimed it since: theirs to settle.
        if (entry.value.owner !== owner) return;
        const { owner: _, claimedUntil: __, ...unclaimed } = entry.value;
        const next: StoredEntry = settlement.outcome === "retry"
          ? { ...unclaimed, attempts: unclaimed.attempts + 1, dueAt: settlement.dueAt }
          : unclaimed;
        atomic.check(entry).set(entry.key, next);
      });
      addToDepth(atomic, -deleted);
      this.addTo(atomic, then);
      if ((await whenUnlocked(() => atomic.commit())).ok) return;
      if (attempt === MAX_ATTEMPTS) throw new Error("outbox entries kept changing while settled");
    }
  }

  async outboxStats(): Promise<OutboxStats> {
    const [depth, oldest] = await Promise.all([
      whenUnlocked(() => this.#kv.get<Deno.KvU64>(DEPTH_KEY)),
      whenUnlocked(() =>
        Array.fromAsync(this.#kv.list<StoredEntry>({ prefix: [OUTBOX] }, { limit: 1 }))
      ),
    ]);
    const stats: OutboxStats = { depth: depthOf(depth.value) };
    if (oldest.length > 0) stats.oldestAt = oldest[0].value.createdAt;
    return stats;
  }

  async trimOutbox(limits: OutboxLimits): Promise<OutboxTrimmed> {
    const trimmed: OutboxTrimmed = { full: 0, expired: 0 };
    let over = (await this.outboxStats()).depth - limits.maxDepth;
    while (true) {
      const batch: Deno.KvEntry<StoredEntry>[] = [];
      let full = 0;
      for await (const entry of this.#kv.list<StoredEntry>({ prefix: [OUTBOX] })) {
        if (batch.length === TRIM_BATCH) break;
        if (full < over) full++;
        else if (entry.value.createdAt >= limits.storedAfter) break;
        batch.push(entry);
      }
      if (batch.length === 0) return trimmed;
      const atomic = this.#kv.atomic();
      for (const entry of batch) atomic.check(entry).delete(entry.key);
      addToDepth(atomic, -batch.length);
      // A failed check: an entry was settled meanwhile; read again.
      if (!(await whenUnlocked(() => atomic.commit())).ok) continue;
      over -= full;
      trimmed.full += full;
      trimmed.expired += batch.length - full;
    }
  }

  async #getMany(keys: Deno.KvKey[]): Promise<Deno.KvEntryMaybe<StoredEntry>[]> {
    const chunks: Deno.KvKey[][] = [];
    for (let i = 0; i < keys.length; i += GET_MANY_LIMIT) {
      chunks.push(keys.slice(i, i + GET_MANY_LIMIT));
    }
    const entries = await Promise.all(
      chunks.map((chunk) => whenUnlocked(() => this.#kv.getMany<StoredEntry[]>(chunk))),
    );
    return entries.flat();
  }
}

/**
 * The oldest of `entries` whose claims fit one commit (at least one: an entry alone fits), so
 * the rest wait for the next claim, their streams still in order.
 */
function fitting(entries: Deno.KvEntry<StoredEntry>[], owner: string): Deno.KvEntry<StoredEntry>[] {
  let bytes = 0;
  const fit = entries.findIndex((entry, index) => {
    const { id, target, stream, body } = entry.value;
    // V8 stores a string in one or two bytes per UTF-16 unit.
    bytes += 2 * (id.length + target.length + stream.length + body.length + owner.length) + 256;
    return index > 0 && bytes > MAX_CLAIM_BYTES;
  });
  return fit === -1 ? entries : entries.slice(0, fit);
}

function toEntry(key: Deno.KvKey, stored: StoredEntry): OutboxEntry {
  const { owner: _, claimedUntil: __, ...entry } = stored;
  return { ...entry, key: String(key[1]) };
}

/** KV sums wrap around at 2^64: subtracting is adding the complement. */
function addToDepth(atomic: Deno.AtomicOperation, delta: number): void {
  if (delta === 0) return;
  atomic.sum(DEPTH_KEY, (U64 + BigInt(delta)) % U64);
}

function depthOf(counter: Deno.KvU64 | null): number {
  if (counter === null) return 0;
  const value = counter.value;
  // A counter below zero (it never should be) reads as empty.
  return value >= U64 / 2n ? 0 : Number(value);
}
