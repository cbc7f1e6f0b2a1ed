/**
 * The server API over a real server: every endpoint's success and refusals, the key, bans at
 * connect and on open sockets, and every real response validated against the OpenAPI document.
 */
import assert from "node:assert/strict";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { apiDocument } from "../src/http/api_routes.ts";
import { ChatClient, startChat, type TestServer, tokenFor, within } from "./helpers/chat_server.ts";
import { tempDir } from "./helpers/dispose.ts";

const KEY = "test-api-key-0123456789";

/** The document the API serves, generated from its route declarations. */
const OPENAPI = apiDocument();
const ajv = new Ajv2020({ strict: false });
(addFormats as unknown as { default: (ajv: Ajv2020) => void }).default(ajv);
ajv.addSchema({ $id: "openapi", components: OPENAPI.components });
const validators = new Map<string, ValidateFunction>();

/** The schema the document gives for `method path` answering `status`. */
function validatorFor(method: string, path: string, status: number): ValidateFunction | undefined {
  const key = `${method} ${path} ${status}`;
  if (validators.has(key)) return validators.get(key);
  const operation = (OPENAPI.paths as Record<string, Record<string, unknown>>)[path]?.[
    method.toLowerCase()
  ] as { responses: Record<string, { content?: { "application/json": { schema: unknown } } }> };
  assert.ok(operation, `${method} ${path} is documented`);
  const answer = operation.responses[String(status)];
  assert.ok(answer, `${method} ${path} documents status ${status}`);
  const schema = answer.content?.["application/json"].schema;
  if (schema === undefined) return undefined;
  const rewritten = JSON.parse(
    JSON.stringify(schema).replaceAll('"#/components/', '"openapi#/components/'),
  );
  const validate = ajv.compile(rewritten);
  validators.set(key, validate);
  return validate;
}

/** A response body, already checked against its OpenAPI schema by {@link call}. */
// deno-lint-ignore no-explicit-any
type Checked = any;

