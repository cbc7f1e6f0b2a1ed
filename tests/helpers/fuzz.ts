/**
 * Seeded generators of hostile input for the fuzz suite: raw Engine.IO frames and polling
 * requests, Socket.IO packets, chat payloads and tokens, each with the answer the contract
 * promises; budgets and CONNECT bursts come from `fuzz_strict.ts`. The same seed and case index
 * always give the same case.
 *
 * @example
 * ```ts
 * const tokens = await makeTokenVariants();
 * const limits = { maxHttpBufferSize: 1e6, maxMessageLength: 2000 };
 * const fuzzCase = generateCase(123, 0, tokens, limits); // { lane, name, ... }
 * ```
 * @module
 */
import { SignJWT } from "jose";
import { SECRET } from "./chat_server.ts";
import { type StrictCase, strictCases } from "./fuzz_strict.ts";
import type { SessionState } from "./raw_session.ts";
import { ASCII, Rng } from "./rng.ts";

const NASTY = ASCII + "\x00\x1e\x7f\u00e9\u2028\ud83d\ude00\ud800\ufeff\n\t";

/** What the contract promises for a case. */
export type Expectation =
  /** The server closes the session. */
  | { kind: "close" }
  /** The session stays open (a barrier packet sent after the case is answered). */
  | { kind: "alive" }
  /** Open or closed, the contract does not say; the server must simply survive. */
  | { kind: "survive" }
  /** A chat `error` event with this code. */
  | { kind: "error"; code: string }
  /** The namespace connect is refused with this `connect_error` code. */
  | { kind: "connect_error"; code: string }
  /** The connect succeeds, then a chat `error` with this code follows. */
  | { kind: "connect_then_error"; code: string }
  /** These answers arrive in this order (other frames may come between); the session stays open. */
  | { kind: "replies"; replies: Reply[] }
  /** The session stays open and no ack with this id arrives. */
  | { kind: "no_ack"; ack: number };

/** One answer a case waits for. */
export type Reply =
  /** This exact frame. */
  | { frame: string }
  /** The ack with this id: `{ ok: true }`, or with `code` a failure with that error code. */
  | { ack: number; code?: string };

/** A Socket.IO connect to `/`. */
export interface ConnectFrame {
  connect: unknown;
  withToken?: boolean;
}

/** An `auth:refresh` with ack `ack`, with the worker's own token or {@link TokenSet.foreign}. */
export interface RefreshFrame {
  refresh: "own" | "foreign";
  ack: number;
}

/** A case sent as WebSocket frames on a pooled session. */
export interface FrameCase {
  lane: "frames";
  name: string;
  /** Which session the case needs: engine-open only, connected to `/` as a user, or either. */
  state: SessionState | "any";
  /**
   * Frames to send; `{ connect }` is a connect to `/` with that `auth`, plus a valid token for
   * the worker's user when `withToken` is set; `{ refresh }` is an `auth:refresh` with a token
   * the worker fills in.
   */
  frames: (string | Uint8Array | ConnectFrame | RefreshFrame)[];
  expect: Expectation;
}

/** One raw HTTP request of a polling case; `{sid}` in the query is the case's fresh session. */
export interface HttpStep {
  method: string;
  query: Record<string, string>;
  body?: string | Uint8Array<ArrayBuffer>;
  /** Expected status and, for errors, Engine.IO JSON `code`. */
  status: number;
  code?: number;
}

/** A case of raw polling requests. */
export interface HttpCase {
  lane: "http";
  name: string;
  /** Whether a fresh polling session is opened first (its sid fills `{sid}`). */
  session: "fresh" | "none" | "victim";
  steps: HttpStep[];
  /**
   * After the steps: the fresh session must be gone (a GET answers 400 unknown sid, after the
   * close if the server closed it on purpose).
   */
  sessionClosed?: boolean;
}

/** A fuzz case. */
export type FuzzCase = FrameCase | HttpCase | StrictCase;

/** Precomputed tokens, each with the `connect_error` code it must get. */
export interface TokenVariant {
  name: string;
  auth: unknown;
  code: string;
}

