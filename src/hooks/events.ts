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

/** What each event's `data` holds. Never a token, a secret or an API key. */
export interface EventData {
  /** The stored message (`id`, `room`, `user`, `message`, `createdAt`). */
  "message.created": ChatMessage;
  /** The message as stored after the edit, with `editedAt`. */
  "message.updated": ChatMessage;
  /** The tombstone: `message` is `""`, `deleted: true`, `editedAt` is when. */
  "message.deleted": ChatMessage;
  /** A user's unread DMs and mentions, oldest first, while they were away. */
  "message.missed": { user: { id: string }; messages: ChatMessage[] };
  "user.online": { user: User };
  "user.offline": { user: User };
  "room.member_joined": { room: string; user: User };
  "room.member_left": { room: string; user: User };
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
  const body = JSON.stringify({ type, timestamp: new Date(at).toISOString(), data });
  return targets.map((target) => ({ id, target, stream: `${target} ${stream}`, body }));
}