/** Calls the API and checks the answer against the OpenAPI document. */
async function call(
  server: TestServer,
  method: string,
  path: string,
  { body, key = KEY, documented = path }: {
    body?: unknown;
    key?: string | null;
    documented?: string;
  } = {},
): Promise<{ status: number; body: Checked }> {
  const response = await fetch(`${server.url}/api/v1${path}`, {
    method,
    headers: {
      ...(key === null ? {} : { Authorization: `Bearer ${key}` }),
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  const parsed = text === "" ? undefined : JSON.parse(text);
  const validate = validatorFor(method, documented, response.status);
  if (validate) {
    assert.ok(
      validate(parsed),
      `${method} ${path} ${response.status}: ${ajv.errorsText(validate.errors)}`,
    );
  } else {
    assert.equal(text, "", `${method} ${path} ${response.status} has no body`);
  }
  return { status: response.status, body: parsed };
}

Deno.test("api: without API_KEY the API does not exist", async () => {
  await using server = await startChat();
  const response = await fetch(`${server.url}/api/v1/rooms`, {
    headers: { Authorization: `Bearer ${KEY}` },
  });
  assert.equal(response.status, 404);
  await response.body?.cancel();
});

Deno.test("api: a missing or wrong key is 401; unknown routes and methods are 404", async () => {
  await using server = await startChat({ apiKey: KEY });
  for (const key of [null, "wrong-key-wrong-key", `${KEY}x`]) {
    const answer = await call(server, "GET", "/rooms", { key });
    assert.equal(answer.status, 401);
    assert.equal(answer.body.error.code, "unauthorized");
  }
  const unknown = await fetch(`${server.url}/api/v1/nothing`, {
    headers: { Authorization: `Bearer ${KEY}` },
  });
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).error.code, "not_found");
  const wrongMethod = await call(server, "DELETE", "/rooms/general/messages", {
    documented: "/rooms/{room}/messages",
  }).catch((error) => error);
  assert.ok(wrongMethod instanceof Error, "DELETE on messages is not documented");
});

Deno.test("api: publish stores then broadcasts; retries with a clientId store once; history pages", async () => {
  await using server = await startChat({ apiKey: KEY });
  using alice = await ChatClient.join(server.url, "alice");
  const documented = "/rooms/{room}/messages";
  const posted = await call(server, "POST", "/rooms/general/messages", {
    body: { message: "  maintenance at noon ", clientId: "notice-1" },
    documented,
  });
  assert.equal(posted.status, 201);
  assert.deepEqual(posted.body.message.user, { id: "system", name: "System" });
  assert.equal(posted.body.message.message, "maintenance at noon");
  await alice.waitFor(
    () => alice.live.some((m) => m.id === posted.body.message.id),
    "the broadcast",
  );
  const retry = await call(server, "POST", "/rooms/general/messages", {
    body: { message: "maintenance at noon", clientId: "notice-1" },
    documented,
  });
  assert.equal(retry.status, 200);
  assert.equal(retry.body.duplicate, true);
  assert.equal(retry.body.message.id, posted.body.message.id);
  const onBehalf = await call(server, "POST", "/rooms/dm%3Aalice%3Abob/messages", {
    body: { message: "from bob's backend", userId: "bob", userName: "Bob" },
    documented,
  });
  assert.equal(onBehalf.status, 201);
  assert.equal(onBehalf.body.message.room, "dm:alice:bob");
  assert.deepEqual(onBehalf.body.message.user, { id: "bob", name: "Bob" });

  const page = await call(server, "GET", "/rooms/general/messages?limit=1", { documented });
  assert.equal(page.status, 200);
  assert.deepEqual(page.body.messages.map((m: { id: string }) => m.id), [posted.body.message.id]);
  for (
    const [body, code] of [
      [{}, "invalid_payload"],
      [{ message: "x".repeat(2001) }, "message_too_long"],
      [{ message: "hi", userId: "" }, "invalid_payload"],
      ["not json", "invalid_payload"],
    ] as const
  ) {
    const refused = await call(server, "POST", "/rooms/general/messages", { body, documented });
    assert.equal(refused.status, 400, JSON.stringify(body));
    assert.equal(refused.body.error.code, code);
  }
  const badRoom = await call(server, "GET", "/rooms/Bad%20Room/messages", { documented });
  assert.equal(badRoom.status, 400);
  const badLimit = await call(server, "GET", "/rooms/general/messages?limit=500", { documented });
  assert.equal(badLimit.status, 400);
  const big = await fetch(`${server.url}/api/v1/rooms/general/messages`, {
    method: "POST",
    headers: { Authorization: `Bearer ${KEY}` },
    body: "x".repeat(70_000),
  });
  assert.equal(big.status, 413);
  assert.equal((await big.json()).error.code, "payload_too_large");
  assert.deepEqual(await server.store.latest(10), [posted.body.message], "nothing else stored");
});

Deno.test("api: presence, rooms and stats describe who is connected", async () => {
  await using server = await startChat({ apiKey: KEY });
  using _alice = await ChatClient.join(server.url, "alice");
  using _bob = await ChatClient.join(server.url, "bob");
  const presence = await call(server, "GET", "/rooms/general/presence", {
    documented: "/rooms/{room}/presence",
  });
  assert.deepEqual(
    presence.body.users.map((user: { id: string }) => user.id).toSorted(),
    ["alice", "bob"],
  );
  const rooms = await call(server, "GET", "/rooms");
  assert.deepEqual(rooms.body.rooms, [{ room: "general", connections: 2 }]);
  const stats = await call(server, "GET", "/stats");
  assert.equal(stats.body.sockets, 2);
  const document = await call(server, "GET", "/openapi.json");
  assert.equal(document.body.openapi, "3.1.0");
  assert.deepEqual(document.body, JSON.parse(JSON.stringify(OPENAPI)), "the served document");
  await call(server, "GET", "/rooms", { key: "wrong-key-wrong-key" });
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /^chat_api_requests_total\{route="rooms",status="200"\} 1$/m);
  assert.match(metrics, /^chat_api_requests_total\{route="unknown",status="401"\} 1$/m);
  assert.match(metrics, /^chat_recent_window_rooms 1$/m, "the default room's window");
});

