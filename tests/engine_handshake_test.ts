import assert from "node:assert/strict";
import type { Socket } from "socket.io";
import { ERROR_CODES } from "../src/engine/mod.ts";
import {
  errorOf,
  poll,
  pollingHandshake,
  post,
  request,
  startEngine,
  startSocketIo,
  waitFor,
} from "./helpers/engine_server.ts";

Deno.test("handshake: polling returns the open packet with sid, upgrades and limits", async () => {
  await using target = startEngine({
    pingInterval: 300,
    pingTimeout: 200,
    maxHttpBufferSize: 5_000,
  });
  const connected = waitFor(target.engine, "connection");
  const response = await request(target.url());
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
  assert.equal(response.body[0], "0");
  const open = JSON.parse(response.body.slice(1));
  assert.deepEqual(Object.keys(open).sort(), [
    "maxPayload",
    "pingInterval",
    "pingTimeout",
    "sid",
    "upgrades",
  ]);
  assert.match(open.sid, /^[A-Za-z0-9_-]{20}$/);
  assert.deepEqual(open.upgrades, ["websocket"]);
  assert.equal(open.pingInterval, 300);
  assert.equal(open.pingTimeout, 200);
  assert.equal(open.maxPayload, 5_000);
  const [session] = await connected as [{ id: string }];
  assert.equal(session.id, open.sid);
  assert.equal(target.engine.clientsCount, 1);
});

Deno.test("handshake: each session gets its own sid", async () => {
  await using target = startEngine();
  const first = await pollingHandshake(target);
  const second = await pollingHandshake(target);
  assert.notEqual(first.sid, second.sid);
  assert.equal(target.engine.clientsCount, 2);
});

Deno.test("handshake: EIO=3 is refused with 400 code 5", async () => {
  await using target = startEngine();
  const refused = waitFor(target.engine, "connection_error");
  const response = await request(target.url({ EIO: "3" }));
  assert.equal(response.status, 400);
  assert.deepEqual(errorOf(response), {
    code: ERROR_CODES.UNSUPPORTED_PROTOCOL_VERSION,
    message: "Unsupported protocol version",
  });
  const [error] = await refused as [{ code: number; context: unknown; req: Request }];
  assert.equal(error.code, 5);
  assert.deepEqual(error.context, { protocol: "3" });
  assert.ok(error.req instanceof Request);
  assert.equal(target.engine.clientsCount, 0);
});

Deno.test("handshake: a missing EIO is refused with 400", async () => {
  await using target = startEngine();
  const response = await request(`http://127.0.0.1:${target.port}/engine.io/?transport=polling`);
  assert.equal(response.status, 400);
  assert.equal(errorOf(response).code, ERROR_CODES.UNSUPPORTED_PROTOCOL_VERSION);
});

Deno.test("handshake: an unknown or missing transport is refused with 400 code 0", async () => {
  await using target = startEngine();
  const unknown = await request(target.url({ transport: "flashsocket" }));
  assert.equal(unknown.status, 400);
  assert.deepEqual(errorOf(unknown), { code: 0, message: "Transport unknown" });
  const missing = await request(`http://127.0.0.1:${target.port}/engine.io/?EIO=4`);
  assert.equal(missing.status, 400);
  assert.equal(errorOf(missing).code, ERROR_CODES.UNKNOWN_TRANSPORT);
});

Deno.test("handshake: an unknown sid is refused with 400 code 1", async () => {
  await using target = startEngine();
  const response = await request(target.url({ sid: "does-not-exist" }));
  assert.equal(response.status, 400);
  assert.deepEqual(errorOf(response), { code: 1, message: "Session ID unknown" });
});

Deno.test("handshake: a POST handshake is refused with 400 code 2", async () => {
  await using target = startEngine();
  const response = await request(target.url(), { method: "POST", body: "4hello" });
  assert.equal(response.status, 400);
  assert.deepEqual(errorOf(response), { code: 2, message: "Bad handshake method" });
  assert.equal(target.engine.clientsCount, 0);
});

