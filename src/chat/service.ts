/**
 * The chat's rules, written once for both doors: a connection's event handlers and the server API
 * call these, each translating its own request in and the result out. Who may send, edit or
 * delete what, what a DM records, what is logged and when "now" is live here and nowhere else.
 *
 * @example
 * A sketch: `options` are the timeline, store and policy the app builds.
 * ```ts ignore
 * const chat = new ChatService(options);
 * await chat.publish({ room: "general", message: "hi" }, { kind: "user", identity });
 * await chat.change(id, { deleted: true }, { kind: "backend" });
 * ```
 * @module
 */
import type { Identity } from "../auth/token.ts";
import { CodedError } from "../errors.ts";
import type { Logger } from "../ops/log.ts";
import {
  KeyedQueue,
  type MessageStore,
  type OutboxWriter,
  type ReactionLimits,
  type ReadPosition,
} from "../store/mod.ts";
import type { PublishHook, PublishQuestion } from "../hooks/mod.ts";
import { readMessage } from "./payloads.ts";
import type { Timeline } from "./timeline.ts";
import type {
  AppendResult,
  Ban,
  ChatMessage,
  MessageChange,
  Reaction,
  ReplyQuote,
  ThreadSummary,
  User,
} from "../types.ts";
import { dmUsers, type RoomPolicy } from "./rooms.ts";

/** Who asks: a user on a connection, or the application's backend through the server API. */
export type Principal = { kind: "user"; identity: Identity } | { kind: "backend" };

/** The scope that lets a token edit and delete anyone's messages, at any time. */
export const MODERATE_SCOPE = "chat:moderate";

/** The longest ban with an end (100 years): past it every store may not keep a time to expire. */
export const MAX_BAN_MS = 100 * 365.25 * 24 * 3600 * 1000;

/** The sender of messages the backend publishes without naming a user. */
export const SYSTEM_USER: User = { id: "system", name: "System" };

/**
 * How far reactions go: distinct emoji on one message, emoji one user puts on one message, and
 * the users each emoji lists (so a client can tell its own).
 */
export const REACTION_LIMITS: ReactionLimits = { maxEmoji: 20, maxPerUser: 10, listedUsers: 20 };

/** A user's reaction to a message, as a door has read it. */
export interface ReactionRequest {
  room: string;
  id: string;
  emoji: string;
  /** Adds it (true) or takes it back (false). */
  on: boolean;
}

/** What the service needs. */
export interface ChatServiceOptions {
  timeline: Timeline;
  store: Pick<
    MessageStore,
    | "addMembership"
    | "touchRoom"
    | "findMessage"
    | "changeMessage"
    | "setBan"
    | "getBan"
    | "deleteBan"
    | "react"
    | "reactionsOf"
    | "threadsOf"
    | "threadReplies"
    | "setReadMarker"
    | "readPositions"
  >;
  policy: RoomPolicy;
  /** How long authors may edit or delete their messages (ms); moderators and the backend always. */
  editWindowMs: number;
  /** Whether an identity may send (scopes); everyone may read. */
  canWrite: (identity: Identity) => boolean;
  /** Tells a message's room it changed. */
  announceChange: (message: ChatMessage) => void;
  /** Tells a message's room its reactions changed (batched by the caller). */
  reactionsChanged: (room: string, id: string) => void;
  /** Tells a message's room its thread changed: a reply came (batched by the caller). */
  threadChanged: (room: string, id: string) => void;
  /** What a change also writes to the store's outbox, in its commit (webhooks). */
  changeOutbox?: OutboxWriter;
  /**
   * Tells the users a new message mentions, those who may read its room, on all their
   * connections (the author is not told of their own mention).
   */
  mentioned: (message: ChatMessage) => void;
  /** Read receipts (`READ_RECEIPTS`): markers are announced and listed to a room's members. */
  readReceipts: boolean;
  /** Tells a room a user's read marker moved (batched by the caller). */
  readChanged: (room: string, position: ReadPosition) => void;
  /** Closes every socket of a user on every instance; resolves once none is left. */
  disconnectUser: (userId: string) => Promise<void>;
  /**
   * The publish hook (`PUBLISH_HOOK_URL`), asked before each message is stored; a modified text
   * is held to `maxMessageLength` as a sent one is.
   */
  publishHook?: { hook: PublishHook; maxMessageLength: number };
  log: Logger;
  /** The clock (tests move it). */
  now?: () => number;
}

