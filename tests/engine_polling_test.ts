import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { type EngineSocket, ERROR_CODES } from "../src/engine/mod.ts";
import {
  type EngineServer,
  errorOf,
  poll,
  pollingHandshake,
  pollPackets,
  post,
  request,
  sleep,
  startEngine,
  until,
  waitFor,
} from "./helpers/engine_server.ts";
import { stall } from "./helpers/time.ts";

/** Handshakes over polling and returns the server side of the session too. */
async function openSession(target: EngineServer): Promise<{ sid: string; session: EngineSocket }> {
  const { sid } = await pollingHandshake(target);
  const session = target.engine.clients.get(sid);
  assert.ok(session, "the session is registered");
  return { sid, session };
}

/** Starts a GET for the session and waits until the server holds it open. */
async function pendingPoll(
  target: EngineServer,
  session: EngineSocket,
): Promise<{ response: Promise<string> }> {
  const response = poll(target, session.id);
  await until(() => session.transport.writable, 2_000, "the GET to be pending");
  // Wrapped, or awaiting this function would wait for the GET's answer too.
  return { response };
}

Deno.test("polling: a GET returns the queued packets joined by the record separator", async () => {
  await using target = startEngine();
  const { sid, session } = await openSession(target);
  session.send("first");
  session.send("second");
  session.send("with\x1fcontrol and ünïcode");
  assert.deepEqual(await pollPackets(target, sid), [
    "4first",
    "4second",
    "4with\x1fcontrol and ünïcode",
  ]);
});

Deno.test("polling: a pending GET is answered as soon as the server writes", async () => {
  await using target = startEngine();
  const { session } = await openSession(target);
  const flushed: string[] = [];
  const { response } = await pendingPoll(target, session);
  session.write("late", undefined, () => flushed.push("late"));
  assert.equal(await response, "4late");
  assert.deepEqual(flushed, ["late"]);
});

Deno.test("polling: a POSTed 4hello is delivered as a message", async () => {
  await using target = startEngine();
  const { sid, session } = await openSession(target);
  const received: unknown[] = [];
  session.on("message", (data) => received.push(data));
  const response = await post(target, sid, "4hello");
  assert.equal(response.status, 200);
  assert.equal(response.body, "ok");
  assert.deepEqual(received, ["hello"]);

  await post(target, sid, "4a\x1e4b\x1ebAQID");
  assert.equal(received.length, 4);
  assert.deepEqual(received.slice(1, 3), ["a", "b"]);
  assert.ok(Buffer.isBuffer(received[3]));
  assert.deepEqual([...(received[3] as Buffer)], [1, 2, 3]);
});

Deno.test("polling: binary sent by the server arrives as b<base64>", async () => {
  await using target = startEngine();
  const { sid, session } = await openSession(target);
  session.send(new Uint8Array([0, 1, 2, 255]));
  session.send("text");
  assert.deepEqual(await pollPackets(target, sid), ["bAAEC/w==", "4text"]);
});

Deno.test("polling: a second pending GET is a 400 and closes the session", async () => {
  await using target = startEngine();
  const { sid, session } = await openSession(target);
  const closed = waitFor<[string]>(session, "close");
  const { response: first } = await pendingPoll(target, session);
  const second = await request(target.url({ sid }));
  assert.equal(second.status, 400);
  assert.equal(errorOf(second).code, ERROR_CODES.BAD_REQUEST);
  assert.equal(await first, "1");
  const [reason] = await closed;
  assert.equal(reason, "transport error");
  assert.equal(target.engine.clientsCount, 0);

  const after = await request(target.url({ sid }));
  assert.equal(after.status, 400);
  assert.equal(errorOf(after).code, ERROR_CODES.UNKNOWN_SID);
});

Deno.test("polling: a body over maxHttpBufferSize is a 413 and closes the session", async () => {
  await using target = startEngine({ maxHttpBufferSize: 100 });
  const { sid, session } = await openSession(target);
  const received: unknown[] = [];
  session.on("message", (data) => received.push(data));
  const closed = waitFor<[string]>(session, "close");
  assert.equal((await post(target, sid, "4" + "x".repeat(99))).status, 200);
  const response = await post(target, sid, "4" + "x".repeat(100));
  assert.equal(response.status, 413);
  assert.equal(errorOf(response).code, ERROR_CODES.BAD_REQUEST);
  assert.equal((await closed)[0], "transport error");
  assert.equal(received.length, 1);
  assert.equal(errorOf(await request(target.url({ sid }))).code, ERROR_CODES.UNKNOWN_SID);
});