Deno.test("api: disconnect cuts every socket of a user; a ban refuses them at connect until lifted", async () => {
  await using server = await startChat({ apiKey: KEY });
  using firstTab = await ChatClient.join(server.url, "mallory");
  using secondTab = await ChatClient.join(server.url, "mallory");
  const tabs = [firstTab, secondTab];
  using alice = await ChatClient.join(server.url, "alice");
  const closed = tabs.map((tab) =>
    new Promise((resolve) => tab.socket.once("disconnect", resolve))
  );
  const cut = await call(server, "POST", "/users/mallory/disconnect", {
    documented: "/users/{id}/disconnect",
  });
  assert.deepEqual(cut.body, { ok: true });
  assert.deepEqual(await within(Promise.all(closed), 2000, "both tabs closed"), [
    "io server disconnect",
    "io server disconnect",
  ]);
  assert.ok(alice.socket.connected, "nobody else was touched");

  const until = Date.now() + 3_600_000;
  const banned = await call(server, "PUT", "/users/mallory/ban", {
    body: { until, reason: "spam" },
    documented: "/users/{id}/ban",
  });
  assert.equal(banned.body.ban.until, until);
  const refused = new ChatClient(server.url, { auth: { token: await tokenFor("mallory") } });
  const error = await refused.connectError();
  assert.equal(error.message, "banned");
  assert.equal((error.data as { until?: number }).until, until);
  refused.close();
  const badBan = await call(server, "PUT", "/users/mallory/ban", {
    body: { until: 5 },
    documented: "/users/{id}/ban",
  });
  assert.equal(badBan.status, 400);

  const lifted = await call(server, "DELETE", "/users/mallory/ban", {
    documented: "/users/{id}/ban",
  });
  assert.equal(lifted.status, 204);
  const again = await call(server, "DELETE", "/users/mallory/ban", {
    documented: "/users/{id}/ban",
  });
  assert.equal(again.status, 404);
  const back = await ChatClient.join(server.url, "mallory");
  back.close();
});

Deno.test("api: every user who can connect can be disconnected and banned, whatever their id", async () => {
  await using server = await startChat({ apiKey: KEY });
  for (const sub of ["mallory x", "mallory\u00a0", "mallory\u3000", "mallory\ufeff", "m/a%l?"]) {
    using mallory = await ChatClient.join(server.url, sub);
    const closed = new Promise((resolve) => mallory.socket.once("disconnect", resolve));
    const path = `/users/${encodeURIComponent(sub)}`;
    const cut = await call(server, "POST", `${path}/disconnect`, {
      documented: "/users/{id}/disconnect",
    });
    assert.equal(cut.status, 200, `${JSON.stringify(sub)} disconnected`);
    await within(closed, 2000, `${JSON.stringify(sub)} closed`);
    const banned = await call(server, "PUT", `${path}/ban`, { documented: "/users/{id}/ban" });
    assert.equal(banned.status, 200, `${JSON.stringify(sub)} banned`);
    assert.equal(banned.body.userId, sub);
    const refused = new ChatClient(server.url, { auth: { token: await tokenFor(sub) } });
    assert.equal((await refused.connectError()).message, "banned");
    refused.close();
  }
  // An id no token may carry is refused alike, and so is a path that is not %-encoding.
  const control = await call(server, "PUT", "/users/mallory%09/ban", {
    documented: "/users/{id}/ban",
  });
  assert.equal(control.status, 400);
  const malformed = await call(server, "GET", "/rooms/%E0%A4%A/messages", {
    documented: "/rooms/{room}/messages",
  });
  assert.equal(malformed.status, 400);
  assert.equal(malformed.body.error.code, "invalid_payload");
});

Deno.test("api: a ban holds across a restart on the same KV file", async () => {
  await using temp = await tempDir();
  const overrides = { apiKey: KEY, kvPath: `${temp.path}/chat.kv` };
  {
    await using first = await startChat(overrides);
    await call(first, "PUT", "/users/mallory/ban", { body: {}, documented: "/users/{id}/ban" });
  }
  await using server = await startChat(overrides);
  using refused = new ChatClient(server.url, { auth: { token: await tokenFor("mallory") } });
  assert.equal((await refused.connectError()).message, "banned");
});

Deno.test("api: PATCH and DELETE change a message, announce it, and answer 404 for none", async () => {
  await using server = await startChat({ apiKey: KEY });
  using alice = await ChatClient.join(server.url, "alice");
  const sent = await alice.send({ message: "typo" });
  assert.ok(sent.ok);
  const updated = new Promise((resolve) => alice.socket.once("message:updated", resolve));
  const edited = await call(server, "PATCH", `/messages/${sent.message.id}`, {
    body: { message: "fixed" },
    documented: "/messages/{id}",
  });
  assert.equal(edited.status, 200);
  assert.equal(edited.body.message.message, "fixed");
  assert.deepEqual(await within(updated, 2000, "message:updated"), edited.body.message);
  const deleted = await call(server, "DELETE", `/messages/${sent.message.id}`, {
    documented: "/messages/{id}",
  });
  assert.equal(deleted.body.message.deleted, true);
  const twice = await call(server, "DELETE", `/messages/${sent.message.id}`, {
    documented: "/messages/{id}",
  });
  assert.deepEqual(twice.body, deleted.body);
  const gone = await call(server, "PATCH", `/messages/${sent.message.id}`, {
    body: { message: "again" },
    documented: "/messages/{id}",
  });
  assert.equal(gone.status, 404);
  const none = await call(server, "DELETE", "/messages/01JDQ7ZJ2K8M6V1T4X3N5P7R9S", {
    documented: "/messages/{id}",
  });
  assert.equal(none.status, 404);
});