/** A message to publish: the door has read and trimmed it. */
export interface Publication {
  room: string;
  message: string;
  clientId?: string;
  /** The author when the backend publishes (default {@link SYSTEM_USER}); a user is themself. */
  user?: User;
  /** The id of the message (of the same room) this answers. */
  replyTo?: string;
  /** The users it mentions (ids, each once). */
  mentions?: string[];
  /** The backend publishes without asking the publish hook (a user's messages always ask). */
  skipPublishHook?: boolean;
}

/** How much of a message a reply quotes, in characters (code points). */
export const PREVIEW_LENGTH = 100;

/** The quote of `parent` a reply carries, as the parent is now. */
export function quoteOf(parent: ChatMessage): ReplyQuote {
  const deleted = parent.deleted === true;
  const preview = deleted ? "" : [...parent.message].slice(0, PREVIEW_LENGTH).join("");
  return { id: parent.id, user: parent.user, preview, deleted };
}

/** How many stored clientIds the service remembers so their retries skip the publish hook. */
const REMEMBERED_CLIENT_IDS = 10_000;

/** The chat's rules; one per server. */
export class ChatService {
  readonly #options: ChatServiceOptions;
  /** Each message's changes under way, one at a time. */
  readonly #changes = new KeyedQueue();
  /** Dedupe keys of messages stored lately (with a publish hook only): a retry is not re-asked. */
  readonly #stored = new Set<string>();
  readonly now: () => number;

  constructor(options: ChatServiceOptions) {
    this.#options = options;
    this.now = options.now ?? Date.now;
  }

  /**
   * Checks that `by` may use `room` (a user: the room policy, DMs included; the backend: any
   * room), so every path into a room asks the same question.
   */
  checkRoom(room: string, by: Principal): void {
    if (by.kind === "user") this.#options.policy.check(by.identity, room);
  }

  /**
   * Stores a message and broadcasts it; a DM records itself in both users' room lists. A user
   * must be allowed the room and be able to write; a repeated `clientId` returns the first
   * message (`created: false`). `receivedAt` is when it reached the server, for latency.
   */
  async publish(
    publication: Publication,
    by: Principal,
    receivedAt?: number,
  ): Promise<AppendResult> {
    const { room, clientId } = publication;
    let message = publication.message;
    let user = publication.user ?? SYSTEM_USER;
    if (by.kind === "user") {
      this.checkRoom(room, by);
      this.#requireWrite(by.identity);
      user = by.identity.user;
    }
    const replyTo = publication.replyTo === undefined
      ? undefined
      : quoteOf(await this.#parent(room, publication.replyTo));
    // The backend's clientIds are a key space of their own: never a user's retry.
    const source = by.kind === "backend" ? "api" as const : undefined;
    const dedupeKey = this.#options.publishHook === undefined || clientId === undefined
      ? undefined
      : `${source ?? ""}\n${user.id}\n${clientId}`;
    const asks = this.#options.publishHook !== undefined &&
      !(by.kind === "backend" && publication.skipPublishHook) &&
      !(dedupeKey !== undefined && this.#stored.has(dedupeKey));
    if (asks) message = await this.#askPublishHook({ ...publication, user, message });
    let result: AppendResult;
    try {
      result = await this.#options.timeline.publish(
        {
          room,
          user,
          message,
          clientId,
          ...(source ? { source } : {}),
          ...(replyTo ? { replyTo } : {}),
          ...(publication.mentions?.length ? { mentions: publication.mentions } : {}),
        },
        receivedAt,
      );
    } catch (error) {
      throw new CodedError("internal", "the message could not be stored", {}, { cause: error });
    }
    if (dedupeKey !== undefined) this.#remember(dedupeKey);
    if (result.created) {
      this.#recordSender(user.id, room, by);
      if (replyTo) this.#options.threadChanged(room, replyTo.id);
      if (result.message.mentions) this.#options.mentioned(result.message);
    }
    return result;
  }

  /**
   * The text to store, as the publish hook decides: the same, or its modified text; throws
   * `rejected` with the backend's reason when it denies (or failed, under `deny`).
   */
  async #askPublishHook(publication: Publication & { user: User }): Promise<string> {
    const { hook, maxMessageLength } = this.#options.publishHook!;
    const question: PublishQuestion = {
      user: publication.user,
      room: publication.room,
      message: publication.message,
      ...(publication.clientId === undefined ? {} : { clientId: publication.clientId }),
      ...(publication.replyTo === undefined ? {} : { replyTo: publication.replyTo }),
      ...(publication.mentions?.length ? { mentions: publication.mentions } : {}),
    };
    const verdict = await hook.check(
      question,
      (text) => readMessage({ message: text }, maxMessageLength).text,
    );
    switch (verdict.action) {
      case "allow":
        return publication.message;
      case "modify":
        return verdict.message;
      case "deny":
        throw new CodedError("rejected", verdict.reason);
    }
  }

