// @ts-check
/**
 * The page's pure helpers: error sentences, room ids, links in message text, grouping, author
 * colours and token timing. Nothing here touches the DOM, so Deno's tests import it as it is.
 */

/** @typedef {{ id: string, name: string }} User */
/** @typedef {{ emoji: string, count: number, users: string[] }} Reaction */
/** @typedef {{ id: string, user: User, preview: string, deleted: boolean }} ReplyQuote */
/** @typedef {{ count: number, lastId: string, users: string[] }} ThreadSummary */
/**
 * @typedef {{ id: string, room: string, user: User, message: string, createdAt: string,
 *   editedAt?: string, deleted?: true, reactions?: Reaction[], replyTo?: ReplyQuote,
 *   thread?: ThreadSummary, mentions?: string[] }} ChatMessage
 */
/** @typedef {{ code: string, message?: string, retryAfterMs?: number }} ChatError */

/** Plain-words versions of the server's error codes, and of the page's own `no_answer`. */
const ERROR_SENTENCES = /** @type {Record<string, string>} */ ({
  auth_required: "No token was sent. Log in again.",
  invalid_token: "The server did not accept this token. Log in again.",
  token_expired: "This token has expired. Log in again, or mint a new one.",
  auth_unavailable: "The server cannot check tokens right now. Try again in a moment.",
  too_many_connections: "You have too many chat tabs open. Close one, then reconnect.",
  invalid_payload: "The server did not understand that request.",
  message_too_long: "That message is too long.",
  rate_limited: "You are sending messages too fast.",
  forbidden: "Your login does not allow that.",
  too_many_rooms: "You are in too many rooms at once; reload the page to start afresh.",
  internal: "Something went wrong on the server; nothing was sent. Try again.",
  no_answer: "The server did not answer; it may not have been sent.",
});

/**
 * A sentence for an error code, with the details the server gave.
 * @param {ChatError} error
 */
export function describe(error) {
  let sentence = ERROR_SENTENCES[error.code] ?? `The server refused that (${error.code}).`;
  if (error.code === "rate_limited" && error.retryAfterMs !== undefined) {
    sentence += ` Try again in ${Math.ceil(error.retryAfterMs / 1000)} s.`;
  }
  if (error.code === "forbidden" && error.message) sentence += ` (${error.message})`;
  return sentence;
}

/** What the server's `invalid_token` messages (src/auth.ts) mean, in the page's words. */
const TOKEN_PROBLEMS = /** @type {[RegExp, string][]} */ ([
  [/malformed/, "That is not a token: a JWT is three parts joined by dots (eyJ….eyJ….…)."],
  [
    /signature is invalid/,
    "This token was not signed by this server: it was minted with another JWT_SECRET or key.",
  ],
  [/algorithm/, "This token is signed with an algorithm this server does not accept."],
  [/not valid yet/, "This token is not valid yet (its nbf is in the future)."],
  [/subject|no issuer|issuer|audience|kid|key set/, "The server did not accept this token: "],
]);

/**
 * Why a login failed, from `connect_error`'s `data`: expired, not signed here, malformed…
 * @param {ChatError} error
 */
export function describeLoginError(error) {
  if (error.code === "invalid_token" && error.message) {
    for (const [pattern, sentence] of TOKEN_PROBLEMS) {
      if (!pattern.test(error.message)) continue;
      return sentence.endsWith(": ") ? `${sentence}${error.message}.` : sentence;
    }
    return `The server did not accept this token: ${error.message}.`;
  }
  return describe(error);
}

/**
 * A pasted token as the server wants it: without spaces, quotes or a leading `Bearer `.
 * @param {string} pasted
 */
