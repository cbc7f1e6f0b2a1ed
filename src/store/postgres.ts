/**
 * {@link MessageStore} over PostgreSQL, for instances on several hosts sharing one history. Each
 * `appendMany` batch is one transaction: it locks the rows of the rooms it writes to (in name
 * order), numbers their messages from each room's counter, claims the batch's clientIds and
 * inserts the messages. A room's lock is held until the commit, so a room's ids are handed out in
 * commit order whichever instance commits: a reader that has seen an id has seen every message
 * before it, and one it has not seen yet will sort after.
 *
 * @example
 * ```ts ignore
 * import { openPostgresStore } from "./postgres.ts";
 *
 * const store = await openPostgresStore("postgres://chat@db.internal/chat?sslmode=verify-full");
 * const saved = await store.append({ user: { id: "u1", name: "Ada" }, message: "hi" });
 * console.log(await store.after(saved.id)); // what came after it, from every instance
 * await store.close();
 * ```
 * @module
 */
import postgres from "postgres";
import type {
  AppendResult,
  Ban,
  ChatMessage,
  MessageChange,
  NewMessage,
  Reaction,
  ThreadSummary,
} from "../types.ts";
import {
  type MessageStore,
  type PushSubscriptionRecord,
  type ReactionChange,
  type ReactionLimits,
  type ReactionOutcome,
  type ReadPosition,
  type RoomQuery,
  THREAD_USERS,
} from "./message_store.ts";
import { firstIdAt, isMessageId, sequencedId, timeOfId } from "./id.ts";
import { migrate } from "./postgres_schema.ts";
import { RateLimiter } from "../rate_limit.ts";
import {
  checkId,
  checkLimit,
  DEFAULT_AFTER_LIMIT,
  DEFAULT_DEDUPE_TTL_MS,
  DEFAULT_MEMBERSHIP_MAX_AGE_MS,
  DEFAULT_PEER_MEMBERSHIPS_PER_MINUTE,
  DEFAULT_ROOM,
  KeyedQueue,
  mentionedOthers,
  type TouchKind,
  TouchMemory,
} from "./rules.ts";
import { fromPgText, toPgText } from "./postgres_text.ts";
import { PostgresOutbox } from "./postgres_outbox.ts";
import type { OutboxStore, OutboxWriter } from "./outbox.ts";

/** Options for {@link PostgresMessageStore}: the same rules as the KV store's. */
export interface PostgresStoreOptions {
  /** Messages older than this many ms are no longer served, and are deleted; unset keeps them. */
  maxAgeMs?: number;
  /** Keep at most this many messages per room, deleting the oldest; unset keeps them all. */
  maxCount?: number;
  /** How long a `clientId` is remembered for deduplication (default 24 h). */
  dedupeTtlMs?: number;
  /** The room of messages sent without one (default `general`). */
  defaultRoom?: string;
  /** Read markers and memberships expire this long after the user last touched the room. */
  membershipMaxAgeMs?: number;
  /** Memberships one user may create in other users' room lists per minute, on this instance. */
  peerMembershipsPerMinute?: number;
  /** The clock of message times, memberships, read markers, bans and retention (tests move it). */
  now?: () => number;
}

/** How to connect, on top of what the URL says (host, database, user, `sslmode`). */
export interface PostgresConnectOptions extends PostgresStoreOptions {
  /** Most connections this instance opens (default 10). */
  poolSize?: number;
  /** A statement running longer than this is cancelled (default 10 s; 0: never). */
  statementTimeoutMs?: number;
}

/** Connections per instance, by default. */
export const DEFAULT_POOL_SIZE = 10;
/** A statement's longest run, by default. */
export const DEFAULT_STATEMENT_TIMEOUT_MS = 10_000;

/** A deadlock between two batches creating rooms, or a serialization failure: try again. */
const RETRYABLE = new Set(["40P01", "40001"]);
const MAX_APPEND_ATTEMPTS = 5;
/** How often expired rows (messages past maxAge, dedupe entries, markers, bans) are deleted. */
const SWEEP_INTERVAL_MS = 60_000;

interface MessageRow {
  room: string;
  id: string;
  user_id: string;
  user_name: string;
  body: string;
  created_at: string;
  edited_at: string | null;
  deleted: boolean;
  reply_quote: string | null;
  mentions: string | null;
}

const MESSAGE_COLUMNS =
  "room, id, user_id, user_name, body, created_at, edited_at, deleted, reply_quote, mentions";

function toMessage(row: MessageRow): ChatMessage {
  const message: ChatMessage = {
    id: row.id,
    room: row.room,
    user: { id: fromPgText(row.user_id), name: fromPgText(row.user_name) },
    message: fromPgText(row.body),
    createdAt: new Date(Number(row.created_at)).toISOString(),
  };
  if (row.edited_at !== null) message.editedAt = new Date(Number(row.edited_at)).toISOString();
  if (row.deleted) message.deleted = true;
  if (row.reply_quote !== null) message.replyTo = JSON.parse(row.reply_quote);
  if (row.mentions !== null) message.mentions = JSON.parse(row.mentions);
  return message;
}

/** A message of the batch that may be created: its place in the batch and its dedupe key. */
interface Candidate {
  index: number;
  input: NewMessage;
  room: string;
  /** The stored form of `clientId`, when it has one. */
  clientKey?: string;
  id?: string;
}