/** Tokens signed once per run: valid ones (for the `lastId` cases) and every kind of bad one. */
export interface TokenSet {
  valid: (sub: string) => Promise<string>;
  /** A valid token of a user no worker is: `auth:refresh` with it is `forbidden`. */
  foreign: string;
  bad: TokenVariant[];
}

const encoder = new TextEncoder();
const base64url = (text: string) =>
  btoa(String.fromCharCode(...encoder.encode(text))).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");

async function sign(
  claims: Record<string, unknown>,
  { secret = SECRET, alg = "HS256" } = {},
): Promise<string> {
  return await new SignJWT(claims).setProtectedHeader({ alg }).sign(encoder.encode(secret));
}

/** Signs every token variant the token cases draw from. */
export async function makeTokenVariants(): Promise<TokenSet> {
  const now = Math.floor(Date.now() / 1000);
  // Long runs take minutes: only the expired variant may expire.
  const DAY = 86_400;
  const valid = (sub: string) => sign({ sub, iat: now, exp: now + DAY });
  const good = await valid("fuzz-token");
  const [header, payload] = good.split(".");
  const unsigned = `${base64url('{"alg":"none","typ":"JWT"}')}.${payload}.`;
  const bad: TokenVariant[] = [
    { name: "alg none", auth: { token: unsigned }, code: "invalid_token" },
    {
      name: "alg none, signature kept",
      auth: { token: `${base64url('{"alg":"none"}')}.${good.split(".").slice(1).join(".")}` },
      code: "invalid_token",
    },
    {
      name: "wrong signature",
      auth: { token: await sign({ sub: "x", exp: now + DAY }, { secret: "other" }) },
      code: "invalid_token",
    },
    {
      name: "tampered payload",
      auth: { token: `${header}.${base64url('{"sub":"admin"}')}.${good.split(".")[2]}` },
      code: "invalid_token",
    },
    {
      name: "HS512 not allowed",
      auth: { token: await sign({ sub: "x", exp: now + DAY }, { alg: "HS512" }) },
      code: "invalid_token",
    },
    {
      name: "expired",
      auth: { token: await sign({ sub: "x", exp: now - 60 }) },
      code: "token_expired",
    },
    {
      name: "nbf in the future",
      auth: { token: await sign({ sub: "x", nbf: now + 3600, exp: now + 7200 }) },
      code: "invalid_token",
    },
    { name: "no sub", auth: { token: await sign({ exp: now + DAY }) }, code: "invalid_token" },
    {
      name: "sub a number",
      auth: { token: await sign({ sub: 42, exp: now + DAY }) },
      code: "invalid_token",
    },
    {
      name: "name an object",
      auth: { token: await sign({ sub: "x", name: { a: 1 }, exp: now + DAY }) },
      code: "invalid_token",
    },
    {
      name: "100 KB token, wrong signature",
      auth: {
        token: await sign({ sub: "x", pad: "p".repeat(100_000), exp: now + DAY }, {
          secret: "other",
        }),
      },
      code: "invalid_token",
    },
    { name: "100 KB garbage", auth: { token: "a".repeat(100_000) }, code: "invalid_token" },
    { name: "three dots", auth: { token: "..." }, code: "invalid_token" },
    { name: "not a JWT", auth: { token: "hello" }, code: "invalid_token" },
    { name: "bearer prefix", auth: { token: `Bearer ${good}` }, code: "invalid_token" },
    { name: "token under jwt", auth: { jwt: good }, code: "auth_required" },
    { name: "token under Token", auth: { Token: good }, code: "auth_required" },
    { name: "token a number", auth: { token: 12345 }, code: "auth_required" },
    { name: "token an object", auth: { token: { token: good } }, code: "auth_required" },
    { name: "token an array", auth: { token: [good] }, code: "auth_required" },
    { name: "token null", auth: { token: null }, code: "auth_required" },
    { name: "token true", auth: { token: true }, code: "auth_required" },
    { name: "token empty", auth: { token: "" }, code: "auth_required" },
    { name: "token blank", auth: { token: "   " }, code: "auth_required" },
    { name: "no auth", auth: undefined, code: "auth_required" },
    { name: "empty auth", auth: {}, code: "auth_required" },
  ];
  return { valid, foreign: good, bad };
}

