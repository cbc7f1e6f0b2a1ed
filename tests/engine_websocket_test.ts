import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { type ConnectionError, type EngineSocket, ERROR_CODES } from "../src/engine/mod.ts";
import {
  type EngineServer,
  errorOf,
  type OpenPacket,
  poll,
  pollingHandshake,
  post,
  RawWebSocket,
  request,
  startEngine,
  until,
  waitFor,
  within,
} from "./helpers/engine_server.ts";

/** Opens a direct WebSocket session; returns the client, its open packet and the server side. */
async function openWebSocketSession(
  target: EngineServer,
): Promise<{ ws: RawWebSocket; open: OpenPacket; session: EngineSocket }> {
  const connected = waitFor<[EngineSocket]>(target.engine, "connection");
  const ws = new RawWebSocket(target.url({ transport: "websocket" }, "ws"));
  const [session] = await connected;
  const frame = await ws.nextText();
  assert.equal(frame[0], "0", `not an open packet: ${frame}`);
  return { ws, open: JSON.parse(frame.slice(1)), session };
}

/** Runs `test` against a fresh engine and a direct WebSocket session, closing both after. */
async function withWebSocketSession(
  options: Parameters<typeof startEngine>[0],
  test: (session: {
    target: EngineServer;
    ws: RawWebSocket;
    open: OpenPacket;
    session: EngineSocket;
  }) => Promise<void>,
): Promise<void> {
  await using target = startEngine(options);
  const opened = await openWebSocketSession(target);
  try {
    await test({ target, ...opened });
  } finally {
    await opened.ws.close();
  }
}

/**
 * Runs `test` on a polling session whose WebSocket upgrade has been probed (`2probe` answered
 * with `3probe`) but not completed; closes everything after.
 */
async function withProbedUpgrade(
  options: Parameters<typeof startEngine>[0],
  test: (upgrade: {
    target: EngineServer;
    sid: string;
    session: EngineSocket;
    ws: RawWebSocket;
  }) => Promise<void>,
): Promise<void> {
  await using target = startEngine(options);
  const { sid } = await pollingHandshake(target);
  const session = target.engine.clients.get(sid)!;
  await using ws = new RawWebSocket(target.url({ transport: "websocket", sid }, "ws"));
  await ws.opened;
  ws.send("2probe");
  assert.equal(await ws.nextText(), "3probe");
  await test({ target, sid, session, ws });
}

Deno.test("websocket: a direct handshake gets the open packet", () =>
  withWebSocketSession(
    { pingInterval: 300, pingTimeout: 200, maxHttpBufferSize: 1_234 },
    ({ target, open, session }) => {
      assert.equal(open.sid, session.id);
      assert.deepEqual(open.upgrades, []);
      assert.equal(open.pingInterval, 300);
      assert.equal(open.pingTimeout, 200);
      assert.equal(open.maxPayload, 1_234);
      assert.equal(session.transport.name, "websocket");
      assert.equal(session.request.headers.upgrade?.toLowerCase(), "websocket");
      assert.equal(session.remoteAddress, "127.0.0.1");
      assert.equal(target.engine.clientsCount, 1);
      return Promise.resolve();
    },
  ));

Deno.test("websocket: a text message is echoed", () =>
  withWebSocketSession({}, async ({ ws, session }) => {
    session.on("message", (data) => session.send(data ?? ""));
    ws.send("4hello");
    assert.equal(await ws.nextText(), "4hello");
    ws.send("4ünïcode ✓");
    assert.equal(await ws.nextText(), "4ünïcode ✓");
  }));

Deno.test("websocket: binary frames arrive as Buffers and are sent as binary frames", () =>
  withWebSocketSession({}, async ({ ws, session }) => {
    const received = waitFor<[Buffer]>(session, "message");
    ws.send(new Uint8Array([1, 2, 3, 250]));
    const [data] = await received;
    assert.ok(Buffer.isBuffer(data));
    assert.deepEqual([...data], [1, 2, 3, 250]);

    session.send(new Uint8Array([9, 8, 7]));
    const frame = await ws.next();
    assert.ok(frame instanceof Uint8Array, "expected a binary frame");
    assert.deepEqual([...frame], [9, 8, 7]);

    const fromBase64 = waitFor<[Buffer]>(session, "message");
    ws.send("bAQID");
    assert.deepEqual([...(await fromBase64)[0]], [1, 2, 3]);
  }));

Deno.test("websocket: the ping timeout closes a silent raw websocket", () =>
  withWebSocketSession({ pingInterval: 200, pingTimeout: 150 }, async ({ target, ws, session }) => {
    const closed = waitFor<[string]>(session, "close");
    assert.equal(await ws.nextText(), "2");
    const [reason] = await closed;
    assert.equal(reason, "ping timeout");
    await within(ws.closed, 2_000, "the server to close the WebSocket");
    assert.equal(ws.socket.readyState, WebSocket.CLOSED);
    assert.equal(target.engine.clientsCount, 0);
  }));