export function cleanToken(pasted) {
  return pasted.trim().replace(/^bearer\s+/i, "").replace(/^["']|["']$/g, "").trim();
}

/** Dev login mints only `dev-` user ids (src/page.ts), so no real user can look like one. */
const DEV_ID_PREFIX = "dev-";
/** The server API publishes as this user (src/api.ts). */
export const SYSTEM_USER_ID = "system";

/**
 * Whether a user came from dev login.
 * @param {User} user
 */
export function isDevUser(user) {
  return user.id.startsWith(DEV_ID_PREFIX);
}

/**
 * Length as the server counts it: code points, so an emoji is one character.
 * @param {string} text
 */
export function characterCount(text) {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

const ROOM_ID_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const DM_USER_PATTERN = /^[A-Za-z0-9_.@+-]{1,64}$/;
const DM_PREFIX = "dm:";

/**
 * The direct-message room of two users: `dm:<a>:<b>`, the ids sorted.
 * @param {string} a
 * @param {string} b
 */
export function dmRoom(a, b) {
  return a < b ? `${DM_PREFIX}${a}:${b}` : `${DM_PREFIX}${b}:${a}`;
}

/**
 * The two users of a DM room, or undefined when `room` is not one.
 * @param {string} room
 * @returns {[string, string] | undefined}
 */
export function dmUsers(room) {
  if (!room.startsWith(DM_PREFIX)) return undefined;
  const parts = room.slice(DM_PREFIX.length).split(":");
  if (parts.length !== 2 || !parts.every((id) => DM_USER_PATTERN.test(id))) return undefined;
  return parts[0] < parts[1] ? [parts[0], parts[1]] : undefined;
}

/**
 * Whether `room` is a room id the server accepts (a named room or a DM).
 * @param {string} room
 */
export function isRoomId(room) {
  return ROOM_ID_PATTERN.test(room) || dmUsers(room) !== undefined;
}

/**
 * The other user of a DM room (yourself, for a DM with yourself).
 * @param {string} room
 * @param {string} myId
 */
export function dmPeer(room, myId) {
  const users = dmUsers(room);
  if (!users) return undefined;
  return users[0] === myId ? users[1] : users[0];
}

const URL_PATTERN = /\bhttps?:\/\/[^\s<>"]+/gi;
/** Punctuation that ends a sentence more often than a link. */
const TRAILING_PUNCTUATION = /[.,;:!?'*_~]+$/;

/**
 * Splits message text into plain strings and http(s) links, in order.
 * @param {string} text
 * @returns {(string | { url: string })[]}
 */
export function linkSegments(text) {
  /** @type {(string | { url: string })[]} */
  const segments = [];
  let rest = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    let candidate = match[0].replace(TRAILING_PUNCTUATION, "");
    // A closing bracket belongs to the link only when the link opened one.
    while (/[)\]]$/.test(candidate) && !hasOpener(candidate)) {
      candidate = candidate.slice(0, -1).replace(TRAILING_PUNCTUATION, "");
    }
    const url = parseHttpUrl(candidate);
    if (url === undefined) continue;
    const start = /** @type {number} */ (match.index);
    if (start > rest) segments.push(text.slice(rest, start));
    segments.push({ url: candidate });
    rest = start + candidate.length;
  }
  if (rest < text.length) segments.push(text.slice(rest));
  return segments;
}

/** @param {string} candidate */
function hasOpener(candidate) {
  const close = candidate.at(-1);
  const open = close === ")" ? "(" : "[";
  const count = (/** @type {string} */ char) => candidate.split(char).length - 1;
  return count(open) >= count(/** @type {string} */ (close));
}

/** @param {string} candidate */
function parseHttpUrl(candidate) {
  try {
    const url = new URL(candidate);
    return url.protocol === "http:" || url.protocol === "https:" ? url : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether `message` continues `previous`'s group: the same author within the same minute.
 * @param {ChatMessage | undefined} previous
 * @param {ChatMessage} message
 */
export function continuesGroup(previous, message) {
  if (!previous || previous.user.id !== message.user.id) return false;
  const minute = (/** @type {string} */ iso) => Math.floor(Date.parse(iso) / 60_000);
  return minute(previous.createdAt) === minute(message.createdAt);
}

/** Colours authors are told apart by (the stylesheet's `hue-0` … `hue-7`). */
export const HUES = 8;

/**
 * Gives each author one of {@link HUES} colours: the one their id hashes to, unless another
 * author on the page has it already, then the next free one (shared only past eight authors).
 */
export class HueAssigner {
  /** @type {Map<string, number>} */
  #byUser = new Map();
  /** @type {number[]} how many authors have each hue */
  #taken = new Array(HUES).fill(0);

  /**
   * @param {string} userId
   * @returns {string} the class name
   */
  classOf(userId) {
    let hue = this.#byUser.get(userId);
    if (hue === undefined) {
      hue = preferredHue(userId);
      const least = Math.min(...this.#taken);
      while (this.#taken[hue] > least) hue = (hue + 1) % HUES;
      this.#taken[hue]++;
      this.#byUser.set(userId, hue);
    }
    return `hue-${hue}`;
  }
}

/** @param {string} userId */
function preferredHue(userId) {
  let hash = 0;
  for (const char of userId) hash = (hash * 31 + (char.codePointAt(0) ?? 0)) >>> 0;
  return hash % HUES;
}

/**
 * What a token says about its user and expiry, read without verifying it (the server verifies;
 * this is for display and for renewing in time).
 * @param {string} token
 * @returns {{ user: User, expiresAt?: number } | undefined}
 */
export function readToken(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part), (char) => char.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof claims.sub !== "string") return undefined;
    const name = typeof claims.name === "string" && claims.name || claims.sub;
    const expiresAt = typeof claims.exp === "number" ? claims.exp * 1000 : undefined;
    return { user: { id: claims.sub, name }, expiresAt };
  } catch {
    return undefined;
  }
}

/** A long-lived token is renewed this long before it expires. */
const RENEW_BEFORE_MS = 60_000;

/**
 * How long to wait before renewing a token that expires at `expiresAt`: a minute before it
 * expires, or half of what is left when that is less than two minutes.
 * @param {number} expiresAt
 * @param {number} now
 */
export function renewalDelay(expiresAt, now) {
  const left = expiresAt - now;
  return left > 2 * RENEW_BEFORE_MS ? left - RENEW_BEFORE_MS : Math.max(0, left / 2);
}

/** @param {string} iso */
export function formatTime(iso) {
  const date = new Date(iso);
  const sameDay = date.toDateString() === new Date().toDateString();
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return sameDay
    ? time
    : `${date.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}

/**
 * The page's copy of a per-user budget of the server's: `burst` at once, then one every
 * `intervalMs`. Asking no faster than this, the page is rarely refused (other tabs share it).
 */
export class Budget {
  #tokens;
  #at;

  /**
   * @param {number} burst
   * @param {number} intervalMs
   * @param {() => number} [now]
   */
  constructor(burst, intervalMs, now = Date.now) {
    this.burst = burst;
    this.intervalMs = intervalMs;
    this.now = now;
    this.#tokens = burst;
    this.#at = now();
  }

  /** How long until one unit is there, in ms (0: now). */
  wait() {
    this.#refill();
    return this.#tokens >= 1 ? 0 : Math.ceil((1 - this.#tokens) * this.intervalMs);
  }

  /** Spends one unit (the caller waited for it). */
  take() {
    this.#refill();
    this.#tokens = Math.max(0, this.#tokens - 1);
  }

  #refill() {
    const now = this.now();
    this.#tokens = Math.min(this.burst, this.#tokens + (now - this.#at) / this.intervalMs);
    this.#at = now;
  }
}
