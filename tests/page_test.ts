import assert from "node:assert/strict";
import { createTokenVerifier } from "../src/auth.ts";
import { createHttpHandler } from "../src/http.ts";
import { DEFAULTS } from "../src/config.ts";
import { MAX_DEV_LOGIN_BODY, PAGE_SCRIPTS, type PageOptions, pageRoutes } from "../src/page.ts";
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
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handle);
  try {
    await test(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
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
    assert.equal((await post.json()).code, "not_found");
  });
});

Deno.test("page: the Socket.IO browser client is served through the whole app, not the engine", async () => {
  const server = await startChat({}, { routes: pageRoutes({}) });
  try {
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
  } finally {
    await server.close();
  }
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
      const error = await response.json();
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
    assert.equal((await response.json()).code, "not_found");
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
      const error = await response.json();
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
    assert.equal((await declared.json()).code, "payload_too_large");
    // Streamed, so no Content-Length to trust: the limit holds while reading.
    const streamed = await postToken(url, ReadableStream.from([new TextEncoder().encode(padded)]));
    assert.equal(streamed.status, 413);
    await streamed.body?.cancel();
  });
});