/** Values of every JSON type, for "wrong type" payloads. */
function wrongValue(rng: Rng, except: string[] = []): unknown {
  const choices: [string, () => unknown][] = [
    ["number", () => rng.pick([0, -1, 1.5, 1e308, -0, 2 ** 53 + 2])],
    ["string", () => rng.string(rng.int(20), NASTY)],
    ["boolean", () => rng.chance(0.5)],
    ["null", () => null],
    ["array", () => rng.pick([[], [1], ["hi"], [{ message: "hi" }]])],
    ["object", () => rng.pick([{}, { a: 1 }, { message: { message: "hi" } }])],
  ];
  const allowed = choices.filter(([type]) => !except.includes(type));
  return rng.pick(allowed)[1]();
}

/** `depth` nested arrays (or objects) as JSON text, without building the value. */
export function depthBomb(depth: number, inner = "0", objects = false): string {
  return objects
    ? '{"a":'.repeat(depth) + inner + "}".repeat(depth)
    : "[".repeat(depth) + inner + "]".repeat(depth);
}

/** A Socket.IO EVENT packet for `/`, optionally with an ack id. */
function event(json: string, ackId?: number | string): string {
  return `42${ackId ?? ""}${json}`;
}

function maybeAck(rng: Rng): number | undefined {
  return rng.chance(0.3) ? rng.int(1000) : undefined;
}

/** An ack id far above {@link maybeAck}'s: an ack an earlier case left unread never matches it. */
function ackId(rng: Rng): number {
  return rng.range(1_000_000, 2_000_000_000);
}

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** A string with the shape of a message id, naming a message that may or may not exist. */
function messageId(rng: Rng): string {
  return rng.string(26, CROCKFORD);
}

const INVALID = { kind: "error", code: "invalid_payload" } as const;
const CLOSE = { kind: "close" } as const;
/** The refusal of a CONNECT on a session that already has a socket on `/`. */
const ALREADY_CONNECTED = '44{"message":"already_connected","data":{"code":"already_connected",' +
  '"message":"this transport session already has a socket"}}';
const ALIVE = { kind: "alive" } as const;
const SURVIVE = { kind: "survive" } as const;

type Generator = (rng: Rng, tokens: TokenSet, limits: FuzzLimits) => FuzzCase;

/** Server limits the generators size their cases by. */
export interface FuzzLimits {
  maxHttpBufferSize: number;
  maxMessageLength: number;
}

/**
 * A size bound written for a 1 MB `maxHttpBufferSize`, scaled to `limits` (at least 2,000), so a
 * case stays under a smaller buffer and its size stays in proportion.
 */
function sized(limits: FuzzLimits, forOneMegabyte: number): number {
  return Math.max(2_000, Math.floor(forOneMegabyte * limits.maxHttpBufferSize / 1_000_000));
}

function frames(
  name: string,
  state: FrameCase["state"],
  list: FrameCase["frames"],
  expect: Expectation,
): FrameCase {
  return { lane: "frames", name, state, frames: list, expect };
}

// ---- Engine.IO frames

