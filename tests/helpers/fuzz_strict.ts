/**
 * Fuzz cases for the strict server: small budgets and `REQUIRE_WRITE_SCOPE` on, where valid
 * events are welcome and their messages stored. Each case runs as a user of its own on fresh
 * sessions, so its budgets start full: over-budget bursts of every client event, and several
 * CONNECTs sent back to back on one transport session.
 *
 * @example
 * ```ts ignore
 * const server = await startChat(STRICT_CONFIG);
 * const fuzzCase = generateStrictCase(new Rng(7)); // { lane: "strict", ... }
 * await runStrictCase(server, fuzzCase, "strict-7");
 * ```
 * @module
 */
import assert from "node:assert/strict";
import { WRITE_SCOPE } from "../../src/auth/token.ts";
import { ERROR_EVENTS_PER_SECOND } from "../../src/chat/events.ts";
import type { ClientToServerEvents } from "../../src/chat/mod.ts";
import { type Config, DEFAULTS } from "../../src/config.ts";
import type { ErrorCode } from "../../src/errors.ts";
import type { RateLimit } from "../../src/rate_limit.ts";
import { TEST_AUTH, type TestServer, tokenFor } from "./chat_server.ts";
import {
  BARRIER,
  BARRIER_REPLY,
  type PacketSession,
  PollingSession,
  RawSession,
} from "./raw_session.ts";
import type { Rng } from "./rng.ts";

/** A client event. */
export type ChatEvent = keyof ClientToServerEvents;

/**
 * Each event's budget on the strict server. Every burst but `message`'s is a sixth of the
 * minute's, as `config.ts` documents; refills are seconds apart, far slower than a burst.
 */
export const STRICT_BUDGETS: Record<ChatEvent, RateLimit> = {
  message: { perMinute: 6, burst: 3 },
  typing: { perMinute: 12, burst: 2 },
  history: { perMinute: 12, burst: 2 },
  "auth:refresh": { perMinute: 12, burst: 2 },
  join: { perMinute: 12, burst: 2 },
  leave: { perMinute: 12, burst: 2 },
  read: { perMinute: 12, burst: 2 },
  rooms: { perMinute: 12, burst: 2 },
  "rooms:browse": { perMinute: 12, burst: 2 },
  "message:edit": { perMinute: 6, burst: 3 },
  "message:delete": { perMinute: 6, burst: 3 },
  react: { perMinute: 12, burst: 2 },
  thread: { perMinute: 12, burst: 2 },
  "push:subscribe": { perMinute: 12, burst: 2 },
  "push:unsubscribe": { perMinute: 12, burst: 2 },
};

/** The strict server's settings. */
export const STRICT_CONFIG: Partial<Config> = {
  auth: { ...TEST_AUTH, requireWriteScope: true },
  rateLimitPerMinute: STRICT_BUDGETS.message.perMinute,
  rateLimitBurst: STRICT_BUDGETS.message.burst,
  typingLimitPerMinute: STRICT_BUDGETS.typing.perMinute,
  historyLimitPerMinute: STRICT_BUDGETS.history.perMinute,
  refreshLimitPerMinute: STRICT_BUDGETS["auth:refresh"].perMinute,
  joinLimitPerMinute: STRICT_BUDGETS.join.perMinute,
  readLimitPerMinute: STRICT_BUDGETS.read.perMinute,
  roomsLimitPerMinute: STRICT_BUDGETS.rooms.perMinute,
  reactLimitPerMinute: STRICT_BUDGETS.react.perMinute,
  handshakeLimitPerMinute: 0,
  maxSocketsPerUser: 1000,
  historyLimit: 3,
};

/** Longest wait for one step of a case. */
const STEP_TIMEOUT_MS = 5_000;

/** What an event of a burst gets while the budget lasts: an ack, nothing, or a refusal. */
export type Answer = "ok" | "none" | ErrorCode;

