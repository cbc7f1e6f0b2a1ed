/**
 * Web Push: a `message.missed` also leaves a push job in the outbox (target `""`, on the user's
 * `push:` stream), in the commit that settles the missed candidates, so a restart loses none. The
 * job keeps what a notification shows (per room: the newest sender, a preview, a count), not the
 * messages.
 * When the sender hands a job over, it is encrypted (RFC 8291, `aes128gcm`) and signed (VAPID) by
 * npm `web-push` for each of the user's subscriptions and POSTed with `fetch`: the library's own
 * `sendNotification` insists on Node's `https` module, while `generateRequestDetails` gives the
 * request to send any way we like. A push service answering 404 or 410 has forgotten the
 * subscription: it is removed. Other failures are logged and counted, not retried: a retry would
 * repeat the notification on the browsers that did get it.
 * Before each request the endpoint's name is resolved: one that leads to a loopback, private,
 * link-local or other non-public address is not sent to and its subscription is removed (unless
 * the operator's push service lives inside, {@link PushSettings.privateEndpoints}).
 *
 * @example
 * A sketch: the webhooks' `deferred` hands `push:` streams to `settle`.
 * ```ts ignore
 * const push = new PushNotifier(settings, { store, mayRead, observer, log });
 * const draft = pushDraft("bob", unreadMessages); // with the `message.missed` event
 * const outcome = await push.settle(entries);
 * ```
 * @module
 */
import ipaddr from "ipaddr.js";
import type { Logger } from "../ops/log.ts";
import type {
  MessageStore,
  OutboxDraft,
  OutboxEntry,
  PushSubscriptionRecord,
} from "../store/mod.ts";
import type { ChatMessage } from "../types.ts";
import { newEventId } from "./events.ts";
import type { DeferredOutcome } from "./sender.ts";

/**
 * npm `web-push`, loaded on first use: its encryption library reads an environment variable when
 * loaded, which a server without Web Push (or the config table's script) need not allow.
 */
let webPush: Promise<typeof import("web-push").default> | undefined;
function loadWebPush() {
  webPush ??= import("web-push").then((module) => module.default);
  return webPush;
}

/** The stream of a user's push jobs (target `""`). */
export const PUSH_STREAM_PREFIX = "push:";

/** Longest preview of a message a notification shows. */
const PREVIEW_LENGTH = 120;

/** A push service's answers meaning the subscription is gone for good. */
const GONE = new Set([404, 410]);

/** The operator's VAPID key pair and contact (`VAPID_*`). */
export interface PushSettings {
  publicKey: string;
  privateKey: string;
  subject: string;
  /**
   * Push to endpoints whose names lead to loopback, private or link-local addresses too (a push
   * service inside the operator's network); off: such a subscription is removed unsent.
   */
  privateEndpoints?: boolean;
}

/** What a notification carries; the service worker shows it and opens `url` on click. */
export interface PushNotification {
  title: string;
  body: string;
  room: string;
  url: string;
}

/**
 * What a push job remembers: per room of its messages (ordered by their newest), what a
 * notification of that room shows and how many messages it stands for. Never the messages: a
 * job stays small however long they are.
 */
interface PushJob {
  user: string;
  rooms: RoomSummary[];
}

/** A room's part of a push job: its newest message's sender and preview, and its count. */
interface RoomSummary {
  room: string;
  /** The newest message's sender name. */
  title: string;
  /** The newest message's text, at most {@link PREVIEW_LENGTH} characters. */
  preview: string;
  count: number;
}

/** A job as earlier versions wrote it, with copies of the messages. */
interface CopyJob {
  user: string;
  messages: ChatMessage[];
}

/** A stored job's body, in either form. */
function jobOf(body: string): PushJob {
  const stored = JSON.parse(body) as PushJob | CopyJob;
  if (!("messages" in stored)) return stored;
  return { user: stored.user, rooms: summaries(stored.messages) };
}

/** The first {@link PREVIEW_LENGTH} characters (code points) of `text`, `…` when cut. */
function previewOf(text: string): string {
  const codePoints = [...text];
  if (codePoints.length <= PREVIEW_LENGTH) return text;
  return `${codePoints.slice(0, PREVIEW_LENGTH - 1).join("")}…`;
}

/** One summary per room of `messages` (oldest first), ordered by each room's newest. */
function summaries(messages: readonly ChatMessage[]): RoomSummary[] {
  const byRoom = new Map<string, RoomSummary>();
  for (const message of messages) {
    const count = (byRoom.get(message.room)?.count ?? 0) + 1;
    // Deleted and set again: the room moves to the end, after the rooms of older messages.
    byRoom.delete(message.room);
    byRoom.set(message.room, {
      room: message.room,
      title: message.user.name,
      preview: previewOf(message.message),
      count,
    });
  }
  return [...byRoom.values()];
}

/** Who is told what the notifier did (the metrics, matched by shape). */
export interface PushObserver {
  /**
   * `sent` (2xx), `gone` (404/410: removed), `refused` (the endpoint leads inside: removed, not
   * sent) or `failed`.
   */
  pushAttempted(outcome: PushOutcome): void;
}

/** What became of one push to one subscription. */
export type PushOutcome = "sent" | "gone" | "refused" | "failed";

/** A host name's addresses (IPv4 and IPv6), as DNS gives them now. */
export type ResolveHost = (host: string) => Promise<string[]>;

