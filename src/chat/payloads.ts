/**
 * Validation of what clients send: each reader returns a clean value or throws a
 * {@link PayloadError} whose code goes back to the client.
 *
 * @example
 * ```ts
 * readMessage({ message: " hi ", clientId: "c1" }, 2000); // { text: "hi", clientId: "c1" }
 * readMessage({ message: 42 }, 2000); // throws PayloadError("invalid_payload")
 * ```
 * @module
 */
import { isUserId } from "../auth/token.ts";
import { CodedError } from "../errors.ts";
import { isRoomId } from "./rooms.ts";
import { isMessageId } from "../store/mod.ts";

/** Codes a refused payload carries. */
export type PayloadErrorCode = "invalid_payload" | "message_too_long";

/** A client payload that breaks the contract. */
export class PayloadError extends CodedError<PayloadErrorCode> {
  constructor(code: PayloadErrorCode, message: string) {
    super(code, message);
    this.name = "PayloadError";
  }
}

/** Longest accepted `clientId`. */
export const MAX_CLIENT_ID_LENGTH = 64;
/** Most messages one `history` request returns. */
export const MAX_HISTORY_PAGE = 100;
/** Messages a `history` request returns when it names no `limit`. */
export const DEFAULT_HISTORY_PAGE = 50;
/** Most arguments one client event may carry, its ack included. */
export const MAX_EVENT_ARGUMENTS = 8;

function invalid(message: string): PayloadError {
  return new PayloadError("invalid_payload", message);
}

/** Only a plain object will do: not an array, and not a binary attachment (a Buffer). */
function readObject(payload: unknown, example: string): Record<string, unknown> {
  const prototype = typeof payload === "object" && payload !== null
    ? Object.getPrototypeOf(payload)
    : undefined;
  if (prototype !== Object.prototype && prototype !== null) {
    throw invalid(`expected an object like ${example}`);
  }
  return payload as Record<string, unknown>;
}

/**
 * Checks a client event (`[name, ...args]`) before any handler runs: socket.io spreads the
 * arguments into a call, and a packet of a few hundred thousand of them overflows the stack.
 */
export function checkEventArguments(event: readonly unknown[]): void {
  if (event.length - 1 > MAX_EVENT_ARGUMENTS) {
    throw invalid(`an event carries at most ${MAX_EVENT_ARGUMENTS} arguments`);
  }
}

/** A validated `message` payload. */
export interface MessageInput {
  text: string;
  clientId?: string;
  /** The id of the message this answers. */
  replyTo?: string;
  /** The users it mentions, each once. */
  mentions?: string[];
}

/** Reads `{ message, clientId? }`: text trimmed, at most `maxLength` code points. */
export function readMessage(payload: unknown, maxLength: number): MessageInput {
  const fields = readObject(payload, '{ message: "hi" }');
  if (typeof fields.message !== "string") throw invalid("`message` must be a string");
  const text = fields.message.trim();
  if (text.length === 0) throw invalid("`message` is empty");
  // Count code points, so an emoji is one character as a person reads it.
  let length = 0;
  for (const _ of text) {
    if (++length > maxLength) {
      throw new PayloadError(
        "message_too_long",
        `\`message\` is longer than ${maxLength} characters`,
      );
    }
  }
  const { replyTo } = fields;
  if (replyTo !== undefined && !isMessageId(replyTo)) {
    throw invalid("`replyTo` must be a message id");
  }
  const mentions = readMentions(fields.mentions);
  const input: MessageInput = { text };
  const clientId = fields.clientId;
  if (clientId !== undefined) {
    if (typeof clientId !== "string" || clientId.length === 0) {
      throw invalid("`clientId` must be a non-empty string");
    }
    if (clientId.length > MAX_CLIENT_ID_LENGTH) {
      throw invalid(`\`clientId\` is longer than ${MAX_CLIENT_ID_LENGTH} characters`);
    }
    input.clientId = clientId;
  }
  if (replyTo !== undefined) input.replyTo = replyTo;
  if (mentions.length > 0) input.mentions = mentions;
  return input;
}

/** Most users one message may mention. */
export const MAX_MENTIONS = 20;

/** Reads `mentions`: up to {@link MAX_MENTIONS} user ids, each kept once, in the order given. */
export function readMentions(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.length > MAX_MENTIONS) {
    throw invalid(`\`mentions\` must be an array of at most ${MAX_MENTIONS} user ids`);
  }
  for (const userId of value) {
    if (!isUserId(userId)) throw invalid(`\`mentions\` holds something that is not a user id`);
  }
  return [...new Set(value as string[])];
}

/** A validated `thread` request: a page of one message's replies. */
export interface ThreadQuery extends HistoryQuery {
  id: string;
}

/** Reads `{ id, before?, limit? }` of `thread` (`limit` 1–100, default 50). */
export function readThreadQuery(payload: unknown): ThreadQuery {
  const { id, room: _room, ...page } = readObject(payload, '{ room: "general", id: "<id>" }');
  if (!isMessageId(id)) throw invalid("`id` must be a message id");
  return { id, ...readHistoryQuery(page) };
}

/** Longest accepted `emoji`, in UTF-8 bytes (the longest family and flag sequences fit). */
export const MAX_EMOJI_BYTES = 64;

