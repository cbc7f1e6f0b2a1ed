/**
 * The chat handlers and the event gate as plain functions: no port, no socket, a real timeline
 * over in-memory Deno KV, and a clock the test moves.
 */
import assert from "node:assert/strict";
import type { Identity } from "../src/auth/token.ts";
import { CodedError } from "../src/errors.ts";
import {
  type ChatContext,
  onDelete,
  onEdit,
  onHistory,
  onJoin,
  onLeave,
  onMessage,
  onRead,
  onRefresh,
  onRooms,
  onTyping,
  TYPING_THROTTLE_MS,
} from "../src/chat/handlers.ts";
import { type EventBudgets, EventGate, REFUSAL_LOG_INTERVAL_MS } from "../src/chat/events.ts";
import { CLIENT_EVENTS } from "../src/chat/client_events.ts";
import type { RateLimit } from "../src/rate_limit.ts";
import { dmRoom, RoomPolicy } from "../src/chat/rooms.ts";
import { createLogger, silentLogger } from "../src/ops/log.ts";
import { ChatService } from "../src/chat/service.ts";
import { openKvStore } from "../src/store/mod.ts";
import { Timeline } from "../src/chat/timeline.ts";
import type { ChatMessage } from "../src/types.ts";

const alice: Identity = { user: { id: "alice", name: "Alice" }, scopes: [], rooms: [] };

/** A context over a fresh in-memory store; `using` closes it. */
async function contextFor(
  overrides: Partial<ChatContext> = {},
  { canWrite = (_: Identity): boolean => true }: { canWrite?: (identity: Identity) => boolean } =
    {},
) {
  const store = await openKvStore(":memory:");
  const timeline = new Timeline(store, { historyLimit: 50, deliver: () => {} });
  let clock = Date.now();
  const typed: (boolean | string)[] = [];
  const joined = new Set<string>();
  const announced: ChatMessage[] = [];
  const policy = new RoomPolicy(["general", "team-*"]);
  const service = new ChatService({
    timeline,
    store,
    policy,
    editWindowMs: 60_000,
    canWrite,
    announceChange: (message) => announced.push(message),
    reactionsChanged: () => {},
    threadChanged: () => {},
    mentioned: () => {},
    readReceipts: true,
    readChanged: () => {},
    disconnectUser: () => Promise.resolve(),
    log: silentLogger,
    now: () => clock,
  });
  const ctx: ChatContext = {
    identity: alice,
    timeline,
    store,
    service,
    policy,
    defaultRoom: "general",
    maxRoomsPerSocket: 3,
    pushEnabled: false,
    maxListedUsers: 1000,
    maxMessageLength: 10,
    verifyToken: (token) => Promise.resolve({ ...alice, user: { id: token, name: token } }),
    joined: () => joined,
    subscribe: (room) =>
      new Promise((resolve, reject) => {
        timeline.join((messages, { hasMore }) => {
          joined.add(room);
          resolve({ messages, hasMore });
        }, { room }).catch(reject);
      }),
    unsubscribe: (room) => joined.delete(room),
    membersOf: (room) => Promise.resolve(room === "team-red" ? [{ id: "bob", name: "Bob" }] : []),
    sendTyping: (room, typing) => typed.push(room === "general" ? typing : `${room}:${typing}`),
    now: () => clock,
    ...overrides,
  };
  return {
    ctx,
    typed,
    joined,
    store,
    announced,
    advance: (ms: number) => clock += ms,
    async [Symbol.asyncDispose]() {
      await timeline.idle();
      store.close();
    },
  };
}

/** The same budget for every client event of the table. */
function budgetsEach(budget: RateLimit): EventBudgets {
  return Object.fromEntries(
    Object.keys(CLIENT_EVENTS).map((event) => [event, budget]),
  ) as EventBudgets;
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
  await using readOnly = await contextFor({}, { canWrite: () => false });
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
  await using readOnly = await contextFor({}, { canWrite: () => false });
  assert.equal(await codeOf(() => onTyping(readOnly.ctx, { typing: true })), "forbidden");
  assert.deepEqual(readOnly.typed, []);
});

