/**
 * Moves a KV file's whole chat into PostgreSQL: every room's messages with their ids (so their
 * order, and every client's `lastId`, stay valid), edits and tombstones, the clientIds still
 * remembered, read markers and memberships with their touch times, and the bans still running.
 * Then it reads everything back and compares, room by room, and prints a summary.
 *
 * The copy is one transaction: stopped midway, it leaves the database as it was. It refuses a
 * database that already holds messages unless `--force`; with `--force` it merges, and running it
 * again copies nothing twice (messages are keyed by id, the rest by user and room), so it is
 * idempotent. Stop the servers on the KV file first: the script takes the file's lock.
 *
 * @example
 * ```sh
 * deno task migrate-to-postgres --from ./data/chat.kv --to postgres://chat@db.internal/chat
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import postgres from "postgres";
import { KvFileBusy, KvFileLock } from "../src/store/kv_lock.ts";
import { KvMessageStore, openKv } from "../src/store/kv.ts";
import { sslOf } from "../src/store/postgres.ts";
import { migrate } from "../src/store/postgres_schema.ts";
import { toPgText } from "../src/store/postgres_text.ts";
import { timeOfId } from "../src/store/id.ts";
import { DEFAULT_DEDUPE_TTL_MS, DEFAULT_ROOM } from "../src/store/rules.ts";
import { redactUrl } from "../src/config.ts";
import type { Ban, ChatMessage } from "../src/types.ts";

/** How to call the script, printed with every argument error. */
export const USAGE = "usage: deno task migrate-to-postgres --from KV_FILE --to DATABASE_URL " +
  "[--force] [--default-room ROOM]";

/** What {@link moveToPostgres} copies from and to. */
export interface MoveOptions {
  /** The KV file (no server may hold it). */
  kvPath: string;
  /** `postgres://…`, TLS as its `sslmode` says. */
  databaseUrl: string;
  /** Copy into a database that already holds messages, merging (default false). */
  force?: boolean;
  /** The room of clientIds remembered before rooms existed: the server's `DEFAULT_ROOM`. */
  defaultRoom?: string;
  /** The clock that decides which clientIds and bans are still live (tests move it). */
  now?: () => number;
}

/** One room's messages: in the KV file, found equal in PostgreSQL, and PostgreSQL's total. */
export interface RoomCount {
  room: string;
  kv: number;
  verified: number;
  postgres: number;
}

/** What was copied and verified. */
export interface MoveSummary {
  rooms: RoomCount[];
  messages: number;
  edited: number;
  tombstones: number;
  /** Remembered clientIds copied, and those past their 24 h left out. */
  clientIds: number;
  expiredClientIds: number;
  readMarkers: number;
  memberships: number;
  bans: number;
  expiredBans: number;
}

/** Why the move did not start; `code` is stable. */
export class MoveRefused extends Error {
  constructor(
    readonly code: "kv_missing" | "kv_in_use" | "database_not_empty",
    message: string,
  ) {
    super(message);
    this.name = "MoveRefused";
  }
}

/** What PostgreSQL holds after the copy differs from the KV file. */
export class MoveUnverified extends Error {
  readonly code = "counts_differ";
  constructor(readonly summary: MoveSummary, message: string) {
    super(message);
    this.name = "MoveUnverified";
  }
}

/** Rows per multi-row insert, and keys per verifying read. */
const BATCH = 1000;

interface MessageRow {
  room: string;
  id: string;
  userId: string;
  userName: string;
  body: string;
  createdAt: number;
  editedAt: number | null;
  deleted: boolean;
}

function rowOf(message: ChatMessage): MessageRow {
  return {
    room: message.room,
    id: message.id,
    userId: toPgText(message.user.id),
    userName: toPgText(message.user.name),
    body: toPgText(message.message),
    createdAt: Date.parse(message.createdAt),
    editedAt: message.editedAt === undefined ? null : Date.parse(message.editedAt),
    deleted: message.deleted === true,
  };
}

/** The rows as a table `k` (`deleted` as 0 or 1: the driver cannot send an array of booleans). */
function unnestMessages(sql: postgres.Sql | postgres.TransactionSql, rows: MessageRow[]) {
  return sql`
    unnest(
      ${rows.map((r) => r.room)}::text[], ${rows.map((r) => r.id)}::text[],
      ${rows.map((r) => r.userId)}::text[], ${rows.map((r) => r.userName)}::text[],
      ${rows.map((r) => r.body)}::text[], ${rows.map((r) => r.createdAt)}::bigint[],
      ${rows.map((r) => r.editedAt) as number[]}::bigint[],
      ${rows.map((r) => r.deleted ? 1 : 0)}::int[]
    ) AS k(room, id, user_id, user_name, body, created_at, edited_at, deleted)`;
}