Deno.test("polling: a streamed body without content-length is cut off at the limit", async () => {
  await using target = startEngine({ maxHttpBufferSize: 100 });
  const { sid, session } = await openSession(target);
  const closed = waitFor<[string]>(session, "close");
  const chunk = new TextEncoder().encode("4" + "y".repeat(59));
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(chunk);
      controller.enqueue(chunk);
      controller.close();
    },
  });
  const response = await request(target.url({ sid }), { method: "POST", body });
  assert.equal(response.status, 413);
  assert.equal((await closed)[0], "transport error");
});

Deno.test("polling: a POSTed close packet answers the waiting GET with a noop and closes with transport close", async () => {
  await using target = startEngine();
  const { sid, session } = await openSession(target);
  const closed = waitFor<[string]>(session, "close");
  const { response: pending } = await pendingPoll(target, session);
  assert.equal((await post(target, sid, "1")).status, 200);
  assert.equal((await closed)[0], "transport close");
  assert.equal(await pending, "6", "the waiting GET is answered with a noop");
  assert.equal(target.engine.clientsCount, 0);
  assert.equal(errorOf(await request(target.url({ sid }))).code, ERROR_CODES.UNKNOWN_SID);
});

Deno.test("polling: a bad payload closes with parse error", async () => {
  await using target = startEngine();
  const { sid, session } = await openSession(target);
  const closed = waitFor<[string, Error]>(session, "close");
  const response = await post(target, sid, "9xyz");
  assert.equal(response.status, 400);
  assert.equal(errorOf(response).code, ERROR_CODES.BAD_REQUEST);
  const [reason, description] = await closed;
  assert.equal(reason, "parse error");
  assert.match(description.message, /unknown packet type/);
  assert.equal(target.engine.clientsCount, 0);
});

Deno.test("polling: a ping is answered by a POSTed pong, and silence is a ping timeout", async () => {
  // A pong has 500 ms to arrive: a busy machine may take longer than the 100 ms this once gave.
  await using target = startEngine({ pingInterval: 150, pingTimeout: 500 });
  const { sid, session } = await openSession(target);
  let heartbeats = 0;
  session.on("heartbeat", () => heartbeats++);
  for (let i = 0; i < 3; i++) {
    assert.equal(await poll(target, sid), "2");
    assert.equal((await post(target, sid, "3")).status, 200);
  }
  assert.equal(heartbeats, 3);
  const closed = waitFor<[string]>(session, "close");
  assert.equal(await poll(target, sid), "2");
  assert.equal((await closed)[0], "ping timeout");
  assert.equal(target.engine.clientsCount, 0);
});

Deno.test("polling: a client that polls and sends but never pongs closes at pingInterval + pingTimeout", async () => {
  // Closes 800 ms after the handshake. Had the message counted as a pong (sent at ~450 ms), the
  // next ping would come at ~650 ms and the timeout at ~1,250 ms: the bounds tell the two apart
  // with room for a busy machine.
  await using target = startEngine({ pingInterval: 200, pingTimeout: 600 });
  const started = Date.now();
  const { sid, session } = await openSession(target);
  const closed = waitFor<[string]>(session, "close");
  assert.equal(await poll(target, sid), "2");
  // Busy but deaf: a message is no pong, and earns no extension (as in engine.io 6).
  await sleep(250);
  assert.equal((await post(target, sid, "4still here")).status, 200);
  const { response } = await pendingPoll(target, session);
  const [reason] = await closed;
  const elapsed = Date.now() - started;
  assert.equal(reason, "ping timeout");
  assert.equal(await response, "1");
  assert.ok(elapsed >= 790 && elapsed < 1_150, `closed ${elapsed} ms after the handshake`);
});