/** Message history kept in PostgreSQL; the store owns its connection pool and ends it. */
export class PostgresMessageStore implements MessageStore {
  #sql: postgres.Sql;
  /** Opens a fresh pool, for {@link recycle}. */
  readonly #connect?: () => postgres.Sql;
  readonly #options: PostgresStoreOptions;
  readonly defaultRoom: string;
  readonly #now: () => number;
  readonly #membershipMaxAgeMs: number;
  readonly #touches: TouchMemory;
  readonly #peerMemberships: RateLimiter;
  readonly #changes = new KeyedQueue();
  /** Messages stored per room since that room was last trimmed to `maxCount`. */
  #appendsSinceTrim = new Map<string, number>();
  #lastSweep = -Infinity;
  readonly #outbox: PostgresOutbox;

  constructor(
    sql: postgres.Sql,
    options: PostgresStoreOptions = {},
    connect?: () => postgres.Sql,
  ) {
    this.#sql = sql;
    this.#connect = connect;
    this.#options = options;
    this.defaultRoom = options.defaultRoom ?? DEFAULT_ROOM;
    this.#now = options.now ?? Date.now;
    this.#membershipMaxAgeMs = options.membershipMaxAgeMs ?? DEFAULT_MEMBERSHIP_MAX_AGE_MS;
    this.#touches = new TouchMemory(this.#membershipMaxAgeMs);
    const perMinute = options.peerMembershipsPerMinute ?? DEFAULT_PEER_MEMBERSHIPS_PER_MINUTE;
    this.#peerMemberships = new RateLimiter({ perMinute, burst: perMinute }, this.#now);
    this.#outbox = new PostgresOutbox(() => this.#sql, this.#now);
  }

  async append(input: NewMessage): Promise<ChatMessage> {
    const [result] = await this.appendMany([input]);
    return result.message;
  }

  async appendMany(
    inputs: readonly NewMessage[],
    outbox?: OutboxWriter,
  ): Promise<AppendResult[]> {
    if (inputs.length === 0) return [];
    let results: AppendResult[];
    for (let attempt = 1;; attempt++) {
      try {
        results = await this.#sql.begin((tx) => this.#appendIn(tx, inputs, outbox));
        break;
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (!RETRYABLE.has(code ?? "") || attempt === MAX_APPEND_ATTEMPTS) throw error;
      }
    }
    await this.#maintain(results.filter((result) => result.created).map((r) => r.message));
    return results;
  }

