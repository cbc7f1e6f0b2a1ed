/**
 * One user with a valid token floods each client event at a real `main.ts` with default limits,
 * as fast as a raw WebSocket can send: the server's memory stays bounded and the other users —
 * one polling, one on a WebSocket — notice nothing.
 *
 * Besides the events, the user reconnects naming a hundred rooms to catch up on, holds sockets that
 * never read such a catch-up, piles up dropped sessions to recover, and guesses API keys.
 *
 * The floods run at once for FLOOD_MS (default 2 s; `FLOOD_MS=10000 deno task test tests/chat_abuse_test.ts`
 * for the full 10 s).
 * @module
 */
import assert from "node:assert/strict";
import { ChatClient, sleep, tokenFor } from "./helpers/chat_server.ts";
import { tempDir } from "./helpers/dispose.ts";
import { startMain } from "./helpers/main_process.ts";
import { openKvStore } from "../src/store/mod.ts";

const FLOOD_MS = Number(Deno.env.get("FLOOD_MS") ?? 2000);
/** How much the server's resident memory may grow over all the floods. */
const MAX_RSS_GROWTH_BYTES = 50 * 1024 * 1024;

/** The server's resident memory, as its `/metrics` reports it. */
async function residentBytes(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(text.match(/^process_resident_memory_bytes (\d+)/m)?.[1]);
}

const API_KEY = "abuse-test-api-key-0123456789";
/** The sockets a user may hold (MAX_SOCKETS_PER_USER's default). */
const MAX_SOCKETS_PER_USER = 10;

/**
 * Piles up dropped sessions and brings them all back, as a user would who wants more sockets than
 * the cap: six stock clients connect one after another, each dropping its transport at once (which
 * frees its place for the next), then all six come back with their session ids and stay until `ms`
 * is over, retrying when refused. Returns how many connects socket.io reported as recovered.
 */
async function recoveryFlood(url: string, token: string, ms: number) {
  const { io } = await import("socket.io-client");
  const end = Date.now() + ms;
  const clients = [];
  let recovered = 0;
  for (let n = 0; n < 6 && Date.now() < end; n++) {
    const client = io(url, {
      auth: { token },
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
    });
    clients.push(client);
    client.on("connect", () => client.recovered && recovered++);
    // Refused while the other floods hold every place: try again until this one is in.
    while (!client.connected && Date.now() < end) {
      await new Promise((resolve) => {
        client.once("connect", () => resolve(undefined));
        client.once("connect_error", () => setTimeout(resolve, 50));
      });
      if (!client.connected && Date.now() < end) client.connect();
    }
    client.io.engine?.close();
    await sleep(20);
  }
  for (const client of clients) {
    client.on("connect_error", () => Date.now() < end && setTimeout(() => client.connect(), 50));
    client.connect();
  }
  while (Date.now() < end) await sleep(50);
  for (const client of clients) client.close();
  return recovered;
}

/** Wrong API keys for `ms`, four at a time from one address behind the proxy: the answers. */
async function wrongKeyFlood(url: string, ms: number) {
  const answers: Record<number, number> = {};
  const end = Date.now() + ms;
  await Promise.all([1, 2, 3, 4].map(async () => {
    while (Date.now() < end) {
      const response = await fetch(`${url}/api/v1/stats`, {
        headers: { Authorization: "Bearer guess", "X-Forwarded-For": "203.0.113.66" },
      });
      await response.body?.cancel();
      answers[response.status] = (answers[response.status] ?? 0) + 1;
    }
  }));
  return answers;
}

/** Polls the server's socket count until `done`; the most seen. */
async function mostSockets(url: string, done: () => boolean) {
  let most = 0;
  while (!done()) {
    try {
      const response = await fetch(`${url}/api/v1/stats`, {
        headers: { Authorization: `Bearer ${API_KEY}` },
      });
      most = Math.max(most, (await response.json()).sockets);
    } catch {
      break; // The test ended early and its server is gone.
    }
    await sleep(20);
  }
  return most;
}

