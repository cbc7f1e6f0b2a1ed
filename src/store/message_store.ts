/**
 * The message store contract the timeline and the app depend on; `KvMessageStore` implements it.
 * @module
 */
import type {
  AppendResult,
  Ban,
  ChatMessage,
  MessageChange,
  NewMessage,
  Reaction,
  ThreadSummary,
} from "../types.ts";
import type { OutboxStore, OutboxWriter } from "./outbox.ts";

/** What {@link MessageStore.listRooms} asks for. */
export interface RoomQuery {
  prefix?: string;
  after?: string;
  limit: number;
}

/** A user's reaction added (`on`) or taken back, on message `id` of `room`. */
export interface ReactionChange {
  room: string;
  id: string;
  userId: string;
  emoji: string;
  on: boolean;
}

/** The bounds a reaction is held to, checked in the same commit that stores it. */
export interface ReactionLimits {
  /** Most distinct emoji on one message. */
  maxEmoji: number;
  /** Most emoji one user has on one message. */
  maxPerUser: number;
  /** Most user ids a {@link Reaction} lists. */
  listedUsers: number;
}

/**
 * What {@link MessageStore.react} did: `changed` (stored or taken back), `unchanged` (already so),
 * refused over a bound, or `not_found` (no such message in that room); `reactions` is the
 * message's reactions as stored now.
 */
export interface ReactionOutcome {
  status: "changed" | "unchanged" | "too_many_emoji" | "too_many_reactions" | "not_found";
  reactions: Reaction[];
}

/** A user's read marker in a room: the last message they have seen there. */
export interface ReadPosition {
  user: string;
  lastId: string;
}

