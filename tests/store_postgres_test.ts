/**
 * What only the PostgreSQL store does: its migrations, its refusals at open, and the escape of
 * text PostgreSQL cannot hold. The contract it shares with KV is tests/store_contract_test.ts.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { freePort } from "../scripts/server_process.ts";
import {
  containDriverFaults,
  isDriverFault,
  isDriverTypeLookupFailure,
  openPostgresStore,
} from "../src/store/postgres.ts";
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
    const known = MIGRATIONS.at(-1)!.version;
    assert.match(error.message, new RegExp(`version 999, this server knows up to ${known}`));
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

/** The driver's known fault, as postgres@3.4.10 throws it from its deferred write. */
function driverFault(): TypeError {
  const fault = new TypeError("Cannot read properties of null (reading 'write')");
  fault.stack = `TypeError: ${fault.message}\n    at nextWrite ` +
    "(file:///root/.cache/deno/npm/registry.npmjs.org/postgres/3.4.10/src/connection.js:255:22)";
  return fault;
}

Deno.test("postgres store: the driver's known fault is told apart from every other error", () => {
  assert.equal(isDriverFault(driverFault()), true);
  const ours = new TypeError("Cannot read properties of null (reading 'write')");
  ours.stack =
    `TypeError: ${ours.message}\n    at send (file:///srv/chat/src/chat/delivery.ts:9:1)`;
  assert.equal(isDriverFault(ours), false);
  assert.equal(isDriverFault(new Error("connection closed")), false);
  assert.equal(isDriverFault("reading 'write'"), false);
});

Deno.test("postgres store: the driver's own type lookup, cut off, is told apart from every other rejection", () => {
  // As postgres@3.4.10 rejects a query on a connection that died: the error carries its query.
  const cutOff = (query: string) =>
    Object.defineProperty(new Error("write CONNECTION_CLOSED 127.0.0.1:5432"), "query", {
      value: query,
    });
  const lookup = `
      select b.oid, b.typarray
      from pg_catalog.pg_type a
      left join pg_catalog.pg_type b on b.oid = a.typelem
      where a.typcategory = 'A'
      group by b.oid, b.typarray
      order by b.oid
    `;
  assert.equal(isDriverTypeLookupFailure(cutOff(lookup)), true);
  assert.equal(isDriverTypeLookupFailure(cutOff("rollback")), false);
  assert.equal(isDriverTypeLookupFailure(cutOff("SELECT * FROM messages")), false);
  assert.equal(isDriverTypeLookupFailure(new Error("write CONNECTION_CLOSED")), false);
  assert.equal(isDriverTypeLookupFailure(undefined), false);
  assert.equal(isDriverTypeLookupFailure({ query: lookup }), false);
});

Deno.test("postgres store: the driver's known fault stays inside its immediate, and the immediates after it still run when one is cleared meanwhile", async () => {
  // Let out of its callback, the fault left the rest of the round to run later; a connection
  // closing meanwhile cleared its pending write, one of that rest, and the runtime then threw
  // "reading '_idleNext'" on every round: the server exited (PostgreSQL stopped under load).
  const original = globalThis.setImmediate;
  const faults: unknown[] = [];
  const ran: string[] = [];
  let closing: ReturnType<typeof setImmediate> | undefined;
  const undo = containDriverFaults((error) => {
    faults.push(error);
    clearImmediate(closing!);
  });
  try {
    await new Promise<void>((resolve) => {
      setImmediate(() => {
        throw driverFault();
      });
      closing = setImmediate(() => ran.push("cleared"));
      setImmediate((tag: string) => {
        ran.push(tag);
        resolve();
      }, "after");
    });
  } finally {
    undo();
  }
  assert.equal(faults.length, 1);
  assert.deepEqual(ran, ["after"]);
  assert.equal(globalThis.setImmediate, original, "undone");
});
