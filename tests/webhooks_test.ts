/**
 * Webhooks end to end: a chat server (in process, KV `:memory:` unless a test says otherwise)
 * sending to a real receiver that verifies every request with the `standardwebhooks` library.
 * Retries and polls are shortened; waits are for conditions, never for fixed times.
 */
import assert from "node:assert/strict";
import { ChatClient, startChat, type TestServer } from "./helpers/chat_server.ts";
import { WEBHOOK_SECRET, WebhookReceiver } from "./helpers/webhook_receiver.ts";
import { within } from "./helpers/time.ts";
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