Deno.test("handshake: a PUT on a session is refused with 400 and keeps the session", async () => {
  await using target = startEngine();
  const { sid } = await pollingHandshake(target);
  const response = await request(target.url({ sid }), { method: "PUT", body: "4x" });
  assert.equal(response.status, 400);
  assert.equal(errorOf(response).code, ERROR_CODES.BAD_REQUEST);
  assert.equal(target.engine.clientsCount, 1);
});

Deno.test("handshake: the websocket transport without an Upgrade is refused with 400 code 3", async () => {
  await using target = startEngine();
  const { sid } = await pollingHandshake(target);
  const onSession = await request(target.url({ sid, transport: "websocket" }));
  assert.equal(onSession.status, 400);
  assert.equal(errorOf(onSession).code, ERROR_CODES.BAD_REQUEST);
  const handshake = await request(target.url({ transport: "websocket" }));
  assert.equal(handshake.status, 400);
  assert.equal(errorOf(handshake).code, ERROR_CODES.BAD_REQUEST);
  assert.equal(target.engine.clientsCount, 1);
  assert.equal(target.engine.clients.get(sid)?.transport.name, "polling");
});

Deno.test("handshake: a malformed WebSocket upgrade is a 400 code 3, not a 500", async () => {
  await using target = startEngine();
  const { sid } = await pollingHandshake(target);
  // An Upgrade header without Sec-WebSocket-Key: Deno.upgradeWebSocket refuses it.
  const headers = { Upgrade: "websocket", Connection: "Upgrade" };
  const handshake = await request(target.url({ transport: "websocket" }), { headers });
  assert.equal(handshake.status, 400);
  assert.deepEqual(errorOf(handshake), { code: 3, message: "Bad WebSocket upgrade" });
  const upgrade = await request(target.url({ sid, transport: "websocket" }), { headers });
  assert.equal(upgrade.status, 400);
  assert.equal(errorOf(upgrade).code, ERROR_CODES.BAD_REQUEST);
  assert.equal(target.engine.clientsCount, 1);
  assert.equal(target.engine.clients.get(sid)?.upgradeState, "none");
});

Deno.test("handshake: requests off the engine path get 404", async () => {
  await using target = startEngine();
  const response = await request(
    `http://127.0.0.1:${target.port}/other/?EIO=4&transport=polling`,
  );
  assert.equal(response.status, 404);
  const noSlash = await request(
    `http://127.0.0.1:${target.port}/engine.io?EIO=4&transport=polling`,
  );
  assert.equal(noSlash.status, 200);
});

const CORS = { origin: ["http://a.example"], credentials: true };

Deno.test("handshake: CORS reflects an allowed origin with credentials", async () => {
  await using target = startEngine({ cors: CORS });
  const response = await request(target.url(), { headers: { Origin: "http://a.example" } });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("access-control-allow-origin"), "http://a.example");
  assert.equal(response.headers.get("access-control-allow-credentials"), "true");
  assert.match(response.headers.get("vary") ?? "", /Origin/);
  const { sid } = JSON.parse(response.body.slice(1));
  const posted = await request(target.url({ sid }), {
    method: "POST",
    body: "4hi",
    headers: { Origin: "http://a.example" },
  });
  assert.equal(posted.status, 200);
  assert.equal(posted.headers.get("access-control-allow-origin"), "http://a.example");

  const sameOrigin = await request(target.url());
  assert.equal(sameOrigin.status, 200);
  assert.equal(sameOrigin.headers.get("access-control-allow-origin"), null);
});

Deno.test("handshake: a CORS preflight from an allowed origin gets 204", async () => {
  await using target = startEngine({ cors: { ...CORS, maxAge: 60 } });
  const response = await request(target.url(), {
    method: "OPTIONS",
    headers: {
      Origin: "http://a.example",
      "Access-Control-Request-Method": "POST",
      "Access-Control-Request-Headers": "content-type",
    },
  });
  assert.equal(response.status, 204);
  assert.equal(response.body, "");
  assert.equal(response.headers.get("access-control-allow-origin"), "http://a.example");
  assert.equal(response.headers.get("access-control-allow-credentials"), "true");
  assert.match(response.headers.get("access-control-allow-methods") ?? "", /POST/);
  assert.equal(response.headers.get("access-control-allow-headers"), "content-type");
  assert.equal(response.headers.get("access-control-max-age"), "60");
  assert.equal(target.engine.clientsCount, 0);
});

