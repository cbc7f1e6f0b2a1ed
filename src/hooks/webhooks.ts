/**
 * Webhooks for the chat: the writers that put `message.*` events (and `message.missed`
 * candidates) into the outbox in the commit of the change they describe, the presence and room
 * events, and the sender. Built only when `WEBHOOK_URL` or the `VAPID_*` keys are set (Web Push
 * pushes missed DMs and mentions from the same outbox): without either nothing is written.
 *
 * A user goes offline, or leaves a room, only once they have stayed away for `debounceMs` (a page
 * reload is no event), checked across instances; each such state is kept in the store
 * (`enqueueOutbox`'s transition), so an instance never repeats a state another one announced.
 *
 * @example
 * A sketch: the app passes its store, presence checks and metrics.
 * ```ts ignore
 * const webhooks = new Webhooks(settings, { store, owner, isConnected, inRoom, recipientsOf, mostRecipientsOf, mayRead, observer, log });
 * await store.appendMany(inputs, webhooks.created); // message.created in the same commit
 * webhooks.online(user);
 * await webhooks.close();
 * ```
 * @module
 */
import type { Logger } from "../ops/log.ts";
import type { MessageStore, OutboxDraft, OutboxWriter } from "../store/mod.ts";
import type { ChatMessage, NewMessage, User } from "../types.ts";
import { type EventData, eventDrafts, type EventType, fittedMessage } from "./events.ts";
import { MissedMessages } from "./missed.ts";
import { PUSH_STREAM_PREFIX, PushNotifier, type PushObserver, type PushSettings } from "./push.ts";
import { type SenderOptions, type WebhookObserver, WebhookSender } from "./sender.ts";

/** The operator's settings (`WEBHOOK_*`, `MISSED_AFTER`). */
export interface WebhookSettings {
  urls: readonly string[];
  /** Needed with `urls`. */
  secret?: string;
  events: readonly EventType[];
  timeoutMs: number;
  maxAgeMs: number;
  outboxMax: number;
  missedAfterMs: number;
  debounceMs: number;
  /** With Web Push, missed messages are pushed too (even with no `urls`). */
  push?: PushSettings;
}

/** What the webhooks need from the server. */
export interface WebhookDependencies {
  store: MessageStore;
  /** This process's name in outbox claims. */
  owner: string;
  /** Whether the user has a connection on any instance. */
  isConnected: (userId: string) => Promise<boolean>;
  /** Whether the user has a connection in `room` on any instance. */
  inRoom: (room: string, userId: string) => Promise<boolean>;
  /**
   * Who may miss `message`: a DM's other user, and the users it mentions who may read its room;
   * at most `mostRecipientsOf(message)`.
   */
  recipientsOf: (message: ChatMessage) => string[];
  /** Most users `recipientsOf` may name for a message, known before it is stored. */
  mostRecipientsOf: (message: NewMessage) => number;
  /**
   * Whether the user may read `room` now (not banned, among others): checked again when a missed
   * message is due and when it is pushed, so nobody is told about a room they may not read.
   */
  mayRead: (userId: string, room: string) => Promise<boolean>;
  observer: WebhookObserver & PushObserver;
  log: Logger;
  now?: () => number;
  /** The sender's timing, for tests (retries, polling). */
  sender?: Partial<Pick<SenderOptions, "retryBaseMs" | "retryMaxMs" | "pollMs" | "maintainMs">>;
}

/** The chat's webhooks: writers, presence events, and the sender. */
export class Webhooks {
  /** For `appendMany`: `message.created`, and `message.missed` candidates. */
  readonly created: OutboxWriter;
  /** For `changeMessage`: `message.updated` or `message.deleted`. */
  readonly changed: OutboxWriter;
  readonly #settings: WebhookSettings;
  readonly #dependencies: WebhookDependencies;
  readonly #types: ReadonlySet<EventType>;
  readonly #now: () => number;
  readonly #missed: MissedMessages;
  readonly #sender: WebhookSender;
  /** Pending leaves by transition key, each firing once its user has stayed away. */
  readonly #leaving = new Map<
    string,
    { timer: ReturnType<typeof setTimeout>; fire: () => Promise<void> }
  >();
  /** Each transition key's changes, one at a time in the order they happened. */
  readonly #chains = new Map<string, Promise<void>>();
  #closed = false;

