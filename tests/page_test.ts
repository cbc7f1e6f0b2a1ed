import assert from "node:assert/strict";
import { createTokenVerifier } from "../src/auth.ts";
import { createHttpHandler } from "../src/http/mod.ts";
import { dmRoom as serverDmRoom, isRoomId as serverIsRoomId } from "../src/chat/rooms.ts";
import { DEFAULTS } from "../src/config.ts";
import {
  MAX_DEV_LOGIN_BODY,
  PAGE_SCRIPTS,
  type PageOptions,
  pageRoutes,
} from "../src/http/page.ts";
import { readMessage } from "../src/payloads.ts";
import {
  Budget,
  characterCount,
  continuesGroup,
  dmPeer,
  dmRoom,
  HueAssigner,
  HUES,
  isRoomId,
  linkSegments,
  renewalDelay,
} from "../public/format.js";
import { Outbox, type OutboxEntry } from "../public/outbox.js";
import { SECRET, startChat } from "./helpers/chat_server.ts";

/** The page routes alone behind the HTTP handler, on an ephemeral port. */
async function withPageServer(
  options: PageOptions,
  test: (url: string) => Promise<void>,
): Promise<void> {
  const handle = createHttpHandler({
    readiness: () => Promise.resolve({ ready: true, checks: {} }),
    routes: pageRoutes(options),
  });
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handle);
  await test(`http://127.0.0.1:${server.addr.port}`);
}

const DEV_LOGIN: PageOptions = { devLogin: { secret: SECRET } };