/** Rooms the catch-up floods name, each with some long history in the KV file. */
const ROOMS = Array.from({ length: 100 }, (_, n) => `room-${n}`);

/** Writes every room's history into a KV file before the server opens it; the rooms' last ids. */
async function seedRooms(kvPath: string): Promise<Record<string, string>> {
  const store = await openKvStore(kvPath);
  const lastIds: Record<string, string> = {};
  try {
    const user = { id: "seeder", name: "Seeder" };
    for (const room of ROOMS) {
      const [first] = await store.appendMany([{ room, user, message: "seen" }]);
      lastIds[room] = first.message.id;
      await store.appendMany(
        Array.from({ length: 30 }, (_, n) => ({ room, user, message: `${n} `.padEnd(2000, "x") })),
      );
    }
  } finally {
    store.close();
  }
  return lastIds;
}

/**
 * A raw WebSocket that asks for a Socket.IO connection with `auth` and then never reads a byte:
 * what the server sends piles up in its buffers. Closed by the returned function.
 */
async function stalledConnection(url: string, auth: unknown): Promise<() => void> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  const request = `GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: ${hostname}\r\n` +
    `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n` +
    "Sec-WebSocket-Version: 13\r\n\r\n";
  const writer = conn.writable.getWriter();
  await writer.write(new TextEncoder().encode(request));
  await writer.write(maskedTextFrame(`40${JSON.stringify(auth)}`));
  writer.releaseLock();
  return () => conn.close();
}

/** A client-to-server WebSocket text frame (masked, as clients must send). */
function maskedTextFrame(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  const length = payload.length < 126
    ? [payload.length]
    : [126, payload.length >> 8, payload.length & 255];
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const frame = new Uint8Array(2 + length.length - 1 + 4 + payload.length);
  frame.set([0x81, 0x80 | length[0], ...length.slice(1)]);
  frame.set(mask, 1 + length.length);
  const start = 1 + length.length + 4;
  payload.forEach((byte, n) => frame[start + n] = byte ^ mask[n % 4]);
  return frame;
}

