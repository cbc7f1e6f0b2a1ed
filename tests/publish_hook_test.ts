/**
 * The publish hook end to end: a chat server asking a real receiver (`Deno.serve` on port 0 that
 * verifies each question's signature with the `standardwebhooks` library) before storing, over
 * sockets and the server API.
 */
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { ChatClient, startChat, type TestServer, within } from "./helpers/chat_server.ts";
import { WEBHOOK_SECRET } from "./helpers/webhook_receiver.ts";
import type { Config } from "../src/config.ts";
import type { ChatMessage } from "../src/types.ts";

const KEY = "test-api-key-0123456789";

/**
 * What the receiver answers a question with: a JSON body, a status, nothing (it hangs), or an
 * allow padded to `paddedBytes`, streamed in chunks as the server reads them.
 */
type Answer = { json: unknown } | { status: number } | "hang" | { paddedBytes: number };

const PAD_CHUNK = "x".repeat(64 * 1024);

/** `{"action":"allow","pad":"xxx…"}` of about `bytes`, pulled chunk by chunk; counts what went. */
function paddedAllow(bytes: number, sent: { bytes: number }): Response {
  const encoder = new TextEncoder();
  let left = bytes;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode('{"action":"allow","pad":"'));
    },
    pull(controller) {
      if (left <= 0) {
        controller.enqueue(encoder.encode('"}'));
        return controller.close();
      }
      const chunk = encoder.encode(PAD_CHUNK);
      left -= chunk.length;
      sent.bytes += chunk.length;
      controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
  return new Response(body, { headers: { "content-type": "application/json" } });
}

/** A backend's publish hook: verifies, records and answers each question as told. */
class HookReceiver implements AsyncDisposable {
  // deno-lint-ignore no-explicit-any
  readonly questions: any[] = [];
  rejected = 0;
  answer: Answer = { json: { action: "allow" } };
  /** Bytes of padding the server pulled from padded answers. */
  readonly padding = { bytes: 0 };
  readonly #verifier = new Webhook(WEBHOOK_SECRET);
  readonly #released = Promise.withResolvers<void>();
  readonly #server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => this.#handle(request),
  );

  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}/publish`;
  }

  async #handle(request: Request): Promise<Response> {
    const body = await request.text();
    try {
      this.#verifier.verify(body, Object.fromEntries(request.headers));
    } catch {
      this.rejected++;
      return new Response("bad signature", { status: 400 });
    }
    this.questions.push(JSON.parse(body));
    const answer = this.answer;
    if (answer === "hang") {
      const aborted = new Promise((resolve) => request.signal.addEventListener("abort", resolve));
      await Promise.race([aborted, this.#released.promise]);
      return new Response(null, { status: 503 });
    }
    if ("paddedBytes" in answer) return paddedAllow(answer.paddedBytes, this.padding);
    return "json" in answer ? Response.json(answer.json) : new Response(null, answer);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#released.resolve();
    await this.#server.shutdown();
  }
}

function hooked(receiver: HookReceiver, overrides: Partial<Config> = {}): Promise<TestServer> {
  return startChat({
    publishHookUrl: receiver.url,
    webhookSecret: WEBHOOK_SECRET,
    apiKey: KEY,
    rateLimitBurst: 1000,
    ...overrides,
  });
}

async function api(server: TestServer, method: string, path: string, body?: unknown) {
  const response = await fetch(`${server.url}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

async function stored(server: TestServer): Promise<string[]> {
  const { body } = await api(server, "GET", "/rooms/general/messages");
  return body.messages.map((message: ChatMessage) => message.message);
}

/** Sends `text` as `client`; the other's live feed shows whether it was broadcast. */
async function send(client: ChatClient, text: string, clientId?: string) {
  return await client.send({ message: text, ...(clientId ? { clientId } : {}) });
}

/** An allowed message `bob` sees: everything before it has reached him too. */
async function marker(receiver: HookReceiver, alice: ChatClient, bob: ChatClient) {
  receiver.answer = { json: { action: "allow" } };
  const ack = await send(alice, "marker");
  assert.equal(ack.ok, true);
  await bob.waitFor(() => bob.live.some((message) => message.message === "marker"), "marker");
}

Deno.test("publish hook: an allowed message is asked about, signed, then stored", async () => {
  await using receiver = new HookReceiver();
  await using server = await hooked(receiver);
  using alice = await ChatClient.join(server.url, "alice");
  const ack = await send(alice, "  hello  ", "c1");
  assert.equal(ack.ok, true, JSON.stringify(ack));
  assert.equal(receiver.rejected, 0);
  assert.deepEqual(receiver.questions, [{
    user: { id: "alice", name: "alice" },
    room: "general",
    message: "hello",
    clientId: "c1",
  }]);
  assert.deepEqual(await stored(server), ["hello"]);
  // A retry of a stored clientId is answered with the first message, without asking again.
  const retry = await send(alice, "hello", "c1");
  assert.equal(retry.ok && retry.message.id, ack.ok && ack.message.id);
  assert.equal(receiver.questions.length, 1);
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /chat_publish_hook_calls_total\{outcome="allow"\} 1\b/);
});

