/**
 * The PostgreSQL store's tables, as numbered migrations applied at start. Each instance migrates
 * in one transaction under an advisory lock, so instances starting together wait for the first
 * and find its work done; `schema_migrations` records what was applied.
 *
 * Text columns that order (ids, rooms, users) use the "C" collation: byte order, which is the
 * order of Deno KV's keys and of JavaScript's string comparison for these ASCII-ordered values.
 * Times are milliseconds since the epoch (`bigint`), as the store's clock gives them.
 * @module
 */
import type postgres from "postgres";

/** One step of the schema: applied once, in `version` order. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Every migration, oldest first; append, never edit one that shipped. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "chat history, dedupe, markers, memberships, bans",
    sql: `
      -- Each room's last id: messages are numbered in the commit, under this row's lock.
      CREATE TABLE rooms (
        room text COLLATE "C" PRIMARY KEY,
        room_number bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        last_time bigint NOT NULL DEFAULT 0,
        last_sequence bigint NOT NULL DEFAULT 0
      );
      CREATE TABLE messages (
        room text COLLATE "C" NOT NULL,
        id text COLLATE "C" NOT NULL,
        user_id text NOT NULL,
        user_name text NOT NULL,
        body text NOT NULL,
        created_at bigint NOT NULL,
        edited_at bigint,
        deleted boolean NOT NULL DEFAULT false,
        PRIMARY KEY (room, id)
      );
      CREATE UNIQUE INDEX messages_id ON messages (id);
      -- One row per remembered clientId, per source: a socket's ('') and the server API's
      -- ('api') are key spaces of their own.
      CREATE TABLE dedupe (
        user_id text COLLATE "C" NOT NULL,
        source text COLLATE "C" NOT NULL DEFAULT '',
        client_id text COLLATE "C" NOT NULL,
        room text COLLATE "C" NOT NULL,
        id text COLLATE "C" NOT NULL,
        expires_at bigint NOT NULL,
        PRIMARY KEY (user_id, source, client_id)
      );
      CREATE INDEX dedupe_expires_at ON dedupe (expires_at);
      CREATE TABLE read_markers (
        user_id text COLLATE "C" NOT NULL,
        room text COLLATE "C" NOT NULL,
        last_id text COLLATE "C" NOT NULL,
        touched_at bigint NOT NULL,
        PRIMARY KEY (user_id, room)
      );
      CREATE INDEX read_markers_touched_at ON read_markers (touched_at);
      CREATE TABLE memberships (
        user_id text COLLATE "C" NOT NULL,
        room text COLLATE "C" NOT NULL,
        touched_at bigint NOT NULL,
        PRIMARY KEY (user_id, room)
      );
      CREATE INDEX memberships_touched_at ON memberships (touched_at);
      CREATE TABLE bans (
        user_id text COLLATE "C" PRIMARY KEY,
        until bigint,
        reason text,
        since bigint NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: "reactions, replies",
    sql: `
      -- One row per user and emoji on a message; they go with their message (trim, expiry).
      CREATE TABLE reactions (
        room text COLLATE "C" NOT NULL,
        id text COLLATE "C" NOT NULL,
        emoji text COLLATE "C" NOT NULL,
        user_id text COLLATE "C" NOT NULL,
        -- The order reactions came in: emoji are listed by their first, users by theirs.
        seq bigint GENERATED ALWAYS AS IDENTITY,
        PRIMARY KEY (room, id, emoji, user_id),
        FOREIGN KEY (room, id) REFERENCES messages (room, id) ON DELETE CASCADE
      );
      CREATE INDEX reactions_user ON reactions (room, id, user_id);
      -- A reply names its parent, and keeps the parent's quote as it was when sent (JSON).
      ALTER TABLE messages ADD COLUMN reply_to text COLLATE "C", ADD COLUMN reply_quote text;
      CREATE INDEX messages_thread ON messages (room, reply_to, id) WHERE reply_to IS NOT NULL;
    `,
  },
  {
    version: 3,
    name: "webhook outbox",
    sql: `
      -- Events to send, in the order they were stored (seq); each stream's in that order.
      CREATE TABLE outbox (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id text NOT NULL,
        target text NOT NULL,
        stream text COLLATE "C" NOT NULL,
        body text NOT NULL,
        created_at bigint NOT NULL,
        due_at bigint NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        owner text,
        claimed_until bigint
      );
      CREATE INDEX outbox_created_at ON outbox (created_at);
      -- The last state each transition key was in (a user online, a member in a room).
      CREATE TABLE outbox_states (
        key text COLLATE "C" PRIMARY KEY,
        state text NOT NULL,
        expires_at bigint NOT NULL
      );
      CREATE INDEX outbox_states_expires_at ON outbox_states (expires_at);
    `,
  },
  {
    version: 4,
    name: "mentions, read receipts",
    sql: `
      -- The users a message mentions, as given (JSON), and an index of them for unread counts:
      -- one row per mentioned user other than the author; they go with their message.
      ALTER TABLE messages ADD COLUMN mentions text;
      CREATE TABLE mentions (
        room text COLLATE "C" NOT NULL,
        user_id text COLLATE "C" NOT NULL,
        id text COLLATE "C" NOT NULL,
        PRIMARY KEY (room, user_id, id),
        FOREIGN KEY (room, id) REFERENCES messages (room, id) ON DELETE CASCADE
      );
      CREATE INDEX mentions_message ON mentions (room, id);
      -- A room's read positions (read receipts), the latest readers first.
      CREATE INDEX read_markers_room ON read_markers (room, touched_at);
    `,
  },
  {
    version: 5,
    name: "web push subscriptions",
    sql: `
      -- One row per browser (its endpoint), owned by whoever subscribed it last.
      CREATE TABLE push_subscriptions (
        endpoint text PRIMARY KEY,
        user_id text COLLATE "C" NOT NULL,
        p256dh text NOT NULL,
        auth text NOT NULL,
        seq bigint GENERATED ALWAYS AS IDENTITY
      );
      CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id, seq);
    `,
  },
];

/** The advisory lock every instance takes to migrate: one at a time. */
const MIGRATION_LOCK = 0x63686174; // "chat"

/** The database's schema is newer than this server's: a downgrade it must not write to. */
export class SchemaTooNew extends Error {
  readonly code = "schema_too_new";
  constructor(readonly applied: number, readonly known: number) {
    super(`the database's schema is at version ${applied}, this server knows up to ${known}`);
    this.name = "SchemaTooNew";
  }
}

/** Applies the migrations `sql`'s database lacks; returns how many it applied. */
export async function migrate(
  sql: postgres.Sql,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<number> {
  return await sql.begin(async (tx) => {
    // Another instance may hold the lock for a while: the wait is not a slow statement.
    await tx`SET LOCAL statement_timeout = 0`;
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx`
      CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`;
    const rows = await tx<{ version: number }[]>`SELECT version FROM schema_migrations`;
    const applied = new Set(rows.map((row) => row.version));
    const known = migrations.at(-1)?.version ?? 0;
    const newest = Math.max(0, ...applied);
    if (newest > known) throw new SchemaTooNew(newest, known);
    let count = 0;
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      await tx.unsafe(migration.sql);
      await tx`
        INSERT INTO schema_migrations (version, name)
        VALUES (${migration.version}, ${migration.name})`;
      count++;
    }
    return count;
  });
}