const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });
/** A grapheme that shows as an emoji: a pictograph, a flag (regional indicators) or a keycap. */
const EMOJI = /\p{Extended_Pictographic}|\p{Emoji_Presentation}|^[0-9#*]\uFE0F?\u20E3$/u;

/**
 * What an emoji is made of: pictographs, skin tones, joiners, selectors, tags, keycaps. Not
 * combining marks or other characters a grapheme can carry, which a reaction would show piled on.
 */
const EMOJI_PARTS = /^[\p{Emoji}\p{Emoji_Component}]+$/u;
/** A selector or joiner twice in a row shows nothing more: a look-alike under another key. */
const REPEATED_JOINER = /(\uFE0F|\u200D)\1/;

/** Whether `value` is exactly one emoji grapheme of at most {@link MAX_EMOJI_BYTES} bytes. */
export function isEmoji(value: unknown): value is string {
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_EMOJI_BYTES) {
    return false;
  }
  if (new TextEncoder().encode(value).length > MAX_EMOJI_BYTES) return false;
  if (!EMOJI_PARTS.test(value) || REPEATED_JOINER.test(value)) return false;
  const [first, second] = graphemes.segment(value);
  return first !== undefined && second === undefined && EMOJI.test(value);
}

/** A validated `react` request. */
export interface ReactionInput {
  id: string;
  emoji: string;
  on: boolean;
}

/** Reads `{ id, emoji, on? }` of `react` (`on` defaults to true); `room` is read apart. */
export function readReaction(payload: unknown): ReactionInput {
  const fields = readObject(payload, '{ room: "general", id: "<message id>", emoji: "👍" }');
  const { id, emoji, on = true } = fields;
  if (!isMessageId(id)) throw invalid("`id` must be a message id");
  if (!isEmoji(emoji)) {
    throw invalid(`\`emoji\` must be one emoji, at most ${MAX_EMOJI_BYTES} bytes`);
  }
  if (typeof on !== "boolean") throw invalid("`on` must be true or false");
  return { id, emoji, on };
}

/** A validated `history` request. */
export interface HistoryQuery {
  before?: string;
  limit: number;
}

/** Reads `{ before?, limit? }` (`limit` 1–100, default 50); no payload means the latest. */
export function readHistoryQuery(payload: unknown): HistoryQuery {
  // JSON turns a client's `undefined` into null: both mean "no payload".
  const fields = payload === undefined || payload === null
    ? {}
    : readObject(payload, "{ before: id, limit: 50 }");
  const { before, limit = DEFAULT_HISTORY_PAGE } = fields;
  if (before !== undefined && !isMessageId(before)) throw invalid("`before` must be a message id");
  if (!Number.isInteger(limit) || (limit as number) < 1 || (limit as number) > MAX_HISTORY_PAGE) {
    throw invalid(`\`limit\` must be a whole number from 1 to ${MAX_HISTORY_PAGE}`);
  }
  return { before: before as string | undefined, limit: limit as number };
}

/** Reads `{ typing: boolean }`. */
export function readTyping(payload: unknown): boolean {
  const fields = readObject(payload, "{ typing: true }");
  if (typeof fields.typing !== "boolean") throw invalid("`typing` must be true or false");
  return fields.typing;
}

/** Reads `{ token }` of `auth:refresh`. */
export function readRefresh(payload: unknown): string {
  const fields = readObject(payload, '{ token: "<jwt>" }');
  if (typeof fields.token !== "string" || fields.token.length === 0) {
    throw invalid("`token` must be a non-empty string");
  }
  return fields.token;
}

/** Most rooms a reconnecting client may catch up at once with `auth.lastIds`. */
export const MAX_CATCH_UP_ROOMS = 100;

/**
 * Reads the optional `lastIds` of the handshake's `auth`: `{ room: lastSeenId }`, at most
 * {@link MAX_CATCH_UP_ROOMS} rooms; empty when absent.
 */
export function readLastIds(auth: unknown): [string, string][] {
  if (typeof auth !== "object" || auth === null) return [];
  const { lastIds } = auth as { lastIds?: unknown };
  if (lastIds === undefined || lastIds === null) return [];
  const entries = Object.entries(readObject(lastIds, '{ general: "<message id>" }'));
  if (entries.length > MAX_CATCH_UP_ROOMS) {
    throw invalid(`\`lastIds\` names at most ${MAX_CATCH_UP_ROOMS} rooms`);
  }
  for (const [room, lastId] of entries) {
    if (!isRoomId(room)) {
      throw invalid(`\`lastIds\` names "${String(room).slice(0, 80)}", not a room id`);
    }
    if (!isMessageId(lastId)) throw invalid(`\`lastIds.${room}\` must be a message id`);
  }
  return entries as [string, string][];
}

/** Reads the optional `lastId` of the handshake's `auth`; `undefined` when absent. */
export function readLastId(auth: unknown): string | undefined {
  if (typeof auth !== "object" || auth === null) return undefined;
  const { lastId } = auth as { lastId?: unknown };
  if (lastId === undefined || lastId === null || lastId === "") return undefined;
  if (!isMessageId(lastId)) throw invalid("`lastId` must be a message id");
  return lastId;
}