/** One event of a burst. */
export interface BurstEvent {
  /**
   * The payload as JSON, or none; the strings `"{own}"` and `"{foreign}"` become a token of the
   * case's user and of another user when the case runs.
   */
  payload?: string;
  answer: Answer;
  /** The state the others see, when accepted typing is forwarded. */
  typing?: boolean;
}

/** A case on the strict server. */
export interface StrictCase {
  lane: "strict";
  name: string;
  transport: "websocket" | "polling";
  /** Whether the user's token carries the write scope. */
  canWrite: boolean;
  /** CONNECT packets for `/` sent back to back; `{token}` becomes the user's token. */
  connects: string[];
  /** The first CONNECT's answer; every later one is refused with `already_connected`. */
  connectAnswer: "ok" | ErrorCode;
  /** Once connected: events of one kind sent back to back, each with its index as ack id. */
  burst?: { event: ChatEvent; events: BurstEvent[] };
  /** Once connected: one message whose broadcast must reach the session exactly once. */
  probe: boolean;
}

const CONNECT = '40{"token":"{token}"}';

// ---- generators

function burstCase(rng: Rng, event: ChatEvent, draw: (index: number) => BurstEvent): StrictCase {
  const budget = STRICT_BUDGETS[event].burst;
  const events = Array.from({ length: budget + rng.range(1, 15) }, (_, index) => draw(index));
  const canWrite = rng.chance(0.7);
  return {
    lane: "strict",
    name: `over-budget burst of ${event}`,
    transport: rng.chance(0.5) ? "websocket" : "polling",
    canWrite,
    connects: [CONNECT],
    connectAnswer: "ok",
    burst: { event, events: canWrite ? events : events.map((each) => readOnly(event, each)) },
    probe: false,
  };
}

/** Without the write scope, a `message` or `typing` whose payload is accepted is `forbidden`. */
function readOnly(event: ChatEvent, each: BurstEvent): BurstEvent {
  const writes = event === "message" || event === "typing";
  const accepted = each.answer === "ok" || each.answer === "none";
  return writes && accepted ? { payload: each.payload, answer: "forbidden" } : each;
}

/**
 * Several CONNECTs for `/` sent back to back, before any is answered: one POST over polling, a
 * frame each over WebSocket. Over WebSocket the server may read the next frame only once the
 * CONNECT before it was refused, and then judges it on its own: there the first always connects.
 */
export function connectBurstCase(rng: Rng, transport: StrictCase["transport"]): StrictCase {
  const first: [string, StrictCase["connectAnswer"]] = transport === "websocket"
    ? [CONNECT, "ok"]
    : rng.pick([
      [CONNECT, "ok"],
      [CONNECT, "ok"],
      [CONNECT, "ok"],
      ["40", "auth_required"],
      ["40{}", "auth_required"],
      ['40{"token":"x"}', "invalid_token"],
    ]);
  const more = Array.from(
    { length: rng.range(1, 5) },
    () =>
      rng.pick([CONNECT, "40", "40{}", '40{"token":"x"}', '40{"token":"{token}","lastId":"x"}']),
  );
  return {
    lane: "strict",
    name: `${more.length + 1} CONNECTs on one ${transport} session`,
    transport,
    canWrite: true,
    connects: [first[0], ...more],
    connectAnswer: first[1],
    probe: first[1] === "ok",
  };
}

