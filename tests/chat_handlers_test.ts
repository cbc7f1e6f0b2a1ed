/**
 * The chat handlers and the event gate as plain functions: no port, no socket, a real timeline
 * over in-memory Deno KV, and a clock the test moves.
 */
import assert from "node:assert/strict";
import type { Identity } from "../src/auth.ts";
import { CodedError } from "../src/errors.ts";
import {
  type ChatContext,
  onHistory,
  onMessage,
  onRefresh,
  onTyping,
  TYPING_THROTTLE_MS,
} from "../src/chat/handlers.ts";
import { EventGate, REFUSAL_LOG_INTERVAL_MS } from "../src/chat/events.ts";
import { createLogger } from "../src/log.ts";
import { openKvStore } from "../src/store/mod.ts";
import { Timeline } from "../src/timeline.ts";

const alice: Identity = { user: { id: "alice", name: "Alice" }, scopes: [] };

/** A context over a fresh in-memory store; `using` closes it. */
async function contextFor(overrides: Partial<ChatContext> = {}) {
  const store = await openKvStore(":memory:");
  const timeline = new Timeline(store, { historyLimit: 50, deliver: () => {} });
  let clock = 1_000_000;
  const typed: boolean[] = [];
  const ctx: ChatContext = {
    identity: alice,
    timeline,
    maxMessageLength: 10,
    canWrite: () => true,
    verifyToken: (token) => Promise.resolve({ ...alice, user: { id: token, name: token } }),
    sendTyping: (typing) => typed.push(typing),
    now: () => clock,
    ...overrides,
  };
  return {
    ctx,
    typed,
    advance: (ms: number) => clock += ms,
    async [Symbol.asyncDispose]() {
      await timeline.idle();
      store.close();
    },
  };
}

/** The code a handler's refusal carries. */
async function codeOf(work: () => unknown): Promise<string | undefined> {
  try {
    await work();
  } catch (error) {
    assert.ok(error instanceof CodedError, `a coded error, got ${error}`);
    return error.code;
  }
  return undefined;
}

Deno.test("handlers: onMessage stores the trimmed text and acks it; a retried clientId is a duplicate", async () => {
  await using chat = await contextFor();
  const first = await onMessage(chat.ctx, { message: "  hi  ", clientId: "c1" });
  assert.equal(first.message.message, "hi");
  assert.equal(first.duplicate, false);
  const again = await onMessage(chat.ctx, { message: "hi", clientId: "c1" });
  assert.equal(again.message.id, first.message.id);
  assert.equal(again.duplicate, true);
  const page = await onHistory(chat.ctx, { limit: 10 });
  assert.deepEqual(page.messages.map((message) => message.id), [first.message.id]);
  assert.equal(page.hasMore, false);
});

Deno.test("handlers: onMessage refuses bad payloads, long text and read-only tokens", async () => {
  await using chat = await contextFor();
  assert.equal(await codeOf(() => onMessage(chat.ctx, { message: 1 })), "invalid_payload");
  assert.equal(
    await codeOf(() => onMessage(chat.ctx, { message: "x".repeat(11) })),
    "message_too_long",
  );
  await using readOnly = await contextFor({ canWrite: () => false });
  assert.equal(await codeOf(() => onMessage(readOnly.ctx, { message: "hi" })), "forbidden");
  assert.equal(await codeOf(() => onHistory(chat.ctx, { limit: 0 })), "invalid_payload");
});

Deno.test("handlers: onTyping forwards changes, drops repeats within the throttle, needs write", async () => {
  await using chat = await contextFor();
  onTyping(chat.ctx, { typing: true });
  onTyping(chat.ctx, { typing: true });
  chat.advance(TYPING_THROTTLE_MS);
  onTyping(chat.ctx, { typing: true });
  onTyping(chat.ctx, { typing: false });
  assert.deepEqual(chat.typed, [true, true, false]);
  assert.equal(await codeOf(() => onTyping(chat.ctx, { typing: "yes" })), "invalid_payload");
  await using readOnly = await contextFor({ canWrite: () => false });
  assert.equal(await codeOf(() => onTyping(readOnly.ctx, { typing: true })), "forbidden");
  assert.deepEqual(readOnly.typed, []);
});

Deno.test("handlers: onRefresh replaces the identity for the same user only", async () => {
  const changed: Identity[] = [];
  await using chat = await contextFor({ onIdentityChanged: (identity) => changed.push(identity) });
  assert.equal(await codeOf(() => onRefresh(chat.ctx, { token: "mallory" })), "forbidden");
  assert.equal(chat.ctx.identity, alice);
  const ack = await onRefresh(chat.ctx, { token: "alice" });
  assert.deepEqual(ack, { ok: true, expiresAt: null });
  assert.equal(changed.length, 1);
  assert.deepEqual(chat.ctx.identity.user, alice.user, "the announced name is kept");
});

Deno.test("event gate: each event has its own per-user budget, refilled by the clock", () => {
  let clock = 0;
  const gate = new EventGate(
    {
      message: { perMinute: 60, burst: 2 },
      typing: { perMinute: 60, burst: 1 },
      history: { perMinute: 60, burst: 1 },
      "auth:refresh": { perMinute: 60, burst: 1 },
    },
    createLogger("error", () => {}),
    { errorSent() {} },
    () => clock,
  );
  assert.equal(gate.take("message", "alice"), undefined);
  assert.equal(gate.take("message", "alice"), undefined);
  const refusal = gate.take("message", "alice");
  assert.equal(refusal?.code, "rate_limited");
  assert.equal(refusal?.retryAfterMs, 1000);
  assert.equal(gate.take("message", "bob"), undefined, "budgets are per user");
  assert.equal(gate.take("history", "alice"), undefined, "and per event");
  assert.equal(gate.take("history", "alice")?.code, "rate_limited");
  clock += 1000;
  assert.equal(gate.take("message", "alice"), undefined, "a second refills one");
});

Deno.test("event gate: a user's refusals are logged at most once per interval, and all counted", () => {
  let clock = 0;
  const lines: string[] = [];
  const counted: string[] = [];
  const budget = { perMinute: 60, burst: 1 };
  const gate = new EventGate(
    { message: budget, typing: budget, history: budget, "auth:refresh": budget },
    createLogger("info", (line) => lines.push(line)),
    { errorSent: (code) => counted.push(code) },
    () => clock,
  );
  const refusal = { code: "invalid_payload" as const, message: "bad" };
  for (let n = 0; n < 1000; n++) gate.noteRefusal("mallory", "s1", "message", refusal);
  gate.noteRefusal("alice", "s2", "message", refusal);
  assert.equal(lines.length, 2, "one line for mallory, one for alice");
  assert.equal(counted.length, 1001);
  clock += REFUSAL_LOG_INTERVAL_MS;
  gate.noteRefusal("mallory", "s1", "message", refusal);
  assert.equal(lines.length, 3);
  assert.equal(JSON.parse(lines[2]).unlogged, 999, "the next line says how many went unlogged");
});
