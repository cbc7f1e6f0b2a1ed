/**
 * The outbox's sender: claims entries, POSTs each signed per Standard Webhooks, and settles them.
 * At least once: an entry is deleted only after a 2xx, and every attempt carries its id. A
 * failure (non-2xx, a timeout, no connection) retries after an exponential backoff with jitter
 * while later entries of its stream wait, so a receiver sees each room in order; an entry older
 * than `maxAgeMs` is dropped and counted instead. Entries for no target (`""`) are the server's
 * own deferred work, handed to `deferred`.
 *
 * @example
 * A sketch: `store` is a `MessageStore`, `observer` the metrics.
 * ```ts ignore
 * const sender = new WebhookSender({ store, owner: "chat-1", targets, secret, observer, log });
 * sender.start();
 * // on shutdown
 * await sender.stop();
 * ```
 * @module
 */
import { Webhook } from "standardwebhooks";
import type { Logger } from "../ops/log.ts";
import type { OutboxDraft, OutboxEntry, OutboxSettlement, OutboxStore } from "../store/mod.ts";
import { signedHeaders } from "./signature.ts";

/** Why an event was dropped unsent. */
export type DropReason = "expired" | "full" | "target_removed";

/** Who is told what the sender did (the metrics, matched by shape). */
export interface WebhookObserver {
  webhookSent(): void;
  webhookFailed(): void;
  webhookRetried(): void;
  webhookDropped(reason: DropReason, count: number): void;
  outboxMeasured(depth: number, oldestSeconds: number): void;
}

/** What the server's own deferred entries became: settlements, and events to enqueue with them. */
export interface DeferredOutcome {
  settlements: OutboxSettlement[];
  then: OutboxDraft[];
}

/** Options of a {@link WebhookSender}; defaults in {@link SENDER_DEFAULTS}. */
export interface SenderOptions {
  store: OutboxStore;
  /** This instance's name in claims (unique per process). */
  owner: string;
  /** The webhook URLs; entries for others (removed from the settings since) are dropped. */
  targets: readonly string[];
  /** The `whsec_…` secret (none when there are no targets: only deferred work). */
  secret?: string;
  /** Handles one stream's entries for target `""`. */
  deferred?: (entries: OutboxEntry[]) => Promise<DeferredOutcome>;
  observer: WebhookObserver;
  log: Logger;
  /** A receiver's answer must come within this (ms). */
  timeoutMs?: number;
  /** Events older than this (ms) are dropped, not retried. */
  maxAgeMs?: number;
  /** Most entries the outbox keeps: past it the oldest are dropped. */
  maxDepth?: number;
  /** The first retry's delay (ms); each next one doubles, up to `retryMaxMs`. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** How often an idle sender looks for work (ms), besides when nudged. */
  pollMs?: number;
  /** How often the outbox is trimmed and measured (ms). */
  maintainMs?: number;
  /** Most entries of one stream sent in one claim. */
  perStream?: number;
  now?: () => number;
}

/** Defaults of {@link SenderOptions}. */
export const SENDER_DEFAULTS = {
  timeoutMs: 10_000,
  maxAgeMs: 86_400_000,
  maxDepth: 100_000,
  retryBaseMs: 1000,
  retryMaxMs: 60_000,
  pollMs: 250,
  maintainMs: 1000,
  perStream: 20,
} as const satisfies Partial<SenderOptions>;

/** Most entries one claim takes. */
const CLAIM_LIMIT = 100;

/** Sends the outbox's events; one per server. */
export class WebhookSender {
  readonly #options: SenderOptions & Required<Omit<SenderOptions, "deferred" | "now" | "secret">>;
  readonly #signer?: Webhook;
  readonly #targets: Set<string>;
  readonly #now: () => number;
  readonly #shutdown = new AbortController();
  #running?: Promise<void>;
  #wake?: () => void;
  #nudged = false;
  #lastMaintained = -Infinity;

  constructor(options: SenderOptions) {
    this.#options = { ...SENDER_DEFAULTS, ...options };
    if (options.secret !== undefined) this.#signer = new Webhook(options.secret);
    this.#targets = new Set(options.targets);
    this.#now = options.now ?? Date.now;
  }

  /** Starts sending. */
  start(): void {
    this.#running ??= this.#run();
  }

  /** There may be new entries: look now instead of at the next poll. */
  nudge(): void {
    this.#nudged = true;
    this.#wake?.();
  }

  /** Stops: sends under way are abandoned (their entries stay for the next start). */
  async stop(): Promise<void> {
    this.#shutdown.abort();
    this.#wake?.();
    await this.#running;
  }

