/**
 * The Deno KV key spaces of messages and of what is derived from them, which go when their message
 * goes: by the same expiry, or in the trim that deletes it (`kv_trim.ts`).
 * @module
 */

/** `["messages", room, id]`: a message; ids sort by creation time, so this is history order. */
export const MESSAGES = "messages";
/** `["ids", id]` names the room of a message, so it can be found by its id alone. */
export const IDS = "ids";
/**
 * `["reactions", room, id, emoji]` holds one emoji's count and listed users; under the emoji `""`
 * (which sorts first) the message's emoji in the order first used. One range read gives a page's
 * reactions, and the `""` entry is what a new emoji's commit checks, so the bound holds.
 */
export const REACTIONS = "reactions";
/** `["reacted", room, id, user]`: the emoji one user has on a message (its per-user bound). */
export const REACTED = "reacted";
/** `["threads", room, parent, reply]` = the reply's author: a thread's replies, in order. */
export const THREADS = "threads";
/**
 * `["thread_counts", room, parent]`: how many replies a message has, a number written under a
 * check (a KV `sum` cannot expire); before, a `Deno.KvU64` sum.
 */
export const THREAD_COUNTS = "thread_counts";
/** `["mentions", room, user, id]`: a message of the room mentions the user (not its author). */
export const MENTIONS = "mentions";
/** The spaces keyed `[space, room, message id, …]`: a trim deletes them by range. */
export const KEYED_BY_MESSAGE = [REACTIONS, REACTED, THREADS, THREAD_COUNTS] as const;