  /** Remembers a stored clientId, forgetting the oldest past {@link REMEMBERED_CLIENT_IDS}. */
  #remember(dedupeKey: string): void {
    this.#stored.delete(dedupeKey);
    this.#stored.add(dedupeKey);
    if (this.#stored.size > REMEMBERED_CLIENT_IDS) {
      this.#stored.delete(this.#stored.values().next().value!);
    }
  }

  /** A user touched `room`: their read marker and membership there stay alive; join adds it. */
  touchRoom(userId: string, room: string, join = false): void {
    const { store } = this.#options;
    if (join) store.addMembership(userId, room).catch((error) => this.#backgroundFailed(error));
    store.touchRoom(userId, room).catch((error) => this.#backgroundFailed(error));
  }

  /**
   * Edits or deletes a message. A user may change their own message within the edit window, or
   * any message with the moderate scope, in rooms they may use (elsewhere the message is
   * `not_found`); the backend may change any. A change that changes nothing is not announced.
   */
  async change(id: string, change: MessageChange, by: Principal): Promise<ChatMessage> {
    const message = await this.#changeable(id, by);
    if ("message" in change && message.deleted) {
      throw new CodedError("not_found", "this message was deleted");
    }
    const unchanged = "deleted" in change ? message.deleted : message.message === change.message;
    if (unchanged) return message;
    // The edited message keeps what lives beside it (a client replaces the one it holds); the
    // queue keeps the answers in the order the store applied the changes.
    const changed = await this.#changes.run(id, async () => {
      let stored: ChatMessage | undefined;
      try {
        stored = await this.#options.store.changeMessage(
          id,
          change,
          new Date(this.now()),
          this.#options.changeOutbox,
        );
      } catch (error) {
        throw new CodedError("internal", "the message could not be changed", {}, { cause: error });
      }
      if (!stored) throw new CodedError("not_found", "no such message");
      return stored.deleted ? stored : (await this.annotate([stored]))[0];
    });
    if (!(message.deleted && changed.deleted)) {
      this.#options.log.info("message.changed", {
        action: "deleted" in change ? "delete" : "edit",
        id: changed.id,
        room: changed.room,
        by: by.kind === "user" ? by.identity.user.id : "api",
        author: changed.user.id,
      });
      this.#options.announceChange(changed);
    }
    return changed;
  }

  /**
   * Adds or takes back a user's reaction to a message of a room they may use (elsewhere, or on a
   * deleted message, `not_found`), within {@link REACTION_LIMITS}; the room hears of a change.
   * Resolves with the message's reactions as stored now.
   */
  async react(request: ReactionRequest, by: Principal & { kind: "user" }): Promise<Reaction[]> {
    const { room, id, emoji, on } = request;
    this.checkRoom(room, by);
    this.#requireWrite(by.identity);
    const message = await this.#read(() => this.#options.store.findMessage(id));
    if (!message || message.room !== room || message.deleted) {
      throw new CodedError("not_found", "no such message in this room");
    }
    const change = { room, id, userId: by.identity.user.id, emoji, on };
    let outcome;
    try {
      outcome = await this.#options.store.react(change, REACTION_LIMITS);
    } catch (error) {
      throw new CodedError("internal", "the reaction could not be stored", {}, { cause: error });
    }
    switch (outcome.status) {
      case "not_found":
        throw new CodedError("not_found", "no such message in this room");
      case "too_many_emoji":
        throw new CodedError(
          "too_many_emoji",
          `a message has at most ${REACTION_LIMITS.maxEmoji} different emoji`,
        );
      case "too_many_reactions":
        throw new CodedError(
          "too_many_reactions",
          `one user puts at most ${REACTION_LIMITS.maxPerUser} emoji on a message`,
        );
      case "changed":
        this.#options.reactionsChanged(room, id);
    }
    return outcome.reactions;
  }

  /**
   * A page of the replies to message `id` of `room` (a room `by` may use): up to `limit` before
   * `before` (or the newest), oldest first; `hasMore` when older ones exist.
   */
  async thread(
    room: string,
    id: string,
    page: { before?: string; limit: number },
    by: Principal,
  ): Promise<{ messages: ChatMessage[]; hasMore: boolean }> {
    this.checkRoom(room, by);
    const parent = await this.#read(() => this.#options.store.findMessage(id));
    if (!parent || parent.room !== room) throw new CodedError("not_found", "no such message");
    const replies = await this.#read(() =>
      this.#options.store.threadReplies(room, id, page.before, page.limit + 1)
    );
    const hasMore = replies.length > page.limit;
    const messages = await this.annotate(hasMore ? replies.slice(1) : replies);
    return { messages, hasMore };
  }

  /**
   * Stores a user's read marker in a room they may use (it counts their unread messages on every
   * device) and, with read receipts on, tells the room.
   */
  async markRead(room: string, lastId: string, by: Principal & { kind: "user" }): Promise<void> {
    this.checkRoom(room, by);
    const user = by.identity.user.id;
    try {
      await this.#options.store.setReadMarker(user, room, lastId);
    } catch (error) {
      throw new CodedError("internal", "the read marker could not be stored", {}, { cause: error });
    }
    if (this.#options.readReceipts) this.#options.readChanged(room, { user, lastId });
  }

  /**
   * The read positions of `room`'s members, up to `limit`, for `by` (a room they may use); none
   * with read receipts off.
   */
  async readPositions(room: string, limit: number, by: Principal): Promise<ReadPosition[]> {
    this.checkRoom(room, by);
    if (!this.#options.readReceipts) return [];
    return await this.#read(() => this.#options.store.readPositions(room, limit));
  }

  /** The message a reply in `room` answers: one of that room, not deleted. */
  async #parent(room: string, id: string): Promise<ChatMessage> {
    const parent = await this.#read(() => this.#options.store.findMessage(id));
    if (!parent || parent.room !== room || parent.deleted) {
      throw new CodedError("not_found", "`replyTo` names no message of this room");
    }
    return parent;
  }

  /** A message's reactions, for `by` (a user: in a room they may use); `not_found` otherwise. */
  async reactionsOf(id: string, by: Principal): Promise<{ message: ChatMessage }> {
    const message = await this.#read(() => this.#options.store.findMessage(id));
    if (
      !message || (by.kind === "user" && !this.#options.policy.canJoin(by.identity, message.room))
    ) {
      throw new CodedError("not_found", "no such message");
    }
    const [annotated] = await this.annotate([message]);
    return { message: annotated };
  }

  /**
   * Messages with what lives beside them: their reactions (none on a tombstone), their threads,
   * and the quote of the message a reply answers as that message is now — read here, at read
   * time, so an edit or delete of a parent shows in every reply without rewriting any. New
   * objects where something was added; the given messages (shared by readers) are never changed.
   */
  async annotate(messages: ChatMessage[]): Promise<ChatMessage[]> {
    if (messages.length === 0) return messages;
    const { store } = this.#options;
    const reactions = new Map<string, Reaction[]>();
    const threads = new Map<string, ThreadSummary>();
    for (const [room, ofRoom] of Map.groupBy(messages, (message) => message.room)) {
      const ids = ofRoom.map((message) => message.id);
      const live = ofRoom.filter((message) => !message.deleted).map((message) => message.id);
      const [reactionsFound, threadsFound] = await Promise.all([
        live.length === 0
          ? new Map<string, Reaction[]>()
          : store.reactionsOf(room, live, REACTION_LIMITS.listedUsers),
        store.threadsOf(room, ids),
      ]);
      for (const [id, found] of reactionsFound) reactions.set(id, found);
      for (const [id, found] of threadsFound) threads.set(id, found);
    }
    const quotes = await this.#currentQuotes(messages);
    if (reactions.size === 0 && threads.size === 0 && quotes.size === 0) return messages;
    return messages.map((message) => {
      const found = {
        ...(reactions.has(message.id) ? { reactions: reactions.get(message.id) } : {}),
        ...(threads.has(message.id) ? { thread: threads.get(message.id) } : {}),
        ...(message.replyTo && quotes.has(message.replyTo.id)
          ? { replyTo: quotes.get(message.replyTo.id) }
          : {}),
      };
      return Object.keys(found).length === 0 ? message : { ...message, ...found };
    });
  }

  /** The quotes, as their parents are now, of the replies among `messages` whose quote changed. */
  async #currentQuotes(messages: ChatMessage[]): Promise<Map<string, ReplyQuote>> {
    const quotes = new Map<string, ReplyQuote>();
    const held = new Map(messages.map((message) => [message.id, message]));
    const parents = new Set<string>();
    for (const { replyTo } of messages) if (replyTo) parents.add(replyTo.id);
    await Promise.all([...parents].map(async (id) => {
      // A parent in the same page needs no read.
      const parent = held.get(id) ?? await this.#options.store.findMessage(id);
      // A parent that expired or was trimmed: the quote kept is what is known.
      if (parent) quotes.set(id, quoteOf(parent));
    }));
    for (const { replyTo } of messages) {
      const quote = replyTo && quotes.get(replyTo.id);
      if (
        quote && quote.preview === replyTo.preview && quote.deleted === replyTo.deleted &&
        quote.user.name === replyTo.user.name
      ) quotes.delete(replyTo.id);
    }
    return quotes;
  }

  async #read<T>(read: () => Promise<T>): Promise<T> {
    try {
      return await read();
    } catch (error) {
      throw new CodedError("internal", "the message could not be read", {}, { cause: error });
    }
  }

  /**
   * Bars a user from connecting until `until` (ms since epoch; for good without) and closes their
   * sockets on every instance before resolving.
   */
  async ban(userId: string, terms: { until?: number; reason?: string }): Promise<Ban> {
    if (terms.until !== undefined && terms.until <= this.now()) {
      throw new CodedError("invalid_payload", "`until` must be a time in the future");
    }
    if (terms.until !== undefined && terms.until > this.now() + MAX_BAN_MS) {
      throw new CodedError(
        "invalid_payload",
        "`until` must be within 100 years; a ban without `until` lasts until it is lifted",
      );
    }
    const ban: Ban = { since: this.now(), ...terms };
    await this.#options.store.setBan(userId, ban);
    this.#options.log.info("user.banned", { user: userId, until: ban.until ?? null });
    // A connect admitted meanwhile reads the ban again once its socket can be cut.
    await this.#options.disconnectUser(userId);
    return ban;
  }

  /** Lifts a ban; `not_found` when there is none. */
  async unban(userId: string): Promise<void> {
    if (!await this.#options.store.deleteBan(userId)) {
      throw new CodedError("not_found", "this user is not banned");
    }
    this.#options.log.info("user.unbanned", { user: userId });
  }

  /** Closes every socket of a user on every instance. */
  disconnect(userId: string): Promise<void> {
    return this.#options.disconnectUser(userId);
  }

  async #changeable(id: string, by: Principal): Promise<ChatMessage> {
    if (by.kind === "user") this.#requireWrite(by.identity);
    const message = await this.#options.store.findMessage(id);
    if (
      !message || (by.kind === "user" && !this.#options.policy.canJoin(by.identity, message.room))
    ) {
      throw new CodedError("not_found", "no such message");
    }
    if (by.kind === "backend") return message;
    const { identity } = by;
    const moderator = identity.scopes.includes(MODERATE_SCOPE);
    const mine = message.user.id === identity.user.id;
    const age = this.now() - Date.parse(message.createdAt);
    if (!moderator && !(mine && age <= this.#options.editWindowMs)) {
      throw new CodedError(
        "forbidden",
        mine ? "the time to change this message has passed" : "this is someone else's message",
      );
    }
    return message;
  }

  /**
   * A sender keeps the room alive in their list; a DM is in both its users' lists from its first
   * message, whoever sent it (a user adding it to another's list is bounded by the store).
   */
  #recordSender(userId: string, room: string, by: Principal): void {
    const dm = dmUsers(room);
    for (const member of dm ?? []) {
      if (member === userId) continue;
      this.#options.store.addMembership(member, room, by.kind === "user" ? userId : undefined)
        .catch((error) => this.#backgroundFailed(error));
    }
    if (by.kind === "user" || dm?.includes(userId)) this.touchRoom(userId, room, dm !== undefined);
  }

  /** `forbidden` unless the identity may send (messages, typing, changes). */
  requireWrite(identity: Identity): void {
    this.#requireWrite(identity);
  }

  #requireWrite(identity: Identity): void {
    if (!this.#options.canWrite(identity)) {
      throw new CodedError("forbidden", "this token may read but not write");
    }
  }

  #backgroundFailed(error: unknown): void {
    this.#options.log.warn("membership.failed", { error });
  }
}
