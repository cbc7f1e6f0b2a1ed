import assert from "node:assert/strict";
import { ChatClient, sleep, startChat, tokenFor } from "./helpers/chat_server.ts";
import { createLogger } from "../src/ops/log.ts";
import { pageRoutes } from "../src/http/page.ts";

Deno.test("http: /healthz is ok and unknown routes are a JSON 404", async () => {
  await using server = await startChat();
  const health = await fetch(`${server.url}/healthz`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: "ok" });
  const missing = await fetch(`${server.url}/nope`);
  assert.equal(missing.status, 404);
  assert.deepEqual(await missing.json(), {
    error: { code: "not_found", message: "no route for GET /nope" },
  });
});

Deno.test("http: every response is nosniff, and HSTS when TLS is configured", async () => {
  const routes = pageRoutes({});
  await using plain = await startChat({}, { routes });
  // The header follows config.tls; the test server itself speaks plain HTTP.
  await using tls = await startChat({ tls: { certFile: "cert.pem", keyFile: "key.pem" } }, {
    routes,
  });
  const paths = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/nope",
    "/",
    "/socket.io/?EIO=4&transport=polling",
    "/socket.io/?EIO=3&transport=polling",
    "/socket.io/?EIO=4&transport=polling&sid=unknown",
  ];
  for (const path of paths) {
    const [withoutTls, withTls] = await Promise.all(
      [plain, tls].map((server) => fetch(`${server.url}${path}`)),
    );
    for (const response of [withoutTls, withTls]) {
      assert.equal(response.headers.get("x-content-type-options"), "nosniff", path);
      await response.body?.cancel();
    }
    assert.equal(withoutTls.headers.get("strict-transport-security"), null, path);
    assert.equal(withTls.headers.get("strict-transport-security"), "max-age=31536000", path);
  }
});

Deno.test("http: /readyz turns 503 and handshakes are refused once shutdown begins", async () => {
  await using server = await startChat();
  const ready = await fetch(`${server.url}/readyz`);
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), {
    status: "ready",
    checks: { store: "ok", shutdown: "no" },
  });
  server.app.beginShutdown();
  const draining = await fetch(`${server.url}/readyz`);
  assert.equal(draining.status, 503);
  assert.deepEqual(await draining.json(), {
    status: "unavailable",
    checks: { store: "ok", shutdown: "in progress" },
  });
  const handshake = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(handshake.status, 503);
  assert.deepEqual(await handshake.json(), { code: 4, message: "server is shutting down" });
});

Deno.test("http: /readyz reports a store that cannot be reached", async () => {
  const server = await startChat();
  try {
    server.store.close();
    const response = await fetch(`${server.url}/readyz`);
    assert.equal(response.status, 503);
    assert.equal((await response.json()).checks.store, "error");
  } finally {
    await server.app.close();
    await server.close().catch(() => {});
  }
});

