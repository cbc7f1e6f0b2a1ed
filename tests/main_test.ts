import assert from "node:assert/strict";
import { io as connect } from "socket.io-client";
import { sleep, tokenFor, within } from "./helpers/chat_server.ts";
import { runMain, startMain } from "./helpers/main_process.ts";
import { closing, tempDir } from "./helpers/dispose.ts";
import { hasRedis, startRedis } from "./helpers/redis_server.ts";

Deno.test("main: exits 1 with one clear line when JWT_SECRET is missing", async () => {
  const { code, stderr } = await runMain({ JWT_SECRET: "" });
  assert.equal(code, 1);
  assert.match(stderr.trim(), /^chat server: configuration error: JWT_SECRET: is required/);
  assert.equal(stderr.trim().split("\n").length, 1);
});

Deno.test("main: an invalid variable is named at start", async () => {
  for (
    const [name, value] of [["PORT", "eighty"], ["HISTORY_LIMIT", "-1"], ["PING_TIMEOUT", "1"]]
  ) {
    const { code, stderr } = await runMain({ [name]: value });
    assert.equal(code, 1, name);
    assert.match(stderr, new RegExp(`configuration error: ${name}: `), name);
  }
});

Deno.test("main: SIGTERM stores in-flight messages, disconnects cleanly and exits 0", async () => {
  await using temp = await tempDir();
  const kvPath = `${temp.path}/chat.kv`;
  await using running = await startMain({ KV_PATH: kvPath, RATE_LIMIT_BURST: "200" });
  using socket = closing(connect(running.url, {
    auth: { token: await tokenFor("alice") },
    transports: ["websocket"],
    reconnection: false,
  }));
  const history = await within(
    new Promise((resolve) => socket.once("load", resolve)),
    5000,
    "load",
  );
  assert.deepEqual(history, []);
  const health = await fetch(`${running.url}/healthz`);
  assert.deepEqual(await health.json(), { status: "ok" });
  const disconnected = new Promise((resolve) => socket.once("disconnect", resolve));
  // A burst still in flight when the signal lands: whatever is acked must be stored.
  const first = await within(socket.emitWithAck("message", { message: "first" }), 5000, "ack");
  assert.equal(first.ok, true);
  const acks: Promise<{ ok: boolean; message?: { id: string } }>[] = [Promise.resolve(first)];
  for (let n = 0; n < 100; n++) {
    acks.push(
      socket.timeout(3000).emitWithAck("message", { message: `m${n}` }).catch(() => ({
        ok: false,
      })),
    );
  }
  running.child.kill("SIGTERM");
  assert.equal(await within(disconnected, 5000, "disconnect"), "transport close");
  const status = await within(running.child.status, 10_000, "exit");
  assert.equal(status.code, 0);
  assert.match(running.output(), /"event":"shutdown.started"[^\n]*"reason":"SIGTERM received"/);
  assert.match(running.output(), /"event":"shutdown.finished"/);
  const acked = (await Promise.all(acks)).filter((ack) => ack.ok).map((ack) => ack.message!.id);
  using kv = await Deno.openKv(kvPath);
  for (const id of acked) {
    assert.ok(
      (await kv.get(["messages", "general", id])).value,
      `acked message ${id} is stored`,
    );
  }
});