/** Generators of strict cases, one per kind. */
export const strictCases: ((rng: Rng) => StrictCase)[] = [
  (rng) =>
    burstCase(rng, "message", (index) => {
      const clientId = `c${rng.int(3)}`;
      return rng.pick<BurstEvent>([
        { payload: JSON.stringify({ message: `burst ${index}` }), answer: "ok" },
        // A repeated clientId is acked with the first message and spends the budget all the same.
        { payload: JSON.stringify({ message: `burst ${index}`, clientId }), answer: "ok" },
        {
          payload: JSON.stringify({ message: rng.pick([5, "", " ", null]) }),
          answer: "invalid_payload",
        },
        {
          payload: JSON.stringify({ message: "x".repeat(DEFAULTS.maxMessageLength + 1) }),
          answer: "message_too_long",
        },
      ]);
    }),
  (rng) => {
    let typing = rng.chance(0.5);
    // Accepted typing alternates, so the throttle of repeats never hides one.
    return burstCase(
      rng,
      "typing",
      () =>
        rng.chance(0.7)
          ? { payload: JSON.stringify({ typing: typing = !typing }), answer: "none", typing }
          : {
            payload: JSON.stringify(rng.pick([{ typing: "yes" }, {}, [true], 1])),
            answer: "invalid_payload",
          },
    );
  },
  (rng) =>
    burstCase(rng, "history", () =>
      rng.pick<BurstEvent>([
        { answer: "ok" },
        { payload: JSON.stringify({ limit: rng.range(1, 100) }), answer: "ok" },
        { payload: JSON.stringify({ limit: rng.pick([0, 101, "5"]) }), answer: "invalid_payload" },
        { payload: JSON.stringify({ before: "nope" }), answer: "invalid_payload" },
      ])),
  (rng) =>
    burstCase(rng, "auth:refresh", () =>
      rng.pick<BurstEvent>([
        { payload: '{"token":"{own}"}', answer: "ok" },
        { payload: '{"token":"{foreign}"}', answer: "forbidden" },
        { payload: '{"token":"not.a.jwt"}', answer: "invalid_token" },
        { payload: JSON.stringify({ token: rng.pick([1, "", null]) }), answer: "invalid_payload" },
      ])),
  (rng) => connectBurstCase(rng, "polling"),
];

// ---- running a case

/** A parsed `42` event packet: its name and its one argument. */
function eventOf(packet: string): [string, unknown] | undefined {
  if (!packet.startsWith("42[")) return undefined;
  const [name, arg] = JSON.parse(packet.slice(2));
  return [name, arg];
}

/** An ack's result: what every ack of the chat has in common. */
interface AckResult {
  ok: boolean;
  error?: { code: string; retryAfterMs?: number };
  /** A `message` ack's stored message. */
  message?: { id: string };
}

