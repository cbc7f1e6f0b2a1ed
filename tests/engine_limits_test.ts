/**
 * The engine under abuse: clients that stop reading, overlapping polls, slow-drip bodies and
 * handshakes that are never followed up must all end their session instead of holding memory,
 * while a client that reads keeps its session however large the frames it is sent.
 */
import assert from "node:assert/strict";
import { BACKLOG_CEILING_FACTOR, type EngineSocket } from "../src/engine/mod.ts";
import type { TransportError } from "../src/engine/transport.ts";
import {
  errorOf,
  poll,
  pollingHandshake,
  post,
  RawWebSocket,
  request,
  sleep,
  startEngine,
  until,
  waitFor,
  within,
} from "./helpers/engine_server.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads from `conn` until `pattern` shows up in what was read; returns all of it. */
async function readUntil(conn: Deno.Conn, pattern: RegExp, timeoutMs = 3_000): Promise<string> {
  let text = "";
  const buffer = new Uint8Array(4096);
  await within(
    (async () => {
      while (!pattern.test(text)) {
        const read = await conn.read(buffer);
        if (read === null) throw new Error(`connection closed before ${pattern}: ${text}`);
        text += decoder.decode(buffer.subarray(0, read));
      }
    })(),
    timeoutMs,
    `${pattern}`,
  );
  return text;
}

/** Opens a WebSocket session over a raw TCP connection that the test controls (and may not read). */
async function rawWebSocketUpgrade(port: number, path: string): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode(
    `GET ${path}?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
      "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Key: ${btoa("fuzz-slow-reader")}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  ));
  await readUntil(conn, /\r\n\r\n/);
  return conn;
}

function rssMb(): number {
  return Deno.memoryUsage().rss / 2 ** 20;
}

/** A message larger than the default maxBufferedBytes (1 MB), as a long history can be. */
const LARGE_MESSAGE = "h".repeat(2.5 * 2 ** 20);

Deno.test("limits: a WebSocket client that stops reading is closed at the backlog ceiling, not buffered without bound", async () => {
  const maxBufferedBytes = 256 * 1024;
  // A grace longer than the test: only the ceiling can close it.
  await using target = startEngine({ maxBufferedBytes, backlogGraceMs: 60_000 });
  const connected = waitFor<[EngineSocket]>(target.engine, "connection");
  using _conn = await rawWebSocketUpgrade(target.port, target.engine.options.path);
  const [session] = await connected;
  const closed = waitFor<[string, TransportError?]>(session, "close", 20_000);
  const rssBefore = rssMb();
  const chunk = "x".repeat(16 * 1024);
  let sent = 0;
  // What a broadcast to this client does: keep writing while it never reads.
  while (session.readyState === "open" && sent < 256 * 2 ** 20) {
    session.send(chunk);
    sent += chunk.length;
    if (sent % (64 * chunk.length) === 0) await sleep(1);
  }
  const [reason, description] = await closed;
  assert.equal(reason, "transport error");
  assert.equal(description?.code, "send_buffer_full");
  // Only the socket buffers of the kernel and the limit itself were ever held.
  assert.ok(sent < 64 * 2 ** 20, `closed only after ${sent} bytes`);
  assert.ok(rssMb() - rssBefore < 128, `RSS grew by ${rssMb() - rssBefore} MB`);
  assert.equal(target.engine.clientsCount, 0);
});

Deno.test("limits: packets piling up for a polling client that stopped polling close it", async () => {
  await using target = startEngine({ maxBufferedPackets: 10 });
  const connected = waitFor<[EngineSocket]>(target.engine, "connection");
  await pollingHandshake(target);
  const [session] = await connected;
  const closed = waitFor<[string, TransportError?]>(session, "close");
  for (let n = 0; n < 10; n++) session.send(`m${n}`);
  assert.equal(session.readyState, "open", "ten queued packets are within the limit");
  session.send("one too many");
  const [reason, description] = await closed;
  assert.equal(reason, "transport error");
  assert.equal(description?.code, "send_buffer_full");
});

Deno.test("limits: bytes left unread by a polling client past the grace period close it", async () => {
  await using target = startEngine({ maxBufferedBytes: 10_000, backlogGraceMs: 200 });
  const connected = waitFor<[EngineSocket]>(target.engine, "connection");
  await pollingHandshake(target);
  const [session] = await connected;
  const closed = waitFor<[string, TransportError?]>(session, "close");
  session.send("x".repeat(5_000));
  const overLimit = Date.now();
  session.send("x".repeat(5_001));
  assert.equal(session.readyState, "open", "over the limit, the client gets time to read");
  const [reason, description] = await closed;
  assert.equal(reason, "transport error");
  assert.equal(description?.code, "send_buffer_full");
  assert.ok(Date.now() - overLimit >= 190, "closed only once the grace period is over");
});

Deno.test("limits: a backlog over the ceiling closes a polling client at once", async () => {
  const maxBufferedBytes = 10_000;
  await using target = startEngine({ maxBufferedBytes, backlogGraceMs: 60_000 });
  const connected = waitFor<[EngineSocket]>(target.engine, "connection");
  await pollingHandshake(target);
  const [session] = await connected;
  const closed = waitFor<[string, TransportError?]>(session, "close");
  const chunk = "x".repeat(maxBufferedBytes);
  for (let n = 0; n < BACKLOG_CEILING_FACTOR; n++) session.send(chunk);
  assert.equal(session.readyState, "open", "at the ceiling, not over it");
  session.send("x");
  assert.equal(session.readyState, "closed");
  const [reason, description] = await closed;
  assert.equal(reason, "transport error");
  assert.equal(description?.code, "send_buffer_full");
});

Deno.test("limits: a 2.5 MB message reaches a polling client that reads, and the session stays open", async () => {
  await using target = startEngine({ backlogGraceMs: 200 });
  const { sid } = await pollingHandshake(target);
  const session = target.engine.clients.get(sid)!;
  // Sent between two polls: it waits in the write buffer until the client's next GET.
  session.send(LARGE_MESSAGE);
  assert.equal(session.readyState, "open");
  const payload = await poll(target, sid);
  assert.equal(payload.length, LARGE_MESSAGE.length + 1);
  assert.ok(payload === "4" + LARGE_MESSAGE, "the message arrives whole");
  await sleep(300);
  assert.equal(session.readyState, "open", "still open after the grace period");
});

Deno.test("limits: a 2.5 MB message reaches a WebSocket client that reads, and the session stays open", async () => {
  await using target = startEngine({ backlogGraceMs: 200 });
  const connected = waitFor<[EngineSocket]>(target.engine, "connection");
  await using ws = new RawWebSocket(target.url({ transport: "websocket" }, "ws"));
  const [session] = await connected;
  assert.equal((await ws.nextText())[0], "0");
  session.send(LARGE_MESSAGE);
  assert.equal(session.readyState, "open");
  const frame = await ws.nextText(5_000);
  assert.equal(frame.length, LARGE_MESSAGE.length + 1);
  assert.ok(frame === "4" + LARGE_MESSAGE, "the message arrives whole");
  await sleep(300);
  assert.equal(session.readyState, "open", "still open after the grace period");
  session.send("after");
  assert.equal(await ws.nextText(), "4after");
});

Deno.test("limits: concurrent GETs on one sid are refused and end the session", async () => {
  await using target = startEngine();
  const { sid } = await pollingHandshake(target);
  const first = request(target.url({ sid }));
  await until(() => target.engine.clients.get(sid)?.transport.writable === true);
  const second = await request(target.url({ sid }));
  assert.equal(second.status, 400);
  assert.equal(errorOf(second).code, 3);
  assert.equal((await first).body, "1", "the waiting GET is answered with a close packet");
  const after = await request(target.url({ sid }));
  assert.equal(errorOf(after).code, 1, "the sid is gone");
});

Deno.test("limits: a POST body dripped slower than pollBodyTimeout is a 408 and ends the session", async () => {
  await using target = startEngine({ pollBodyTimeout: 300 });
  const { sid } = await pollingHandshake(target);
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: target.port });
  const closed = waitFor<[string, TransportError?]>(target.engine.clients.get(sid)!, "close");
  const path = `${target.engine.options.path}?EIO=4&transport=polling&sid=${sid}`;
  await conn.write(encoder.encode(
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n4`,
  ));
  const dripping = (async () => {
    for (let n = 0; n < 20; n++) {
      await sleep(50);
      await conn.write(encoder.encode("x")).catch(() => {});
    }
  })();
  const response = await readUntil(conn, /\r\n\r\n\{[^}]*\}/, 5_000);
  assert.match(response, /^HTTP\/1\.1 408/);
  assert.match(response, /"code":3/);
  const [reason, description] = await closed;
  assert.equal(reason, "transport error");
  assert.equal(description?.code, "body_timeout");
  await dripping;
});