/** The value of one sample line of a Prometheus exposition, or undefined. */
function sample(text: string, name: string): number | undefined {
  const line = text.split("\n").find((line) => line.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

Deno.test("http: /metrics counts a known sequence of events exactly", async () => {
  await using server = await startChat();
  const options = { transports: ["websocket" as const] };
  using alice = await ChatClient.join(server.url, "alice", options);
  using bob = await ChatClient.join(server.url, "bob", options);
  const intruder = new ChatClient(server.url, { ...options, auth: { token: "forged" } });
  await intruder.connectError();
  intruder.close();
  assert.equal((await alice.send({ message: "one" })).ok, true);
  assert.equal((await alice.send({ message: "two" })).ok, true);
  assert.equal((await alice.send({ message: "" })).ok, false);
  await bob.waitFor(() => bob.live.length === 2, "two broadcasts");

  const response = await fetch(`${server.url}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  assert.equal(sample(text, "chat_handshakes_total"), 3);
  assert.equal(sample(text, 'chat_connections_refused_total{code="invalid_token"}'), 1);
  assert.equal(sample(text, "chat_messages_stored_total"), 2);
  assert.equal(sample(text, "chat_broadcasts_total"), 2);
  assert.equal(sample(text, "chat_delivery_seconds_count"), 2, "each message observed once");
  assert.ok(sample(text, "chat_delivery_seconds_sum")! > 0);
  assert.equal(sample(text, 'chat_error_events_total{code="invalid_payload"}'), 1);
  assert.equal(sample(text, 'chat_sockets_connected{transport="websocket"}'), 2);
  assert.equal(sample(text, 'chat_sockets_connected{transport="polling"}'), 0);
  assert.equal(sample(text, "chat_users_online"), 2);
  const commits = sample(text, "chat_kv_write_seconds_count")!;
  assert.ok(commits >= 1 && commits <= 2, `${commits} KV commits`);
  assert.ok(sample(text, "chat_event_loop_lag_seconds")! >= 0);
  assert.ok(sample(text, "process_resident_memory_bytes")! > 1_000_000);
  assert.match(text, /# TYPE chat_kv_write_seconds histogram/);
  assert.match(text, /# TYPE chat_delivery_seconds histogram/);
});

Deno.test("http: chat_users_online counts a user with two connections once", async () => {
  await using server = await startChat();
  const online = async () =>
    sample(await (await fetch(`${server.url}/metrics`)).text(), "chat_users_online");
  // The server notices a close a moment after the client makes it.
  const onlineBecomes = async (count: number) => {
    const deadline = Date.now() + 5000;
    while (await online() !== count) {
      assert.ok(Date.now() < deadline, `chat_users_online never became ${count}`);
      await sleep(10);
    }
  };
  using firstTab = await ChatClient.join(server.url, "alice");
  using secondTab = await ChatClient.join(server.url, "alice");
  using bob = await ChatClient.join(server.url, "bob");
  assert.equal(await online(), 2);
  firstTab.close();
  bob.close();
  await onlineBecomes(1);
  secondTab.close();
  await onlineBecomes(0);
});

Deno.test("http: /metrics counts refused Engine.IO requests by reason", async () => {
  // A burst of one handshake per address.
  await using server = await startChat({ handshakeLimitPerMinute: 4 });
  const engineUrl = (query: Record<string, string> = {}) =>
    `${server.url}/socket.io/?${new URLSearchParams({ EIO: "4", transport: "polling", ...query })}`;
  const refused = async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    return (reason: string) => sample(text, `chat_requests_refused_total{reason="${reason}"}`);
  };
  const refusedQueries: Record<string, string>[] = [{ sid: "unknown" }, { sid: "x" }, {
    EIO: "3",
  }];
  for (const query of refusedQueries) {
    const response = await fetch(engineUrl(query));
    assert.equal(response.status, 400);
    await response.body?.cancel();
  }
  let count = await refused();
  assert.equal(count("unknown_sid"), 2);
  assert.equal(count("unsupported_protocol_version"), 1);

  const statuses = [];
  for (let i = 0; i < 2; i++) {
    const response = await fetch(engineUrl());
    statuses.push(response.status);
    await response.body?.cancel();
  }
  assert.deepEqual(statuses, [200, 403]);
  server.app.beginShutdown();
  const closing = await fetch(engineUrl());
  assert.equal(closing.status, 503);
  await closing.body?.cancel();
  count = await refused();
  assert.equal(count("handshake_limited"), 1);
  assert.equal(count("shutting_down"), 1);
  assert.equal(count("unknown_sid"), 2);
});

Deno.test("http: METRICS_TOKEN guards /metrics", async () => {
  await using server = await startChat({ metricsToken: "scrape-secret" });
  const scrape = (headers: HeadersInit = {}) => fetch(`${server.url}/metrics`, { headers });
  const anonymous = await scrape();
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.headers.get("www-authenticate"), 'Bearer realm="metrics"');
  assert.deepEqual(await anonymous.json(), {
    error: { code: "unauthorized", message: "metrics need a Bearer token" },
  });
  const wrong = await scrape({ Authorization: "Bearer scrape-secreT" });
  assert.equal(wrong.status, 401);
  await wrong.body?.cancel();
  const right = await scrape({ Authorization: "Bearer scrape-secret" });
  assert.equal(right.status, 200);
  assert.match(await right.text(), /chat_handshakes_total 0/);
});

Deno.test("logs: one JSON object per line, with ids and never tokens or message text", async () => {
  const lines: string[] = [];
  const token = await tokenFor("alice");
  {
    // Closed before the lines are read: the disconnects are logged too.
    await using server = await startChat({}, {
      log: createLogger("info", (line) => lines.push(line)),
    });
    using alice = new ChatClient(server.url, { auth: { token } });
    await alice.waitFor(() => alice.loads.length > 0, "load");
    await alice.send({ message: "a very private sentence" });
    await alice.send({ message: 42 });
    const refused = new ChatClient(server.url, { auth: { token: "forged-token-value" } });
    await refused.connectError();
    refused.close();
  }
  const entries = lines.map((line) => JSON.parse(line));
  for (const entry of entries) {
    assert.ok(["debug", "info", "warn", "error"].includes(entry.level));
    assert.ok(!Number.isNaN(Date.parse(entry.time)));
    assert.equal(typeof entry.event, "string");
  }
  const events = entries.map((entry) => entry.event);
  assert.ok(events.includes("socket.connected"));
  assert.ok(events.includes("socket.disconnected"));
  assert.ok(events.includes("event.refused"));
  assert.ok(events.includes("connection.refused"));
  const connected = entries.find((entry) => entry.event === "socket.connected");
  assert.equal(connected.user, "alice");
  assert.equal(typeof connected.socket, "string");
  const all = lines.join("\n");
  assert.ok(!all.includes(token), "no token in the logs");
  assert.ok(!all.includes("forged-token-value"), "no refused token in the logs");
  assert.ok(!all.includes("a very private sentence"), "no message text at info level");
});

Deno.test("logs: LOG_LEVEL filters lower levels", () => {
  const lines: string[] = [];
  const log = createLogger("warn", (line) => lines.push(line));
  log.debug("a");
  log.info("b");
  log.warn("c", { error: new Error("boom") });
  log.error("d");
  assert.deepEqual(lines.map((line) => JSON.parse(line).event), ["c", "d"]);
  assert.deepEqual(JSON.parse(lines[0]).error, { name: "Error", message: "boom" });
});
