/**
 * Webhooks end to end: a chat server (in process, KV `:memory:` unless a test says otherwise)
 * sending to a real receiver that verifies every request with the `standardwebhooks` library.
 * Retries and polls are shortened; waits are for conditions, never for fixed times.
 */
import assert from "node:assert/strict";
import {
  ChatClient,
  SECRET,
  sendMessage as send,
  startChat,
  type TestServer,
} from "./helpers/chat_server.ts";
import { type Received, WEBHOOK_SECRET, WebhookReceiver } from "./helpers/webhook_receiver.ts";
import { until, within } from "./helpers/time.ts";
import { tempDir } from "./helpers/dispose.ts";
import { type Config, MAX_WEBHOOK_URLS } from "../src/config.ts";
import type { AppOptions } from "../src/app.ts";
import type { ChatMessage } from "../src/types.ts";
import { signToken } from "../src/auth/token.ts";
import { MAX_MENTIONS } from "../src/chat/payloads.ts";

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

/** Connects `sub` with a token whose `rooms` claim opens `rooms` (beside the public ones). */
async function joinClaiming(url: string, sub: string, rooms: string[]): Promise<ChatClient> {
  const client = new ChatClient(url, { auth: { token: await signToken(SECRET, { sub, rooms }) } });
  await client.waitFor(() => client.loaded !== undefined, `${sub}'s history`);
  return client;
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

Deno.test("webhooks: a mention of a user away is message.missed; nothing to the author, nor to a user the room is closed to or who is banned", async () => {
  await using receiver = await WebhookReceiver.start();
  await using server = await hooked(receiver, { webhookEvents: ["message.missed"] });
  // Alice's token opens "ops"; nobody else's does, and nobody away has a token to ask.
  const alice = await joinClaiming(server.url, "alice", ["ops"]);
  await server.store.setBan("frank", { since: Date.now() });
  const toBob = await send(alice, "team-red", "@bob @alice @frank look", ["bob", "alice", "frank"]);
  await send(alice, "ops", "@carol the ops plans", ["carol"]);
  // A DM is its two users' alone: dave misses it, erin (mentioned) may not read it.
  const toDave = await send(alice, "dm:alice:dave", "@erin is not here", ["erin"]);
  await receiver.until((events) => events.length === 2, "bob's and dave's");
  await outboxEmpty(server, "every candidate settled");
  await closed(alice);
  assert.equal(receiver.rejected, 0);
  const byUser = new Map(receiver.delivered.map((event) => [event.data.user.id, event.data]));
  assert.deepEqual([...byUser.keys()].toSorted(), ["bob", "dave"], "not alice, carol, erin, frank");
  assert.deepEqual(byUser.get("bob"), { user: { id: "bob" }, messages: [toBob] });
  assert.deepEqual(byUser.get("dave"), { user: { id: "dave" }, messages: [toDave] });
  assert.equal(receiver.delivered.length, 2);
  for (const event of receiver.delivered) assert.ok(!event.body.includes("ops plans"), event.body);
});

Deno.test("webhooks: no message.missed for a mention read in time, or to a user connected in another room", async () => {
  await using receiver = await WebhookReceiver.start();
  // Long enough for the read marker to be stored before the mention is due.
  await using server = await hooked(receiver, {
    webhookEvents: ["message.missed"],
    missedAfterMs: 1500,
  });
  const alice = await ChatClient.join(server.url, "alice");
  // Carol is connected all along, in the default room only, and never reads team-red.
  const carol = await ChatClient.join(server.url, "carol");
  const mention = await send(alice, "team-red", "@bob @carol standup", ["bob", "carol"]);
  await server.store.setReadMarker("bob", mention.room, mention.id);
  await outboxEmpty(server, "both candidates settled");
  // A mention bob has not read still is: the check above did not let everything through.
  const unread = await send(alice, "team-red", "@bob again", ["bob"]);
  await receiver.until((events) => events.length === 1, "the unread one");
  await closed(carol);
  await closed(alice);
  assert.deepEqual(receiver.delivered.map((event) => event.data), [
    { user: { id: "bob" }, messages: [unread] },
  ]);
});

Deno.test("webhooks: DMs and mentions to one user in one window are one message.missed, each message once", async () => {
  await using receiver = await WebhookReceiver.start();
  // Long enough for the burst to be stored before the first message is due.
  await using server = await hooked(receiver, {
    webhookEvents: ["message.missed"],
    missedAfterMs: 1500,
  });
  const alice = await ChatClient.join(server.url, "alice");
  const burst = [
    await send(alice, "dm:alice:bob", "a DM"),
    await send(alice, "team-red", "@bob a mention", ["bob"]),
    // DM'd and mentioned by one message: listed once.
    await send(alice, "dm:alice:bob", "@bob both", ["bob"]),
    await send(alice, "general", "@bob @bob twice over", ["bob", "bob"]),
  ];
  await receiver.until((events) => events.length === 1, "one event");
  await outboxEmpty(server, "every candidate settled");
  await closed(alice);
  assert.deepEqual(receiver.delivered.map((event) => event.data), [
    { user: { id: "bob" }, messages: burst },
  ]);
});

Deno.test("webhooks: a message mentioning the most users it may (20) gives each away their message.missed", async () => {
  await using receiver = await WebhookReceiver.start();
  await using server = await hooked(receiver, { maxMessageLength: 10_000 });
  const alice = await ChatClient.join(server.url, "alice");
  const mentioned = [...Array(MAX_MENTIONS)].map((_, n) => `user${n}`);
  // The longest message, 40 KB as KV stores it: 21 copies (20 candidates and its message.created)
  // would be over the most one KV commit takes (800 KB). Candidates name it instead.
  const sent = await send(alice, "team-red", "😀".repeat(10_000), mentioned);
  await receiver.until(
    (events) => events.filter((event) => event.type === "message.missed").length === 20,
    "one per mentioned user",
  );
  await outboxEmpty(server, "every candidate settled");
  await closed(alice);
  const missed = receiver.ofType("message.missed").map((event) => event.data);
  assert.deepEqual(
    missed.map((data) => data.user.id).toSorted(),
    mentioned.toSorted(),
  );
  for (const data of missed) assert.deepEqual(data.messages, [sent]);
  assert.deepEqual(receiver.ofType("message.created").map((event) => event.data), [sent]);
});

Deno.test("webhooks: the longest message mentioning 20 users is stored with the most webhook URLs (8)", async () => {
  await using receiver = await WebhookReceiver.start();
  const urls = [...Array(MAX_WEBHOOK_URLS)].map((_, n) => `${receiver.url}?target=${n}`);
  await using server = await hooked(receiver, {
    maxMessageLength: 10_000,
    webhookUrls: urls,
    webhookEvents: ["message.created", "message.missed"],
  });
  const alice = await ChatClient.join(server.url, "alice");
  const mentioned = [...Array(MAX_MENTIONS)].map((_, n) => `user${n}`);
  // Eight copies of its message.created, 20 candidates and the message: one KV commit holds them.
  const sent = await send(alice, "team-red", "😀".repeat(10_000), mentioned);
  const total = MAX_WEBHOOK_URLS * (1 + MAX_MENTIONS);
  await receiver.until((events) => events.length === total, `${total} events`);
  await outboxEmpty(server, "every event sent");
  await closed(alice);
  const created = receiver.ofType("message.created").map((event) => event.data);
  assert.deepEqual(created, Array(MAX_WEBHOOK_URLS).fill(sent));
});

/** A server sending only message.missed, due late enough for a test to change messages first. */
function missedOnly(receiver: WebhookReceiver): Promise<TestServer> {
  return hooked(receiver, { webhookEvents: ["message.missed"], missedAfterMs: MISSED_AFTER_MS });
}

const MISSED_AFTER_MS = 1500;

/** Asserts `changed` (an edit's or delete's answer) happened before `sent` counted as missed. */
function beforeDue(sent: ChatMessage, changed: ChatMessage): void {
  const due = Date.parse(sent.createdAt) + MISSED_AFTER_MS;
  assert.ok(Date.parse(changed.editedAt!) < due, "changed before the candidate was due");
}

async function edit(client: ChatClient, id: string, message: string): Promise<ChatMessage> {
  return (await ack<{ message: ChatMessage }>(client, "message:edit", { id, message })).message;
}

async function remove(client: ChatClient, id: string): Promise<ChatMessage> {
  return (await ack<{ message: ChatMessage }>(client, "message:delete", { id })).message;
}

Deno.test("webhooks: a DM deleted before it counts as missed gives no message.missed", async () => {
  await using receiver = await WebhookReceiver.start();
  await using server = await missedOnly(receiver);
  const alice = await ChatClient.join(server.url, "alice");
  const regretted = await send(alice, "dm:alice:bob", "I regret this");
  beforeDue(regretted, await remove(alice, regretted.id));
  await outboxEmpty(server, "the candidate settled");
  assert.equal(receiver.delivered.length, 0);
  // A DM not deleted still is missed: the check above did not hold everything back.
  const kept = await send(alice, "dm:alice:bob", "this one stays");
  await receiver.until((events) => events.length === 1, "the kept one");
  await closed(alice);
  assert.deepEqual(receiver.delivered.map((event) => event.data), [
    { user: { id: "bob" }, messages: [kept] },
  ]);
  assert.ok(!receiver.delivered[0].body.includes("regret"), receiver.delivered[0].body);
});

Deno.test("webhooks: a DM edited before it counts as missed is in message.missed as edited", async () => {
  await using receiver = await WebhookReceiver.start();
  await using server = await missedOnly(receiver);
  const alice = await ChatClient.join(server.url, "alice");
  const sent = await send(alice, "dm:alice:bob", "meet at 5");
  const edited = await edit(alice, sent.id, "meet at 6");
  beforeDue(sent, edited);
  await receiver.until((events) => events.length === 1, "one event");
  await outboxEmpty(server, "the candidate settled");
  await closed(alice);
  assert.deepEqual(receiver.delivered.map((event) => event.data), [
    { user: { id: "bob" }, messages: [edited] },
  ]);
  assert.equal(edited.message, "meet at 6");
});

Deno.test("webhooks: a burst of three DMs, one deleted meanwhile, is one message.missed with the other two", async () => {
  await using receiver = await WebhookReceiver.start();
  await using server = await missedOnly(receiver);
  const alice = await ChatClient.join(server.url, "alice");
  const burst = [];
  for (let n = 0; n < 3; n++) burst.push(await send(alice, "dm:alice:bob", `dm ${n}`));
  beforeDue(burst[0], await remove(alice, burst[1].id));
  await receiver.until((events) => events.length === 1, "one event");
  await outboxEmpty(server, "every candidate settled");
  await closed(alice);
  assert.deepEqual(receiver.delivered.map((event) => event.data), [
    { user: { id: "bob" }, messages: [burst[0], burst[2]] },
  ]);
});

Deno.test("webhooks: candidates written with a copy of their message (before an upgrade) send it as stored now", async () => {
  await using receiver = await WebhookReceiver.start();
  await using server = await missedOnly(receiver);
  const alice = { id: "alice", name: "alice" };
  const room = "dm:alice:bob";
  // Stored without the chat (so with no candidates), then changed after the copies were taken.
  const kept = await server.store.append({ room, user: alice, message: "kept" });
  const edited = await server.store.append({ room, user: alice, message: "before the edit" });
  const deleted = await server.store.append({ room, user: alice, message: "deleted" });
  const copies = [kept, edited, deleted].map((message) => ({
    id: `evt_copy_${message.id}`,
    target: "",
    stream: "missed:bob",
    body: JSON.stringify({ user: "bob", message }),
  }));
  const now = await server.store.changeMessage(edited.id, { message: "after" }, new Date());
  await server.store.changeMessage(deleted.id, { deleted: true }, new Date());
  await server.store.outbox.enqueueOutbox(copies);
  await receiver.until((events) => events.length === 1, "one event");
  await outboxEmpty(server, "every candidate settled");
  assert.deepEqual(receiver.delivered.map((event) => event.data), [
    { user: { id: "bob" }, messages: [kept, now] },
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

/** Most bytes an outbox entry's body may take as Deno KV keeps a string (two per UTF-16 unit). */
const MOST_EVENT_BYTES = 48_000;

function storedBytes(body: string): number {
  return 2 * body.length;
}

Deno.test("webhooks: 20 long DMs to a user away arrive over several message.missed, each once, in order, and the stream goes on", async () => {
  await using receiver = await WebhookReceiver.start();
  // Long enough for the burst to be stored before the first DM is due.
  await using server = await hooked(receiver, {
    webhookEvents: ["message.missed"],
    missedAfterMs: 1500,
  });
  const alice = await ChatClient.join(server.url, "alice");
  // 2,000 characters outside Latin-1 (the default MAX_MESSAGE_LENGTH): 4 KB each as KV keeps
  // them, 80 KB for the 20, over the 64 KiB a KV value holds.
  const burst = [];
  for (let n = 0; n < 20; n++) {
    burst.push(await send(alice, "dm:alice:bob", `${n} ${"語".repeat(1995)}`));
  }
  const missedMessages = () =>
    receiver.ofType("message.missed").flatMap((event) => event.data.messages as ChatMessage[]);
  await receiver.until(() => missedMessages().length >= 20, "the 20 DMs", 20_000);
  await outboxEmpty(server, "every candidate settled");
  const events = receiver.ofType("message.missed");
  assert.ok(events.length > 1, `several events: ${events.length}`);
  for (const event of events) {
    assert.equal(event.data.user.id, "bob");
    assert.ok(storedBytes(event.body) <= MOST_EVENT_BYTES, `${storedBytes(event.body)} bytes`);
  }
  assert.deepEqual(missedMessages(), burst, "each once, oldest first, uncut");
  // The stream is not stuck: a later DM is missed too.
  const later = await send(alice, "dm:alice:bob", "still there?");
  await receiver.until((delivered) => delivered.length === events.length + 1, "the later DM");
  await closed(alice);
  assert.deepEqual(receiver.delivered.at(-1)!.data, { user: { id: "bob" }, messages: [later] });
  assert.equal(receiver.rejected, 0);
});

Deno.test("webhooks: a message too big for an event alone goes out with its text cut to fit, flagged truncated", async () => {
  await using receiver = await WebhookReceiver.start();
  await using server = await hooked(receiver, {
    webhookEvents: ["message.created", "message.updated", "message.missed"],
    maxMessageLength: 10_000,
  });
  const alice = await ChatClient.join(server.url, "alice");
  // JSON writes a control character as `\u0007` (6 units), and one character outside Latin-1
  // makes V8 keep the whole body at 2 bytes a unit: 120 KB for the longest message.
  const text = "語" + "\u0007".repeat(9_999);
  const sent = await send(alice, "dm:alice:bob", text, ["bob"]);
  const edited = await edit(alice, sent.id, text.slice(0, -1) + "!");
  await receiver.until((events) => events.length === 3, "created, updated, missed");
  await outboxEmpty(server, "every event sent");
  await closed(alice);
  const cut = (data: ChatMessage & { truncated?: true }, whole: ChatMessage) => {
    assert.equal(data.truncated, true);
    assert.ok(data.message.length > 1000, `${data.message.length} units kept`);
    assert.ok(whole.message.startsWith(data.message));
    const { message: _, truncated: __, ...rest } = data;
    const { message: ___, ...wholeRest } = whole;
    assert.deepEqual(rest, wholeRest);
  };
  for (const event of receiver.delivered) {
    assert.ok(storedBytes(event.body) <= MOST_EVENT_BYTES, `${event.type}: ${event.body.length}`);
  }
  cut(receiver.ofType("message.created")[0].data, sent);
  cut(receiver.ofType("message.updated")[0].data, edited);
  const [missed] = receiver.ofType("message.missed");
  assert.equal(missed.data.messages.length, 1);
  cut(missed.data.messages[0], edited);
});