/** A browser's Web Push subscription, as the Push API gives it (`keys` are base64url). */
export interface PushSubscriptionRecord {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

/** Most users a {@link ThreadSummary} lists. */
export const THREAD_USERS = 10;

/**
 * Ordered, append-only message history. Ids sort in creation order. The outbox (`outbox.ts`) holds
 * the events to send about it.
 */
export interface MessageStore {
  /** The events to send about this history, written in the same commits (see `outbox.ts`). */
  readonly outbox: OutboxStore;
  /**
   * Stores the message (durably, before resolving) and returns it with its id and createdAt. A
   * reply (`replyTo`) is indexed in its parent's thread in the same commit.
   */
  append(input: NewMessage): Promise<ChatMessage>;
  /**
   * Stores several messages, in order, in as few commits as the backend allows. When a later
   * commit fails after earlier ones were stored, rejects with a `PartialAppendError` naming
   * the stored ones (a prefix of `inputs`); any other rejection stored nothing. With `outbox`, each
   * created message's drafts are stored in the commit that stores it.
   */
  appendMany(inputs: readonly NewMessage[], outbox?: OutboxWriter): Promise<AppendResult[]>;
  /**
   * The newest `limit` messages of `room` (default: the default room), oldest first; only those
   * after `afterId` when given.
   */
  latest(limit: number, afterId?: string, room?: string): Promise<ChatMessage[]>;
  /** Messages of `room` strictly after `id`, oldest first, at most `limit` (default 1000). */
  after(id: string, limit?: number, room?: string): Promise<ChatMessage[]>;
  /** Up to `limit` messages of `room` strictly before `id`, oldest first. */
  before(id: string, limit: number, room?: string): Promise<ChatMessage[]>;
  /** How many messages of `room` come after `afterId` (all, without it), counting up to `cap`. */
  countAfter(room: string, afterId: string | undefined, cap: number): Promise<number>;
  /**
   * Stores `userId`'s read marker in `room`: the last message they have seen. Reading touches the
   * room: markers and memberships expire once their user has not touched the room for a while.
   */
  setReadMarker(userId: string, room: string, lastId: string): Promise<void>;
  /** `userId`'s read marker in each of `rooms` (undefined where none, or expired). */
  readMarkers(userId: string, rooms: readonly string[]): Promise<(string | undefined)[]>;
  /**
   * The read markers of `room`'s users (read receipts): up to `limit` of them, each user once,
   * in no particular order; expired ones left out.
   */
  readPositions(room: string, limit: number): Promise<ReadPosition[]>;
  /**
   * How many messages of `room` after `afterId` (all, without it) mention `userId`, counting up
   * to `cap`: neither deleted ones nor the user's own.
   */
  countMentions(
    room: string,
    userId: string,
    afterId: string | undefined,
    cap: number,
  ): Promise<number>;
  /**
   * Records that `userId` takes part in `room` (joined it, or a DM was started with them), or
   * that they still do. `by` is who made them a member when it is someone else (a DM's sender):
   * how many such memberships one user creates is bounded.
   */
  addMembership(userId: string, room: string, by?: string): Promise<void>;
  /** `userId` touched `room` (sent to it, joined it): keeps their marker and membership there. */
  touchRoom(userId: string, room: string): Promise<void>;
  /** The rooms `userId` takes part in, at most `limit`, in name order (expired ones left out). */
  memberships(userId: string, limit: number): Promise<string[]>;
  /**
   * Named rooms (never a DM's `dm:…`) holding at least one message, in name order: those starting
   * with `prefix` (default: all), strictly after `after`, at most `limit`. Room browsing pages
   * through it; each call's cost is bounded by `limit`.
   */
  listRooms(query: RoomQuery): Promise<string[]>;
  /**
   * The stored message with this id (a tombstone once deleted), in whichever room it is; undefined
   * once trimmed or past `maxAgeMs`.
   */
  findMessage(id: string): Promise<ChatMessage | undefined>;
  /**
   * Applies `change` to the stored message (`editedAt` becomes `at`); the message as stored now,
   * or undefined when there is none, or when an edit finds it deleted. Deleting twice changes
   * nothing. Changes of one message apply one at a time, in the order they were asked for. With
   * `outbox`, the changed message's drafts are stored in the commit that changes it (none when
   * nothing changed).
   */
  changeMessage(
    id: string,
    change: MessageChange,
    at: Date,
    outbox?: OutboxWriter,
  ): Promise<ChatMessage | undefined>;
  /**
   * Adds or takes back one user's reaction, within `limits`, durably and idempotently: adding
   * twice stores one, taking back one never added changes nothing.
   */
  react(change: ReactionChange, limits: ReactionLimits): Promise<ReactionOutcome>;
  /**
   * The reactions of each of `ids` (messages of `room`) that has any, each listing up to
   * `listedUsers` users.
   */
  reactionsOf(
    room: string,
    ids: readonly string[],
    listedUsers: number,
  ): Promise<Map<string, Reaction[]>>;
  /** The thread of each of `ids` (messages of `room`) that has replies, listing up to 10 users. */
  threadsOf(room: string, ids: readonly string[]): Promise<Map<string, ThreadSummary>>;
  /** Up to `limit` replies to `parentId` in `room` before `before` (or the newest), oldest first. */
  threadReplies(
    room: string,
    parentId: string,
    before: string | undefined,
    limit: number,
  ): Promise<ChatMessage[]>;
  /** Bans `userId` until `ban.until` (ms since epoch; forever without it). */
  setBan(userId: string, ban: Ban): Promise<void>;
  /** `userId`'s ban, while it lasts. */
  getBan(userId: string): Promise<Ban | undefined>;
  /** Lifts `userId`'s ban; whether there was one. */
  deleteBan(userId: string): Promise<boolean>;
  /**
   * Stores `userId`'s push subscription (replacing one with the same endpoint, whoever had it: a
   * browser belongs to whoever subscribed it last), keeping their newest `max`: older ones are
   * dropped.
   */
  addPushSubscription(
    userId: string,
    subscription: PushSubscriptionRecord,
    max: number,
  ): Promise<void>;
  /** `userId`'s push subscriptions, oldest first. */
  pushSubscriptions(userId: string): Promise<PushSubscriptionRecord[]>;
  /** Removes `userId`'s subscription with this endpoint; whether there was one. */
  removePushSubscription(userId: string, endpoint: string): Promise<boolean>;
  /** What in-memory windows of recent messages hold, when the store keeps any. */
  memory?(): { rooms: number; messages: number };
  /** Resolves when the backend answers a read (a readiness probe); rejects otherwise. */
  ping(): Promise<void>;
  close(): void;
}
