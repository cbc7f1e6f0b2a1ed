import assert from "node:assert/strict";
import { createTokenVerifier } from "../src/auth/token.ts";
import { createHttpHandler } from "../src/http/mod.ts";
import { dmRoom as serverDmRoom, isRoomId as serverIsRoomId } from "../src/chat/rooms.ts";
import { DEFAULTS } from "../src/config.ts";
import {
  MAX_DEV_LOGIN_BODY,
  PAGE_SCRIPTS,
  type PageOptions,
  pageRoutes,
} from "../src/http/page.ts";
import { readMessage } from "../src/chat/payloads.ts";
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
import { Outbox } from "../public/outbox.js";
import { base64urlBytes, enablePush, pushAvailable } from "../public/push.js";
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

const VAPID = {
  vapidPublicKey: "B" + "A".repeat(86),
  vapidPrivateKey: "p".repeat(43),
  vapidSubject: "mailto:ops@example.com",
};

Deno.test("page: with VAPID keys /page-config.json gives the public key (never the private one)", async () => {
  await withPageServer({ config: { ...DEFAULTS, ...VAPID } }, async (url) => {
    const body = await (await fetch(`${url}/page-config.json`)).json();
    assert.equal(body.vapidPublicKey, VAPID.vapidPublicKey);
    assert.ok(!JSON.stringify(body).includes(VAPID.vapidPrivateKey));
  });
});