Deno.test("limits: polling handshakes that are never followed up expire by ping timeout", async () => {
  await using target = startEngine({ pingInterval: 100, pingTimeout: 100 });
  const handshakes = 200;
  // Each session is watched from its opening: on a busy machine the first may expire before the
  // last handshake is answered.
  const closes: Promise<[string]>[] = [];
  target.engine.on("connection", (session) => closes.push(waitFor(session, "close", 5_000)));
  await Promise.all(Array.from({ length: handshakes }, () => pollingHandshake(target)));
  assert.equal(closes.length, handshakes);
  const reasons = new Set((await Promise.all(closes)).map(([reason]) => reason));
  assert.deepEqual([...reasons], ["ping timeout"]);
  assert.equal(target.engine.clientsCount, 0);
});

Deno.test("limits: a polling client posting packets faster than maxPacketsPerSecond is closed", async () => {
  await using target = startEngine({ maxPacketsPerSecond: 10 });
  const connected = waitFor<[EngineSocket]>(target.engine, "connection");
  const { sid } = await pollingHandshake(target);
  const [session] = await connected;
  const closed = waitFor<[string, TransportError?]>(session, "close");
  // Ten seconds' worth at once is allowed...
  assert.equal((await post(target, sid, Array(100).fill("4a").join("\x1e"))).status, 200);
  assert.equal(session.readyState, "open", "a burst of 100 is within the limit");
  // ...one more packet is not.
  await post(target, sid, "4b");
  const [reason, description] = await closed;
  assert.equal(reason, "transport error");
  assert.equal(description?.code, "packet_rate_exceeded");
});

Deno.test("limits: a WebSocket client flooding packets is closed; one within the rate is not", async () => {
  await using target = startEngine({ maxPacketsPerSecond: 20 });
  await using calm = new RawWebSocket(target.url({ transport: "websocket" }, "ws"));
  await using flooder = new RawWebSocket(target.url({ transport: "websocket" }, "ws"));
  await calm.nextText();
  await flooder.nextText();
  const sessions = [...target.engine.clients.values()];
  const closes = sessions.map((session) => waitFor<[string, TransportError?]>(session, "close"));
  for (let n = 0; n < 150; n++) calm.send("4calm");
  for (let n = 0; n < 1000; n++) flooder.send("4flood");
  const [reason, description] = await Promise.race(closes);
  assert.equal(reason, "transport error");
  assert.equal(description?.code, "packet_rate_exceeded");
  await sleep(50);
  assert.deepEqual(
    sessions.map((session) => session.readyState),
    sessions.map((_, n) => n === 0 ? "open" : "closed"),
    "only the flooder's session closed",
  );
});