Deno.test("main: a JWT_SECRET under 32 bytes starts with one warning line", async () => {
  {
    await using running = await startMain({ JWT_SECRET: "short-secret" }, { captureStderr: true });
    const health = await fetch(`${running.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    const warnings = running.errors().split("\n").filter((line) => line.includes("WARNING"));
    assert.equal(warnings.length, 1, running.errors());
    assert.match(
      warnings[0],
      /^chat server: WARNING: JWT_SECRET is 12 bytes; HS256 secrets should be at least 32 bytes \(RFC 7518 §3\.2\)/,
    );
    assert.match(running.output(), /"level":"warn".*"event":"config.warning"/);
  }
  const long = await startMain({ JWT_SECRET: "x".repeat(32) }, { captureStderr: true });
  await long.stop();
  assert.ok(!long.errors().includes("WARNING"), long.errors());
});

/** The rule a refusal ends with when one instance of the two has no Redis. */
const ONE_INSTANCE = String.raw`\(one instance per KV file, unless every instance sets REDIS_URL\)`;
/** The rule a refusal ends with when another Redis group holds the file. */
const SAME_REDIS = String
  .raw`\(instances share one KV file only when every one sets the same REDIS_URL\)`;

/** `runMain` that expects the one-line refusal of an in-use KV file, exit code 1. */
async function refusedKv(env: Record<string, string>, line: RegExp): Promise<void> {
  const { code, stderr } = await runMain(env);
  assert.equal(code, 1, stderr);
  assert.equal(stderr.trim().split("\n").length, 1, stderr);
  assert.match(stderr.trim(), line);
}

Deno.test("main: a second instance on the same KV_PATH without REDIS_URL exits 1 with one line", async () => {
  await using temp = await tempDir();
  // A secret long enough that no warning shares stderr with the refusal.
  const env = { KV_PATH: `${temp.path}/chat.kv`, JWT_SECRET: "x".repeat(32) };
  await using first = await startMain({ ...env, INSTANCE_ID: "first" });
  await refusedKv(
    { ...env, INSTANCE_ID: "second" },
    new RegExp(
      `^chat server: KV_PATH ".+" is in use, held by instance "first", process ${first.pid} ` +
        `${ONE_INSTANCE}$`,
    ),
  );
  // A clean stop frees the file at once.
  first.child.kill("SIGTERM");
  assert.equal((await first.child.status).code, 0);
  const next = await startMain({ ...env, INSTANCE_ID: "next" });
  await next.stop();
});

Deno.test("main: killed with SIGKILL, it restarts on the same KV_PATH at once and keeps its history", async () => {
  await using temp = await tempDir();
  const env = { KV_PATH: `${temp.path}/chat.kv` };
  const killed = await startMain({ ...env, INSTANCE_ID: "killed" });
  {
    using socket = closing(connect(killed.url, {
      auth: { token: await tokenFor("alice") },
      transports: ["websocket"],
      reconnection: false,
    }));
    await within(new Promise((resolve) => socket.once("load", resolve)), 5000, "load");
    const ack = await within(socket.emitWithAck("message", { message: "before" }), 5000, "ack");
    assert.equal(ack.ok, true);
  }
  killed.child.kill("SIGKILL");
  await killed.child.status;
  // No wait: the kernel dropped the dead process's lock with it.
  await using restarted = await startMain({ ...env, INSTANCE_ID: "restarted" });
  using socket = closing(connect(restarted.url, {
    auth: { token: await tokenFor("alice") },
    transports: ["websocket"],
    reconnection: false,
  }));
  const history = await within(
    new Promise<{ message: string }[]>((resolve) => socket.once("load", resolve)),
    5000,
    "load",
  );
  assert.deepEqual(history.map((m) => m.message), ["before"]);
});

Deno.test({
  name: hasRedis()
    ? "main: instances on one KV_PATH must agree on REDIS_URL, or the newcomer exits 1 with one line"
    : "main: REDIS_URL agreement skipped because /usr/bin/redis-server is not installed",
  ignore: !hasRedis(),
  async fn() {
    await using temp = await tempDir();
    await using redis = await startRedis();
    const env = { KV_PATH: `${temp.path}/chat.kv`, JWT_SECRET: "x".repeat(32), LOG_LEVEL: "error" };
    const redisName = redis.url.replace("redis://", "").replaceAll(".", String.raw`\.`) + "/0";
    {
      await using alone = await startMain({ ...env, INSTANCE_ID: "alone" });
      await refusedKv(
        { ...env, INSTANCE_ID: "clustered", REDIS_URL: redis.url },
        new RegExp(
          `^chat server: KV_PATH ".+" is in use, held by instance "alone", process ${alone.pid}, ` +
            `without Redis, but this instance has Redis ${redisName} ${ONE_INSTANCE}$`,
        ),
      );
    }
    await using clustered = await startMain({ ...env, INSTANCE_ID: "a", REDIS_URL: redis.url });
    await refusedKv(
      { ...env, INSTANCE_ID: "alone" },
      new RegExp(
        `^chat server: KV_PATH ".+" is in use, held by instance "a", process ${clustered.pid}, ` +
          `and any others with Redis ${redisName}, but this instance has no Redis ${SAME_REDIS}$`,
      ),
    );
    // Another Redis (nothing needs to listen there: the refusal comes before connecting).
    await refusedKv(
      { ...env, INSTANCE_ID: "b", REDIS_URL: `${redis.url}/1` },
      new RegExp(
        `^chat server: KV_PATH ".+" is in use, held by instance "a", process ${clustered.pid}, ` +
          `and any others with Redis ${redisName}, but this instance has Redis .+/1 ${SAME_REDIS}$`,
      ),
    );
    // The same Redis shares the file.
    await using second = await startMain({ ...env, INSTANCE_ID: "b", REDIS_URL: redis.url });
    const health = await fetch(`${second.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
  },
});

Deno.test("main: TLS_CERT_FILE and TLS_KEY_FILE serve HTTPS and WSS", async () => {
  await using temp = await tempDir();
  const dir = temp.path;
  await makeCertificate(dir);
  await using running = await startMain({
    TLS_CERT_FILE: `${dir}/cert.pem`,
    TLS_KEY_FILE: `${dir}/key.pem`,
  });
  assert.match(running.url, /^https:\/\//);
  const cert = await Deno.readTextFile(`${dir}/ca.pem`);
  using client = Deno.createHttpClient({ caCerts: [cert] });
  using socket = closing(connect(running.url, {
    auth: { token: await tokenFor("tls-user") },
    transports: ["websocket"],
    reconnection: false,
    ca: cert,
  }));
  // Listened for at once: the history may arrive while /healthz is being fetched.
  const loaded = new Promise((resolve) => socket.once("load", resolve));
  const health = await fetch(`${running.url}/healthz`, { client });
  assert.equal(health.status, 200);
  await health.body?.cancel();
  await within(loaded, 5000, "load over wss");
  assert.equal(socket.io.engine.transport.name, "websocket");
  const ack = await within(socket.emitWithAck("message", { message: "secure" }), 5000, "ack");
  assert.equal(ack.ok, true);
});

/** Makes a throwaway CA and a 127.0.0.1 server certificate signed by it, with openssl. */
async function makeCertificate(dir: string): Promise<void> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await Deno.writeTextFile(
    `${dir}/leaf.ext`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
  );
  const steps = [
    ["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=ca"],
    ["req", ...ec, "-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=localhost"],
    ["x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"]
      .concat(["-out", "cert.pem", "-days", "1", "-extfile", "leaf.ext"]),
  ];
  for (const args of steps) {
    const result = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    })
      .output();
    assert.ok(result.success, `openssl ${args[0]}: ${new TextDecoder().decode(result.stderr)}`);
  }
}