Deno.test("websocket: answering pings keeps it open past several intervals", () =>
  // Unanswered, the session would close at 600 ms (pingInterval + pingTimeout), before the test's
  // 800 ms; a pong has 400 ms.
  withWebSocketSession({ pingInterval: 200, pingTimeout: 400 }, async ({ ws, session }) => {
    let heartbeats = 0;
    session.on("heartbeat", () => heartbeats++);
    const started = Date.now();
    for (let i = 0; i < 4; i++) {
      assert.equal(await ws.nextText(), "2");
      ws.send("3");
    }
    // Four intervals later, past pingInterval + pingTimeout, the session is still up.
    await until(() => heartbeats === 4, 2_000, "the fourth pong");
    assert.ok(Date.now() - started >= 4 * 200);
    assert.equal(session.readyState, "open");
    assert.equal(ws.socket.readyState, WebSocket.OPEN);
    assert.equal(heartbeats, 4);
  }));

Deno.test("websocket: the client closing its socket closes the session with transport close", () =>
  withWebSocketSession({}, async ({ target, ws, session }) => {
    const closed = waitFor<[string]>(session, "close");
    await ws.close();
    assert.equal((await closed)[0], "transport close");
    assert.equal(target.engine.clientsCount, 0);
  }));

Deno.test("websocket: a close packet closes the session and the socket", () =>
  withWebSocketSession({}, async ({ ws, session }) => {
    const closed = waitFor<[string]>(session, "close");
    ws.send("1");
    assert.equal((await closed)[0], "transport close");
    await within(ws.closed, 2_000, "the server to close the WebSocket");
  }));

Deno.test("websocket: an invalid frame closes with parse error", () =>
  withWebSocketSession({}, async ({ ws, session }) => {
    const closed = waitFor<[string]>(session, "close");
    ws.send("9xyz");
    assert.equal((await closed)[0], "parse error");
    await within(ws.closed, 2_000, "the server to close the WebSocket");
  }));

Deno.test("websocket: an oversize frame closes the session", () =>
  withWebSocketSession({ maxHttpBufferSize: 100 }, async ({ target, ws, session }) => {
    const received: unknown[] = [];
    session.on("message", (data) => received.push(data));
    const closed = waitFor<[string]>(session, "close");
    ws.send("4" + "x".repeat(99));
    ws.send("4" + "é".repeat(50));
    ws.send(new Uint8Array(101));
    assert.equal((await closed)[0], "transport error");
    assert.deepEqual(received, ["x".repeat(99)]);
    await within(ws.closed, 2_000, "the server to close the WebSocket");
    assert.equal(target.engine.clientsCount, 0);
  }));

Deno.test("websocket: an oversize frame closes the websocket with 1009 Message Too Big", () =>
  withWebSocketSession({ maxHttpBufferSize: 100 }, async ({ ws }) => {
    ws.send("4" + "x".repeat(100));
    const event = await within(ws.closed, 2_000, "the server to close the WebSocket");
    assert.equal(event.code, 1009);
  }));

Deno.test("websocket: a second websocket with the sid of a websocket session is closed at once", async () => {
  const target = startEngine();
  const { ws, session } = await openWebSocketSession(target);
  const intruder = new RawWebSocket(target.url({ transport: "websocket", sid: session.id }, "ws"));
  try {
    await intruder.opened;
    await within(intruder.closed, 2_000, "the second WebSocket to close");
    assert.equal(session.upgradeState, "none");
    session.send("still here");
    assert.equal(await ws.nextText(), "4still here");
  } finally {
    await intruder.close();
    await ws.close();
    await target.close();
  }
});

Deno.test("websocket: upgrade from polling moves the session to the websocket", async () => {
  await using target = startEngine();
  const { sid } = await pollingHandshake(target);
  const session = target.engine.clients.get(sid)!;
  const pending = poll(target, sid);
  await until(() => session.transport.writable, 2_000, "the GET to be pending");
  await using ws = new RawWebSocket(target.url({ transport: "websocket", sid }, "ws"));
  await ws.opened;
  const upgrading = waitFor(session, "upgrading");
  ws.send("2probe");
  assert.equal(await ws.nextText(), "3probe");
  await upgrading;
  assert.equal(session.upgradeState, "upgrading");
  assert.equal(await pending, "6");

  const upgraded = waitFor(session, "upgrade");
  ws.send("5");
  await upgraded;
  assert.equal(session.transport.name, "websocket");
  assert.equal(session.upgradeState, "upgraded");

  session.send("over ws");
  assert.equal(await ws.nextText(), "4over ws");
  const received = waitFor<[string]>(session, "message");
  ws.send("4from client");
  assert.deepEqual(await received, ["from client"]);
});

