/**
 * The webhook events: their names, what each carries, and the body every POST holds
 * (`{type, timestamp, data}`). docs/webhooks.md describes them for receivers.
 *
 * @example
 * ```ts
 * import { eventDrafts } from "./events.ts";
 *
 * const user = { id: "u1", name: "Ada" };
 * const drafts = eventDrafts(["https://backend.example/hooks"], "user.online", { user }, `user:${user.id}`, Date.now());
 * console.log(drafts[0].body); // {"type":"user.online","timestamp":"…","data":{"user":{…}}}
 * ```
 * @module
 */
import { createIdGenerator, type OutboxDraft } from "../store/mod.ts";
import type { ChatMessage, User } from "../types.ts";

/**
 * Every event type, in the order docs/webhooks.md lists them. `reaction.changed` joins when
 * reactions exist: one name here, one data shape below, and its store call given a writer as
 * `changeMessage` is.
 */
export const EVENT_TYPES = [
  "message.created",
  "message.updated",
  "message.deleted",
  "message.missed",
  "user.online",
  "user.offline",
  "room.member_joined",
  "room.member_left",
] as const;

/** One of {@link EVENT_TYPES}. */
export type EventType = typeof EVENT_TYPES[number];

/**
 * A message as an event carries it: `truncated` when its text was cut so the event fits
 * {@link MAX_EVENT_BYTES} (the text is then a prefix of the stored one).
 */
export type EventMessage = ChatMessage & { truncated?: true };

/** What each event's `data` holds. Never a token, a secret or an API key. */
export interface EventData {
  /** The stored message (`id`, `room`, `user`, `message`, `createdAt`). */
  "message.created": EventMessage;
  /** The message as stored after the edit, with `editedAt`. */
  "message.updated": EventMessage;
  /** The tombstone: `message` is `""`, `deleted: true`, `editedAt` is when. */
  "message.deleted": EventMessage;
  /** A user's unread DMs and mentions, oldest first, while they were away. */
  "message.missed": { user: { id: string }; messages: EventMessage[] };
  "user.online": { user: User };
  "user.offline": { user: User };
  "room.member_joined": { room: string; user: User };
  "room.member_left": { room: string; user: User };
}

/**
 * Most bytes an event's body may take in the outbox, counted by {@link storedBytes}: a Deno KV
 * value holds at most 64 KiB, and the rest of the entry (its id, target, stream) needs room too.
 * PostgreSQL has no such limit; both are held to it, so both send the same events.
 */
export const MAX_EVENT_BYTES = 48_000;

/** The most bytes `text` takes in a Deno KV value: V8 keeps a string at one or two a UTF-16 unit. */
export function storedBytes(text: string): number {
  return 2 * text.length;
}

/** An event's body: what is POSTed. */
export function eventBody<T extends EventType>(type: T, data: EventData[T], at: number): string {
  return JSON.stringify({ type, timestamp: new Date(at).toISOString(), data });
}

/**
 * `message` with its text cut (at a code point, keeping as much as may be) so that `fits` holds,
 * flagged `truncated`; `message` itself when it fits already. The rest of a message (ids, names,
 * mentions, its quote) is bounded well under the budget, so the text is all there is to cut.
 */
export function cutToFit(
  message: ChatMessage,
  fits: (message: EventMessage) => boolean,
): EventMessage {
  if (fits(message)) return message;
  const codePoints = [...message.message];
  const cut = (kept: number): EventMessage => ({
    ...message,
    message: codePoints.slice(0, kept).join(""),
    truncated: true,
  });
  // The most code points that fit: a binary search, as a code point's JSON is 1 to 6 units.
  let low = 0;
  let high = codePoints.length - 1;
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (fits(cut(middle))) low = middle;
    else high = middle - 1;
  }
  return cut(low);
}

/** A message event's data, its text cut when the whole body would be over {@link MAX_EVENT_BYTES}. */
export function fittedMessage(
  type: "message.created" | "message.updated" | "message.deleted",
  message: ChatMessage,
  at: number,
): EventMessage {
  return cutToFit(message, (data) => storedBytes(eventBody(type, data, at)) <= MAX_EVENT_BYTES);
}

/** A sortable, unique event id: the `webhook-id` of each attempt at it. */
const nextId = createIdGenerator();
export function newEventId(): string {
  return `evt_${nextId()}`;
}

/**
 * One draft per target for an event of `type`, on `stream` (prefixed with the target: each
 * receiver's order is its own). All drafts share the event's id.
 */
export function eventDrafts<T extends EventType>(
  targets: readonly string[],
  type: T,
  data: EventData[T],
  stream: string,
  at: number,
): OutboxDraft[] {
  const id = newEventId();
  const body = eventBody(type, data, at);
  return targets.map((target) => ({ id, target, stream: `${target} ${stream}`, body }));
}