const engineCases: Generator[] = [
  (rng) => {
    const head = rng.pick([..."789:;<=>?@ACDEFGHIJKLMNOPQRSTUVWXYZacdefghijklmnopqrstuvwxyz{~"]);
    return frames(`unknown packet type ${head}`, "any", [head + rng.string(rng.int(8))], CLOSE);
  },
  () => frames("empty frame", "any", [""], CLOSE),
  (rng) => frames("close packet", "any", ["1" + rng.string(rng.int(4))], CLOSE),
  (rng) => frames("client ping", "any", ["2" + rng.pick(["", "probe", "x"])], CLOSE),
  (rng) => {
    const body = rng.string(rng.range(1, 40), "ABCD+/=!*-_ \x00é" + ASCII.slice(16, 26));
    const valid = body.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(body);
    // Valid base64 still decodes to binary that socket.io refuses outside an attachment.
    return frames(`b packet ${valid ? "valid" : "invalid"} base64`, "any", ["b" + body], CLOSE);
  },
  (rng) => frames("binary frame of noise", "any", [rng.bytes(rng.range(1, 64))], CLOSE),
  (rng) =>
    frames("pong storm", "any", Array(rng.range(50, 400)).fill(rng.pick(["3", "3x"])), ALIVE),
  (rng) =>
    frames("noops and stray opens/upgrades", "any", [rng.pick(["6", "5", "0", "0{}"])], ALIVE),
  (_rng, _tokens, limits) =>
    frames("oversized text frame", "any", ["4" + "x".repeat(limits.maxHttpBufferSize + 1)], CLOSE),
  (_rng, _tokens, limits) =>
    frames("oversized binary frame", "any", [new Uint8Array(limits.maxHttpBufferSize + 1)], CLOSE),
  () => frames("message packet without data", "any", ["4"], CLOSE),
  (rng) =>
    frames(
      "garbage socket.io packet",
      "any",
      ["4" + rng.pick(["7", "9", "x", "-", "\x00"]) + rng.string(rng.int(30), NASTY)],
      CLOSE,
    ),
];

// ---- Socket.IO packets on a connected session

const RESERVED = [
  "connect",
  "connect_error",
  "disconnect",
  "disconnecting",
  "newListener",
  "removeListener",
];