Deno.test("websocket: a poll sent after the upgrade packet but read before it is refused as a late poll", async () => {
  // The official suite sends 2probe and 5, then polls: Deno may read that GET (another
  // connection) before either frame. Here it is read first for sure.
  await using target = startEngine();
  const { sid } = await pollingHandshake(target);
  const session = target.engine.clients.get(sid)!;
  const refusals: ConnectionError[] = [];
  target.engine.on("connection_error", (refusal) => refusals.push(refusal));
  await using ws = new RawWebSocket(target.url({ transport: "websocket", sid }, "ws"));
  await ws.opened;
  const polled = request(target.url({ sid }));
  await until(() => session.transport.writable, 2_000, "the GET to be pending");
  const upgraded = waitFor(session, "upgrade");
  ws.send("2probe");
  ws.send("5");
  await upgraded;

  const response = await polled;
  assert.equal(response.status, 400, response.body);
  assert.deepEqual(errorOf(response), { code: ERROR_CODES.BAD_REQUEST, message: "Bad request" });
  assert.deepEqual(refusals.map((refusal) => refusal.context), [
    { name: "TRANSPORT_MISMATCH", transport: "polling", previousTransport: "websocket" },
  ]);
  assert.equal(await ws.nextText(), "3probe");
  const received = waitFor<[string]>(session, "message");
  ws.send("4hello");
  assert.deepEqual(await received, ["hello"]);
  assert.equal(session.readyState, "open");
});

Deno.test("websocket: polling requests on an upgraded sid get 400 Bad request and the websocket carries on", () =>
  withProbedUpgrade({}, async ({ target, sid, session, ws }) => {
    const upgraded = waitFor(session, "upgrade");
    ws.send("5");
    await upgraded;
    const polling = await request(target.url({ sid }));
    assert.equal(polling.status, 400);
    assert.deepEqual(errorOf(polling), { code: ERROR_CODES.BAD_REQUEST, message: "Bad request" });
    const posting = await post(target, sid, "4late");
    assert.equal(posting.status, 400);
    assert.deepEqual(errorOf(posting), { code: ERROR_CODES.BAD_REQUEST, message: "Bad request" });

    assert.equal(session.readyState, "open");
    session.send("still here");
    assert.equal(await ws.nextText(), "4still here");
    const received = waitFor<[string]>(session, "message");
    ws.send("4and you");
    assert.deepEqual(await received, ["and you"]);
  }));

Deno.test("websocket: a second websocket on an upgrading or upgraded sid is accepted, then closed at once", () =>
  withProbedUpgrade({}, async ({ target, sid, session, ws }) => {
    const url = target.url({ transport: "websocket", sid }, "ws");
    const duringUpgrade = new RawWebSocket(url);
    await duringUpgrade.opened;
    await within(duringUpgrade.closed, 2_000, "the WebSocket opened mid-upgrade to close");
    assert.equal(session.upgradeState, "upgrading");

    const upgraded = waitFor(session, "upgrade");
    ws.send("5");
    await upgraded;
    const afterUpgrade = new RawWebSocket(url);
    await afterUpgrade.opened;
    await within(
      afterUpgrade.closed,
      2_000,
      "the WebSocket opened after the upgrade to close",
    );

    assert.equal(session.readyState, "open");
    assert.equal(session.transport.name, "websocket");
    session.send("still here");
    assert.equal(await ws.nextText(), "4still here");
  }));

Deno.test("websocket: packets written during the upgrade arrive over the websocket", () =>
  withProbedUpgrade({}, async ({ session, ws }) => {
    // No GET is pending, so these wait in the buffer and move to the websocket.
    session.send("one");
    session.send("two");
    const upgraded = waitFor(session, "upgrade");
    ws.send("5");
    await upgraded;
    assert.equal(await ws.nextText(), "4one");
    assert.equal(await ws.nextText(), "4two");
  }));

Deno.test("websocket: an upgrade timeout closes the websocket but keeps the polling session", () =>
  withProbedUpgrade({ upgradeTimeout: 200 }, async ({ target, sid, session, ws }) => {
    await within(ws.closed, 2_000, "the upgrade timeout to close the WebSocket");
    assert.equal(session.readyState, "open");
    assert.equal(session.transport.name, "polling");
    assert.equal(session.upgradeState, "none");

    const received = waitFor<[string]>(session, "message");
    assert.equal((await post(target, sid, "4still polling")).status, 200);
    assert.deepEqual(await received, ["still polling"]);
    session.send("reply");
    assert.equal(await poll(target, sid), "4reply");
  }));

Deno.test("websocket: closing the session mid-upgrade closes the probing websocket", () =>
  withProbedUpgrade({}, async ({ target, session, ws }) => {
    const closed = waitFor<[string]>(session, "close");
    session.close();
    assert.equal((await closed)[0], "forced close");
    await within(ws.closed, 2_000, "the probing WebSocket to close");
    assert.equal(target.engine.clientsCount, 0);
  }));

Deno.test("websocket: a client noop is ignored and a client ping closes with transport error", () =>
  withWebSocketSession({}, async ({ ws, session }) => {
    const messages: unknown[] = [];
    session.on("message", (data: unknown) => messages.push(data));
    ws.send("6");
    ws.send("4still here");
    const closed = waitFor<[string]>(session, "close");
    ws.send("2");
    assert.equal((await closed)[0], "transport error");
    assert.deepEqual(messages, ["still here"]);
  }));