Deno.test("api: a chunked body without Content-Length is cut off past the limit, not read whole", async () => {
  await using server = await startChat({ apiKey: KEY });
  // In front of the app, a server that counts what the app reads of each request body.
  let read = 0;
  const counting = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      read += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
  await using front = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request, info) =>
      server.app.handler(new Request(request, { body: request.body?.pipeThrough(counting) }), info),
  );
  const gigabyte = 1024 ** 3;
  const chunk = new Uint8Array(64 * 1024).fill(0x20);
  let pulled = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulled >= gigabyte) return controller.close();
      pulled += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
  const response = await fetch(
    `http://127.0.0.1:${front.addr.port}/api/v1/rooms/general/messages`,
    {
      method: "POST",
      headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" },
      body,
    },
  );
  assert.equal(response.status, 413);
  assert.equal((await response.json()).error.code, "payload_too_large");
  assert.ok(read <= 2 * 1024 * 1024, `the server read ${read} bytes of the 1 GB body`);
  // The client got further only by filling the sockets' buffers.
  assert.ok(pulled <= 32 * 1024 * 1024, `${pulled} bytes were pulled from the 1 GB body`);
  assert.deepEqual(await server.store.latest(10), [], "nothing stored");
});

Deno.test("api: wrong keys are limited per client address; a right key from elsewhere is not", async () => {
  // The test client is 127.0.0.1: as a trusted proxy, X-Forwarded-For names the client.
  await using server = await startChat({
    apiKey: KEY,
    apiAuthFailuresPerMinute: 3,
    trustedProxies: ["127.0.0.1"],
  });
  const from = (address: string, key: string) =>
    fetch(`${server.url}/api/v1/rooms`, {
      headers: { Authorization: `Bearer ${key}`, "X-Forwarded-For": address },
    });
  for (let attempt = 0; attempt < 3; attempt++) {
    const wrong = await from("203.0.113.7", `wrong-key-${attempt}-0123456789`);
    assert.equal(wrong.status, 401, `attempt ${attempt}`);
    await wrong.body?.cancel();
  }
  for (const key of ["wrong-key-3-0123456789", KEY]) {
    const limited = await from("203.0.113.7", key);
    assert.equal(limited.status, 429, "the address is refused, whatever key it tries now");
    const retryAfter = Number(limited.headers.get("retry-after"));
    assert.ok(retryAfter >= 1 && retryAfter <= 20, `Retry-After: ${retryAfter}`);
    assert.equal((await limited.json()).error.code, "rate_limited");
  }
  const elsewhere = await from("198.51.100.1", KEY);
  assert.equal(elsewhere.status, 200);
  await elsewhere.body?.cancel();
  // The 429 is documented: checked against the document like every answer.
  await call(server, "GET", "/rooms", { key: null });
});

Deno.test("api: API and socket clientIds are apart: neither answers for the other; API retries still deduplicate", async () => {
  await using server = await startChat({ apiKey: KEY });
  using alice = await ChatClient.join(server.url, "alice");
  const documented = "/rooms/{room}/messages";
  const publish = (clientId: string) =>
    call(server, "POST", "/rooms/general/messages", {
      body: { message: `from the API ${clientId}`, userId: "alice", clientId },
      documented,
    });
  const byApi = await publish("alice-cid-1");
  assert.equal(byApi.status, 201);
  const bySocket = await alice.send({ message: "from the socket", clientId: "alice-cid-1" });
  assert.ok(bySocket.ok);
  assert.equal(bySocket.duplicate, false);
  assert.equal(bySocket.message.message, "from the socket");

  const socketFirst = await alice.send({ message: "socket first", clientId: "alice-cid-2" });
  assert.ok(socketFirst.ok && !socketFirst.duplicate);
  const apiAfter = await publish("alice-cid-2");
  assert.equal(apiAfter.status, 201);
  assert.notEqual(apiAfter.body.message.id, socketFirst.message.id);

  const retry = await publish("alice-cid-1");
  assert.equal(retry.status, 200);
  assert.equal(retry.body.duplicate, true);
  assert.equal(retry.body.message.id, byApi.body.message.id);
  const socketRetry = await alice.send({ message: "from the socket", clientId: "alice-cid-1" });
  assert.ok(socketRetry.ok && socketRetry.duplicate);
  assert.equal(socketRetry.message.id, bySocket.message.id);
});