const socketIoCases: Generator[] = [
  (rng) => {
    const name = unknownNamespace(rng);
    const auth = rng.pick([
      "",
      ",",
      ",{}",
      ',{"token":"x"}',
      `,{"pad":"${"p".repeat(rng.int(5000))}"}`,
    ]);
    return frames("connect to an unknown namespace", "any", [`40/${name}${auth}`], {
      kind: "replies",
      replies: [{ frame: invalidNamespace(name) }],
    });
  },
  (rng) => {
    const name = unknownNamespace(rng);
    const ack = ackId(rng);
    return frames("connect to an unknown namespace, then the socket on / answers", "connected", [
      `40/${name},{}`,
      event('["history",{"limit":1}]', ack),
    ], { kind: "replies", replies: [{ frame: invalidNamespace(name) }, { ack }] });
  },
  (rng) =>
    frames(
      "event for a namespace never joined",
      "connected",
      [`42/${rng.pick(["nope", "admin", "/"])},["message",{"message":"x"}]`],
      CLOSE,
    ),
  (rng) => {
    const json =
      rng.pick(['["message",', "[", '["message"', "{", "nul", '["message",{"message":"x"}']) +
      rng.string(rng.int(5)) + ","; // a trailing comma: never valid JSON
    return frames("bad JSON", "connected", [event(json)], CLOSE);
  },
  (rng) =>
    frames(
      "event payload not an array",
      "connected",
      [event(rng.pick(["{}", '"message"', "null", "true", '{"0":"message"}']))],
      CLOSE,
    ),
  (rng) =>
    frames(
      "event name not a string",
      "connected",
      [event(JSON.stringify([rng.pick([null, true, {}, [], ["message"]]), { message: "x" }]))],
      CLOSE,
    ),
  (rng) =>
    frames("numeric event name", "connected", [event(`[${rng.int(100)},{"message":"x"}]`)], ALIVE),
  (rng) =>
    frames(
      "reserved event name",
      "connected",
      [event(JSON.stringify([rng.pick(RESERVED), { message: "x" }]))],
      CLOSE,
    ),
  (rng) =>
    frames(
      "event named like a built-in",
      "connected",
      [event(
        JSON.stringify([rng.pick(["error", "__proto__", "constructor", "toString", "load"]), 1]),
      )],
      ALIVE,
    ),
  (rng) =>
    frames(
      "unknown event",
      "connected",
      [event(JSON.stringify([rng.string(rng.range(1, 20)), wrongValue(rng)]), maybeAck(rng))],
      ALIVE,
    ),
  (rng) =>
    frames(
      "bad ack id",
      "connected",
      [`42${rng.pick(["abc", "-1", "1.5", "1e5", " 1", "0x1"])}["message",{"message":5}]`],
      SURVIVE,
    ),
  (rng) =>
    frames(
      "huge ack id",
      "connected",
      [event('["message",{"message":5}]', "9".repeat(rng.range(16, 40)))],
      INVALID,
    ),
  (rng) =>
    frames(
      "ack for nothing",
      "connected",
      [`43${rng.int(1000)}[${rng.string(3, "0123")}]`],
      SURVIVE,
    ),
  (rng) => {
    const declared = rng.range(2, 10);
    const sent = rng.int(declared);
    return frames(
      "binary event announcing more attachments than sent",
      "connected",
      [
        `45${declared}-["message",{"_placeholder":true,"num":${rng.int(declared)}}]`,
        ...Array.from({ length: sent }, () => rng.bytes(rng.int(8))),
      ],
      CLOSE,
    );
  },
  (rng) =>
    frames(
      "binary event whose placeholder points past its attachments",
      "connected",
      [
        '451-["message",{"_placeholder":true,"num":' + rng.pick([1, 5, -1, '"0"', "null"]) + "}]",
        rng.bytes(4),
      ],
      CLOSE,
    ),
  (rng) =>
    frames(
      "bad attachment count",
      "connected",
      [`45${rng.pick(["", "0", "-1", "x", "11", "99999999999"])}-["message",{}]`],
      CLOSE,
    ),
  (rng) =>
    frames(
      "binary payload where an object is due",
      "connected",
      [
        `451-["${
          rng.pick(["message", "history", "typing", "auth:refresh"])
        }",{"_placeholder":true,"num":0}]`,
        rng.bytes(8),
      ],
      INVALID,
    ),
  (rng) =>
    frames(
      "binary message text",
      "connected",
      ['451-["message",{"message":{"_placeholder":true,"num":0}}]', rng.bytes(8)],
      INVALID,
    ),
  (rng, _tokens, limits) => {
    // Sized to stay under maxHttpBufferSize: 6 bytes a level for objects, 2 for arrays.
    const objects = rng.chance(0.5);
    const depth = rng.range(1_000, sized(limits, objects ? 150_000 : 450_000));
    return frames(
      `depth bomb of ${objects ? "objects" : "arrays"}`,
      "connected",
      [event(`["message",${depthBomb(depth, "0", objects)}]`)],
      INVALID,
    );
  },
  (rng, _tokens, limits) =>
    frames(
      "depth bomb in a binary event",
      "connected",
      [
        `451-["message",${
          depthBomb(rng.range(1_000, sized(limits, 100_000)), '{"_placeholder":true,"num":0}')
        }]`,
        rng.bytes(2),
      ],
      SURVIVE,
    ),
  (rng, _tokens, limits) =>
    frames(
      "huge array payload",
      "connected",
      [event(
        `["message",[${Array(rng.range(10_000, sized(limits, 200_000))).fill(0).join(",")}]]`,
      )],
      INVALID,
    ),
  (rng, _tokens, limits) =>
    frames(
      "huge argument list",
      "connected",
      [event(
        `["${rng.pick(["message", "history", "typing"])}"${
          ",0".repeat(rng.range(9, sized(limits, 300_000)))
        }]`,
      )],
      INVALID,
    ),
  (rng) =>
    frames(
      "disconnect packet with data",
      "connected",
      ["41" + rng.pick(["{}", "x", "/,"])],
      SURVIVE,
    ),
  // One socket per namespace and session: a further CONNECT is refused, the socket stays.
  () =>
    frames("second connect to /", "connected", [{ connect: {} }], {
      kind: "replies",
      replies: [{ frame: ALREADY_CONNECTED }],
    }),
  (rng) =>
    frames(
      "socket.io event before connecting",
      "open",
      [event(JSON.stringify(["message", { message: "sneaky " + rng.int(1e6), clientId: "x" }]))],
      CLOSE,
    ),
  (rng) =>
    frames("connect with non-object auth", "open", [
      "40" + rng.pick(['"t"', "[1]", "null", "true", "{"]),
    ], CLOSE),
];

/** A namespace nobody serves: never `/` and never the harness's barrier. */
function unknownNamespace(rng: Rng): string {
  return rng.pick([
    "nope",
    "admin",
    "chat",
    "socket.io",
    "n-" + rng.string(rng.range(1, 30), "abcdefghijklmnopqrstuvwxyz0123456789-_.~/\u00e9"),
  ]);
}