Deno.test("main: large frames (a 600 KB history, a big live batch) arrive whole and in order over WebSocket", async () => {
  await using running = await startMain({
    HISTORY_LIMIT: "300",
    MAX_MESSAGE_LENGTH: "2000",
    RATE_LIMIT_BURST: "400",
  });
  const options = { transports: ["websocket"], reconnection: false, forceNew: true };
  using writer = closing(
    connect(running.url, { auth: { token: await tokenFor("alice") }, ...options }),
  );
  await within(new Promise((resolve) => writer.once("load", resolve)), 5000, "writer's load");
  const live: string[] = [];
  writer.on("load", (messages: { message: string }[]) => {
    live.push(...messages.map((entry) => entry.message));
  });
  const texts = [...Array(300)].map((_, n) => `${n} `.padEnd(2000, "abcdefgh"));
  const acks = await Promise.all(
    texts.map((message) => within(writer.emitWithAck("message", { message }), 10_000, "ack")),
  );
  assert.ok(acks.every((ack) => ack.ok));
  const deadline = Date.now() + 5000;
  while (live.length < texts.length && Date.now() < deadline) await sleep(20);
  assert.deepEqual(live, texts, "live batches arrive whole and in order");
  using reader = closing(
    connect(running.url, { auth: { token: await tokenFor("bob") }, ...options }),
  );
  const frames: { message: string }[][] = [];
  reader.on("load", (messages: { message: string }[]) => frames.push(messages));
  await within(new Promise((resolve) => reader.once("loaded", resolve)), 5000, "reader's load");
  const history = frames.flat();
  assert.deepEqual(history.map((entry) => entry.message), texts);
});

Deno.test("main: a busy port is one line naming PORT, exit 1", async () => {
  using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { code, stderr } = await runMain({ PORT: String(busy.addr.port) });
  assert.equal(code, 1);
  const lines = stderr.trim().split("\n");
  assert.equal(lines.length, 1, stderr);
  assert.match(
    lines[0],
    new RegExp(`^chat server: cannot listen on .*PORT ${busy.addr.port} is in use`),
  );
});

Deno.test("main: a missing TLS file is one line naming the setting, exit 1", async () => {
  const { code, stderr } = await runMain({
    TLS_CERT_FILE: "/nonexistent/cert.pem",
    TLS_KEY_FILE: "/nonexistent/key.pem",
  });
  assert.equal(code, 1);
  assert.equal(stderr.trim().split("\n").length, 1, stderr);
  assert.match(stderr, /^chat server: cannot read TLS_CERT_FILE "\/nonexistent\/cert.pem": /);
});

Deno.test("main: an unresolvable host is one line naming HOST, exit 1", async () => {
  const { code, stderr } = await runMain({ HOST: "no-such-host.invalid" });
  assert.equal(code, 1);
  assert.equal(stderr.trim().split("\n").length, 1, stderr);
  assert.match(
    stderr,
    /^chat server: cannot listen on no-such-host.invalid:0 \(HOST, PORT\): /,
  );
});

Deno.test("main: stdout carries only JSON lines, each with the instance", async () => {
  const running = await startMain({ INSTANCE_ID: "door-1" });
  try {
    await fetch(`${running.url}/healthz`).then((response) => response.body?.cancel());
  } finally {
    running.child.kill("SIGTERM");
    await running.child.status;
    await running.stop();
  }
  const lines = running.output().trim().split("\n");
  assert.ok(lines.length >= 2, running.output());
  for (const line of lines) {
    const entry = JSON.parse(line);
    assert.equal(entry.instance, "door-1", line);
  }
});