  get #stopped(): boolean {
    return this.#shutdown.signal.aborted;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      let claimed: OutboxEntry[] = [];
      this.#nudged = false;
      try {
        if (this.#now() - this.#lastMaintained >= this.#options.maintainMs) await this.#maintain();
        claimed = await this.#options.store.claimOutbox({
          owner: this.#options.owner,
          limit: CLAIM_LIMIT,
          perStream: this.#options.perStream,
          leaseMs: this.#leaseMs,
        });
      } catch (error) {
        if (!this.#stopped) this.#options.log.warn("webhook.claim_failed", { error });
      }
      if (claimed.length === 0) {
        if (!this.#nudged) await this.#idle(this.#options.pollMs);
        continue;
      }
      const streams = new Map<string, OutboxEntry[]>();
      for (const entry of claimed) {
        streams.set(entry.stream, [...streams.get(entry.stream) ?? [], entry]);
      }
      await Promise.all([...streams.values()].map((entries) => this.#settleStream(entries)));
    }
  }

  /** A claim lasts long enough for a few attempts; a stream stops sending before it runs out. */
  get #leaseMs(): number {
    return 3 * this.#options.timeoutMs;
  }

  /** Waits `ms`, or less when nudged or stopped. */
  async #idle(ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      this.#wake = resolve;
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.#wake = undefined;
  }

  /** Trims the outbox to its bounds, counting what was dropped, and measures it. */
  async #maintain(): Promise<void> {
    const { store, observer, maxDepth, maxAgeMs } = this.#options;
    this.#lastMaintained = this.#now();
    const dropped = await store.trimOutbox({
      maxDepth,
      storedAfter: this.#now() - maxAgeMs,
    });
    if (dropped.full > 0) {
      observer.webhookDropped("full", dropped.full);
      this.#options.log.warn("webhook.dropped", { reason: "full", count: dropped.full });
    }
    if (dropped.expired > 0) {
      observer.webhookDropped("expired", dropped.expired);
      this.#options.log.warn("webhook.dropped", { reason: "expired", count: dropped.expired });
    }
    const stats = await store.outboxStats();
    const oldest = stats.oldestAt === undefined ? 0 : (this.#now() - stats.oldestAt) / 1000;
    observer.outboxMeasured(stats.depth, Math.max(0, oldest));
  }

  async #settleStream(entries: OutboxEntry[]): Promise<void> {
    const { store, owner, log } = this.#options;
    let outcome: DeferredOutcome;
    try {
      outcome = entries[0].target === "" ? await this.#runDeferred(entries) : {
        settlements: await this.#sendInOrder(entries),
        then: [],
      };
    } catch (error) {
      log.warn("webhook.deferred_failed", { stream: entries[0].stream, error });
      outcome = { settlements: this.#retryHead(entries), then: [] };
    }
    try {
      await store.settleOutbox(owner, outcome.settlements, outcome.then);
    } catch (error) {
      // The claim runs out and the entries go again: at least once.
      if (!this.#stopped) log.warn("webhook.settle_failed", { error });
    }
  }

  async #runDeferred(entries: OutboxEntry[]): Promise<DeferredOutcome> {
    if (!this.#options.deferred) {
      return { settlements: entries.map(({ key }) => ({ key, outcome: "done" })), then: [] };
    }
    return await this.#options.deferred(entries);
  }

  /** The head retried later, the rest given back. */
  #retryHead(entries: OutboxEntry[]): OutboxSettlement[] {
    const [head, ...rest] = entries;
    return [
      { key: head.key, outcome: "retry", dueAt: this.#now() + this.#retryDelay(head.attempts + 1) },
      ...rest.map(({ key }) => ({ key, outcome: "release" as const })),
    ];
  }

  /** Sends one stream's entries one after another; the first failure holds back the rest. */
  async #sendInOrder(entries: OutboxEntry[]): Promise<OutboxSettlement[]> {
    const { observer, log, maxAgeMs, timeoutMs } = this.#options;
    const settlements: OutboxSettlement[] = [];
    const claimedAt = this.#now();
    for (const [index, entry] of entries.entries()) {
      // Past this, the claim could run out mid-send and another instance send the rest.
      const late = this.#now() + timeoutMs > claimedAt + this.#leaseMs;
      if (this.#stopped || late) {
        settlements.push(
          ...entries.slice(index).map(({ key }) => ({ key, outcome: "release" as const })),
        );
        break;
      }
      if (!this.#targets.has(entry.target)) {
        observer.webhookDropped("target_removed", 1);
        settlements.push({ key: entry.key, outcome: "done" });
        continue;
      }
      const failure = await this.#post(entry);
      if (failure === undefined) {
        observer.webhookSent();
        settlements.push({ key: entry.key, outcome: "done" });
        continue;
      }
      if (this.#stopped) {
        settlements.push(
          ...entries.slice(index).map(({ key }) => ({ key, outcome: "release" as const })),
        );
        break;
      }
      observer.webhookFailed();
      const age = this.#now() - entry.createdAt;
      if (age >= maxAgeMs) {
        observer.webhookDropped("expired", 1);
        log.warn("webhook.dropped", {
          reason: "expired",
          id: entry.id,
          attempts: entry.attempts + 1,
          failure,
        });
        settlements.push({ key: entry.key, outcome: "done" });
        continue;
      }
      observer.webhookRetried();
      log.info("webhook.retry", { id: entry.id, attempts: entry.attempts + 1, failure });
      settlements.push(...this.#retryHead(entries.slice(index)));
      break;
    }
    return settlements;
  }

  /** One attempt; why it failed, or undefined on a 2xx. */
  async #post(entry: OutboxEntry): Promise<string | undefined> {
    if (this.#signer === undefined) return "no WEBHOOK_SECRET";
    const headers = signedHeaders(this.#signer, entry.id, new Date(this.#now()), entry.body);
    const signal = AbortSignal.any([
      AbortSignal.timeout(this.#options.timeoutMs),
      this.#shutdown.signal,
    ]);
    try {
      const response = await fetch(entry.target, {
        method: "POST",
        headers,
        body: entry.body,
        signal,
        redirect: "manual",
      });
      await response.body?.cancel();
      return response.ok ? undefined : `status ${response.status}`;
    } catch (error) {
      if (error instanceof DOMException && error.name === "TimeoutError") return "timeout";
      return error instanceof Error ? error.message : String(error);
    }
  }

  /** Attempt `attempt`'s delay: doubling from the base up to the cap, half of it random. */
  #retryDelay(attempt: number): number {
    const { retryBaseMs, retryMaxMs } = this.#options;
    const delay = Math.min(retryMaxMs, retryBaseMs * 2 ** Math.min(attempt - 1, 30));
    return delay / 2 + Math.random() * delay / 2;
  }
}