Deno.test("handlers: onRefresh replaces the identity for the same user only", async () => {
  const changed: Identity[] = [];
  await using chat = await contextFor({ onIdentityChanged: (identity) => changed.push(identity) });
  assert.equal(await codeOf(() => onRefresh(chat.ctx, { token: "mallory" })), "forbidden");
  assert.equal(chat.ctx.identity, alice);
  const ack = await onRefresh(chat.ctx, { token: "alice" });
  assert.deepEqual(ack, { ok: true, expiresAt: null, left: [] });
  assert.equal(changed.length, 1);
  assert.deepEqual(chat.ctx.identity.user, alice.user, "the announced name is kept");
});

Deno.test("event gate: each event has its own per-user budget, refilled by the clock", () => {
  let clock = 0;
  const gate = new EventGate(
    { ...budgetsEach({ perMinute: 60, burst: 1 }), message: { perMinute: 60, burst: 2 } },
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
    budgetsEach(budget),
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

Deno.test("rooms: who may use which room — public patterns, the token's claim, a DM's two users", () => {
  const policy = new RoomPolicy(["general", "team-*"]);
  const bob: Identity = { user: { id: "bob", name: "Bob" }, scopes: [], rooms: ["ops", "x-*"] };
  assert.ok(policy.canJoin(alice, "general"));
  assert.ok(policy.canJoin(alice, "team-red"));
  assert.ok(!policy.canJoin(alice, "ops"));
  assert.ok(policy.canJoin(bob, "ops"));
  assert.ok(policy.canJoin(bob, "x-files"));
  assert.equal(dmRoom("bob", "alice"), "dm:alice:bob");
  assert.ok(policy.canJoin(alice, "dm:alice:bob"));
  assert.ok(policy.canJoin(bob, "dm:alice:bob"));
  const carol: Identity = { user: { id: "carol", name: "C" }, scopes: [], rooms: ["*"] };
  assert.ok(!policy.canJoin(carol, "dm:alice:bob"), "a wildcard claim never opens a DM");
  assert.ok(!policy.canJoin(alice, "dm:bob:alice"), "only the sorted form is a DM id");
  assert.deepEqual(policy.namedRooms(bob), ["general", "ops"]);
});

Deno.test("handlers: join, message, history, read and rooms per room", async () => {
  await using chat = await contextFor();
  const joined = await onJoin(chat.ctx, { room: "team-red" });
  assert.deepEqual(joined, {
    ok: true,
    room: "team-red",
    messages: [],
    hasMore: false,
    online: [{ id: "bob", name: "Bob" }, alice.user],
    reads: [],
  });
  assert.ok(chat.joined.has("team-red"));
  const sent = await onMessage(chat.ctx, { room: "team-red", message: "hi team" });
  assert.equal(sent.message.room, "team-red");
  await onMessage(chat.ctx, { message: "hi all" });
  const page = await onHistory(chat.ctx, { room: "team-red" });
  assert.deepEqual(page.messages.map((message) => message.message), ["hi team"]);
  let rooms = await onRooms(chat.ctx);
  assert.deepEqual(rooms.rooms.map(({ room, unread }) => [room, unread]), [
    ["general", 1],
    ["team-red", 1],
  ]);
  assert.deepEqual(await onRead(chat.ctx, { room: "team-red", lastId: sent.message.id }), {
    ok: true,
  });
  rooms = await onRooms(chat.ctx);
  assert.equal(rooms.rooms.find((summary) => summary.room === "team-red")?.unread, 0);
  assert.deepEqual(onLeave(chat.ctx, { room: "team-red" }), { ok: true });
  assert.ok(!chat.joined.has("team-red"));
});

Deno.test("handlers: rooms refuse malformed ids, forbidden rooms and one room too many", async () => {
  await using chat = await contextFor();
  assert.equal(await codeOf(() => onJoin(chat.ctx, { room: "Bad Room" })), "invalid_payload");
  assert.equal(await codeOf(() => onJoin(chat.ctx, { room: "x".repeat(65) })), "invalid_payload");
  assert.equal(await codeOf(() => onJoin(chat.ctx, {})), "invalid_payload");
  assert.equal(await codeOf(() => onJoin(chat.ctx, { room: "secret" })), "forbidden");
  assert.equal(await codeOf(() => onJoin(chat.ctx, { room: "dm:bob:carol" })), "forbidden");
  assert.equal(
    await codeOf(() => onMessage(chat.ctx, { room: "secret", message: "hi" })),
    "forbidden",
  );
  assert.equal(await codeOf(() => onHistory(chat.ctx, { room: "dm:bob:carol" })), "forbidden");
  assert.equal(
    await codeOf(() => onRead(chat.ctx, { room: "general", lastId: "x" })),
    "invalid_payload",
  );
  for (const room of ["general", "team-a", "team-b"]) await onJoin(chat.ctx, { room });
  assert.equal(await codeOf(() => onJoin(chat.ctx, { room: "team-c" })), "too_many_rooms");
  await onJoin(chat.ctx, { room: "team-a" });
});

Deno.test("handlers: a DM's first message puts it in both users' room lists", async () => {
  await using chat = await contextFor();
  const room = dmRoom("alice", "bob");
  await onMessage(chat.ctx, { room, message: "psst" });
  // The memberships are written in the background, after the ack.
  const both = async () =>
    (await chat.store.memberships("bob", 10)).length > 0 &&
    (await chat.store.memberships("alice", 10)).length > 0;
  for (let tries = 0; tries < 400 && !await both(); tries++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.deepEqual(await chat.store.memberships("bob", 10), [room]);
  assert.deepEqual(await chat.store.memberships("alice", 10), [room]);
});

Deno.test("handlers: typing is throttled per room", async () => {
  await using chat = await contextFor();
  onTyping(chat.ctx, { typing: true });
  onTyping(chat.ctx, { room: "team-x", typing: true });
  onTyping(chat.ctx, { room: "team-x", typing: true });
  assert.deepEqual(chat.typed, [true, "team-x:true"]);
  assert.equal(
    await codeOf(() => onTyping(chat.ctx, { room: "secret", typing: true })),
    "forbidden",
  );
});

Deno.test("handlers: authors edit and delete their messages within the window; history shows it", async () => {
  await using chat = await contextFor();
  const sent = await onMessage(chat.ctx, { message: "helo" });
  const edited = await onEdit(chat.ctx, { id: sent.message.id, message: " hello " });
  assert.equal(edited.message.message, "hello");
  assert.equal(edited.message.editedAt, new Date(chat.ctx.now()).toISOString());
  assert.deepEqual(chat.announced.map((m) => m.message), ["hello"]);
  const page = await onHistory(chat.ctx, {});
  assert.deepEqual(page.messages, [edited.message], "history has the edited text");
  const deleted = await onDelete(chat.ctx, { id: sent.message.id });
  assert.equal(deleted.message.deleted, true);
  assert.equal(deleted.message.message, "");
  const again = await onDelete(chat.ctx, { id: sent.message.id });
  assert.deepEqual(again, deleted, "deleting twice answers the same");
  assert.equal(chat.announced.length, 2, "and is announced once");
  assert.deepEqual((await onHistory(chat.ctx, {})).messages, [deleted.message], "a tombstone");
  assert.equal(
    await codeOf(() => onEdit(chat.ctx, { id: sent.message.id, message: "x" })),
    "not_found",
  );
});

Deno.test("handlers: after the window, or for someone else's message, only a moderator may", async () => {
  await using chat = await contextFor();
  const sent = await onMessage(chat.ctx, { message: "mine" });
  // Past the window as measured from the message's own time (its id's), however long it took.
  chat.advance(Date.parse(sent.message.createdAt) + 60_001 - chat.ctx.now());
  assert.equal(
    await codeOf(() => onEdit(chat.ctx, { id: sent.message.id, message: "late" })),
    "forbidden",
  );
  chat.ctx.identity = { ...alice, user: { id: "bob", name: "Bob" } };
  assert.equal(await codeOf(() => onDelete(chat.ctx, { id: sent.message.id })), "forbidden");
  chat.ctx.identity = { ...alice, user: { id: "mod", name: "Mod" }, scopes: ["chat:moderate"] };
  assert.equal((await onDelete(chat.ctx, { id: sent.message.id })).message.deleted, true);
  assert.equal(
    await codeOf(() => onDelete(chat.ctx, { id: "01JDQ7ZJ2K8M6V1T4X3N5P7R9S" })),
    "not_found",
  );
  assert.equal(await codeOf(() => onDelete(chat.ctx, { id: "nope" })), "invalid_payload");
});

Deno.test("handlers: a message in a room the user may not use is not_found, not forbidden", async () => {
  await using chat = await contextFor();
  const dm = await onMessage(chat.ctx, { room: dmRoom("alice", "bob"), message: "private" });
  chat.ctx.identity = { ...alice, user: { id: "carol", name: "C" }, scopes: ["chat:moderate"] };
  assert.equal(await codeOf(() => onDelete(chat.ctx, { id: dm.message.id })), "not_found");
});