/** A parsed `43` ack packet of `/`: its id and result. */
function ackOf(packet: string): [number, AckResult] | undefined {
  const match = /^43(\d+)\[/.exec(packet);
  if (!match) return undefined;
  return [Number(match[1]), JSON.parse(packet.slice(match[0].length - 1))[0]];
}

/** Reads packets until `done` holds for the last one read; returns every text packet read. */
async function readUntil(
  session: PacketSession,
  what: string,
  done: (packet: string) => boolean,
): Promise<string[]> {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  const read: string[] = [];
  while (true) {
    const packet = await session.next(deadline, what);
    assert.ok(packet !== null, `the session closed while waiting for ${what}`);
    if (typeof packet !== "string") continue;
    read.push(packet);
    if (done(packet)) return read;
  }
}

/** Sends the barrier and returns everything read up to its answer. */
async function drain(session: PacketSession): Promise<string[]> {
  await session.sendPackets([BARRIER]);
  return await readUntil(
    session,
    "the barrier's answer",
    (packet) => packet.startsWith(BARRIER_REPLY),
  );
}

/** A fresh session on `server`, its open packet read. */
async function openSession(
  server: TestServer,
  transport: StrictCase["transport"],
): Promise<PacketSession> {
  const base = `${server.url}/socket.io/`;
  if (transport === "polling") return await PollingSession.open(base);
  const session = new RawSession(`${base.replace("http", "ws")}?EIO=4&transport=websocket`);
  const open = await session.next(Date.now() + STEP_TIMEOUT_MS, "the open packet");
  assert.ok(typeof open === "string" && open.startsWith("0{"), `no open packet: ${open}`);
  return session;
}

/** The ids of the messages in every `load` among `packets`. */
function loadedIds(packets: string[]): string[] {
  return packets.flatMap((packet) => {
    const event = eventOf(packet);
    return event?.[0] === "load" ? (event[1] as { id: string }[]).map((m) => m.id) : [];
  });
}

/** Runs `fuzzCase` as `user`; throws what broke the contract. */
export async function runStrictCase(
  server: TestServer,
  fuzzCase: StrictCase,
  user: string,
): Promise<void> {
  const token = await tokenFor(user, undefined, 3600, fuzzCase.canWrite ? WRITE_SCOPE : undefined);
  await using session = await openSession(server, fuzzCase.transport);
  const { connects, connectAnswer } = fuzzCase;
  await session.sendPackets(connects.map((packet) => packet.replace("{token}", token)));

  const answers: string[] = [];
  let loaded = 0;
  const connected = await readUntil(session, "every CONNECT's answer", (packet) => {
    if (/^4[04]\{/.test(packet)) answers.push(packet);
    if (packet.startsWith('42["loaded",')) loaded++;
    return answers.length === connects.length && (connectAnswer !== "ok" || loaded > 0);
  });
  const codes = answers.map((packet) => {
    if (packet.startsWith("40")) return "ok";
    const { message, data } = JSON.parse(packet.slice(2));
    assert.equal(message, data?.code, `message is the code: ${packet}`);
    return data.code;
  });
  const expected = [connectAnswer, ...connects.slice(1).map(() => "already_connected")];
  assert.deepEqual(
    codes.toSorted(),
    expected.toSorted(),
    `CONNECT answers: ${answers.join(" | ")}`,
  );
  if (connectAnswer !== "ok") {
    const late = (await drain(session)).filter((packet) => /^4[04]\{/.test(packet));
    assert.deepEqual(late, [], "answers after every CONNECT was answered");
    return;
  }
  if (fuzzCase.burst) await runBurst(server, session, fuzzCase.burst, user, token);
  const probe = fuzzCase.probe ? await sendProbe(session) : undefined;
  const after = [...connected, ...probe?.read ?? [], ...await drain(session)];
  if (probe) {
    const copies = loadedIds(after).filter((id) => id === probe.id).length;
    assert.equal(copies, 1, "the probe's broadcasts");
  }
  const histories = after.filter((packet) => packet.startsWith('42["loaded",')).length;
  assert.equal(histories, 1, "`loaded` events");
}

/** Sends one message and reads up to its ack; returns its id and what was read. */
async function sendProbe(session: PacketSession): Promise<{ id: string; read: string[] }> {
  const ack = 1;
  await session.sendPackets([`42${ack}["message",{"message":"probe","clientId":"probe"}]`]);
  const read = await readUntil(session, "the probe's ack", (packet) => ackOf(packet)?.[0] === ack);
  const last = read.at(-1)!;
  const [, result] = ackOf(last)!;
  assert.ok(result.ok && result.message, last);
  return { id: result.message.id, read };
}

/** The answer each event of a burst gets: its own within the budget, `rate_limited` beyond. */
function burstAnswers(event: ChatEvent, events: BurstEvent[]): Answer[] {
  const budget = STRICT_BUDGETS[event].burst;
  return events.map((each, index) =>
    index < budget ? each.answer : event === "typing" ? "none" : "rate_limited"
  );
}

async function runBurst(
  server: TestServer,
  session: PacketSession,
  burst: NonNullable<StrictCase["burst"]>,
  user: string,
  token: string,
): Promise<void> {
  const { event, events } = burst;
  const foreign = event === "auth:refresh" ? await tokenFor(`${user}-other`) : "";
  await using observer = event === "typing" ? await observe(server, `${user}-observer`) : undefined;
  const answers = burstAnswers(event, events);
  const packets = events.map(({ payload }, index) => {
    const json = payload?.replace('"{own}"', JSON.stringify(token))
      .replace('"{foreign}"', JSON.stringify(foreign));
    return `42${index}["${event}"${json === undefined ? "" : `,${json}`}]`;
  });
  const acked = new Set(answers.flatMap((answer, index) => answer === "none" ? [] : [index]));
  const started = Date.now();
  await session.sendPackets(packets);
  const acks = new Map<number, AckResult>();
  const read = acked.size === 0 ? [] : await readUntil(session, "the burst's acks", (packet) => {
    const ack = ackOf(packet);
    if (ack) acks.set(...ack);
    return [...acked].every((index) => acks.has(index));
  });
  const elapsed = Date.now() - started;
  read.push(...await drain(session));
  for (const packet of read) {
    const ack = ackOf(packet);
    if (ack) acks.set(...ack);
  }
  const describe = (index: number) => `${event} #${index} ${packets[index].slice(0, 120)}`;
  assert.deepEqual([...acks.keys()].toSorted((a, b) => a - b), [...acked], "acked events");
  const refusals: string[] = [];
  for (const [index, result] of acks) {
    const answer = answers[index];
    if (answer === "ok") {
      assert.equal(result.ok, true, `${describe(index)}: ${JSON.stringify(result)}`);
      continue;
    }
    assert.deepEqual([result.ok, result.error?.code], [false, answer], describe(index));
    refusals.push(answer);
    if (answer === "rate_limited") assertRetry(event, result.error?.retryAfterMs, describe(index));
  }

  const errors = read.flatMap((packet) => {
    const parsed = eventOf(packet);
    return parsed?.[0] === "error" ? [parsed[1] as { code: string; retryAfterMs?: number }] : [];
  });
  const windows = 1 + Math.floor(elapsed / 1000);
  assert.ok(
    errors.length >= Math.min(refusals.length, ERROR_EVENTS_PER_SECOND) &&
      errors.length <= Math.min(refusals.length, ERROR_EVENTS_PER_SECOND * windows),
    `${errors.length} error events for ${refusals.length} refusals in ${elapsed} ms`,
  );
  for (const error of errors) {
    assert.ok(
      refusals.includes(error.code),
      `an error event nothing was refused for: ${error.code}`,
    );
    if (error.code === "rate_limited") assertRetry(event, error.retryAfterMs, "an error event");
  }

  if (event === "message") {
    const storedIds = new Set([...acks.values()].flatMap((result) => result.message?.id ?? []));
    const broadcast = loadedIds(read).filter((id) => storedIds.has(id));
    assert.deepEqual(broadcast.toSorted(), [...storedIds].toSorted(), "each stored message once");
    const stored = (await server.store.latest(200)).filter((message) => message.user.id === user);
    assert.deepEqual(stored.map((m) => m.id).toSorted(), [...storedIds].toSorted(), "stored");
  }
  if (observer) {
    const seen = (await drain(observer)).flatMap((packet) => {
      const parsed = eventOf(packet);
      const typing = parsed?.[1] as { user?: { id: string }; typing: boolean } | undefined;
      return parsed?.[0] === "typing" && typing?.user?.id === user ? [typing.typing] : [];
    });
    // Within the budget accepted typing is forwarded (it alternates); beyond it, dropped unseen.
    const forwarded = events.slice(0, STRICT_BUDGETS.typing.burst).flatMap((each) =>
      each.typing ?? []
    );
    assert.deepEqual(seen, forwarded, "typing the others saw");
  }
}

/** A `rate_limited` refusal says when to retry: within one refill of the budget. */
function assertRetry(event: ChatEvent, retryAfterMs: number | undefined, what: string): void {
  const refillMs = 60_000 / STRICT_BUDGETS[event].perMinute;
  assert.ok(
    Number.isInteger(retryAfterMs) && retryAfterMs! > 0 && retryAfterMs! <= refillMs,
    `${what}: retryAfterMs ${retryAfterMs}`,
  );
}

/** A WebSocket session of another user in the chat room, its history read. */
async function observe(server: TestServer, user: string): Promise<PacketSession> {
  const session = await openSession(server, "websocket");
  await session.sendPackets([CONNECT.replace("{token}", await tokenFor(user))]);
  await readUntil(session, "the observer's history", (packet) => packet.startsWith('42["loaded",'));
  return session;
}
