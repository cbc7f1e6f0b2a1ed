/**
 * One user with a valid token floods each client event at a real `main.ts` with default limits,
 * as fast as a raw WebSocket can send: the server's memory stays bounded and the other users —
 * one polling, one on a WebSocket — notice nothing.
 *
 * The floods run at once for FLOOD_MS (default 2 s; `FLOOD_MS=10000 deno task test tests/chat_abuse_test.ts`
 * for the full 10 s).
 * @module
 */
import assert from "node:assert/strict";
import { ChatClient, sleep, tokenFor } from "./helpers/chat_server.ts";
import { startMain } from "./helpers/main_process.ts";

const FLOOD_MS = Number(Deno.env.get("FLOOD_MS") ?? 2000);
/** How much the server's resident memory may grow over all the floods. */
const MAX_RSS_GROWTH_BYTES = 50 * 1024 * 1024;

/** The server's resident memory, as its `/metrics` reports it. */
async function residentBytes(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(text.match(/^process_resident_memory_bytes (\d+)/m)?.[1]);
}

/** One raw Socket.IO connection over a WebSocket, sending `frames` round-robin until it closes. */
async function floodOnce(url: string, token: string, frames: string[], end: number) {
  const socket = new WebSocket(`${url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
  const received: string[] = [];
  let connected = false;
  const closed = new Promise((resolve) => socket.onclose = resolve);
  socket.onerror = () => {};
  socket.onmessage = (event) => {
    const data = String(event.data);
    if (data === "2") return socket.send("3");
    if (data.startsWith("0")) socket.send(`40${JSON.stringify({ token })}`);
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
async function flood(url: string, token: string, frames: string[], ms: number) {
  const end = Date.now() + ms;
  const received: string[] = [];
  let sent = 0;
  let connections = 0;
  while (Date.now() < end) {
    const once = await floodOnce(url, token, frames, end);
    connections++;
    sent += once.sent;
    received.push(...once.received);
    // Refused at the handshake (its per-address limit): try again shortly.
    if (once.sent === 0) await sleep(50);
  }
  return { sent, received, connections };
}

Deno.test("abuse: a flood of each event from one user keeps memory bounded and disturbs no one", async () => {
  await using running = await startMain({});
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
  assert.ok(chats >= 2, `only ${chats} messages went through during the floods`);
  await chat("after");
  const growth = await residentBytes(running.url) - before;
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
