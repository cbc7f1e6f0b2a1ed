/**
 * The outbox over PostgreSQL (see `outbox.ts`): one row per entry in `outbox`, numbered by an
 * identity column in the order rows are inserted. A message's events are inserted in the
 * transaction that stores it, after its room's row is locked, so one room's events are numbered in
 * commit order whichever instance commits. Claims take a transaction-scoped advisory lock with
 * `pg_try_advisory_xact_lock`: one instance claims at a time (an instance finding it taken claims
 * nothing this round), which keeps a stream's entries with one sender. Row locks with
 * `FOR UPDATE SKIP LOCKED` would let two claimers each take a different entry of one stream.
 * @module
 */
import type postgres from "postgres";
import { fromPgText, toPgText } from "./postgres_text.ts";
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

/** The advisory lock an instance holds while it claims. */
const CLAIM_LOCK = 0x686f6f6b; // "hook"

interface OutboxRow {
  seq: string;
  event_id: string;
  target: string;
  stream: string;
  body: string;
  created_at: string;
  due_at: string;
  attempts: number;
  owner: string | null;
  claimed_until: string | null;
}

const COLUMNS =
  "seq, event_id, target, stream, body, created_at, due_at, attempts, owner, claimed_until";

function toEntry(row: OutboxRow): OutboxEntry {
  return {
    key: String(row.seq),
    id: fromPgText(row.event_id),
    target: fromPgText(row.target),
    stream: fromPgText(row.stream),
    body: row.body,
    createdAt: Number(row.created_at),
    attempts: row.attempts,
    dueAt: Number(row.due_at),
  };
}

/** The outbox part of the PostgreSQL store, on its pool and clock. */
export class PostgresOutbox implements OutboxStore {
  /** The store's current pool (it swaps it after the driver's known fault). */
  readonly #pool: () => postgres.Sql;

  get #sql(): postgres.Sql {
    return this.#pool();
  }
  readonly #now: () => number;

  constructor(pool: () => postgres.Sql, now: () => number) {
    this.#pool = pool;
    this.#now = now;
  }

  /** Inserts the drafts in `tx`, numbered in their order: for a caller's own transaction. */
  async insert(tx: postgres.TransactionSql, drafts: readonly OutboxDraft[]): Promise<void> {
    if (drafts.length === 0) return;
    const now = this.#now();
    await tx`
      INSERT INTO outbox (event_id, target, stream, body, created_at, due_at)
      SELECT id, target, stream, body, ${now}, due FROM unnest(
        ${drafts.map((draft) => toPgText(draft.id))}::text[],
        ${drafts.map((draft) => toPgText(draft.target))}::text[],
        ${drafts.map((draft) => toPgText(draft.stream))}::text[],
        ${drafts.map((draft) => draft.body)}::text[],
        ${drafts.map((draft) => draft.notBefore ?? now)}::bigint[]
      ) WITH ORDINALITY AS draft(id, target, stream, body, due, position)
      ORDER BY position`;
  }

  async enqueueOutbox(
    drafts: readonly OutboxDraft[],
    transition?: OutboxTransition,
  ): Promise<boolean> {
    return await this.#sql.begin(async (tx) => {
      if (transition) {
        // The row lock of the upsert orders instances changing one key.
        const changed = await tx`
          INSERT INTO outbox_states (key, state, expires_at)
          VALUES (${toPgText(transition.key)}, ${transition.state}, ${
          this.#now() + TRANSITION_TTL_MS
        })
          ON CONFLICT (key) DO UPDATE SET state = excluded.state, expires_at = excluded.expires_at
          WHERE outbox_states.state <> excluded.state
          RETURNING key`;
        if (changed.length === 0) return false;
      }
      await this.insert(tx, drafts);
      return true;
    });
  }

  async claimOutbox(claim: OutboxClaim): Promise<OutboxEntry[]> {
    return await this.#sql.begin(async (tx) => {
      const [{ locked }] = await tx<{ locked: boolean }[]>`
        SELECT pg_try_advisory_xact_lock(${CLAIM_LOCK}) AS locked`;
      if (!locked) return [];
      const now = this.#now();
      const rows = await tx<Pick<OutboxRow, "seq" | "stream" | "due_at" | "claimed_until">[]>`
        SELECT seq, stream, due_at, claimed_until FROM outbox ORDER BY seq
        LIMIT ${CLAIM_SCAN_LIMIT}`;
      const views = rows.map((row) => ({
        stream: row.stream,
        dueAt: Number(row.due_at),
        claimedUntil: row.claimed_until === null ? null : Number(row.claimed_until),
      }));
      const picked = selectClaims(views, claim, now).map((index) => rows[index].seq);
      if (picked.length === 0) return [];
      const claimed = await tx.unsafe<OutboxRow[]>(
        `UPDATE outbox SET owner = $1, claimed_until = $2 WHERE seq = ANY($3::bigint[])
         RETURNING ${COLUMNS}`,
        [claim.owner, now + claim.leaseMs, picked],
      );
      return claimed.sort((a, b) => Number(BigInt(a.seq) - BigInt(b.seq))).map(toEntry);
    });
  }

  async settleOutbox(
    owner: string,
    settlements: readonly OutboxSettlement[],
    then: readonly OutboxDraft[] = [],
  ): Promise<void> {
    const keys = (outcome: OutboxSettlement["outcome"]) =>
      settlements.filter((settlement) => settlement.outcome === outcome).map((s) => s.key);
    const retries = settlements.filter((settlement) => settlement.outcome === "retry");
    await this.#sql.begin(async (tx) => {
      const done = keys("done");
      if (done.length > 0) await tx`DELETE FROM outbox WHERE seq = ANY(${done}::bigint[])`;
      if (retries.length > 0) {
        await tx`
          UPDATE outbox SET attempts = attempts + 1, due_at = retry.due_at, owner = NULL,
            claimed_until = NULL
          FROM unnest(
            ${retries.map((retry) => retry.key)}::bigint[],
            ${retries.map((retry) => retry.dueAt)}::bigint[]
          ) AS retry(seq, due_at)
          WHERE outbox.seq = retry.seq AND outbox.owner = ${owner}`;
      }
      const released = keys("release");
      if (released.length > 0) {
        await tx`
          UPDATE outbox SET owner = NULL, claimed_until = NULL
          WHERE seq = ANY(${released}::bigint[]) AND owner = ${owner}`;
      }
      await this.insert(tx, then);
    });
  }

  async outboxStats(): Promise<OutboxStats> {
    const [row] = await this.#sql<{ depth: string; oldest: string | null }[]>`
      SELECT (SELECT count(*) FROM outbox) AS depth,
        (SELECT created_at FROM outbox ORDER BY seq LIMIT 1) AS oldest`;
    const stats: OutboxStats = { depth: Number(row.depth) };
    if (row.oldest !== null) stats.oldestAt = Number(row.oldest);
    return stats;
  }

  async trimOutbox(limits: OutboxLimits): Promise<OutboxTrimmed> {
    return await this.#sql.begin(async (tx) => {
      const full = await tx`
        DELETE FROM outbox WHERE seq IN (
          SELECT seq FROM outbox ORDER BY seq
          LIMIT greatest(0, (SELECT count(*) FROM outbox) - ${limits.maxDepth})
        )`;
      const expired = await tx`DELETE FROM outbox WHERE created_at < ${limits.storedAfter}`;
      await tx`DELETE FROM outbox_states WHERE expires_at <= ${this.#now()}`;
      return { full: full.count, expired: expired.count };
    });
  }
}
