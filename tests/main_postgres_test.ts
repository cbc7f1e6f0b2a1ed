/**
 * main.ts on PostgreSQL (`DATABASE_URL`), end to end: stock clients, a restart, /readyz, and the
 * one line for a database that is down at start. One throwaway cluster for the file.
 */
import assert from "node:assert/strict";
import { io as connect, type Socket } from "socket.io-client";
import { freePort } from "../scripts/server_process.ts";
import { sleep, tokenFor, within } from "./helpers/chat_server.ts";
import { closing } from "./helpers/dispose.ts";
import { runMain, type RunningMain, startMain } from "./helpers/main_process.ts";
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

/** DATABASE_URL instead of the tests' in-memory KV (KV_PATH empty is unset). */
const onDatabase = (url: string) => ({ DATABASE_URL: url, KV_PATH: "" });

async function join(running: RunningMain, user: string) {
  const socket = connect(running.url, {
    auth: { token: await tokenFor(user) },
    transports: ["websocket"],
    reconnection: false,
  });
  const history = await within(
    new Promise<{ message: string }[]>((resolve) => socket.once("load", resolve)),
    5000,
    `${user}'s load`,
  );
  return { socket, history };
}

async function readyz(running: RunningMain): Promise<{ status: number; store: string }> {
  const response = await fetch(`${running.url}/readyz`);
  return { status: response.status, store: (await response.json()).checks.store };
}

/** The next live batch's first message (after the connect's `load`, live messages come in one). */
function nextMessage(socket: Socket): Promise<{ message: string; id: string }> {
  return within(
    new Promise((resolve) => socket.once("load", (batch) => resolve(batch[0]))),
    5000,
    "a live message",
  );
}

Deno.test({
  name: hasPostgres()
    ? "main on postgres: clients send and receive, and the history survives a restart"
    : "main on postgres: skipped because /usr/lib/postgresql/15/bin is not installed",
  ignore: !hasPostgres(),
  async fn() {
    const env = onDatabase(await server!.createDatabase());
    let sentId: string;
    {
      await using running = await startMain({ ...env, INSTANCE_ID: "first" }, {
        captureStderr: true,
      });
      assert.match(running.errors(), /listening on .+ \(postgres: postgres:\/\/postgres@/);
      const alice = await join(running, "alice");
      using _alice = closing(alice.socket);
      const bob = await join(running, "bob");
      using _bob = closing(bob.socket);
      assert.deepEqual(alice.history, []);
      const arriving = nextMessage(bob.socket);
      const ack = await within(
        alice.socket.emitWithAck("message", { message: "hello" }),
        5000,
        "ack",
      );
      assert.equal(ack.ok, true);
      const received = await arriving;
      assert.equal(received.message, "hello");
      sentId = received.id;
      assert.deepEqual(await readyz(running), { status: 200, store: "ok" });
    }
    await using restarted = await startMain({ ...env, INSTANCE_ID: "second" });
    const carol = await join(restarted, "carol");
    using _carol = closing(carol.socket);
    assert.deepEqual(carol.history.map((m) => m.message), ["hello"]);
    const ack = await within(
      carol.socket.emitWithAck("message", { message: "later" }),
      5000,
      "ack",
    );
    assert.ok(ack.ok && ack.message.id > sentId, "ids after a restart sort after the earlier ones");
  },
});

Deno.test({
  name: hasPostgres()
    ? "main on postgres: /readyz reports the database while it is down, and again once it is back"
    : "main on postgres: /readyz skipped because /usr/lib/postgresql/15/bin is not installed",
  ignore: !hasPostgres(),
  async fn() {
    await using running = await startMain(onDatabase(await server!.createDatabase()));
    assert.deepEqual(await readyz(running), { status: 200, store: "ok" });
    await server!.stop();
    try {
      const down = await readyz(running);
      assert.equal(down.status, 503);
      assert.notEqual(down.store, "ok");
    } finally {
      await server!.start();
    }
    // The pool reconnects on the next query.
    const deadline = Date.now() + 10_000;
    while ((await readyz(running)).status !== 200) {
      assert.ok(Date.now() < deadline, "ready again within 10 s");
      await sleep(100);
    }
  },
});

Deno.test("main on postgres: a database that is down at start is one line naming DATABASE_URL, exit 1", async () => {
  const url = `postgres://chat:secret@127.0.0.1:${freePort()}/chat`;
  const { code, stderr } = await runMain(onDatabase(url));
  assert.equal(code, 1);
  const lines = stderr.trim().split("\n");
  assert.equal(lines.length, 1, stderr);
  assert.match(
    lines[0],
    /^chat server: cannot open DATABASE_URL "postgres:\/\/chat:\*\*\*@127\.0\.0\.1:\d+\/chat": /,
  );
  assert.ok(!stderr.includes("secret"), "the password stays out of the line");
});