function postToken(url: string, body: BodyInit): Promise<Response> {
  return fetch(`${url}/dev/token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body,
  });
}

Deno.test("page: index, style and script are served with their types and security headers", async () => {
  await withPageServer({}, async (url) => {
    const expected: [string, string, string][] = [
      ["/", "text/html; charset=utf-8", "<!doctype html>"],
      ["/style.css", "text/css; charset=utf-8", ":root"],
      ["/app.js", "text/javascript; charset=utf-8", "// @ts-check"],
    ];
    for (const [path, contentType, start] of expected) {
      const response = await fetch(`${url}${path}`);
      assert.equal(response.status, 200, path);
      assert.equal(response.headers.get("content-type"), contentType, path);
      assert.equal(response.headers.get("cache-control"), "no-cache", path);
      assert.equal(response.headers.get("x-content-type-options"), "nosniff", path);
      assert.equal(response.headers.get("referrer-policy"), "no-referrer", path);
      assert.ok((await response.text()).startsWith(start), path);
    }
    const page = await fetch(`${url}/`);
    await page.body?.cancel();
    const csp = page.headers.get("content-security-policy") ?? "";
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /style-src 'self'(;|$)/);
    // Same-origin sockets only: 'self' covers ws: and wss: to this host, and nothing else.
    assert.match(csp, /connect-src 'self';/);
    assert.doesNotMatch(csp, /ws:|wss:/);
    assert.match(csp, /frame-ancestors 'none'/);
  });
});

Deno.test("page: the page loads only same-origin scripts and never uses innerHTML", async () => {
  await withPageServer({}, async (url) => {
    const html = await (await fetch(`${url}/`)).text();
    const scripts = [...html.matchAll(/<script[^>]*src="([^"]+)"/g)].map((match) => match[1]);
    assert.deepEqual(scripts, ["/socket.io/socket.io.min.js", "/app.js"]);
    assert.doesNotMatch(html, /<script>|style="/);
    for (const name of PAGE_SCRIPTS) {
      const response = await fetch(`${url}/${name}`);
      assert.equal(response.status, 200, name);
      assert.equal(response.headers.get("content-type"), "text/javascript; charset=utf-8", name);
      const script = await response.text();
      assert.doesNotMatch(script, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, name);
      // Every module a script imports is served too.
      for (const [, imported] of script.matchAll(/from "\.\/([\w.-]+)"/g)) {
        assert.ok((PAGE_SCRIPTS as readonly string[]).includes(imported), `${name} → ${imported}`);
      }
    }
  });
});

Deno.test("page: /page-config.json tells the page the chat's limits and whether dev login is on", async () => {
  await withPageServer({}, async (url) => {
    const response = await fetch(`${url}/page-config.json`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("cache-control"), "no-store");
    assert.deepEqual(await response.json(), {
      maxMessageLength: DEFAULTS.maxMessageLength,
      defaultRoom: DEFAULTS.defaultRoom,
      devLogin: false,
    });
  });
  const config = { ...DEFAULTS, maxMessageLength: 120, defaultRoom: "lobby" };
  await withPageServer({ config, ...DEV_LOGIN }, async (url) => {
    const response = await fetch(`${url}/page-config.json`);
    assert.deepEqual(await response.json(), {
      maxMessageLength: 120,
      defaultRoom: "lobby",
      devLogin: true,
    });
  });
});

Deno.test("page: HEAD answers the headers without a body; POST to a file is a 404", async () => {
  await withPageServer({}, async (url) => {
    const head = await fetch(`${url}/app.js`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.equal(await head.text(), "");
    const post = await fetch(`${url}/app.js`, { method: "POST" });
    assert.equal(post.status, 404);
    assert.equal((await post.json()).error.code, "not_found");
  });
});

Deno.test("page: the Socket.IO browser client is served through the whole app, not the engine", async () => {
  await using server = await startChat({}, { routes: pageRoutes({}) });
  const response = await fetch(`${server.url}/socket.io/socket.io.min.js`);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/javascript; charset=utf-8");
  const script = await response.text();
  assert.match(script, /^\/\*!\s*\n?\s*\* Socket\.IO v4\.8\.4/);
  assert.ok(script.length > 10_000);
  // The engine still owns its own path.
  const handshake = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(handshake.status, 200);
  assert.match(await handshake.text(), /^0\{"sid"/);
});

Deno.test("page: /dev/login-enabled says whether dev login is on", async () => {
  for (const options of [{}, DEV_LOGIN]) {
    await withPageServer(options, async (url) => {
      const response = await fetch(`${url}/dev/login-enabled`);
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { enabled: options.devLogin !== undefined });
    });
  }
});

Deno.test("page: /dev/token mints a token the server verifies, for a slug of the name", async () => {
  await withPageServer(DEV_LOGIN, async (url) => {
    const before = Date.now();
    const response = await postToken(url, JSON.stringify({ name: "  Zoë O'Brien  " }));
    assert.equal(response.status, 200);
    const { token, user, expiresAt } = await response.json();
    assert.deepEqual(user, { id: "dev-zoe-o-brien", name: "Zoë O'Brien" });
    const identity = await createTokenVerifier({ secret: SECRET })(token);
    assert.deepEqual(identity.user, user);
    assert.equal(identity.expiresAt, expiresAt);
    assert.ok(expiresAt >= before + 3599_000 && expiresAt <= Date.now() + 3600_000);

    const named = await (await postToken(url, JSON.stringify({ id: "dev-alice", name: "Alice" })))
      .json();
    assert.deepEqual(named.user, { id: "dev-alice", name: "Alice" });

    const cleaned = await (await postToken(url, JSON.stringify({ name: "\u202Eeve\u200b" })))
      .json();
    assert.deepEqual(cleaned.user, { id: "dev-eve", name: "eve" });

    const unicode = await (await postToken(url, JSON.stringify({ name: "日本" }))).json();
    assert.match(unicode.user.id, /^dev-[0-9a-f]{12}$/);
    const again = await (await postToken(url, JSON.stringify({ name: "日本" }))).json();
    assert.equal(again.user.id, unicode.user.id);
  });
});

Deno.test("page: /dev/token refuses any id outside dev-", async () => {
  await withPageServer(DEV_LOGIN, async (url) => {
    for (const id of ["alice", "admin", "DEV-alice", "dev-", "xdev-alice", "dev-a b"]) {
      const response = await postToken(url, JSON.stringify({ id, name: "Mallory" }));
      assert.equal(response.status, 400, id);
      assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
      const { error } = await response.json();
      assert.equal(error.code, "invalid_payload", id);
      assert.match(error.message, /dev login mints only dev- users/, id);
    }
  });
});

Deno.test("page: /dev/token uses the configured lifetime", async () => {
  await withPageServer({ devLogin: { secret: SECRET, ttlSeconds: 60 } }, async (url) => {
    const { expiresAt } = await (await postToken(url, JSON.stringify({ name: "Bo" }))).json();
    assert.ok(expiresAt <= Date.now() + 60_000 && expiresAt > Date.now() + 50_000);
  });
});

Deno.test("page: /dev/token is a JSON 404 when dev login is off", async () => {
  await withPageServer({}, async (url) => {
    const response = await postToken(url, JSON.stringify({ name: "Mallory" }));
    assert.equal(response.status, 404);
    assert.equal((await response.json()).error.code, "not_found");
  });
});

Deno.test("page: /dev/token refuses bad bodies with invalid_payload", async () => {
  await withPageServer(DEV_LOGIN, async (url) => {
    const bad = [
      "not json",
      "[]",
      "null",
      JSON.stringify({}),
      JSON.stringify({ name: 42 }),
      JSON.stringify({ name: "   " }),
      JSON.stringify({ name: "x".repeat(41) }),
      JSON.stringify({ name: "bell\u0007" }),
      JSON.stringify({ name: "\u200b\u202e" }),
      JSON.stringify({ id: "has space", name: "Ok" }),
      JSON.stringify({ id: "", name: "Ok" }),
    ];
    for (const body of bad) {
      const response = await postToken(url, body);
      assert.equal(response.status, 400, body);
      const { error } = await response.json();
      assert.equal(error.code, "invalid_payload", body);
      assert.equal(typeof error.message, "string");
    }
    const longest = await postToken(url, JSON.stringify({ name: "é".repeat(40) }));
    assert.equal(longest.status, 200);
    await longest.body?.cancel();
  });
});

Deno.test("page: /dev/token refuses a body over 4 KB", async () => {
  await withPageServer(DEV_LOGIN, async (url) => {
    const padded = JSON.stringify({ name: "Ok", pad: "x".repeat(MAX_DEV_LOGIN_BODY) });
    const declared = await postToken(url, padded);
    assert.equal(declared.status, 413);
    assert.equal((await declared.json()).error.code, "payload_too_large");
    // Streamed, so no Content-Length to trust: the limit holds while reading.
    const streamed = await postToken(url, ReadableStream.from([new TextEncoder().encode(padded)]));
    assert.equal(streamed.status, 413);
    await streamed.body?.cancel();
  });
});

// ---- the page's own modules (public/format.js, public/outbox.js), run here without a browser

Deno.test("page: links are http(s) URLs, without the punctuation that ends a sentence", () => {
  assert.deepEqual(
    linkSegments("see https://example.com/a?b=1. Then (http://x.org/y) or ftp://z"),
    [
      "see ",
      { url: "https://example.com/a?b=1" },
      ". Then (",
      { url: "http://x.org/y" },
      ") or ftp://z",
    ],
  );
  assert.deepEqual(linkSegments("https://en.wikipedia.org/wiki/Pipe_(Unix), nice"), [
    { url: "https://en.wikipedia.org/wiki/Pipe_(Unix)" },
    ", nice",
  ]);
  assert.deepEqual(linkSegments("javascript:alert(1) and https:// alone"), [
    "javascript:alert(1) and https:// alone",
  ]);
  assert.deepEqual(linkSegments(""), []);
});

Deno.test("page: messages group by author within the same minute", () => {
  const at = (user: string, createdAt: string) => ({
    id: createdAt,
    room: "general",
    user: { id: user, name: user },
    message: "hi",
    createdAt,
  });
  const first = at("ada", "2026-01-01T10:00:05Z");
  assert.equal(continuesGroup(undefined, first), false);
  assert.equal(continuesGroup(first, at("ada", "2026-01-01T10:00:59Z")), true);
  assert.equal(continuesGroup(first, at("ada", "2026-01-01T10:01:00Z")), false);
  assert.equal(continuesGroup(first, at("bob", "2026-01-01T10:00:06Z")), false);
});

Deno.test("page: room ids and DM rooms are read as the server reads them", () => {
  for (const [a, b] of [["alice", "bob"], ["bob", "alice"], ["dev-zoe", "dev-ada"]]) {
    assert.equal(dmRoom(a, b), serverDmRoom(a, b));
  }
  const ids = [
    "general",
    "team-red",
    "Team",
    "-x",
    "dm:a:b",
    "dm:b:a",
    "dm:a:a",
    "dm:a",
    "a".repeat(65),
  ];
  for (const id of ids) assert.equal(isRoomId(id), serverIsRoomId(id), id);
  assert.equal(dmPeer("dm:alice:bob", "alice"), "bob");
  assert.equal(dmPeer("dm:alice:bob", "bob"), "alice");
  assert.equal(dmPeer("general", "alice"), undefined);
});

Deno.test("page: the counter counts characters as the server's limit does", () => {
  for (const text of ["hello", "é".repeat(5), "👍🏽👍🏽", "e\u0301"]) {
    const length = characterCount(text);
    assert.doesNotThrow(() => readMessage({ message: text }, length));
    assert.throws(() => readMessage({ message: text }, length - 1), /longer than/);
  }
});

Deno.test("page: eight authors get eight colours; a ninth shares", () => {
  const hues = new HueAssigner();
  const classes = Array.from({ length: HUES }, (_, i) => hues.classOf(`user-${i}`));
  assert.equal(new Set(classes).size, HUES);
  assert.equal(hues.classOf("user-3"), classes[3]);
  assert.match(hues.classOf("user-9"), /^hue-[0-7]$/);
});

Deno.test("page: a token is renewed a minute before it expires, or at half-life when short", () => {
  const now = 1_000_000;
  assert.equal(renewalDelay(now + 3_600_000, now), 3_540_000);
  assert.equal(renewalDelay(now + 2000, now), 1000);
  assert.equal(renewalDelay(now - 5000, now), 0);
});

Deno.test("page: the rooms budget allows a burst, then one per interval", () => {
  let now = 0;
  const budget = new Budget(2, 5000, () => now);
  assert.equal(budget.wait(), 0);
  budget.take();
  budget.take();
  assert.equal(budget.wait(), 5000);
  now = 2000;
  assert.equal(budget.wait(), 3000);
  now = 5000;
  assert.equal(budget.wait(), 0);
});

type Ack = Awaited<ReturnType<ConstructorParameters<typeof Outbox>[0]["send"]>>;

/** An outbox whose sends are answered from `answers`, in order; what it reports is recorded. */
function scriptedOutbox(answers: (Ack | "no answer")[]) {
  const sent: { clientId: string; message: string }[] = [];
  const delivered: string[] = [];
  const changes: string[] = [];
  let stored = 0;
  const outbox = new Outbox({
    send(payload) {
      sent.push(payload);
      const answer = answers.shift() ?? "no answer";
      if (answer === "no answer") return Promise.reject(new Error("timeout"));
      return Promise.resolve(answer);
    },
    onChange: (entry) => changes.push(`${entry.text}: ${entry.state}`),
    onDelivered: (entry) => delivered.push(entry.text),
    offlineLimitMs: 50,
    newId: () => `client-${++stored}`,
  });
  return { outbox, sent, delivered, changes };
}

const stored = (message: string): Ack => ({
  ok: true,
  duplicate: false,
  message: {
    id: "01JDQ7ZJ2K8M6V1T4X3N5P7R9S",
    room: "general",
    user: { id: "ada", name: "Ada" },
    message,
    createdAt: new Date().toISOString(),
  },
});
const refused = (code: string, retryAfterMs?: number): Ack => ({
  ok: false,
  error: { code, message: code, retryAfterMs },
});

/** Resolves once `entry` is no longer on its way (delivered or failed). */
async function settled(outbox: Outbox, entry: OutboxEntry): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (entry.state === "failed" || !outbox.entriesOf(entry.room).includes(entry)) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`${entry.text} never settled`);
}

Deno.test("page outbox: a refused message stays, failed with the reason; Retry resends it with its clientId and waits out the rate limit", async () => {
  const { outbox, sent, delivered, changes } = scriptedOutbox([
    refused("rate_limited", 10),
    refused("rate_limited", 10),
    stored("hi"),
  ]);
  outbox.setConnection("connected");
  const entry = outbox.add("general", "hi");
  await settled(outbox, entry);
  assert.equal(entry.state, "failed");
  assert.equal(entry.error?.code, "rate_limited");
  assert.deepEqual(outbox.entriesOf("general"), [entry]);
  outbox.retry(entry);
  await settled(outbox, entry);
  assert.deepEqual(delivered, ["hi"]);
  assert.deepEqual(outbox.entriesOf("general"), []);
  assert.deepEqual(sent.map((payload) => payload.clientId), ["client-1", "client-1", "client-1"]);
  assert.deepEqual(changes, ["hi: sending", "hi: failed", "hi: sending"]);
});

Deno.test("page outbox: no answer is asked again with the same clientId, then fails", async () => {
  const { outbox, sent } = scriptedOutbox(["no answer", "no answer", "no answer"]);
  outbox.setConnection("connected");
  const entry = outbox.add("general", "anyone?");
  await settled(outbox, entry);
  assert.equal(entry.error?.code, "no_answer");
  assert.equal(sent.length, 3);
  assert.equal(new Set(sent.map((payload) => payload.clientId)).size, 1);
});

Deno.test("page outbox: a message waits for the connection; offline for good or too long, it fails", async () => {
  const { outbox, sent, delivered, changes } = scriptedOutbox([stored("later")]);
  outbox.setConnection("reconnecting");
  const waiting = outbox.add("general", "later");
  assert.equal(waiting.state, "waiting");
  outbox.setConnection("connected");
  await settled(outbox, waiting);
  assert.deepEqual(delivered, ["later"]);
  assert.deepEqual(changes, ["later: sending", "later: waiting", "later: sending"]);

  outbox.setConnection("reconnecting");
  const tooLong = outbox.add("general", "too long");
  await settled(outbox, tooLong);
  assert.equal(tooLong.error?.code, "offline");

  outbox.setConnection("offline");
  const offline = outbox.add("general", "offline");
  await settled(outbox, offline);
  assert.equal(offline.error?.code, "offline");
  assert.equal(sent.length, 1);
});
