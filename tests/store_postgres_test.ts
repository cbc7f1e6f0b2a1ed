/**
 * What only the PostgreSQL store does: its migrations, its refusals at open, and the escape of
 * text PostgreSQL cannot hold. The contract it shares with KV is tests/store_contract_test.ts.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { freePort } from "../scripts/server_process.ts";
import { openPostgresStore } from "../src/store/postgres.ts";
import { migrate, MIGRATIONS, SchemaTooNew } from "../src/store/postgres_schema.ts";
import { fromPgText, toPgText } from "../src/store/postgres_text.ts";
import { hasPostgres, type PostgresServer, startPostgres } from "./helpers/postgres_server.ts";

let server: PostgresServer | undefined;
if (hasPostgres()) {
  Deno.test.beforeAll(async () => {
    server = await startPostgres();
  });
  Deno.test.afterAll(async () => {
    await server?.[Symbol.asyncDispose]();
  });
}

function pgTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: hasPostgres()
      ? `postgres store: ${name}`
      : `postgres store: ${name} — skipped because /usr/lib/postgresql/15/bin is not installed`,
    ignore: !hasPostgres(),
    fn,
  });
}

pgTest("instances starting together migrate once, one at a time", async () => {
  const url = await server!.createDatabase();
  const stores = await Promise.all([...Array(4)].map(() => openPostgresStore(url)));
  try {
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const rows = await sql`SELECT version FROM schema_migrations ORDER BY version`;
      assert.deepEqual(rows.map((row) => row.version), MIGRATIONS.map((m) => m.version));
      assert.equal(await migrate(sql), 0, "nothing left to apply");
    } finally {
      await sql.end();
    }
    const saved = await stores[0].append({ user: { id: "u", name: "U" }, message: "hi" });
    assert.deepEqual(await stores[3].latest(10), [saved]);
  } finally {
    for (const store of stores) await store.close();
  }
});

pgTest("a database migrated by a newer server is refused", async () => {
  const url = await server!.createDatabase();
  await (await openPostgresStore(url)).close();
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql`INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')`;
  } finally {
    await sql.end();
  }
  await assert.rejects(openPostgresStore(url), (error) => {
    assert.ok(error instanceof SchemaTooNew);
    assert.match(
      error.message,
      new RegExp(`version 999, this server knows up to ${MIGRATIONS.at(-1)!.version}`),
    );
    return true;
  });
});

pgTest("a database nobody listens for is refused at open", async () => {
  const url = `postgres://postgres@127.0.0.1:${freePort()}/chat`;
  await assert.rejects(openPostgresStore(url), /ECONNREFUSED|connect/i);
});

Deno.test("postgres text: what PostgreSQL cannot hold is escaped one-to-one; the rest is as is", () => {
  for (const text of ["plain", "é😀", "a\u0000b", "\uD800", "x\uDC00", "\uE000", "\uE0000000"]) {
    assert.equal(fromPgText(toPgText(text)), text);
    assert.ok(!toPgText(text).includes("\u0000"));
    assert.ok(toPgText(text).isWellFormed());
  }
  assert.equal(toPgText("plain é😀"), "plain é😀");
  assert.notEqual(toPgText("\u0000"), toPgText("\uE0000000"));
});