Deno.test("page: the service worker is served as JavaScript, at the root, for the whole page", async () => {
  await withPageServer({}, async (url) => {
    const response = await fetch(`${url}/sw.js`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.equal(response.headers.get("service-worker-allowed"), "/");
    const text = await response.text();
    assert.match(text, /addEventListener\("push"/);
    assert.match(text, /addEventListener\("notificationclick"/);
  });
  const page = await Deno.readTextFile(new URL("../public/index.html", import.meta.url));
  assert.match(page, /<button id="notify" type="button" class="quiet" hidden>Notify me<\/button>/);
});

Deno.test("page: Notify me registers /sw.js, subscribes with the server's key and sends push:subscribe", async () => {
  const key = VAPID.vapidPublicKey;
  const calls: unknown[][] = [];
  const subscription = { endpoint: "https://push.example/1", keys: { p256dh: "p", auth: "a" } };
  const globals = {
    Notification: { requestPermission: () => Promise.resolve("granted") },
    PushManager: class {},
    serviceWorker: {
      register(url: string, options: { scope: string }) {
        calls.push(["register", url, options]);
        return Promise.resolve({
          pushManager: {
            subscribe(options: { userVisibleOnly: boolean; applicationServerKey: Uint8Array }) {
              calls.push(["subscribe", options.userVisibleOnly, [...options.applicationServerKey]]);
              return Promise.resolve({ toJSON: () => subscription });
            },
          },
        });
      },
    },
  };
  assert.equal(pushAvailable({ vapidPublicKey: key }, globals), true);
  assert.equal(pushAvailable({}, globals), false, "no key: no button");
  assert.equal(
    pushAvailable({ vapidPublicKey: key }, { ...globals, PushManager: undefined }),
    false,
  );
  const outcome = await enablePush(key, globals, (payload) => {
    calls.push(["push:subscribe", payload]);
    return Promise.resolve({ ok: true });
  });
  assert.equal(outcome, "subscribed");
  const keyBytes = base64urlBytes(key);
  assert.equal(keyBytes.length, 65);
  assert.equal(keyBytes[0], 4);
  assert.deepEqual(calls, [
    ["register", "/sw.js", { scope: "/" }],
    ["subscribe", true, [...keyBytes]],
    ["push:subscribe", subscription],
  ]);
  const denied = {
    ...globals,
    Notification: { requestPermission: () => Promise.resolve("denied") },
  };
  assert.equal(await enablePush(key, denied, () => Promise.resolve({ ok: true })), "denied");
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

/** A `localStorage` stand-in. */
class MemoryStorage {
  #items = new Map<string, string>();
  get length() {
    return this.#items.size;
  }
  key(index: number) {
    return [...this.#items.keys()][index] ?? null;
  }
  getItem(key: string) {
    return this.#items.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    this.#items.set(key, value);
  }
  removeItem(key: string) {
    this.#items.delete(key);
  }
  keys() {
    return [...this.#items.keys()];
  }
}

/** An outbox whose sends are answered from `answers`, in order; what it reports is recorded. */
function scriptedOutbox(answers: (Ack | "no answer")[], storage = new MemoryStorage()) {
  const sent: { clientId: string; message: string }[] = [];
  const delivered: string[] = [];
  const changes: string[] = [];
  const holds: (number | undefined)[] = [];
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
    onHold: (until) => holds.push(until),
    storage,
    newId: () => `client-${++stored}`,
  });
  return { outbox, sent, delivered, changes, holds, storage };
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

/** Resolves once `done()` holds (polling), or fails after 2 s. */
async function until(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (done()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`never: ${what}`);
}

Deno.test("page outbox: messages go one at a time, in order; a rate limit holds the queue, then it goes on by itself", async () => {
  const { outbox, sent, delivered, changes, holds } = scriptedOutbox([
    stored("one"),
    refused("rate_limited", 20),
    stored("two"),
    stored("three"),
  ]);
  const started = Date.now();
  outbox.setConnection("connected");
  outbox.restore("ada");
  for (const text of ["one", "two", "three"]) outbox.add("general", text);
  // The queue goes on once the hold's time is over, and the hold's timer announces the release:
  // on a busy machine the second can come after the last delivery.
  await until(() => delivered.length === 3 && holds.length === 2, "all three delivered, released");
  assert.deepEqual(delivered, ["one", "two", "three"]);
  assert.deepEqual(sent.map((payload) => payload.clientId), [
    "client-1",
    "client-2",
    "client-2",
    "client-3",
  ]);
  assert.ok(!changes.some((change) => change.endsWith("failed")), "a rate limit fails nothing");
  assert.equal(holds.length, 2);
  // Held until 20 ms after the refusal, whenever that came: a time, not a duration.
  assert.ok(holds[0]! >= started + 20 && holds[0]! <= Date.now() + 20, `held until ${holds[0]}`);
  assert.equal(holds[1], undefined, "held, then released");
  assert.equal(outbox.waiting, 0);
});

Deno.test("page outbox: Retry now ends a hold at once", async () => {
  const { outbox, delivered } = scriptedOutbox([refused("rate_limited", 60_000), stored("hi")]);
  outbox.setConnection("connected");
  outbox.add("general", "hi");
  await until(() => outbox.heldUntil !== undefined, "held");
  assert.equal(outbox.waiting, 1);
  outbox.retryNow();
  await until(() => delivered.length === 1, "delivered");
  assert.equal(outbox.heldUntil, undefined);
});

Deno.test("page outbox: no answer is asked again with the same clientId, then fails; Retry resends it", async () => {
  const { outbox, sent, delivered } = scriptedOutbox([
    "no answer",
    "no answer",
    "no answer",
    stored("anyone?"),
  ]);
  outbox.setConnection("connected");
  const entry = outbox.add("general", "anyone?");
  await until(() => entry.state === "failed", "failed");
  assert.equal(entry.error?.code, "no_answer");
  assert.equal(sent.length, 3);
  outbox.retry(entry);
  await until(() => delivered.length === 1, "delivered");
  assert.equal(new Set(sent.map((payload) => payload.clientId)).size, 1);
});

Deno.test("page outbox: a refusal waiting cannot fix fails that message only; Discard drops it", async () => {
  const { outbox, delivered, storage } = scriptedOutbox([refused("forbidden"), stored("fine")]);
  outbox.setConnection("connected");
  outbox.restore("ada");
  const bad = outbox.add("secret", "nope");
  outbox.add("general", "fine");
  await until(() => delivered.length === 1, "the next one delivered");
  assert.equal(bad.state, "failed");
  assert.equal(bad.error?.code, "forbidden");
  assert.deepEqual(storage.keys(), ["chat.outbox.ada.client-1"]);
  outbox.discard(bad);
  assert.deepEqual(outbox.entriesOf("secret"), []);
  assert.deepEqual(storage.keys(), []);
});

Deno.test("page outbox: messages wait for the connection, however long, and survive a reload with their clientIds", async () => {
  const storage = new MemoryStorage();
  const before = scriptedOutbox([], storage);
  before.outbox.restore("ada");
  before.outbox.setConnection("reconnecting");
  for (const text of ["first", "second", "third"]) before.outbox.add("general", text);
  assert.equal(before.outbox.waiting, 3);
  assert.deepEqual(before.sent, []);
  before.outbox.clear();
  // Another user's entries stay theirs.
  storage.setItem(
    "chat.outbox.bob.x",
    JSON.stringify({
      clientId: "x",
      room: "general",
      text: "bob's",
      createdAt: new Date().toISOString(),
      seq: 1,
    }),
  );

  const after = scriptedOutbox([stored("first"), stored("second"), stored("third")], storage);
  after.outbox.restore("ada");
  assert.deepEqual(after.changes, ["first: queued", "second: queued", "third: queued"]);
  after.outbox.setConnection("connected");
  await until(() => after.delivered.length === 3, "all delivered");
  assert.deepEqual(after.delivered, ["first", "second", "third"]);
  assert.deepEqual(after.sent.map((payload) => payload.clientId), [
    "client-1",
    "client-2",
    "client-3",
  ]);
  assert.deepEqual(storage.keys(), ["chat.outbox.bob.x"]);
});

Deno.test("page outbox: one user's unsent messages never go out as another's whose id starts the same", async () => {
  const storage = new MemoryStorage();
  const dotted = scriptedOutbox([], storage);
  dotted.outbox.restore("alice.bob");
  dotted.outbox.add("dm:alice.bob:carol", "a draft of alice.bob");
  dotted.outbox.clear();
  const alice = scriptedOutbox([stored("hi")], storage);
  alice.outbox.setConnection("connected");
  alice.outbox.restore("alice");
  assert.deepEqual(alice.sent, [], "alice sends nothing of alice.bob's");
  assert.equal(storage.keys().length, 1, "alice.bob's draft stays for alice.bob");
  const back = scriptedOutbox([stored("a draft of alice.bob")], storage);
  back.outbox.setConnection("connected");
  back.outbox.restore("alice.bob");
  await until(() => back.delivered.length === 1, "alice.bob's draft sent as alice.bob");
});