/** The host's A and AAAA records; fails only when it has neither. */
export const resolveHost: ResolveHost = async (host) => {
  const answers = await Promise.allSettled([
    Deno.resolveDns(host, "A"),
    Deno.resolveDns(host, "AAAA"),
  ]);
  const addresses = answers.flatMap((answer) => answer.status === "fulfilled" ? answer.value : []);
  if (addresses.length > 0) return addresses;
  const failure = answers.find((answer) => answer.status === "rejected");
  throw failure?.reason ?? new Error(`${host} has no address`);
};

/** Whether `address` is a public (global unicast) one: not loopback, private, link-local, … */
export function isPublicAddress(address: string): boolean {
  // `process` reads an IPv4-mapped IPv6 address as the IPv4 address it carries.
  return ipaddr.isValid(address) && ipaddr.process(address).range() === "unicast";
}

/** What the notifier needs from the server. */
export interface PushDependencies {
  store: Pick<MessageStore, "pushSubscriptions" | "removePushSubscription">;
  /** Whether `userId` may read `room` now: nobody is told about a room they may not read. */
  mayRead: (userId: string, room: string) => Promise<boolean>;
  observer: PushObserver;
  log: Logger;
  /** A push service's answer must come within this (ms). */
  timeoutMs: number;
  /** How endpoints' names are resolved before each push (default: DNS, {@link resolveHost}). */
  resolve?: ResolveHost;
}

/** The push job for a user's unread messages (those of a `message.missed`, oldest first). */
export function pushDraft(user: string, messages: readonly ChatMessage[]): OutboxDraft {
  return {
    id: newEventId(),
    target: "",
    stream: PUSH_STREAM_PREFIX + user,
    body: JSON.stringify({ user, rooms: summaries(messages) } satisfies PushJob),
  };
}

/** The notification for the newest of the rooms' messages, with how many more there are. */
function notificationOf(rooms: readonly RoomSummary[]): PushNotification {
  const newest = rooms[rooms.length - 1];
  const others = rooms.reduce((sum, { count }) => sum + count, 0) - 1;
  return {
    title: newest.title,
    body: newest.preview + (others > 0 ? ` (+${others} more)` : ""),
    room: newest.room,
    url: `/#${encodeURIComponent(newest.room)}`,
  };
}

/** Sends push jobs to the subscriptions of their user. */
export class PushNotifier {
  readonly #settings: PushSettings;
  readonly #dependencies: PushDependencies;

  constructor(settings: PushSettings, dependencies: PushDependencies) {
    this.#settings = settings;
    this.#dependencies = dependencies;
  }

  /** One user's due push jobs: each sent once to each subscription, then done. */
  async settle(entries: OutboxEntry[]): Promise<DeferredOutcome> {
    for (const entry of entries) {
      const job = jobOf(entry.body);
      const readable = [];
      for (const summary of job.rooms) {
        if (await this.#dependencies.mayRead(job.user, summary.room)) readable.push(summary);
      }
      if (readable.length === 0) continue;
      const subscriptions = await this.#dependencies.store.pushSubscriptions(job.user);
      const payload = JSON.stringify(notificationOf(readable));
      await Promise.all(
        subscriptions.map((subscription) => this.#send(job.user, subscription, payload)),
      );
    }
    return { settlements: entries.map(({ key }) => ({ key, outcome: "done" })), then: [] };
  }

  async #send(user: string, subscription: PushSubscriptionRecord, payload: string) {
    const { store, observer, log, timeoutMs } = this.#dependencies;
    try {
      if (!await this.#leadsOutside(subscription.endpoint)) {
        await store.removePushSubscription(user, subscription.endpoint);
        log.warn("push.refused", { user, host: new URL(subscription.endpoint).hostname });
        return observer.pushAttempted("refused");
      }
      const webpush = await loadWebPush();
      const details = webpush.generateRequestDetails(subscription, payload, {
        vapidDetails: this.#settings,
        contentEncoding: "aes128gcm",
        TTL: 86_400,
      });
      // fetch sets the length itself; the other headers go as strings.
      const headers = Object.entries(details.headers as Record<string, string | number>)
        .filter(([name]) => name.toLowerCase() !== "content-length")
        .map(([name, value]): [string, string] => [name, String(value)]);
      const response = await fetch(details.endpoint, {
        method: details.method,
        headers,
        body: details.body as Uint8Array<ArrayBuffer> | null,
        signal: AbortSignal.timeout(timeoutMs),
        redirect: "manual",
      });
      await response.body?.cancel();
      if (response.ok) return observer.pushAttempted("sent");
      if (GONE.has(response.status)) {
        await store.removePushSubscription(user, subscription.endpoint);
        return observer.pushAttempted("gone");
      }
      observer.pushAttempted("failed");
      log.warn("push.failed", { user, status: response.status });
    } catch (error) {
      observer.pushAttempted("failed");
      log.warn("push.failed", { user, error });
    }
  }

  /**
   * Whether every address the endpoint's host has now is public. The name was checked when the
   * subscription was stored, but what it resolves to is its owner's to change; an address that
   * changes between this answer and `fetch`'s own lookup is the egress firewall's to stop.
   */
  async #leadsOutside(endpoint: string): Promise<boolean> {
    if (this.#settings.privateEndpoints) return true;
    const host = new URL(endpoint).hostname.replace(/^\[(.*)\]$/, "$1");
    const addresses = ipaddr.isValid(host)
      ? [host]
      : await (this.#dependencies.resolve ?? resolveHost)(host);
    return addresses.every(isPublicAddress);
  }
}