/** Copies the KV file's chat into PostgreSQL, verifies it and returns what it found. */
export async function moveToPostgres(options: MoveOptions): Promise<MoveSummary> {
  const { kvPath, databaseUrl, force = false, defaultRoom = DEFAULT_ROOM } = options;
  const now = (options.now ?? Date.now)();
  try {
    await Deno.stat(kvPath);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new MoveRefused("kv_missing", `there is no KV file at ${kvPath}`);
  }
  let lock: KvFileLock;
  try {
    lock = await KvFileLock.acquire(kvPath, { instanceId: "migrate-to-postgres" });
  } catch (error) {
    if (!(error instanceof KvFileBusy)) throw error;
    throw new MoveRefused("kv_in_use", `${kvPath} is in use, ${error.message}: stop it first`);
  }
  using _lock = lock;
  // The store brings an older key layout up to date first, as a server starting on it would.
  const kvStore = new KvMessageStore(await openKv(kvPath), { defaultRoom });
  using _kvStore = kvStore;
  await kvStore.warm();
  const kv = await openKv(kvPath);
  using _kv = kv;
  const sql = postgres(databaseUrl, { max: 2, ssl: sslOf(databaseUrl), onnotice: () => {} });
  try {
    await migrate(sql);
    const summary = await sql.begin(async (tx) => {
      if (!force) {
        const [{ found }] = await tx<{ found: boolean }[]>`
          SELECT EXISTS (SELECT 1 FROM messages) AS found`;
        if (found) {
          throw new MoveRefused(
            "database_not_empty",
            `${redactUrl(databaseUrl)} already holds messages (--force merges into them)`,
          );
        }
      }
      return await copy(kv, tx, { now, defaultRoom });
    });
    await verify(kv, sql, summary);
    return summary;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Streams `list` in chunks of {@link BATCH}. */
async function* chunks<T>(list: Deno.KvListIterator<T>): AsyncGenerator<Deno.KvEntry<T>[]> {
  const chunk: Deno.KvEntry<T>[] = [];
  for await (const entry of list) {
    chunk.push(entry);
    if (chunk.length === BATCH) yield chunk.splice(0);
  }
  if (chunk.length > 0) yield chunk;
}

async function copy(
  kv: Deno.Kv,
  tx: postgres.TransactionSql,
  { now, defaultRoom }: { now: number; defaultRoom: string },
): Promise<MoveSummary> {
  const summary: MoveSummary = {
    rooms: [],
    messages: 0,
    edited: 0,
    tombstones: 0,
    clientIds: 0,
    expiredClientIds: 0,
    readMarkers: 0,
    memberships: 0,
    bans: 0,
    expiredBans: 0,
  };
  /** Each room's newest id: new ids must sort after it. */
  const newest = new Map<string, string>();
  for await (const chunk of chunks(kv.list<ChatMessage>({ prefix: ["messages"] }))) {
    const rows = chunk.map((entry) => rowOf(entry.value));
    // Kept on a re-run, unless the KV file holds a later edit of it.
    await tx`
      INSERT INTO messages (room, id, user_id, user_name, body, created_at, edited_at, deleted)
      SELECT room, id, user_id, user_name, body, created_at, edited_at, deleted <> 0
      FROM ${unnestMessages(tx, rows)}
      ON CONFLICT (room, id) DO UPDATE
        SET body = excluded.body, edited_at = excluded.edited_at, deleted = excluded.deleted
        WHERE excluded.edited_at > coalesce(messages.edited_at, -1)`;
    for (const row of rows) {
      const room = summary.rooms.at(-1)?.room === row.room ? summary.rooms.at(-1)! : undefined;
      if (room) room.kv++;
      else summary.rooms.push({ room: row.room, kv: 1, verified: 0, postgres: 0 });
      newest.set(row.room, row.id);
      if (row.editedAt !== null && !row.deleted) summary.edited++;
      if (row.deleted) summary.tombstones++;
    }
    summary.messages += rows.length;
  }
  // A room's next id takes a later millisecond than its newest copied one, so it sorts after.
  const rooms = [...newest.keys()];
  if (rooms.length > 0) {
    await tx`
      INSERT INTO rooms (room, last_time)
      SELECT * FROM unnest(
        ${rooms}::text[], ${rooms.map((room) => timeOfId(newest.get(room)!) + 1)}::bigint[]
      ) ORDER BY 1
      ON CONFLICT (room) DO UPDATE SET last_time = greatest(rooms.last_time, excluded.last_time)`;
  }

  for (const [kind, source] of [["dedupe", ""], ["dedupe_api", "api"]] as const) {
    for await (const chunk of chunks(kv.list<[string, string] | string>({ prefix: [kind] }))) {
      const live = chunk.flatMap((entry) => {
        const [room, id] = typeof entry.value === "string"
          ? [defaultRoom, entry.value]
          : entry.value;
        const expiresAt = timeOfId(id) + DEFAULT_DEDUPE_TTL_MS;
        if (expiresAt <= now) return [];
        const [, user, clientId] = entry.key as [string, string, string];
        return [{ user: toPgText(user), clientId: toPgText(clientId), room, id, expiresAt }];
      });
      summary.expiredClientIds += chunk.length - live.length;
      summary.clientIds += live.length;
      if (live.length === 0) continue;
      await tx`
        INSERT INTO dedupe (user_id, source, client_id, room, id, expires_at)
        SELECT u, ${source}, c, r, i, e FROM unnest(
          ${live.map((d) => d.user)}::text[], ${live.map((d) => d.clientId)}::text[],
          ${live.map((d) => d.room)}::text[], ${live.map((d) => d.id)}::text[],
          ${live.map((d) => d.expiresAt)}::bigint[]
        ) AS d(u, c, r, i, e)
        ON CONFLICT DO NOTHING`;
    }
  }

  for await (
    const chunk of chunks(kv.list<{ lastId: string; touchedAt: number }>({ prefix: ["reads"] }))
  ) {
    const users = chunk.map((entry) => toPgText(entry.key[1] as string));
    const rooms = chunk.map((entry) => entry.key[2] as string);
    await tx`
      INSERT INTO read_markers (user_id, room, last_id, touched_at)
      SELECT * FROM unnest(
        ${users}::text[], ${rooms}::text[],
        ${chunk.map((entry) => entry.value.lastId)}::text[],
        ${chunk.map((entry) => entry.value.touchedAt)}::bigint[]
      )
      ON CONFLICT (user_id, room) DO UPDATE
        SET last_id = excluded.last_id, touched_at = excluded.touched_at
        WHERE excluded.touched_at > read_markers.touched_at`;
    summary.readMarkers += chunk.length;
  }

  for await (const chunk of chunks(kv.list<{ touchedAt: number }>({ prefix: ["members"] }))) {
    await tx`
      INSERT INTO memberships (user_id, room, touched_at)
      SELECT * FROM unnest(
        ${chunk.map((entry) => toPgText(entry.key[1] as string))}::text[],
        ${chunk.map((entry) => entry.key[2] as string)}::text[],
        ${chunk.map((entry) => entry.value.touchedAt)}::bigint[]
      )
      ON CONFLICT (user_id, room) DO UPDATE SET touched_at = excluded.touched_at
        WHERE excluded.touched_at > memberships.touched_at`;
    summary.memberships += chunk.length;
  }

  for await (const chunk of chunks(kv.list<Ban>({ prefix: ["bans"] }))) {
    const live = chunk.filter((entry) =>
      entry.value.until === undefined || entry.value.until > now
    );
    summary.expiredBans += chunk.length - live.length;
    summary.bans += live.length;
    if (live.length === 0) continue;
    await tx`
      INSERT INTO bans (user_id, until, reason, since)
      SELECT * FROM unnest(
        ${live.map((entry) => toPgText(entry.key[1] as string))}::text[],
        ${live.map((entry) => entry.value.until ?? null) as number[]}::bigint[],
        ${live.map((entry) =>
      entry.value.reason === undefined ? null : toPgText(entry.value.reason)
    ) as string[]}::text[],
        ${live.map((entry) => entry.value.since)}::bigint[]
      )
      ON CONFLICT (user_id) DO UPDATE
        SET until = excluded.until, reason = excluded.reason, since = excluded.since`;
  }
  return summary;
}

/**
 * Reads every copied message back by its room and id and compares it with the KV file's, and
 * counts what each room holds now; throws {@link MoveUnverified} when anything differs.
 */
async function verify(kv: Deno.Kv, sql: postgres.Sql, summary: MoveSummary): Promise<void> {
  const byRoom = new Map(summary.rooms.map((room) => [room.room, room]));
  for await (const chunk of chunks(kv.list<ChatMessage>({ prefix: ["messages"] }))) {
    const rows = chunk.map((entry) => rowOf(entry.value));
    const stored = await sql<
      { room: string; id: string; same: boolean }[]
    >`
      SELECT m.room, m.id, (m.user_id, m.user_name, m.body, m.created_at, m.deleted)
          = (k.user_id, k.user_name, k.body, k.created_at, k.deleted <> 0)
        AND m.edited_at IS NOT DISTINCT FROM k.edited_at AS same
      FROM ${unnestMessages(sql, rows)}
      JOIN messages m ON m.room = k.room COLLATE "C" AND m.id = k.id COLLATE "C"`;
    for (const row of stored) if (row.same) byRoom.get(row.room)!.verified++;
  }
  const totals = await sql<{ room: string; count: string }[]>`
    SELECT room, count(*) FROM messages GROUP BY room`;
  for (const { room, count } of totals) {
    const known = byRoom.get(room);
    if (known) known.postgres = Number(count);
  }
  const differing = summary.rooms.filter((room) => room.verified !== room.kv);
  const [{ dedupe, reads, members, bans }] = await sql<
    { dedupe: string; reads: string; members: string; bans: string }[]
  >`
    SELECT (SELECT count(*) FROM dedupe) AS dedupe, (SELECT count(*) FROM read_markers) AS reads,
      (SELECT count(*) FROM memberships) AS members, (SELECT count(*) FROM bans) AS bans`;
  // A merge (--force) may find more rows than it copied, never fewer.
  const short = [
    ["clientIds", Number(dedupe), summary.clientIds],
    ["read markers", Number(reads), summary.readMarkers],
    ["memberships", Number(members), summary.memberships],
    ["bans", Number(bans), summary.bans],
  ].filter(([, found, copied]) => found < copied).map(([name]) => name);
  if (differing.length > 0 || short.length > 0) {
    const rooms = differing.map((room) => `${room.room} (${room.verified} of ${room.kv})`);
    throw new MoveUnverified(
      summary,
      `PostgreSQL differs from the KV file: ${[...rooms, ...short].join(", ")}`,
    );
  }
}

/** The summary a person reads: one line per room (the first 20), then the totals. */
export function describe(summary: MoveSummary): string {
  const shown = 20;
  const lines = summary.rooms.slice(0, shown).map((room) =>
    `  ${room.room}: ${room.kv} messages copied, ${room.verified} verified` +
    (room.postgres !== room.kv ? ` (${room.postgres} in PostgreSQL)` : "")
  );
  if (summary.rooms.length > shown) {
    lines.push(`  … and ${summary.rooms.length - shown} more rooms`);
  }
  const verified = summary.rooms.reduce((sum, room) => sum + room.verified, 0);
  lines.push(
    `${summary.rooms.length} rooms, ${summary.messages} messages (${verified} verified; ` +
      `${summary.edited} edited, ${summary.tombstones} deleted), ` +
      `${summary.clientIds} clientIds (${summary.expiredClientIds} expired, left out), ` +
      `${summary.readMarkers} read markers, ${summary.memberships} memberships, ` +
      `${summary.bans} bans (${summary.expiredBans} over, left out)`,
  );
  return lines.join("\n");
}

/** Reads the command line; throws with {@link USAGE} when it is wrong. */
export function parseMoveArgs(args: string[]): MoveOptions {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      from: { type: "string" },
      to: { type: "string" },
      force: { type: "boolean" },
      "default-room": { type: "string" },
    },
  });
  if (!values.from || !values.to || positionals.length > 0) throw new Error(USAGE);
  if (!/^postgres(ql)?:\/\//.test(values.to)) {
    throw new Error(`--to must be a postgres:// URL\n${USAGE}`);
  }
  return {
    kvPath: values.from,
    databaseUrl: values.to,
    force: values.force ?? false,
    ...(values["default-room"] ? { defaultRoom: values["default-room"] } : {}),
  };
}

if (import.meta.main) {
  let options: MoveOptions;
  try {
    options = parseMoveArgs(Deno.args);
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(2);
  }
  try {
    const summary = await moveToPostgres(options);
    console.log(describe(summary));
    console.log(`moved ${options.kvPath} into ${redactUrl(options.databaseUrl)}: counts equal`);
  } catch (error) {
    if (error instanceof MoveUnverified) console.log(describe(error.summary));
    const known = error instanceof MoveRefused || error instanceof MoveUnverified;
    console.error(`migrate-to-postgres: ${known ? error.message : error}`);
    Deno.exit(1);
  }
}