/** socket.io's refusal of a connect to a namespace that does not exist. */
function invalidNamespace(name: string): string {
  return `44/${name},{"message":"Invalid namespace"}`;
}

// ---- chat payloads on a connected session

function chatEvent(rng: Rng, name: string, payload: unknown): string {
  return event(JSON.stringify(payload === undefined ? [name] : [name, payload]), maybeAck(rng));
}

const chatCases: Generator[] = [
  (rng) => {
    const payload = wrongValue(rng, ["object"]);
    return frames("message payload not an object", "connected", [
      chatEvent(rng, "message", payload),
    ], INVALID);
  },
  (rng) =>
    frames("message payload missing", "connected", [chatEvent(rng, "message", undefined)], INVALID),
  (rng) => {
    const text = rng.chance(0.3)
      ? rng.pick(["", " ", "\n\t ", "\u3000"])
      : wrongValue(rng, ["string"]);
    return frames("message text of the wrong type or blank", "connected", [
      chatEvent(rng, "message", { message: text, clientId: "c" + rng.int(1e6) }),
    ], INVALID);
  },
  (rng, _tokens, limits) =>
    frames("message too long", "connected", [
      chatEvent(rng, "message", {
        message: "é".repeat(limits.maxMessageLength + rng.range(1, 50)),
      }),
    ], { kind: "error", code: "message_too_long" }),
  (rng) => {
    const clientId = rng.chance(0.3)
      ? rng.pick(["", "x".repeat(65 + rng.int(1000))])
      : wrongValue(rng, ["string"]);
    return frames("clientId of the wrong type or size", "connected", [
      chatEvent(rng, "message", { message: "valid text", clientId }),
    ], INVALID);
  },
  (rng) =>
    frames("history payload not an object", "connected", [
      chatEvent(rng, "history", wrongValue(rng, ["object", "null"])),
    ], INVALID),
  (rng) => {
    const field = rng.pick(["before", "limit"]);
    const value = field === "limit"
      ? rng.pick([0, -1, 101, 1.5, "10", null, true, [], {}, 1e309 as unknown])
      : rng.pick([1, "", "x", "0".repeat(27), null, {}, [], "01JDQ7ZJ2K8M6V1T4X3N5P7R9!"]);
    return frames(`history ${field} invalid`, "connected", [
      chatEvent(rng, "history", { [field]: value }),
    ], INVALID);
  },
  (rng) =>
    frames("typing payload not an object", "connected", [
      chatEvent(rng, "typing", wrongValue(rng, ["object"])),
    ], INVALID),
  (rng) =>
    frames("typing not a boolean", "connected", [
      chatEvent(rng, "typing", { typing: wrongValue(rng, ["boolean"]) }),
    ], INVALID),
  (rng) =>
    frames("auth:refresh payload not an object", "connected", [
      chatEvent(rng, "auth:refresh", wrongValue(rng, ["object"])),
    ], INVALID),
  (rng) =>
    frames("auth:refresh token not a string", "connected", [
      chatEvent(rng, "auth:refresh", { token: rng.chance(0.2) ? "" : wrongValue(rng, ["string"]) }),
    ], INVALID),
  (rng, tokens) => {
    const variant = rng.pick(
      tokens.bad.filter((bad) =>
        typeof (bad.auth as { token?: unknown })?.token === "string" &&
        (bad.auth as { token: string }).token.trim() !== ""
      ),
    );
    return frames(`auth:refresh with ${variant.name}`, "connected", [
      chatEvent(rng, "auth:refresh", variant.auth),
    ], { kind: "error", code: variant.code });
  },
  (rng) => {
    const ack = ackId(rng);
    const limit = () => rng.range(1, 100);
    const query = rng.pick([
      undefined,
      null,
      {},
      { limit: limit() },
      { before: messageId(rng) },
      { before: messageId(rng), limit: limit() },
      { limit: limit(), [rng.pick(["after", "__proto__", "x"])]: wrongValue(rng) },
    ]);
    return frames("history with a valid query", "connected", [
      event(JSON.stringify(query === undefined ? ["history"] : ["history", query]), ack),
    ], { kind: "replies", replies: [{ ack }] });
  },
  (rng) => {
    const ack = ackId(rng);
    const badLimit = rng.pick([0, -1, 101, 1.5, "10", null, true, [], {}]);
    const badBefore = rng.pick([1, "", "x", "0".repeat(27), "a" + messageId(rng).slice(1), null]);
    const query = rng.pick([
      { before: badBefore, limit: rng.range(1, 100) },
      { before: messageId(rng), limit: badLimit },
      { before: badBefore, limit: badLimit },
    ]);
    return frames("history with a bad before or limit, acked", "connected", [
      event(JSON.stringify(["history", query]), ack),
    ], { kind: "replies", replies: [{ ack, code: "invalid_payload" }] });
  },
  (rng) => {
    const ack = ackId(rng);
    const payload = rng.chance(0.5)
      ? { typing: rng.chance(0.5) }
      : { typing: rng.chance(0.5), [rng.pick(["user", "x"])]: wrongValue(rng) };
    // Accepted typing has no ack.
    return frames("typing, with an ack id", "connected", [
      event(JSON.stringify(["typing", payload]), ack),
    ], { kind: "no_ack", ack });
  },
  (rng) => {
    const ack = ackId(rng);
    const payload = rng.chance(0.5) ? wrongValue(rng, ["object"]) : {
      typing: wrongValue(rng, ["boolean"]),
    };
    return frames("typing not a boolean, acked", "connected", [
      event(JSON.stringify(["typing", payload]), ack),
    ], { kind: "replies", replies: [{ ack, code: "invalid_payload" }] });
  },
  (rng) => {
    const ack = ackId(rng);
    return frames(
      "auth:refresh with the user's own token",
      "connected",
      [{ refresh: "own", ack }],
      {
        kind: "replies",
        replies: [{ ack }],
      },
    );
  },
  (rng) => {
    const ack = ackId(rng);
    return frames("auth:refresh with another user's token", "connected", [{
      refresh: "foreign",
      ack,
    }], { kind: "replies", replies: [{ ack, code: "forbidden" }] });
  },
];