Deno.test("polling: a poll after pingInterval + pingTimeout finds the session closed, however late the timers run", async () => {
  // The official suite's case: it polls 500 ms after the handshake and wants a 400. Here neither
  // heartbeat timer can fire before the poll is read, as on a loaded machine.
  await using target = startEngine({ pingInterval: 300, pingTimeout: 200 });
  const { sid, session } = await openSession(target);
  const closed = waitFor<[string]>(session, "close");
  stall(300 + 200 + 50);
  const response = await request(target.url({ sid }));
  assert.equal(response.status, 400, response.body);
  assert.deepEqual(errorOf(response), {
    code: ERROR_CODES.UNKNOWN_SID,
    message: "Session ID unknown",
  });
  assert.equal((await closed)[0], "ping timeout");
  assert.equal(target.engine.clientsCount, 0);
});

Deno.test("polling: a ping timer that fires late does not push the pong deadline back", async () => {
  // The ping is due at 300 ms and the pong at 1,300 ms. The stall sends the ping 700 ms late:
  // timed from the ping, the session would live to ~2,000 ms.
  await using target = startEngine({ pingInterval: 300, pingTimeout: 1_000 });
  const started = performance.now();
  const { session } = await openSession(target);
  const closed = waitFor<[string]>(session, "close", 5_000);
  stall(1_000);
  const [reason] = await closed;
  const elapsed = performance.now() - started;
  assert.equal(reason, "ping timeout");
  assert.ok(
    elapsed >= 1_290 && elapsed < 1_700,
    `closed ${Math.round(elapsed)} ms after the handshake`,
  );
});

Deno.test("polling: closing the session from the server answers the pending GET", async () => {
  await using target = startEngine();
  const { session } = await openSession(target);
  const closed = waitFor<[string]>(session, "close");
  const { response: pending } = await pendingPoll(target, session);
  session.close();
  assert.equal(await pending, "1");
  assert.equal((await closed)[0], "forced close");
});

Deno.test("polling: a server close while no GET waits is delivered by the next GET, then the sid is unknown", async () => {
  await using target = startEngine();
  const { sid, session } = await openSession(target);
  const closed = waitFor<[string]>(session, "close");
  session.close();
  assert.equal((await closed)[0], "forced close");
  assert.equal(target.engine.clientsCount, 0);
  assert.deepEqual(await pollPackets(target, sid), ["6", "1"]);
  const after = await request(target.url({ sid }));
  assert.equal(errorOf(after).code, ERROR_CODES.UNKNOWN_SID);
});

Deno.test("polling: an undelivered server close is forgotten after pingTimeout", async () => {
  await using target = startEngine({ pingInterval: 10_000, pingTimeout: 100 });
  const { sid, session } = await openSession(target);
  session.close();
  await sleep(200);
  const late = await request(target.url({ sid }));
  assert.equal(errorOf(late).code, ERROR_CODES.UNKNOWN_SID);
});

Deno.test("polling: a graceful server close flushes buffered packets first", async () => {
  await using target = startEngine();
  const { sid, session } = await openSession(target);
  const closed = waitFor<[string]>(session, "close");
  session.send("bye");
  session.close();
  assert.equal(session.readyState, "closing");
  assert.equal(await poll(target, sid), "4bye");
  assert.equal((await closed)[0], "forced close");
  assert.equal(target.engine.clientsCount, 0);
  assert.deepEqual(await pollPackets(target, sid), ["6", "1"], "then the close");
});

Deno.test("polling: an aborted pending GET closes the session", async () => {
  await using target = startEngine();
  const { sid, session } = await openSession(target);
  const closed = waitFor<[string]>(session, "close");
  const controller = new AbortController();
  const aborted = fetch(target.url({ sid }), { signal: controller.signal });
  await until(() => session.transport.writable, 2_000, "the GET to be pending");
  controller.abort();
  await assert.rejects(aborted);
  assert.equal((await closed)[0], "transport error");
});

Deno.test("polling: engine.close() also ends a session still flushing a graceful close", async () => {
  await using target = startEngine();
  const { session } = await openSession(target);
  const closed = waitFor<[string]>(session, "close");
  session.send("never polled");
  session.close();
  assert.equal(session.readyState, "closing");
  target.engine.close();
  assert.equal((await closed)[0], "forced close");
  assert.equal(target.engine.clientsCount, 0);
});