/** One raw Socket.IO connection over a WebSocket, sending `frames` round-robin until it closes. */
async function floodOnce(
  url: string,
  token: string,
  frames: string[],
  end: number,
  auth: Record<string, unknown> = {},
) {
  const socket = new WebSocket(`${url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
  const received: string[] = [];
  let connected = false;
  const closed = new Promise((resolve) => socket.onclose = resolve);
  socket.onerror = () => {};
  socket.onmessage = (event) => {
    const data = String(event.data);
    if (data === "2") return socket.send("3");
    if (data.startsWith("0")) socket.send(`40${JSON.stringify({ token, ...auth })}`);
    else if (data.startsWith("40")) connected = true;
    received.push(data);
  };
  let sent = 0;
  while (Date.now() < end && socket.readyState <= WebSocket.OPEN) {
    if (connected && socket.bufferedAmount < 256 * 1024) {
      for (let n = 0; n < 200; n++) socket.send(frames[sent++ % frames.length]);
    }
    await sleep(0);
  }
  if (socket.readyState <= WebSocket.OPEN) socket.close();
  await closed;
  return { sent, received };
}

/** Floods for `ms` as an attacker would: when the server cuts the connection, connect again. */
async function flood(
  url: string,
  token: string,
  frames: string[],
  ms: number,
  auth: Record<string, unknown> = {},
) {
  const end = Date.now() + ms;
  const received: string[] = [];
  let sent = 0;
  let connections = 0;
  while (Date.now() < end) {
    const once = await floodOnce(url, token, frames, end, auth);
    connections++;
    sent += once.sent;
    received.push(...once.received);
    // Refused at the handshake (its per-address limit): try again shortly.
    if (once.sent === 0) await sleep(50);
  }
  return { sent, received, connections };
}

/**
 * Reconnects for `ms`, each time naming every room in `lastIds` to catch up on, and reads what
 * comes: the rooms it was let into and the messages it was sent.
 */
async function catchUpFlood(
  url: string,
  token: string,
  lastIds: Record<string, string>,
  ms: number,
) {
  const end = Date.now() + ms;
  let rooms = 0;
  let messages = 0;
  let connections = 0;
  while (Date.now() < end) {
    const socket = new WebSocket(
      `${url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`,
    );
    const closed = new Promise((resolve) => socket.onclose = resolve);
    socket.onerror = () => {};
    socket.onmessage = (event) => {
      const data = String(event.data);
      if (data === "2") return socket.send("3");
      if (data.startsWith("0")) socket.send(`40${JSON.stringify({ token, lastIds })}`);
      else if (data.startsWith('42["loaded",')) {
        if (!data.includes('"room":"general"')) rooms++;
      } else if (data.startsWith('42["load",')) messages += JSON.parse(data.slice(2))[1].length;
    };
    connections++;
    await sleep(200);
    socket.close();
    await closed;
  }
  return { rooms, messages, connections };
}

Deno.test("abuse: a flood of each event from one user keeps memory bounded and disturbs no one", async () => {
  await using temp = await tempDir({ prefix: "chat_abuse_test_" });
  const kvPath = `${temp.path}/chat.kv`;
  const lastIds = await seedRooms(kvPath);
  await using running = await startMain({
    KV_PATH: kvPath,
    PUBLIC_ROOMS: "general,room-*",
    CONNECTION_RECOVERY: "60s",
    API_KEY,
    // The attacker's API calls come through a proxy that names them; the test's own do not.
    TRUSTED_PROXIES: "127.0.0.1",
  });
  using watcher = await ChatClient.join(running.url, "watcher", { transports: ["polling"] });
  using neighbour = await ChatClient.join(running.url, "neighbour", { transports: ["websocket"] });
  const disconnects: string[] = [];
  for (const client of [watcher, neighbour]) {
    client.socket.on("disconnect", (reason) => disconnects.push(reason));
  }
  let typingSeen = 0;
  watcher.socket.on("typing", () => typingSeen++);
  // Some long messages, so that each history page is worth pulling (sent by a third user, so the
  // neighbour's message budget is whole for the floods).
  {
    using seeder = await ChatClient.join(running.url, "seeder", { transports: ["websocket"] });
    for (let n = 0; n < 20; n++) {
      assert.ok((await seeder.send({ message: `${n} `.padEnd(2000, "x") })).ok);
    }
  }
  const token = await tokenFor("mallory");
  const floods: Record<string, string[]> = {
    typing: ['42["typing",{"typing":true}]', '42["typing",{"typing":false}]'],
    history: ['421["history",{"limit":100}]'],
    "auth:refresh": [`422["auth:refresh",{"token":"${token}"}]`],
    message: ['423["message",{"message":"flood"}]'],
    "bad events": ['42["message",42]', '42["typing","yes"]', '42["no such event",1]'],
  };
  const before = await residentBytes(running.url);
  // Sockets that ask for every room's catch-up and never read what they are sent.
  const stalled = await Promise.all(
    [1, 2].map(() => stalledConnection(running.url, { token, lastIds })),
  );
  const catchUps = catchUpFlood(running.url, token, lastIds, FLOOD_MS);
  const recoveries = recoveryFlood(running.url, token, FLOOD_MS);
  const wrongKeys = wrongKeyFlood(running.url, FLOOD_MS);
  let flooded = false;
  const socketsAtMost = mostSockets(running.url, () => flooded);
  const replies: Record<string, string[]> = {};
  const floodConnections: Record<string, number> = {};
  // Every flood at once, one connection each, as one attacker would: the budgets are per user.
  const floodsDone = Promise.all(
    Object.entries(floods).map(async ([name, frames]) => {
      const { sent, received, connections } = await flood(running.url, token, frames, FLOOD_MS);
      assert.ok(sent >= 1000, `${name}: the flood sent only ${sent} events`);
      replies[name] = received;
      floodConnections[name] = connections;
    }),
  );
  // The others still chat, during the floods and after them.
  let chats = 0;
  const chat = async (when: string) => {
    const ack = await neighbour.send({ message: `${when} the floods (${++chats})` });
    assert.ok(ack.ok, `${when} the floods: the neighbour can still send`);
    await watcher.waitFor(
      () => watcher.live.some((message) => message.id === ack.message.id),
      `the watcher gets the message sent ${when} the floods`,
    );
  };
  let flooding = true;
  const during = (async () => {
    while (flooding) {
      await chat("during");
      // Two a second: within the neighbour's own budget (a burst of 20, then one a second).
      await sleep(500);
    }
  })();
  await floodsDone.finally(() => flooding = false);
  await during;
  const caughtUp = await catchUps;
  await recoveries;
  const keyAnswers = await wrongKeys;
  flooded = true;
  const most = await socketsAtMost;
  assert.ok(chats >= 2, `only ${chats} messages went through during the floods`);
  await chat("after");
  const growth = await residentBytes(running.url) - before;
  for (const close of stalled) close();
  assert.ok(growth < MAX_RSS_GROWTH_BYTES, `RSS grew by ${(growth / 2 ** 20).toFixed(1)} MB`);
  assert.deepEqual(disconnects, [], "nobody else was disconnected");
  // Budgets, not luck: at most a burst plus the refill got through.
  const okAcks = (received: string[], id: number) =>
    received.filter((data) => data.startsWith(`43${id}[{"ok":true`)).length;
  const seconds = FLOOD_MS / 1000;
  assert.ok(typingSeen <= 20 + 2 * seconds + 2, `the watcher saw ${typingSeen} typing events`);
  assert.ok(okAcks(replies.history, 1) <= 10 + seconds + 1, "history pages served");
  assert.ok(okAcks(replies["auth:refresh"], 2) <= 2 + seconds, "refreshes served");
  assert.ok(okAcks(replies.message, 3) <= 20 + seconds + 1, "messages stored");
  // Catch-ups are joins and history pages: the stalled sockets' and the reconnects' rooms share
  // one join budget (a burst of 10, one a second), and pages past a join's 50 messages share the
  // history budget with the history flood.
  assert.ok(caughtUp.connections >= 3, `${caughtUp.connections} catch-up connects`);
  assert.ok(caughtUp.rooms <= 10 + seconds + 1, `${caughtUp.rooms} rooms caught up`);
  const perConnect = caughtUp.connections + caughtUp.rooms;
  // Recovered sessions are admitted like fresh ones: the user never held more than the cap
  // (the watcher and the neighbour hold the other two).
  assert.ok(most - 2 <= MAX_SOCKETS_PER_USER, `mallory held ${most - 2} sockets at once`);
  // Wrong keys: a burst of 30 (and the refill) are checked, the rest refused with 429.
  assert.ok((keyAnswers[401] ?? 0) <= 30 + seconds, `${keyAnswers[401]} wrong keys checked`);
  assert.deepEqual(
    Object.keys(keyAnswers).filter((status) => !["401", "429"].includes(status)),
    [],
  );
  assert.ok(caughtUp.messages <= perConnect * 50, `${caughtUp.messages} catch-up messages`);
  const errors = replies["bad events"].filter((data) => data.startsWith('42["error"')).length;
  // `error` events are capped per connection; acks carry every refusal.
  const errorCap = 10 * (seconds + 1) * floodConnections["bad events"];
  assert.ok(errors <= errorCap, `${errors} error events for the bad-event flood`);
  // Refusals are logged at most once per user per 10 s, not once per event.
  const refusalLines = running.output().split("\n").filter((line) =>
    line.includes('"event.refused"') && line.includes('"mallory"')
  );
  assert.ok(refusalLines.length <= 5 * (seconds / 10 + 1), `${refusalLines.length} log lines`);
});
