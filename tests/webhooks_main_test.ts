/**
 * Webhooks through `main.ts`: a server killed (SIGKILL) with events still in its outbox sends
 * them all once it is started again on the same KV file.
 */
import assert from "node:assert/strict";
import { startMain } from "./helpers/main_process.ts";
import { WEBHOOK_SECRET, WebhookReceiver } from "./helpers/webhook_receiver.ts";
import { tempDir } from "./helpers/dispose.ts";
import { until } from "./helpers/time.ts";
import type { ChatMessage } from "../src/types.ts";

const API_KEY = "webhook-test-api-key";

async function publish(url: string, room: string, message: string): Promise<ChatMessage> {
  const response = await fetch(`${url}/api/v1/rooms/${room}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ message }),
  });
  assert.equal(response.status, 201);
  return (await response.json()).message;
}

Deno.test("webhooks: a server killed with an unsent outbox sends all of it after its restart", async () => {
  await using receiver = await WebhookReceiver.start();
  receiver.answer = 503;
  await using temp = await tempDir({ prefix: "chat_webhooks_main_" });
  const env = {
    KV_PATH: `${temp.path}/chat.kv`,
    API_KEY,
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET,
    WEBHOOK_EVENTS: "message.created",
  };
  const sent: ChatMessage[] = [];
  {
    await using first = await startMain(env);
    for (let n = 0; n < 20; n++) sent.push(await publish(first.url, `team-${n % 3}`, `m${n}`));
    await until(
      () => receiver.attempts.length > 0,
      10_000,
      "an attempt while the receiver is down",
    );
    await first.stop(0); // SIGKILL
  }
  assert.equal(receiver.delivered.length, 0);
  receiver.answer = 204;
  await using _second = await startMain(env);
  // The killed server had scheduled retries with backoff (1 s doubling, at most 60 s), kept with the
  // events: on a busy machine the first ones may have failed several times while the rest were
  // sent, so the last retry can be due up to a minute after the kill.
  await receiver.until((events) => events.length === sent.length, "every event", 90_000);
  assert.equal(receiver.rejected, 0);
  assert.deepEqual(
    new Set(receiver.delivered.map((event) => event.data.id)),
    new Set(sent.map((message) => message.id)),
  );
  for (const room of ["team-0", "team-1", "team-2"]) {
    assert.deepEqual(
      receiver.delivered.filter((event) => event.data.room === room).map((event) => event.data),
      sent.filter((message) => message.room === room),
      `${room} in order`,
    );
  }
});