  constructor(settings: WebhookSettings, dependencies: WebhookDependencies) {
    this.#settings = settings;
    this.#dependencies = dependencies;
    this.#types = new Set(settings.events);
    this.#now = dependencies.now ?? Date.now;
    const missedWebhook = this.#types.has("message.missed");
    const missedAny = missedWebhook || settings.push !== undefined;
    this.#missed = new MissedMessages({
      targets: missedWebhook ? settings.urls : [],
      push: settings.push !== undefined,
      missedAfterMs: settings.missedAfterMs,
      store: dependencies.store,
      isConnected: dependencies.isConnected,
      mayRead: dependencies.mayRead,
      now: this.#now,
    });
    const perEvent = settings.urls.length;
    const createdEvents = this.#types.has("message.created") ? perEvent : 0;
    // A candidate per user who may miss the message, in its commit; bounded before it is stored.
    // Only message.created copies the message: a candidate names it.
    const { recipientsOf, mostRecipientsOf } = dependencies;
    this.created = {
      maxDraftsFor: (message) => createdEvents + (missedAny ? mostRecipientsOf(message) : 0),
      maxCopiesFor: () => createdEvents,
      draftsFor: (message) => [
        ...this.#messageDrafts("message.created", message),
        ...(missedAny
          ? this.#missed.candidates(
            message,
            recipientsOf(message).slice(0, mostRecipientsOf(message)),
          )
          : []),
      ],
    };
    this.changed = {
      maxDraftsFor: () => perEvent,
      draftsFor: (message) =>
        this.#messageDrafts(message.deleted ? "message.deleted" : "message.updated", message),
    };
    const push = settings.push && new PushNotifier(settings.push, {
      store: dependencies.store,
      mayRead: dependencies.mayRead,
      observer: dependencies.observer,
      log: dependencies.log,
      timeoutMs: settings.timeoutMs,
    });
    this.#sender = new WebhookSender({
      store: dependencies.store.outbox,
      owner: dependencies.owner,
      targets: settings.urls,
      secret: settings.secret,
      deferred: (entries) =>
        push && entries[0].stream.startsWith(PUSH_STREAM_PREFIX)
          ? push.settle(entries)
          : this.#missed.settle(entries),
      observer: dependencies.observer,
      log: dependencies.log,
      timeoutMs: settings.timeoutMs,
      maxAgeMs: settings.maxAgeMs,
      maxDepth: settings.outboxMax,
      now: this.#now,
      ...dependencies.sender,
    });
    this.#sender.start();
  }

  /** Something was committed to the outbox: send it now rather than at the next poll. */
  nudge(): void {
    this.#sender.nudge();
  }

  /** The user's first connection on any instance. */
  online(user: User): void {
    if (!this.#wants("user.online", "user.offline")) return;
    this.#arrive(`user:${user.id}`, "user.online", { user });
  }

  /** The user's last connection closed here: offline unless they are back within the debounce. */
  offline(user: User): void {
    if (!this.#wants("user.online", "user.offline")) return;
    this.#leave(
      `user:${user.id}`,
      () => this.#dependencies.isConnected(user.id),
      "user.offline",
      { user },
    );
  }

  /** The user's first connection in `room` (not the default room: that is being online). */
  joined(room: string, user: User): void {
    if (!this.#wants("room.member_joined", "room.member_left")) return;
    this.#arrive(`room:${room}`, "room.member_joined", { room, user }, user.id);
  }

  /** The user's last connection in `room` here left it: left unless back within the debounce. */
  left(room: string, user: User): void {
    if (!this.#wants("room.member_joined", "room.member_left")) return;
    this.#leave(
      `room:${room}`,
      () => this.#dependencies.inRoom(room, user.id),
      "room.member_left",
      { room, user },
      user.id,
    );
  }

  /** Sends pending leaves now (the server's users are all leaving), then stops the sender. */
  async close(): Promise<void> {
    this.#closed = true;
    const pending = [...this.#leaving.values()];
    this.#leaving.clear();
    for (const { timer } of pending) clearTimeout(timer);
    await Promise.all(pending.map(({ fire }) => fire()));
    await Promise.all(this.#chains.values());
    await this.#sender.stop();
  }

  /** Whether either event of a pair is sent (then both states are kept). */
  #wants(...types: EventType[]): boolean {
    return types.some((type) => this.#types.has(type));
  }

  #drafts<T extends EventType>(
    type: T,
    data: EventData[T],
    stream: string,
  ): OutboxDraft[] {
    if (!this.#types.has(type)) return [];
    return eventDrafts(this.#settings.urls, type, data, stream, this.#now());
  }

  /** A message's event on its room's stream, its text cut if it would not fit the outbox. */
  #messageDrafts(
    type: "message.created" | "message.updated" | "message.deleted",
    message: ChatMessage,
  ): OutboxDraft[] {
    if (!this.#types.has(type) || this.#settings.urls.length === 0) return [];
    const at = this.#now();
    const data = fittedMessage(type, message, at);
    return eventDrafts(this.#settings.urls, type, data, `room:${message.room}`, at);
  }

  /** A stream's arrival: cancels a pending leave (a reload), else announces unless already in. */
  #arrive<T extends "user.online" | "room.member_joined">(
    stream: string,
    type: T,
    data: EventData[T],
    member = "",
  ): void {
    if (this.#closed) return;
    const key = `${stream} ${member}`;
    const pending = this.#leaving.get(key);
    if (pending) {
      clearTimeout(pending.timer);
      this.#leaving.delete(key);
    }
    this.#serially(key, () => this.#transition(key, "in", this.#drafts(type, data, stream)));
  }

  #leave<T extends "user.offline" | "room.member_left">(
    stream: string,
    stillThere: () => Promise<boolean>,
    type: T,
    data: EventData[T],
    member = "",
  ): void {
    if (this.#closed) return;
    const key = `${stream} ${member}`;
    clearTimeout(this.#leaving.get(key)?.timer);
    const fire = () =>
      this.#serially(key, async () => {
        if (await stillThere()) return;
        await this.#transition(key, "out", this.#drafts(type, data, stream));
      });
    const timer = setTimeout(() => {
      this.#leaving.delete(key);
      void fire();
    }, this.#settings.debounceMs);
    this.#leaving.set(key, { timer, fire });
  }

  /** Enqueues `drafts` if the key's state changes to `state` (it changes even with no drafts). */
  async #transition(key: string, state: string, drafts: OutboxDraft[]): Promise<void> {
    if (await this.#dependencies.store.outbox.enqueueOutbox(drafts, { key, state })) this.nudge();
  }

  /** Runs `task` after the key's earlier ones; failures are logged, never thrown. */
  #serially(key: string, task: () => Promise<void>): Promise<void> {
    const next = (this.#chains.get(key) ?? Promise.resolve()).then(task).catch((error) =>
      this.#dependencies.log.warn("webhook.enqueue_failed", { key, error })
    );
    this.#chains.set(key, next);
    void next.finally(() => {
      if (this.#chains.get(key) === next) this.#chains.delete(key);
    });
    return next;
  }
}