// ---- tokens at connect

const tokenCases: Generator[] = [
  (rng, tokens) => {
    const variant = rng.pick(tokens.bad);
    return frames(`connect with ${variant.name}`, "open", [{ connect: variant.auth }], {
      kind: "connect_error",
      code: variant.code,
    });
  },
  (rng) => {
    const lastId = rng.chance(0.2)
      ? rng.pick(["x", "0".repeat(25), "01JDQ7ZJ2K8M6V1T4X3N5P7R9!"])
      : wrongValue(rng, ["null", "string"]);
    // `token` is filled in with a valid one for the worker's user when the case runs.
    return frames("connect with a lastId of the wrong type", "open", [{
      connect: { lastId },
      withToken: true,
    }], {
      kind: "connect_then_error",
      code: "invalid_payload",
    });
  },
];

// ---- raw polling requests

const BAD_REQUEST = 3;

function http(
  name: string,
  session: HttpCase["session"],
  steps: HttpStep[],
  sessionClosed?: boolean,
): HttpCase {
  return { lane: "http", name, session, steps, sessionClosed };
}

const httpCases: Generator[] = [
  (rng) =>
    http("unsupported protocol version", "none", [{
      method: "GET",
      query: { EIO: rng.pick(["3", "5", "", "4.0", "x"]), transport: "polling" },
      status: 400,
      code: 5,
    }]),
  (rng) =>
    http("unknown transport", "none", [{
      method: "GET",
      query: { EIO: "4", transport: rng.pick(["", "flashsocket", "POLLING", "websocket2"]) },
      status: 400,
      code: 0,
    }]),
  () =>
    http("websocket transport without an upgrade", "none", [{
      method: "GET",
      query: { EIO: "4", transport: "websocket" },
      status: 400,
      code: BAD_REQUEST,
    }]),
  (rng) =>
    http("data before a handshake", "none", [{
      method: rng.pick(["POST", "PUT", "DELETE", "PATCH"]),
      query: { EIO: "4", transport: "polling" },
      body: '40{"token":"x"}',
      status: 400,
      code: 2,
    }]),
  (rng) =>
    http("unknown sid", "none", [{
      method: rng.pick(["GET", "POST"]),
      query: { EIO: "4", transport: "polling", sid: rng.string(20, "ABCDEFabcdef0123456789-_") },
      body: "6",
      status: 400,
      code: 1,
    }]),
  (rng) =>
    http("another session's sid (a websocket session)", "victim", [{
      method: rng.pick(["GET", "POST"]),
      query: { EIO: "4", transport: "polling", sid: "{victim}" },
      body: '42["message",{"message":"hijack"}]',
      status: 400,
      code: BAD_REQUEST,
    }]),
  (rng) =>
    http("bad method on a session", "fresh", [{
      method: rng.pick(["PUT", "DELETE", "PATCH"]),
      query: { EIO: "4", transport: "polling", sid: "{sid}" },
      status: 400,
      code: BAD_REQUEST,
    }]),
  (rng) => {
    const body = rng.pick([
      "",
      "\x1e",
      "4x\x1e",
      "9",
      "b!!!!",
      "b" + rng.string(rng.range(1, 30), "ABC+/=*"),
      rng.string(rng.range(1, 40), NASTY).replace(/^[0-6b]/, "z"),
      "6\x1e\x1e6",
    ]);
    const valid = /^b[A-Za-z0-9+/]*={0,2}$/.test(body) && (body.length - 1) % 4 === 0;
    return valid
      ? http("POST of a valid binary packet", "fresh", [{
        method: "POST",
        query: { EIO: "4", transport: "polling", sid: "{sid}" },
        body,
        status: 200,
      }], true)
      : http("POST of a garbage payload", "fresh", [{
        method: "POST",
        query: { EIO: "4", transport: "polling", sid: "{sid}" },
        body,
        status: 400,
        code: BAD_REQUEST,
      }], true);
  },
  (rng) => {
    const bytes = rng.bytes(rng.range(2, 40));
    bytes[0] = 0x34; // "4"
    // Bytes that never occur in UTF-8, whatever surrounds them.
    bytes[rng.range(1, bytes.length - 1)] = rng.pick([0xff, 0xfe, 0xc0, 0xc1, 0xf5]);
    return http("POST body of invalid UTF-8", "fresh", [{
      method: "POST",
      query: { EIO: "4", transport: "polling", sid: "{sid}" },
      body: bytes,
      status: 400,
      code: BAD_REQUEST,
    }], true);
  },
  (_rng, _tokens, limits) =>
    http("oversized POST body", "fresh", [{
      method: "POST",
      query: { EIO: "4", transport: "polling", sid: "{sid}" },
      body: "4" + "x".repeat(limits.maxHttpBufferSize),
      status: 413,
      code: BAD_REQUEST,
    }], true),
  (rng) =>
    http("harmless packets", "fresh", [{
      method: "POST",
      query: { EIO: "4", transport: "polling", sid: "{sid}" },
      body: Array(rng.range(1, 200)).fill(rng.pick(["3", "6"])).join("\x1e"),
      status: 200,
    }]),
];

/** Every case family with its weight in the mix. */
const FAMILIES: [number, Generator[]][] = [
  [25, engineCases],
  [30, socketIoCases],
  [25, chatCases],
  [10, tokenCases],
  [10, httpCases],
  [5, strictCases],
];
const TOTAL_WEIGHT = FAMILIES.reduce((sum, [weight]) => sum + weight, 0);

/** The case at `index` of the run seeded with `seed` (independent of every other case). */
export function generateCase(
  seed: number,
  index: number,
  tokens: TokenSet,
  limits: FuzzLimits,
): FuzzCase {
  const rng = new Rng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  let draw = rng.int(TOTAL_WEIGHT);
  for (const [weight, generators] of FAMILIES) {
    if (draw < weight) return rng.pick(generators)(rng, tokens, limits);
    draw -= weight;
  }
  throw new Error("unreachable");
}
