/**
 * Webhooks end to end: a chat server (in process, KV `:memory:` unless a test says otherwise)
 * sending to a real receiver that verifies every request with the `standardwebhooks` library.
 * Retries and polls are shortened; waits are for conditions, never for fixed times.
 */
import assert from "node:assert/strict";
import { ChatClient, startChat, type TestServer } from "./helpers/chat_server.ts";
import { type Received, WEBHOOK_SECRET, WebhookReceiver } from "./helpers/webhook_receiver.ts";
import { until, within } from "./helpers/time.ts";
import { tempDir } from "./helpers/dispose.ts";
import type { Config } from "../src/config.ts";
import type { AppOptions } from "../src/app.ts";
import type { ChatMessage } from "../src/types.ts";

const TIMING: AppOptions = {
  webhookTiming: { retryBaseMs: 20, retryMaxMs: 100, pollMs: 20, maintainMs: 20 },
};

function hooked(receiver: WebhookReceiver, overrides: Partial<Config> = {}): Promise<TestServer> {
  return startChat({
    webhookUrls: [receiver.url],
    webhookSecret: WEBHOOK_SECRET,
    webhookDebounceMs: 100,
    missedAfterMs: 300,
    publicRooms: ["general", "team-*"],
    rateLimitBurst: 1000,
    ...overrides,
  }, TIMING);
}

async function ack<T>(client: ChatClient, event: string, payload: unknown): Promise<T> {
  const answer = await within(client.socket.emitWithAck(event, payload), 5000, `${event} ack`);
  assert.equal(answer.ok, true, JSON.stringify(answer));
  return answer;
}

async function send(client: ChatClient, room: string, message: string): Promise<ChatMessage> {
  return (await ack<{ message: ChatMessage }>(client, "message", { room, message })).message;
}

async function closed(client: ChatClient): Promise<void> {
  client.close();
  await client.waitFor(() => !client.socket.connected, "disconnect");
}

Deno.test("webhooks: every event type arrives, signed so standardwebhooks verifies it", async () => {
  await using receiver = await WebhookReceiver.start();
  await using server = await hooked(receiver);
  const alice = await ChatClient.join(server.url, "alice");
  await receiver.until((events) => events.some((e) => e.type === "user.online"), "user.online");
  await ack(alice, "join", { room: "team-red" });
  // A join and a leave within one presence batch (100 ms) cancel out: let the join go first.
  await receiver.until((events) => events.some((e) => e.type === "room.member_joined"), "joined");
  const sent = await send(alice, "team-red", "hello");
  await ack(alice, "message:edit", { id: sent.id, message: "hello, edited" });
  await ack(alice, "message:delete", { id: sent.id });
  const dm = await send(alice, "dm:alice:bob", "are you there?");
  await ack(alice, "leave", { room: "team-red" });
  await receiver.until((events) => events.some((e) => e.type === "room.member_left"), "left");
  await receiver.until((events) => events.some((e) => e.type === "message.missed"), "missed");
  await closed(alice);
  await receiver.until((events) => events.some((e) => e.type === "user.offline"), "offline");

  assert.equal(receiver.rejected, 0);
  const alices = { id: "alice", name: "alice" };
  const only = (type: string) => {
    const events = receiver.ofType(type);
    assert.equal(events.length, 1, `one ${type}: ${JSON.stringify(events)}`);
    assert.ok(!Number.isNaN(Date.parse(events[0].timestamp)));
    return events[0].data;
  };
  assert.deepEqual(only("user.online"), { user: alices });
  assert.deepEqual(only("room.member_joined"), { room: "team-red", user: alices });
  const created = receiver.ofType("message.created").map((event) => event.data);
  assert.deepEqual(created.sort((a, b) => a.id < b.id ? -1 : 1), [sent, dm]);
  assert.equal(only("message.updated").message, "hello, edited");
  assert.equal(only("message.deleted").deleted, true);
  assert.deepEqual(only("room.member_left"), { room: "team-red", user: alices });
  assert.deepEqual(only("message.missed"), { user: { id: "bob" }, messages: [dm] });
  assert.deepEqual(only("user.offline"), { user: alices });
  for (const event of receiver.delivered) {
    assert.ok(!/token|secret|whsec/i.test(event.body), event.body);
  }
  const ids = receiver.delivered.map((event) => event.id);
  assert.equal(new Set(ids).size, ids.length, "ids are unique");
});

/** A metric's value in the app's scrape (0 when absent). */
async function metric(server: TestServer, name: string): Promise<number> {
  const text = await server.app.metrics.render();
  const line = text.split("\n").find((line) => line.startsWith(name + " "));
  return line === undefined ? 0 : Number(line.split(" ")[1]);
}