Deno.test("handshake: CORS with origin * sends a literal * and never credentials", async () => {
  await using target = startEngine({ cors: { origin: "*", credentials: true } });
  const response = await request(target.url(), { headers: { Origin: "http://b.example" } });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("access-control-allow-origin"), "*");
  assert.equal(response.headers.get("access-control-allow-credentials"), null);
  assert.doesNotMatch(response.headers.get("vary") ?? "", /Origin/);

  const preflight = await request(target.url(), {
    method: "OPTIONS",
    headers: { Origin: "http://b.example", "Access-Control-Request-Method": "POST" },
  });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
  assert.equal(preflight.headers.get("access-control-allow-credentials"), null);
});

Deno.test("handshake: a disallowed origin gets 403 and no session", async () => {
  await using target = startEngine({ cors: CORS });
  const response = await request(target.url(), { headers: { Origin: "http://evil.example" } });
  assert.equal(response.status, 403);
  assert.equal(errorOf(response).code, ERROR_CODES.FORBIDDEN);
  assert.equal(response.headers.get("access-control-allow-origin"), null);
  const preflight = await request(target.url(), {
    method: "OPTIONS",
    headers: { Origin: "http://evil.example", "Access-Control-Request-Method": "POST" },
  });
  assert.equal(preflight.status, 403);
  assert.equal(target.engine.clientsCount, 0);
});

Deno.test("handshake: allowRequest throwing refuses with 403 and its message", async () => {
  const seen: string[] = [];
  await using target = startEngine({
    allowRequest(request, info) {
      seen.push((info.remoteAddr as Deno.NetAddr).hostname);
      if (request.headers.get("x-token") !== "let-me-in") throw new Error("token required");
    },
  });
  let connections = 0;
  target.engine.on("connection", () => connections++);
  const refused = await request(target.url());
  assert.equal(refused.status, 403);
  assert.deepEqual(errorOf(refused), { code: ERROR_CODES.FORBIDDEN, message: "token required" });
  assert.equal(target.engine.clientsCount, 0);
  assert.equal(connections, 0);

  const allowed = await request(target.url(), { headers: { "x-token": "let-me-in" } });
  assert.equal(allowed.status, 200);
  assert.equal(target.engine.clientsCount, 1);
  assert.deepEqual(seen, ["127.0.0.1", "127.0.0.1"]);
});

Deno.test("handshake: an async allowRequest rejecting refuses with 403", async () => {
  await using target = startEngine({
    allowRequest: () => Promise.reject(new Error("banned")),
  });
  const response = await request(target.url());
  assert.equal(response.status, 403);
  assert.equal(errorOf(response).message, "banned");
  assert.equal(target.engine.clientsCount, 0);
});

Deno.test("handshake: socket.handshake has headers, query, address and url", async () => {
  await using target = startSocketIo();
  const connected = waitFor<[Socket]>(target.io, "connection");
  const response = await request(target.url({ room: "lobby" }), {
    headers: { "x-client": "raw-test" },
  });
  const { sid } = JSON.parse(response.body.slice(1));
  assert.equal((await post(target, sid, "40")).status, 200);
  const [socket] = await connected;
  const { handshake } = socket;
  assert.equal(handshake.headers["x-client"], "raw-test");
  assert.equal(handshake.headers.host, `127.0.0.1:${target.port}`);
  assert.equal(handshake.query.room, "lobby");
  assert.equal(handshake.query.EIO, "4");
  assert.equal(handshake.query.transport, "polling");
  assert.equal(handshake.address, "127.0.0.1");
  assert.equal(handshake.url, `/socket.io/?EIO=4&transport=polling&room=lobby`);
  assert.equal(handshake.xdomain, false);
  assert.equal(handshake.secure, false);
  assert.equal(target.engine.clients.get(sid)?.id, sid);
  assert.match(await poll(target, sid), /^40\{"sid":"[^"]+"\}$/);
});