  /** The batch's transaction: number the new messages, claim their clientIds, insert them. */
  async #appendIn(
    tx: postgres.TransactionSql,
    inputs: readonly NewMessage[],
    outbox: OutboxWriter | undefined,
  ) {
    const now = this.#now();
    const results: AppendResult[] = new Array(inputs.length);
    const candidates: Candidate[] = [];
    /** The batch's first message with each clientKey; later ones repeat it. */
    const firstWithKey = new Map<string, number>();
    const repeats: [index: number, first: number][] = [];
    inputs.forEach((input, index) => {
      const room = input.room ?? this.defaultRoom;
      const clientKey = input.clientId === undefined
        ? undefined
        : dedupeKey(input.user.id, input.clientId, input.source ?? "");
      if (clientKey !== undefined) {
        const first = firstWithKey.get(clientKey);
        if (first !== undefined) return repeats.push([index, first]);
        firstWithKey.set(clientKey, index);
      }
      candidates.push({ index, input, room, clientKey });
    });

    await this.#number(tx, candidates, now);
    const keyed = candidates.filter((candidate) => candidate.clientKey !== undefined);
    const earlier = keyed.length === 0
      ? new Map<string, ChatMessage>()
      : await this.#claimClientIds(tx, keyed, now);
    const created = candidates.filter((candidate) => !earlier.has(candidate.clientKey ?? ""));
    if (created.length > 0) {
      await tx`
        INSERT INTO messages
          (room, id, user_id, user_name, body, created_at, reply_to, reply_quote, mentions)
        SELECT * FROM unnest(
          ${created.map((c) => c.room)}::text[],
          ${created.map((c) => c.id!)}::text[],
          ${created.map((c) => toPgText(c.input.user.id))}::text[],
          ${created.map((c) => toPgText(c.input.user.name))}::text[],
          ${created.map((c) => toPgText(c.input.message))}::text[],
          ${created.map((c) => timeOfId(c.id!))}::bigint[],
          ${created.map((c) => c.input.replyTo?.id ?? null)}::text[],
          ${created.map((c) => c.input.replyTo ? JSON.stringify(c.input.replyTo) : null)}::text[],
          ${
        created.map((c) => c.input.mentions?.length ? JSON.stringify(c.input.mentions) : null)
      }::text[]
        )`;
      await this.#indexMentions(tx, created);
    }
    for (const candidate of candidates) {
      const seen = earlier.get(candidate.clientKey ?? "");
      results[candidate.index] = seen
        ? { message: seen, created: false }
        : { message: this.#newMessage(candidate), created: true };
    }
    for (const [index, first] of repeats) {
      results[index] = { message: results[first].message, created: false };
    }
    // The events describing these messages commit with them, under their rooms' locks.
    if (outbox) {
      const messages = results.filter((result) => result.created).map((result) => result.message);
      await this.#outbox.insert(tx, messages.flatMap((message) => outbox.draftsFor(message)));
    }
    return results;
  }

  #newMessage(candidate: Candidate): ChatMessage {
    const { input, room, id } = candidate;
    return {
      id: id!,
      room,
      user: { id: input.user.id, name: input.user.name },
      message: input.message,
      createdAt: new Date(timeOfId(id!)).toISOString(),
      ...(input.replyTo ? { replyTo: input.replyTo } : {}),
      ...(input.mentions?.length ? { mentions: input.mentions } : {}),
    };
  }

  /** Indexes who the new messages mention (authors left out), in the batch's transaction. */
  async #indexMentions(tx: postgres.TransactionSql, created: readonly Candidate[]) {
    const rows = created.flatMap((c) =>
      mentionedOthers(c.input).map((userId) => [c.room, toPgText(userId), c.id!])
    );
    if (rows.length === 0) return;
    await tx`
      INSERT INTO mentions (room, user_id, id)
      SELECT * FROM unnest(
        ${rows.map((row) => row[0])}::text[],
        ${rows.map((row) => row[1])}::text[],
        ${rows.map((row) => row[2])}::text[]
      )
      ON CONFLICT DO NOTHING`;
  }

  /**
   * Gives each candidate its id from its room's counter, locking the rooms' rows (in name order,
   * so two batches never wait on each other in a circle) until the commit.
   */
  async #number(tx: postgres.TransactionSql, candidates: Candidate[], now: number) {
    const rooms = [...new Set(candidates.map((candidate) => candidate.room))].sort();
    type RoomRow = { room: string; room_number: string; last_time: string; last_sequence: string };
    const lock = (names: string[]) =>
      tx<RoomRow[]>`
        SELECT room, room_number, last_time, last_sequence FROM rooms
        WHERE room = ANY(${names}::text[]) ORDER BY room FOR UPDATE`;
    const locked = await lock(rooms);
    const missing = rooms.filter((room) => !locked.some((row) => row.room === room));
    if (missing.length > 0) {
      await tx`
        INSERT INTO rooms (room) SELECT unnest(${missing}::text[]) ORDER BY 1
        ON CONFLICT DO NOTHING`;
      locked.push(...await lock(missing));
    }
    const counters = new Map(locked.map((row) => [row.room, {
      number: Number(row.room_number),
      // A clock behind another instance's keeps that instance's last time: ids never go back.
      time: Math.max(now, Number(row.last_time)),
      sequence: Number(row.last_sequence),
    }]));
    for (const candidate of candidates) {
      const counter = counters.get(candidate.room)!;
      candidate.id = sequencedId(counter.time, counter.number, ++counter.sequence);
    }
    const names = [...counters.keys()];
    await tx`
      UPDATE rooms SET last_time = counter.time, last_sequence = counter.sequence
      FROM unnest(
        ${names}::text[],
        ${names.map((name) => counters.get(name)!.time)}::bigint[],
        ${names.map((name) => counters.get(name)!.sequence)}::bigint[]
      ) AS counter(room, time, sequence)
      WHERE rooms.room = counter.room`;
  }

  /**
   * Records the candidates' clientIds; those already recorded (an earlier batch, or another
   * instance's commit this one waited for) are answered with the message stored then, by key.
   */
  async #claimClientIds(
    tx: postgres.TransactionSql,
    keyed: Candidate[],
    now: number,
  ): Promise<Map<string, ChatMessage>> {
    const ordered = [...keyed].sort((a, b) =>
      a.clientKey! < b.clientKey! ? -1 : a.clientKey! > b.clientKey! ? 1 : 0
    );
    const expiresAt = now + (this.#options.dedupeTtlMs ?? DEFAULT_DEDUPE_TTL_MS);
    const userIds = ordered.map((c) => toPgText(c.input.user.id));
    const sources = ordered.map((c) => c.input.source ?? "");
    const clientIds = ordered.map((c) => toPgText(c.input.clientId!));
    const claimed = await tx<{ user_id: string; source: string; client_id: string }[]>`
      INSERT INTO dedupe (user_id, source, client_id, room, id, expires_at)
      SELECT claim.*, ${expiresAt}::bigint FROM unnest(
        ${userIds}::text[],
        ${sources}::text[],
        ${clientIds}::text[],
        ${ordered.map((c) => c.room)}::text[],
        ${ordered.map((c) => c.id!)}::text[]
      ) AS claim
      ON CONFLICT (user_id, source, client_id) DO UPDATE
        SET room = excluded.room, id = excluded.id, expires_at = excluded.expires_at
        WHERE dedupe.expires_at <= ${now}
      RETURNING user_id, source, client_id`;
    const earlier = new Map<string, ChatMessage>();
    if (claimed.length === ordered.length) return earlier;
    const won = new Set(
      claimed.map((row) => JSON.stringify([row.user_id, row.source, row.client_id])),
    );
    const lost = ordered.filter((_, index) =>
      !won.has(JSON.stringify([userIds[index], sources[index], clientIds[index]]))
    );
    const rows = await tx<
      (MessageRow & { key_user: string; key_source: string; key_client: string; key_id: string })[]
    >`
      SELECT d.user_id AS key_user, d.source AS key_source, d.client_id AS key_client,
        d.room AS room, d.id AS key_id,
        m.id, m.user_id, m.user_name, m.body, m.created_at, m.edited_at, m.deleted,
        m.reply_quote, m.mentions
      FROM dedupe d LEFT JOIN messages m ON m.room = d.room AND m.id = d.id
      WHERE (d.user_id, d.source, d.client_id) IN (
        SELECT * FROM unnest(
          ${lost.map((c) => toPgText(c.input.user.id))}::text[],
          ${lost.map((c) => c.input.source ?? "")}::text[],
          ${lost.map((c) => toPgText(c.input.clientId!))}::text[]
        )
      )`;
    for (const row of rows) {
      const key = dedupeKey(
        fromPgText(row.key_user),
        fromPgText(row.key_client),
        row.key_source,
      );
      // A dedupe entry whose message was trimmed still names it: answer with what is known.
      earlier.set(key, row.id === null ? placeholder(row) : toMessage(row));
    }
    return earlier;
  }

  /** Deletes what retention and expiry let go, now and then: reads already leave it out. */
  async #maintain(created: readonly ChatMessage[]): Promise<void> {
    const { maxCount } = this.#options;
    if (maxCount !== undefined) {
      for (const { room } of created) {
        this.#appendsSinceTrim.set(room, (this.#appendsSinceTrim.get(room) ?? 0) + 1);
      }
      for (const [room, count] of this.#appendsSinceTrim) {
        if (count < Math.max(50, Math.floor(maxCount / 4))) continue;
        this.#appendsSinceTrim.delete(room);
        await this.trim(room);
      }
    }
    const now = this.#now();
    if (now - this.#lastSweep >= SWEEP_INTERVAL_MS) {
      this.#lastSweep = now;
      await this.sweep();
    }
  }

  /** Deletes the room's oldest messages beyond `maxCount` (a no-op without `maxCount`). */
  async trim(room: string = this.defaultRoom): Promise<void> {
    const { maxCount } = this.#options;
    if (maxCount === undefined) return;
    await this.#sql`
      DELETE FROM messages WHERE room = ${room} AND id < (
        SELECT id FROM messages WHERE room = ${room} ORDER BY id DESC OFFSET ${maxCount - 1} LIMIT 1
      )`;
  }

  /** Deletes messages past `maxAgeMs`, and expired clientIds, markers, memberships and bans. */
  async sweep(): Promise<void> {
    const now = this.#now();
    const youngest = this.#youngestId();
    const touchedSince = now - this.#membershipMaxAgeMs;
    await this.#sql.begin(async (tx) => {
      if (youngest !== undefined) await tx`DELETE FROM messages WHERE id < ${youngest}`;
      await tx`DELETE FROM dedupe WHERE expires_at <= ${now}`;
      await tx`DELETE FROM read_markers WHERE touched_at <= ${touchedSince}`;
      await tx`DELETE FROM memberships WHERE touched_at <= ${touchedSince}`;
      await tx`DELETE FROM bans WHERE until <= ${now}`;
    });
  }

  /** The oldest id still within `maxAgeMs`, when messages expire ("" otherwise: every id). */
  #youngestId(): string | undefined {
    const { maxAgeMs } = this.#options;
    return maxAgeMs === undefined ? undefined : firstIdAt(this.#now() - maxAgeMs);
  }

  /** Ids a read may return: after `afterId` when given, and young enough. */
  #lowerBound(afterId?: string): { after: string; from: string } {
    return { after: afterId ?? "", from: this.#youngestId() ?? "" };
  }

  async latest(
    limit: number,
    afterId?: string,
    room: string = this.defaultRoom,
  ): Promise<ChatMessage[]> {
    checkLimit(limit);
    if (afterId !== undefined) checkId(afterId);
    if (limit === 0) return [];
    const { after, from } = this.#lowerBound(afterId);
    const rows = await this.#sql.unsafe<MessageRow[]>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE room = $1 AND id > $2 AND id >= $3
       ORDER BY id DESC LIMIT $4`,
      [room, after, from, limit],
    );
    return rows.map(toMessage).reverse();
  }

  async after(
    id: string,
    limit: number = DEFAULT_AFTER_LIMIT,
    room: string = this.defaultRoom,
  ): Promise<ChatMessage[]> {
    checkId(id);
    checkLimit(limit);
    if (limit === 0) return [];
    const { after, from } = this.#lowerBound(id);
    const rows = await this.#sql.unsafe<MessageRow[]>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE room = $1 AND id > $2 AND id >= $3
       ORDER BY id LIMIT $4`,
      [room, after, from, limit],
    );
    return rows.map(toMessage);
  }

  async before(id: string, limit: number, room: string = this.defaultRoom): Promise<ChatMessage[]> {
    checkId(id);
    checkLimit(limit);
    if (limit === 0) return [];
    const { after, from } = this.#lowerBound();
    const rows = await this.#sql.unsafe<MessageRow[]>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages
       WHERE room = $1 AND id > $2 AND id >= $3 AND id < $4 ORDER BY id DESC LIMIT $5`,
      [room, after, from, id, limit],
    );
    return rows.map(toMessage).reverse();
  }

  async countAfter(room: string, afterId: string | undefined, cap: number): Promise<number> {
    if (afterId !== undefined) checkId(afterId);
    checkLimit(cap);
    const { after, from } = this.#lowerBound(afterId);
    const [{ count }] = await this.#sql<{ count: string }[]>`
      SELECT count(*) FROM (
        SELECT 1 FROM messages WHERE room = ${room} AND id > ${after} AND id >= ${from}
        LIMIT ${cap}
      ) AS counted`;
    return Number(count);
  }

  async setReadMarker(userId: string, room: string, lastId: string): Promise<void> {
    checkId(lastId);
    const now = this.#now();
    await this.#sql`
      INSERT INTO read_markers (user_id, room, last_id, touched_at)
      VALUES (${toPgText(userId)}, ${room}, ${lastId}, ${now})
      ON CONFLICT (user_id, room) DO UPDATE
        SET last_id = excluded.last_id, touched_at = excluded.touched_at`;
    this.#touches.note("reads", userId, room, now, true);
    // Reading a room touches it: its membership lives on too.
    await this.#refresh(userId, room, ["members"]);
  }

  async readMarkers(userId: string, rooms: readonly string[]): Promise<(string | undefined)[]> {
    if (rooms.length === 0) return [];
    const rows = await this.#sql<{ room: string; last_id: string }[]>`
      SELECT room, last_id FROM read_markers
      WHERE user_id = ${toPgText(userId)} AND room = ANY(${rooms as string[]}::text[])
        AND touched_at > ${this.#now() - this.#membershipMaxAgeMs}`;
    const byRoom = new Map(rows.map((row) => [row.room, row.last_id]));
    return rooms.map((room) => byRoom.get(room));
  }

  async readPositions(room: string, limit: number): Promise<ReadPosition[]> {
    checkLimit(limit);
    if (limit === 0) return [];
    const rows = await this.#sql<{ user_id: string; last_id: string }[]>`
      SELECT user_id, last_id FROM read_markers
      WHERE room = ${room} AND touched_at > ${this.#now() - this.#membershipMaxAgeMs}
      ORDER BY touched_at DESC LIMIT ${limit}`;
    return rows.map((row) => ({ user: fromPgText(row.user_id), lastId: row.last_id }));
  }

  async countMentions(
    room: string,
    userId: string,
    afterId: string | undefined,
    cap: number,
  ): Promise<number> {
    if (afterId !== undefined) checkId(afterId);
    checkLimit(cap);
    const { after, from } = this.#lowerBound(afterId);
    const [{ count }] = await this.#sql<{ count: string }[]>`
      SELECT count(*) FROM (
        SELECT 1 FROM mentions n JOIN messages m ON m.room = n.room AND m.id = n.id
        WHERE n.room = ${room} AND n.user_id = ${toPgText(userId)} AND n.id > ${after}
          AND n.id >= ${from} AND NOT m.deleted
        LIMIT ${cap}
      ) AS counted`;
    return Number(count);
  }

  async addMembership(userId: string, room: string, by: string = userId): Promise<void> {
    const now = this.#now();
    if (this.#touches.isFresh("members", userId, room, now)) return;
    // A user filling others' room lists (DMs to invented or many peers) is held to a rate.
    if (by !== userId && !this.#peerMemberships.take(by).ok) return;
    await this.#sql`
      INSERT INTO memberships (user_id, room, touched_at) VALUES (${
      toPgText(userId)
    }, ${room}, ${now})
      ON CONFLICT (user_id, room) DO UPDATE SET touched_at = excluded.touched_at`;
    this.#touches.note("members", userId, room, now, true);
  }

  async touchRoom(userId: string, room: string): Promise<void> {
    await this.#refresh(userId, room, ["members", "reads"]);
  }

  async listRooms({ prefix = "", after = "", limit }: RoomQuery): Promise<string[]> {
    checkLimit(limit);
    if (limit === 0) return [];
    // A room row exists from its first message; a room whose messages all expired is left out.
    const rows = await this.#sql<{ room: string }[]>`
      SELECT r.room FROM rooms r
      WHERE starts_with(r.room, ${prefix}) AND r.room > ${after} AND NOT starts_with(r.room, 'dm:')
        AND EXISTS (
          SELECT 1 FROM messages m WHERE m.room = r.room AND m.id >= ${this.#youngestId() ?? ""}
        )
      ORDER BY r.room LIMIT ${limit}`;
    return rows.map((row) => row.room);
  }

  async memberships(userId: string, limit: number): Promise<string[]> {
    checkLimit(limit);
    if (limit === 0) return [];
    const rows = await this.#sql<{ room: string }[]>`
      SELECT room FROM memberships
      WHERE user_id = ${toPgText(userId)} AND touched_at > ${this.#now() - this.#membershipMaxAgeMs}
      ORDER BY room LIMIT ${limit}`;
    return rows.map((row) => row.room);
  }

  /**
   * Gives `userId`'s live entries of these kinds in `room` a fresh touch time, skipping those
   * this instance refreshed within the refresh interval; an expired entry stays expired.
   */
  async #refresh(userId: string, room: string, kinds: readonly TouchKind[]): Promise<void> {
    const now = this.#now();
    const stale = this.#touches.stale(kinds, userId, room, now);
    if (stale.length === 0) return;
    const user = toPgText(userId);
    const liveSince = now - this.#membershipMaxAgeMs;
    const present = await Promise.all(stale.map(async (kind) => {
      const table = kind === "members" ? "memberships" : "read_markers";
      const result = await this.#sql.unsafe(
        `UPDATE ${table} SET touched_at = $1 WHERE user_id = $2 AND room = $3 AND touched_at > $4`,
        [now, user, room, liveSince],
      );
      return result.count > 0;
    }));
    stale.forEach((kind, index) => this.#touches.note(kind, userId, room, now, present[index]));
  }

  async findMessage(id: string): Promise<ChatMessage | undefined> {
    if (!isMessageId(id)) return undefined;
    // An expired message is gone, whether or not it has been deleted yet.
    const youngest = this.#youngestId();
    if (youngest !== undefined && id < youngest) return undefined;
    const rows = await this.#sql.unsafe<MessageRow[]>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE id = $1`,
      [id],
    );
    return rows.length === 0 ? undefined : toMessage(rows[0]);
  }

  changeMessage(
    id: string,
    change: MessageChange,
    at: Date,
    outbox?: OutboxWriter,
  ): Promise<ChatMessage | undefined> {
    // The database serialises changes of one row; the queue keeps this instance's in asked order.
    return this.#changes.run(id, () => this.#change(id, change, at, outbox));
  }

  async #change(
    id: string,
    change: MessageChange,
    at: Date,
    outbox: OutboxWriter | undefined,
  ): Promise<ChatMessage | undefined> {
    if (!isMessageId(id)) return undefined;
    const deleting = "deleted" in change;
    const body = deleting ? "" : toPgText(change.message);
    const update = async (sql: postgres.Sql | postgres.TransactionSql) => {
      const rows = await sql.unsafe<MessageRow[]>(
        `UPDATE messages SET body = $2, edited_at = $3, deleted = $4
         WHERE id = $1 AND NOT deleted RETURNING ${MESSAGE_COLUMNS}`,
        [id, body, at.getTime(), deleting],
      );
      return rows.length > 0 ? toMessage(rows[0]) : undefined;
    };
    // Without an outbox the change is one statement; with one, its events join its transaction.
    const changed = outbox
      ? await this.#sql.begin(async (tx) => {
        const message = await update(tx);
        if (message) await this.#outbox.insert(tx, outbox.draftsFor(message));
        return message;
      })
      : await update(this.#sql);
    if (changed) return changed;
    // Deleting twice changes nothing; a deleted message has no text left to edit.
    return deleting ? await this.findMessage(id) : undefined;
  }

  async react(change: ReactionChange, limits: ReactionLimits): Promise<ReactionOutcome> {
    const { room, id, emoji, on } = change;
    checkId(id);
    const user = toPgText(change.userId);
    const status = await this.#sql.begin(async (tx): Promise<ReactionOutcome["status"]> => {
      // The message's row lock makes one message's reactions one at a time: the bounds hold.
      const [message] = await tx`
        SELECT 1 FROM messages WHERE room = ${room} AND id = ${id} FOR NO KEY UPDATE`;
      if (!message) return "not_found";
      const own = (await tx<{ emoji: string }[]>`
        SELECT emoji FROM reactions WHERE room = ${room} AND id = ${id} AND user_id = ${user}`)
        .map((row) => fromPgText(row.emoji));
      if (own.includes(emoji) === on) return "unchanged";
      if (!on) {
        await tx`
          DELETE FROM reactions
          WHERE room = ${room} AND id = ${id} AND emoji = ${toPgText(emoji)} AND user_id = ${user}`;
        return "changed";
      }
      const [{ used, known }] = await tx<{ used: number; known: boolean }[]>`
        SELECT count(DISTINCT emoji)::int AS used, bool_or(emoji = ${toPgText(emoji)}) AS known
        FROM reactions WHERE room = ${room} AND id = ${id}`;
      if (!known && used >= limits.maxEmoji) return "too_many_emoji";
      if (own.length >= limits.maxPerUser) return "too_many_reactions";
      await tx`
        INSERT INTO reactions (room, id, emoji, user_id)
        VALUES (${room}, ${id}, ${toPgText(emoji)}, ${user})`;
      return "changed";
    });
    if (status === "not_found") return { status, reactions: [] };
    const reactions = (await this.reactionsOf(room, [id], limits.listedUsers)).get(id) ?? [];
    return { status, reactions };
  }

  async reactionsOf(
    room: string,
    ids: readonly string[],
    listedUsers: number,
  ): Promise<Map<string, Reaction[]>> {
    const found = new Map<string, Reaction[]>();
    if (ids.length === 0) return found;
    const rows = await this.#sql<
      { id: string; emoji: string; count: number; users: string[] }[]
    >`
      SELECT id, emoji, count(*)::int AS count,
        (array_agg(user_id ORDER BY seq))[1:${listedUsers}] AS users
      FROM reactions WHERE room = ${room} AND id = ANY(${ids as string[]}::text[])
      GROUP BY id, emoji ORDER BY id, min(seq)`;
    for (const row of rows) {
      const reactions = found.get(row.id) ?? [];
      reactions.push({
        emoji: fromPgText(row.emoji),
        count: row.count,
        users: row.users.map(fromPgText),
      });
      found.set(row.id, reactions);
    }
    return found;
  }

  async threadsOf(room: string, ids: readonly string[]): Promise<Map<string, ThreadSummary>> {
    const found = new Map<string, ThreadSummary>();
    if (ids.length === 0) return found;
    const { from } = this.#lowerBound();
    const rows = await this.#sql<
      { parent: string; user_id: string; count: number; last_id: string }[]
    >`
      SELECT reply_to AS parent, user_id, count(*)::int AS count, max(id) AS last_id
      FROM messages WHERE room = ${room} AND reply_to = ANY(${ids as string[]}::text[])
        AND id >= ${from}
      GROUP BY reply_to, user_id ORDER BY reply_to, max(id) DESC`;
    for (const row of rows) {
      const thread = found.get(row.parent);
      if (!thread) {
        found.set(row.parent, {
          count: row.count,
          lastId: row.last_id,
          users: [fromPgText(row.user_id)],
        });
        continue;
      }
      thread.count += row.count;
      if (thread.users.length < THREAD_USERS) thread.users.push(fromPgText(row.user_id));
    }
    return found;
  }

  async threadReplies(
    room: string,
    parentId: string,
    before: string | undefined,
    limit: number,
  ): Promise<ChatMessage[]> {
    checkId(parentId);
    if (before !== undefined) checkId(before);
    checkLimit(limit);
    if (limit === 0) return [];
    const { from } = this.#lowerBound();
    const rows = await this.#sql.unsafe<MessageRow[]>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages
       WHERE room = $1 AND reply_to = $2 AND id >= $3 AND ($4::text IS NULL OR id < $4)
       ORDER BY id DESC LIMIT $5`,
      [room, parentId, from, before ?? null, limit],
    );
    return rows.map(toMessage).reverse();
  }

  async setBan(userId: string, ban: Ban): Promise<void> {
    const reason = ban.reason === undefined ? null : toPgText(ban.reason);
    await this.#sql`
      INSERT INTO bans (user_id, until, reason, since)
      VALUES (${toPgText(userId)}, ${ban.until ?? null}, ${reason}, ${ban.since})
      ON CONFLICT (user_id) DO UPDATE
        SET until = excluded.until, reason = excluded.reason, since = excluded.since`;
  }

  async getBan(userId: string): Promise<Ban | undefined> {
    const rows = await this.#sql<{ until: string | null; reason: string | null; since: string }[]>`
      SELECT until, reason, since FROM bans
      WHERE user_id = ${toPgText(userId)} AND (until IS NULL OR until > ${this.#now()})`;
    if (rows.length === 0) return undefined;
    const [row] = rows;
    const ban: Ban = { since: Number(row.since) };
    if (row.until !== null) ban.until = Number(row.until);
    if (row.reason !== null) ban.reason = fromPgText(row.reason);
    return ban;
  }

  async addPushSubscription(
    userId: string,
    subscription: PushSubscriptionRecord,
    max: number,
  ): Promise<void> {
    const user = toPgText(userId);
    const { endpoint, keys } = subscription;
    await this.#sql.begin(async (tx) => {
      // A new row each time: its seq says it is the user's newest.
      await tx`DELETE FROM push_subscriptions WHERE endpoint = ${toPgText(endpoint)}`;
      await tx`
        INSERT INTO push_subscriptions (endpoint, user_id, p256dh, auth)
        VALUES (${toPgText(endpoint)}, ${user}, ${toPgText(keys.p256dh)}, ${toPgText(keys.auth)})`;
      await tx`
        DELETE FROM push_subscriptions WHERE user_id = ${user} AND seq NOT IN (
          SELECT seq FROM push_subscriptions WHERE user_id = ${user} ORDER BY seq DESC LIMIT ${max}
        )`;
    });
  }

  async pushSubscriptions(userId: string): Promise<PushSubscriptionRecord[]> {
    const rows = await this.#sql<{ endpoint: string; p256dh: string; auth: string }[]>`
      SELECT endpoint, p256dh, auth FROM push_subscriptions
      WHERE user_id = ${toPgText(userId)} ORDER BY seq`;
    return rows.map((row) => ({
      endpoint: fromPgText(row.endpoint),
      keys: { p256dh: fromPgText(row.p256dh), auth: fromPgText(row.auth) },
    }));
  }

  async removePushSubscription(userId: string, endpoint: string): Promise<boolean> {
    const rows = await this.#sql`
      DELETE FROM push_subscriptions
      WHERE user_id = ${toPgText(userId)} AND endpoint = ${toPgText(endpoint)} RETURNING 1`;
    return rows.length > 0;
  }

  async deleteBan(userId: string): Promise<boolean> {
    const rows = await this.#sql`
      DELETE FROM bans WHERE user_id = ${toPgText(userId)}
      RETURNING until IS NULL OR until > ${this.#now()} AS live`;
    return rows.length > 0 && rows[0].live === true;
  }

  /** The events to send about this history (webhooks, push), kept beside it. */
  get outbox(): OutboxStore {
    return this.#outbox;
  }

  async ping(): Promise<void> {
    await this.#sql`SELECT 1`;
  }

  /** Ends the pool, waiting up to 5 s for queries under way. */
  /**
   * Swaps the pool for a fresh one and ends the old one: after {@link isDriverFault}, whose
   * connection would never write again. Queries still on the old pool fail (`internal`).
   */
  recycle(): void {
    if (!this.#connect) return;
    const old = this.#sql;
    this.#sql = this.#connect();
    old.end({ timeout: 0 }).catch(() => {});
  }

  async close(): Promise<void> {
    await this.#sql.end({ timeout: 5 });
  }

  /** As {@link close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The stored form of a `(user, clientId)` pair, as one string for maps. */
function dedupeKey(userId: string, clientId: string, source: string): string {
  return JSON.stringify([userId, source, clientId]);
}

function placeholder(row: { key_user: string; room: string; key_id: string }): ChatMessage {
  const userId = fromPgText(row.key_user);
  return {
    id: row.key_id,
    room: row.room,
    user: { id: userId, name: userId },
    message: "",
    createdAt: new Date(timeOfId(row.key_id)).toISOString(),
  };
}

/**
 * Connects to the database at `url` (`postgres://user:password@host:port/database`, TLS as its
 * `sslmode` says), applies missing migrations and returns the store. Rejects when the database
 * cannot be reached, with the pool already ended.
 */
export async function openPostgresStore(
  url: string,
  options: PostgresConnectOptions = {},
): Promise<PostgresMessageStore> {
  const { poolSize = DEFAULT_POOL_SIZE, statementTimeoutMs = DEFAULT_STATEMENT_TIMEOUT_MS } =
    options;
  const connect = () =>
    postgres(url, {
      max: poolSize,
      // Options the driver would otherwise take from PG* variables: config.ts reads the environment.
      ssl: sslOf(url),
      idle_timeout: 60,
      connect_timeout: 10,
      // The driver's own backoff grows to 20 s while the database is down: sends would hang that
      // long before failing, and recover that late once it is back. At most 1 s keeps both short.
      backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1) * (0.5 + Math.random() / 2),
      connection: { application_name: "chat-server", statement_timeout: statementTimeoutMs },
      // Notices ("already exists, skipping") are not the operator's business; stdout is JSON logs.
      onnotice: () => {},
    });
  const sql = connect();
  try {
    await migrate(sql);
  } catch (error) {
    await sql.end({ timeout: 1 });
    throw error;
  }
  return new PostgresMessageStore(sql, options, connect);
}

/**
 * Whether an uncaught error is the driver's known fault: postgres@3.4 writes a transaction's
 * ROLLBACK from a timer to a connection that died under it (porsager/postgres#1208, unfixed in
 * 3.4.10). Thrown where no query can catch it, it would end the process; the connection it leaves
 * behind is wedged, so the server catches it and {@link PostgresMessageStore.recycle}s the pool.
 */
export function isDriverFault(error: unknown): boolean {
  return error instanceof TypeError &&
    /reading 'write'/.test(error.message) &&
    /[\\/]postgres[\\/@][^\n]*connection\.js/.test(error.stack ?? "");
}

/**
 * Whether an unhandled rejection is the driver's own lookup of the array types, cut off by the
 * connection dying under it: postgres@3.4 starts it from its socket's data handler and keeps no
 * hold of its promise, so nothing can catch it (a fresh pool's connections each look the types up
 * as they connect, as after {@link PostgresMessageStore.recycle}). The connection looks them up
 * again when it reconnects.
 */
export function isDriverTypeLookupFailure(reason: unknown): boolean {
  const query = (reason as { query?: unknown } | undefined)?.query;
  return reason instanceof Error && typeof query === "string" &&
    /\bb\.typarray\b/.test(query) && /\bfrom pg_catalog\.pg_type a\b/.test(query);
}

/**
 * Keeps the driver's known fault ({@link isDriverFault}) inside the `setImmediate` callback that
 * throws it (the driver's deferred write), handing it to `onFault` instead; any other error is
 * thrown as before. Thrown out of the callback, the runtime keeps the rest of that round's
 * immediates to run later, as Node does; if one of them is cleared meanwhile (a connection that
 * closes clears its own pending write, as every connection does when PostgreSQL stops under
 * load), each later round throws "reading '_idleNext'" from the runtime itself, and the process
 * exits. Returns the undo.
 *
 * @example
 * ```ts ignore
 * containDriverFaults((error) => {
 *   log.error("store.driver_fault", { error });
 *   store.recycle();
 * });
 * ```
 */
export function containDriverFaults(onFault: (error: TypeError) => void): () => void {
  const original = globalThis.setImmediate;
  const contained = function (
    callback: (...args: unknown[]) => void,
    ...args: unknown[]
  ): ReturnType<typeof setImmediate> {
    return original(function (this: unknown, ...given: unknown[]) {
      try {
        callback.apply(this, given);
      } catch (error) {
        if (!isDriverFault(error)) throw error;
        onFault(error as TypeError);
      }
    }, ...args);
  };
  // What hangs on the original (util.promisify's custom form) stays reachable.
  for (const key of Reflect.ownKeys(original)) {
    if (!(key in contained)) {
      Object.defineProperty(contained, key, Object.getOwnPropertyDescriptor(original, key)!);
    }
  }
  globalThis.setImmediate = contained as typeof setImmediate;
  return () => {
    if (globalThis.setImmediate === (contained as typeof setImmediate)) {
      globalThis.setImmediate = original;
    }
  };
}

/** The driver's `ssl` for the URL's `sslmode` (libpq's names; unset: no TLS). */
export function sslOf(url: string): boolean | "require" | "allow" | "prefer" | "verify-full" {
  const mode = new URL(url).searchParams.get("sslmode");
  if (mode === null || mode === "disable") return false;
  if (mode === "verify-ca") return "verify-full";
  return mode as "require" | "allow" | "prefer" | "verify-full";
}
