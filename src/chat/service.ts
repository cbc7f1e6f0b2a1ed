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
import type { MessageStore, OutboxWriter } from "../store/mod.ts";
import type { Timeline } from "./timeline.ts";
import type { AppendResult, Ban, ChatMessage, MessageChange, User } from "../types.ts";
import { dmUsers, type RoomPolicy } from "./rooms.ts";

/** Who asks: a user on a connection, or the application's backend through the server API. */
export type Principal = { kind: "user"; identity: Identity } | { kind: "backend" };

/** The scope that lets a token edit and delete anyone's messages, at any time. */
export const MODERATE_SCOPE = "chat:moderate";

/** The sender of messages the backend publishes without naming a user. */
export const SYSTEM_USER: User = { id: "system", name: "System" };

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
  >;
  policy: RoomPolicy;
  /** How long authors may edit or delete their messages (ms); moderators and the backend always. */
  editWindowMs: number;
  /** Whether an identity may send (scopes); everyone may read. */
  canWrite: (identity: Identity) => boolean;
  /** Tells a message's room it changed. */
  announceChange: (message: ChatMessage) => void;
  /** What a change also writes to the store's outbox, in its commit (webhooks). */
  changeOutbox?: OutboxWriter;
  /** Closes every socket of a user on every instance; resolves once none is left. */
  disconnectUser: (userId: string) => Promise<void>;
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
}

/** The chat's rules; one per server. */
export class ChatService {
  readonly #options: ChatServiceOptions;
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
    const { room, message, clientId } = publication;
    let user = publication.user ?? SYSTEM_USER;
    if (by.kind === "user") {
      this.checkRoom(room, by);
      this.#requireWrite(by.identity);
      user = by.identity.user;
    }
    let result: AppendResult;
    try {
      // The backend's clientIds are a key space of their own: never a user's retry.
      const source = by.kind === "backend" ? "api" as const : undefined;
      result = await this.#options.timeline.publish(
        { room, user, message, clientId, ...(source ? { source } : {}) },
        receivedAt,
      );
    } catch (error) {
      throw new CodedError("internal", "the message could not be stored", {}, { cause: error });
    }
    if (result.created) this.#recordSender(user.id, room, by);
    return result;
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
    let changed: ChatMessage | undefined;
    try {
      changed = await this.#options.store.changeMessage(
        id,
        change,
        new Date(this.now()),
        this.#options.changeOutbox,
      );
    } catch (error) {
      throw new CodedError("internal", "the message could not be changed", {}, { cause: error });
    }
    if (!changed) throw new CodedError("not_found", "no such message");
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
   * Bars a user from connecting until `until` (ms since epoch; for good without) and closes their
   * sockets on every instance before resolving.
   */
  async ban(userId: string, terms: { until?: number; reason?: string }): Promise<Ban> {
    if (terms.until !== undefined && terms.until <= this.now()) {
      throw new CodedError("invalid_payload", "`until` must be a time in the future");
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