Deno.test("api: userName is cleaned as a token's name is", async () => {
  await using server = await startChat({ apiKey: KEY });
  const documented = "/rooms/{room}/messages";
  for (
    const [userName, shown] of [
      ["\u202Eevil\u200b  ", "evil"],
      ["  Zoe\u0301 ", "Zo\u00e9"],
      ["\u200b\u2066", "eve"],
      ["<script>\u200f", "<script>"],
    ]
  ) {
    const posted = await call(server, "POST", "/rooms/general/messages", {
      body: { message: "hi", userId: "eve", userName },
      documented,
    });
    assert.equal(posted.status, 201, JSON.stringify(userName));
    assert.deepEqual(
      posted.body.message.user,
      { id: "eve", name: shown },
      JSON.stringify(userName),
    );
  }
  const tooLong = await call(server, "POST", "/rooms/general/messages", {
    body: { message: "hi", userId: "eve", userName: "x".repeat(101) },
    documented,
  });
  assert.equal(tooLong.status, 400);
});

Deno.test("api: a message's reactions, and history carrying them; 404 for none", async () => {
  await using server = await startChat({ apiKey: KEY });
  using alice = await ChatClient.join(server.url, "alice");
  const sent = await alice.send({ message: "react" });
  assert.ok(sent.ok);
  const id = sent.message.id;
  const none = await call(server, "GET", `/messages/${id}/reactions`, {
    documented: "/messages/{id}/reactions",
  });
  assert.deepEqual(none.body, { id, room: "general", reactions: [] });
  await within(alice.socket.emitWithAck("react", { id, emoji: "👍" }), 5000, "react");
  const reactions = [{ emoji: "👍", count: 1, users: ["alice"] }];
  const read = await call(server, "GET", `/messages/${id}/reactions`, {
    documented: "/messages/{id}/reactions",
  });
  assert.deepEqual(read.body, { id, room: "general", reactions });
  const history = await call(server, "GET", "/rooms/general/messages", {
    documented: "/rooms/{room}/messages",
  });
  assert.deepEqual(history.body.messages.at(-1).reactions, reactions);
  const missing = await call(server, "GET", `/messages/${"0".repeat(26)}/reactions`, {
    documented: "/messages/{id}/reactions",
  });
  assert.equal(missing.status, 404);
});

Deno.test("api: publish a reply with replyTo; read a thread; history carries quote and thread", async () => {
  await using server = await startChat({ apiKey: KEY });
  const publish = (body: unknown) =>
    call(server, "POST", "/rooms/general/messages", { body, documented: "/rooms/{room}/messages" });
  const parent = (await publish({ message: "question" })).body.message;
  const reply = await publish({ message: "answer", userId: "bob", replyTo: parent.id });
  assert.equal(reply.status, 201);
  assert.deepEqual(reply.body.message.replyTo, {
    id: parent.id,
    user: { id: "system", name: "System" },
    preview: "question",
    deleted: false,
  });
  const thread = await call(server, "GET", `/rooms/general/messages/${parent.id}/thread`, {
    documented: "/rooms/{room}/messages/{id}/thread",
  });
  assert.deepEqual(thread.body, { messages: [reply.body.message], hasMore: false });
  const history = await call(server, "GET", "/rooms/general/messages", {
    documented: "/rooms/{room}/messages",
  });
  assert.deepEqual(history.body.messages[0].thread, {
    count: 1,
    lastId: reply.body.message.id,
    users: ["bob"],
  });
  const elsewhere = await call(server, "POST", "/rooms/other/messages", {
    body: { message: "x", replyTo: parent.id },
    documented: "/rooms/{room}/messages",
  });
  assert.equal(elsewhere.status, 404);
  const missing = await call(server, "GET", `/rooms/other/messages/${parent.id}/thread`, {
    documented: "/rooms/{room}/messages/{id}/thread",
  });
  assert.equal(missing.status, 404);
});