Deno.test("publish hook: a denied message is refused with the reason, not stored or broadcast", async () => {
  await using receiver = new HookReceiver();
  await using server = await hooked(receiver);
  using alice = await ChatClient.join(server.url, "alice");
  using bob = await ChatClient.join(server.url, "bob");
  receiver.answer = { json: { action: "deny", reason: "no spam, please" } };
  const ack = await send(alice, "buy now");
  assert.deepEqual(ack, { ok: false, error: { code: "rejected", message: "no spam, please" } });
  await marker(receiver, alice, bob);
  assert.deepEqual(bob.live.map((message) => message.message), ["marker"]);
  assert.deepEqual(await stored(server), ["marker"]);
});

Deno.test("publish hook: a modified message is stored and broadcast with the new text", async () => {
  await using receiver = new HookReceiver();
  await using server = await hooked(receiver, { maxMessageLength: 20 });
  using alice = await ChatClient.join(server.url, "alice");
  using bob = await ChatClient.join(server.url, "bob");
  receiver.answer = { json: { action: "modify", message: "  what the ****  " } };
  const ack = await send(alice, "what the heck");
  assert.equal(ack.ok && ack.message.message, "what the ****");
  await bob.waitFor(() => bob.live.length === 1, "the modified message");
  assert.equal(bob.live[0].message, "what the ****");
  // A modified text past MAX_MESSAGE_LENGTH is a malformed answer: a failure (default deny).
  receiver.answer = { json: { action: "modify", message: "x".repeat(21) } };
  const tooLong = await send(alice, "hello");
  assert.equal(!tooLong.ok && tooLong.error.code, "rejected");
  assert.deepEqual(await stored(server), ["what the ****"]);
});

Deno.test("publish hook: no answer in time is refused under deny (the default)", async () => {
  await using receiver = new HookReceiver();
  await using server = await hooked(receiver, { publishHookTimeoutMs: 200 });
  using alice = await ChatClient.join(server.url, "alice");
  using bob = await ChatClient.join(server.url, "bob");
  receiver.answer = "hang";
  const ack = await within(send(alice, "anyone there?"), 3000, "the ack");
  assert.equal(!ack.ok && ack.error.code, "rejected");
  await marker(receiver, alice, bob);
  assert.deepEqual(bob.live.map((message) => message.message), ["marker"]);
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /chat_publish_hook_calls_total\{outcome="failed"\} 1\b/);
});

Deno.test("publish hook: no answer in time is let through under allow", async () => {
  await using receiver = new HookReceiver();
  await using server = await hooked(receiver, {
    publishHookTimeoutMs: 200,
    publishHookFailure: "allow",
  });
  using alice = await ChatClient.join(server.url, "alice");
  receiver.answer = "hang";
  const ack = await within(send(alice, "anyone there?"), 3000, "the ack");
  assert.equal(ack.ok, true, JSON.stringify(ack));
  assert.deepEqual(await stored(server), ["anyone there?"]);
});

Deno.test("publish hook: a malformed answer or a non-2xx is a failure", async () => {
  await using receiver = new HookReceiver();
  await using server = await hooked(receiver);
  using alice = await ChatClient.join(server.url, "alice");
  for (const answer of [{ json: { action: "maybe" } }, { json: "allow" }, { status: 500 }]) {
    receiver.answer = answer;
    const ack = await send(alice, "hi");
    assert.equal(!ack.ok && ack.error.code, "rejected", JSON.stringify(answer));
  }
  assert.deepEqual(await stored(server), []);
});

Deno.test("publish hook: a huge answer is a failure, read no further than its bound", async () => {
  await using receiver = new HookReceiver();
  await using server = await hooked(receiver, { publishHookTimeoutMs: 10_000 });
  using alice = await ChatClient.join(server.url, "alice");
  // Well-formed, and an allow: only its size is wrong. The server must not hold it all.
  receiver.answer = { paddedBytes: 64 * 1024 * 1024 };
  const ack = await within(send(alice, "hi"), 8000, "the ack");
  assert.equal(!ack.ok && ack.error.code, "rejected", JSON.stringify(ack));
  // What sockets and buffers between the two hold comes on top of what the server read.
  assert.ok(
    receiver.padding.bytes < 16 * 1024 * 1024,
    `the server read ${receiver.padding.bytes} bytes of the answer`,
  );
  assert.deepEqual(await stored(server), []);
});

Deno.test("publish hook: API publishes ask it, unless they skip it", async () => {
  await using receiver = new HookReceiver();
  await using server = await hooked(receiver);
  receiver.answer = { json: { action: "deny", reason: "not today" } };
  const denied = await api(server, "POST", "/rooms/general/messages", {
    message: "from the backend",
    userId: "carol",
  });
  assert.equal(denied.status, 422);
  assert.deepEqual(denied.body, { error: { code: "rejected", message: "not today" } });
  assert.deepEqual(receiver.questions, [{
    user: { id: "carol", name: "carol" },
    room: "general",
    message: "from the backend",
  }]);
  const skipped = await api(server, "POST", "/rooms/general/messages", {
    message: "checked already",
    skipPublishHook: true,
  });
  assert.equal(skipped.status, 201);
  assert.equal(receiver.questions.length, 1);
  assert.deepEqual(await stored(server), ["checked already"]);
});