async function outboxEmpty(server: TestServer, what: string): Promise<void> {
  let depth = -1;
  const poll = async () => {
    while ((depth = (await server.store.outbox.outboxStats()).depth) > 0) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  await within(poll(), 10_000, `${what} (outbox depth ${depth})`);
}

Deno.test("webhooks: a receiver down (503, then timeouts) gets every event once back, same ids, in room order", async () => {
  await using receiver = await WebhookReceiver.start();
  receiver.answer = 503;
  await using server = await hooked(receiver, {
    webhookEvents: ["message.created"],
    webhookTimeoutMs: 200,
  });
  const alice = await ChatClient.join(server.url, "alice");
  const sent: ChatMessage[] = [];
  for (let n = 0; n < 6; n++) {
    sent.push(await send(alice, n % 2 === 0 ? "team-a" : "team-b", `m${n}`));
  }
  await until(() => receiver.attempts.length >= 4, 10_000, "attempts answered 503");
  receiver.answer = "hang";
  await until(
    () => receiver.attempts.filter((attempt) => attempt.answered === "hang").length >= 2,
    10_000,
    "attempts that time out",
  );
  receiver.answer = 204;
  // At least once: an answer later than the 200 ms timeout (a busy machine) counts as a failure
  // and the event goes again under its id, as a receiver keyed by webhook-id sees it once.
  const firstOfEach = (events: Received[]) =>
    events.filter((event, index) => events.findIndex((other) => other.id === event.id) === index);
  await receiver.until(
    (events) => firstOfEach(events).length === 6,
    "all six once the receiver is back",
  );
  await closed(alice);

  assert.equal(receiver.rejected, 0);
  const delivered = firstOfEach(receiver.delivered);
  assert.equal(delivered.length, 6, "each event, and nothing else");
  for (const room of ["team-a", "team-b"]) {
    assert.deepEqual(
      delivered.filter((event) => event.data.room === room).map((event) => event.data),
      sent.filter((message) => message.room === room),
      `${room} in order`,
    );
  }
  // Every failed attempt was at an event later delivered under the same id, with the same body.
  const byId = new Map(delivered.map((event) => [event.id, event.body]));
  for (const attempt of receiver.attempts) assert.equal(byId.get(attempt.id), attempt.body);
  assert.ok(await metric(server, "chat_webhooks_failed_total") >= 6);
  assert.ok(await metric(server, "chat_webhooks_retried_total") >= 6);
  // The receiver has the sixth before the sender has its answer: wait for the count to catch up.
  let sentCount = 0;
  for (let tries = 0; tries < 100 && sentCount < 6; tries++) {
    sentCount = await metric(server, "chat_webhooks_sent_total");
    if (sentCount < 6) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(sentCount, 6);
});

Deno.test("webhooks: an event unsent past WEBHOOK_MAX_AGE is dropped and counted", async () => {
  await using receiver = await WebhookReceiver.start();
  receiver.answer = 503;
  await using server = await hooked(receiver, {
    webhookEvents: ["message.created"],
    webhookMaxAgeMs: 1000,
  });
  const alice = await ChatClient.join(server.url, "alice");
  const lost = await send(alice, "team-a", "never delivered");
  await until(() => receiver.attempts.length > 0, 5000, "an attempt");
  await outboxEmpty(server, "the expired event dropped");
  // The outbox is empty once the trim commits; the trim counts what it dropped when it returns.
  const dropped = () => metric(server, 'chat_webhooks_dropped_total{reason="expired"}');
  await within(
    (async () => {
      while (await dropped() < 1) await new Promise((resolve) => setTimeout(resolve, 10));
    })(),
    5000,
    "the drop counted",
  );
  assert.equal(await dropped(), 1);
  receiver.answer = 204;
  const kept = await send(alice, "team-a", "delivered");
  await receiver.until((events) => events.length === 1, "the next event");
  await closed(alice);
  assert.deepEqual(receiver.delivered.map((event) => event.data.id), [kept.id]);
  assert.ok(
    receiver.attempts.every((attempt) => attempt.data.id !== lost.id || attempt.answered === 503),
  );
});

Deno.test("webhooks: a full outbox drops its oldest events, counted, and keeps the newest", async () => {
  await using receiver = await WebhookReceiver.start();
  receiver.answer = 503;
  await using server = await hooked(receiver, {
    webhookEvents: ["message.created"],
    webhookOutboxMax: 3,
  });
  const alice = await ChatClient.join(server.url, "alice");
  const sent: ChatMessage[] = [];
  for (let n = 0; n < 8; n++) sent.push(await send(alice, "team-a", `m${n}`));
  await until(
    () => receiver.attempts.length > 0,
    5000,
    "an attempt while down",
  );
  const dropped = () => metric(server, 'chat_webhooks_dropped_total{reason="full"}');
  await within(
    (async () => {
      while (await dropped() < 5) await new Promise((resolve) => setTimeout(resolve, 10));
    })(),
    10_000,
    "five dropped",
  );
  receiver.answer = 204;
  await receiver.until((events) => events.length === 3, "the three newest");
  await outboxEmpty(server, "the rest sent");
  await closed(alice);
  assert.equal(await dropped(), 5);
  assert.deepEqual(receiver.delivered.map((event) => event.data), sent.slice(5));
});

Deno.test("webhooks: message.missed gathers a user's burst of DMs into one event", async () => {
  await using receiver = await WebhookReceiver.start();
  // Long enough for the burst to be stored before the first DM is due.
  await using server = await hooked(receiver, {
    webhookEvents: ["message.missed"],
    missedAfterMs: 1500,
  });
  const alice = await ChatClient.join(server.url, "alice");
  const dms = [];
  for (let n = 0; n < 3; n++) dms.push(await send(alice, "dm:alice:bob", `dm ${n}`));
  const other = await send(alice, "dm:alice:carol", "for carol");
  await receiver.until((events) => events.length === 2, "one per user");
  await outboxEmpty(server, "every candidate settled");
  await closed(alice);
  const byUser = new Map(receiver.delivered.map((event) => [event.data.user.id, event.data]));
  assert.deepEqual(byUser.get("bob"), { user: { id: "bob" }, messages: dms });
  assert.deepEqual(byUser.get("carol"), { user: { id: "carol" }, messages: [other] });
  assert.equal(receiver.delivered.length, 2);
});

Deno.test("webhooks: no message.missed for a DM read in time, or to a user connected", async () => {
  await using receiver = await WebhookReceiver.start();
  // Long enough for the read marker to be stored before the DM is due.
  await using server = await hooked(receiver, {
    webhookEvents: ["message.missed"],
    missedAfterMs: 1500,
  });
  const alice = await ChatClient.join(server.url, "alice");
  const carol = await ChatClient.join(server.url, "carol");
  // Bob reads it on another device meanwhile; carol is connected all along and never reads.
  const toBob = await send(alice, "dm:alice:bob", "read elsewhere");
  await server.store.setReadMarker("bob", toBob.room, toBob.id);
  await send(alice, "dm:alice:carol", "seen live");
  await outboxEmpty(server, "both candidates settled");
  // A DM bob has not read still is: the check above did not let everything through.
  const unread = await send(alice, "dm:alice:bob", "unread");
  await receiver.until((events) => events.length === 1, "the unread one");
  await closed(carol);
  await closed(alice);
  assert.deepEqual(receiver.delivered.map((event) => event.data), [
    { user: { id: "bob" }, messages: [unread] },
  ]);
});

Deno.test("webhooks: two instances sharing a KV file send each event once", async () => {
  await using receiver = await WebhookReceiver.start();
  await using temp = await tempDir({ prefix: "chat_webhooks_" });
  const kvPath = `${temp.path}/chat.kv`;
  await using first = await hooked(receiver, { kvPath, webhookEvents: ["message.created"] });
  await using second = await hooked(receiver, { kvPath, webhookEvents: ["message.created"] });
  const [alice, bob] = await Promise.all([
    ChatClient.join(first.url, "alice"),
    ChatClient.join(second.url, "bob"),
  ]);
  const sent = (await Promise.all([alice, bob].map(async (client, index) => {
    const messages = [];
    for (let n = 0; n < 15; n++) messages.push(await send(client, `team-${index}`, `m${n}`));
    return messages;
  }))).flat();
  await receiver.until((events) => events.length >= sent.length, "every event");
  await outboxEmpty(first, "both instances done");
  await Promise.all([closed(alice), closed(bob)]);
  const ids = receiver.attempts.map((attempt) => attempt.id);
  assert.equal(ids.length, sent.length, "one attempt each: no event sent by both");
  assert.equal(new Set(ids).size, sent.length);
  for (const room of ["team-0", "team-1"]) {
    assert.deepEqual(
      receiver.delivered.filter((event) => event.data.room === room).map((event) => event.data),
      sent.filter((message) => message.room === room),
    );
  }
});

Deno.test("webhooks: a page reload is neither user.offline nor user.online", async () => {
  await using receiver = await WebhookReceiver.start();
  // Long enough for a reconnect to land within it.
  await using server = await hooked(receiver, {
    webhookEvents: ["user.online", "user.offline"],
    webhookDebounceMs: 2000,
  });
  const first = await ChatClient.join(server.url, "alice");
  await receiver.until((events) => events.length === 1, "user.online");
  await closed(first);
  const reloaded = await ChatClient.join(server.url, "alice");
  await closed(reloaded);
  const lastClose = Date.now();
  await receiver.until((events) => events.length === 2, "user.offline after the last close");
  await outboxEmpty(server, "nothing else pending");
  assert.deepEqual(receiver.delivered.map((event) => event.type), ["user.online", "user.offline"]);
  // The offline is the last close's, after the debounce: the reload's was never sent.
  assert.ok(Date.parse(receiver.delivered[1].timestamp) >= lastClose + 1900);
});
