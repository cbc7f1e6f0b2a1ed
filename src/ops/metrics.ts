/**
 * Prometheus metrics (via `prom-client`): connections, users online, handshakes, refused
 * requests, auth failures, messages, broadcasts, delivery latency, `error` events, KV write
 * latency and event-loop lag, plus the process's own figures (see `runtime_metrics.ts`).
 * {@link Metrics} is the chat's observer (its `ChatObserver`, matched by shape: ops sits below the
 * chat); the engine's handshakes and refusals and
 * the timeline's commits are reported to it by `app.ts`, so none of them imports this file.
 *
 * @example
 * ```ts
 * import { Metrics } from "./metrics.ts";
 *
 * const metrics = new Metrics({
 *   socketsByTransport: () => ({ websocket: 3 }),
 *   usersOnline: () => 2,
 * });
 * metrics.messagesStored(2, 0.004);
 * console.log(await metrics.render());
 * metrics.stop();
 * ```
 * @module
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { registerRuntimeMetrics } from "./runtime_metrics.ts";

/** Where the metrics read live figures from. */
export interface MetricSources {
  /** Open sessions by transport name. */
  socketsByTransport: () => Record<string, number>;
  /** Distinct users connected to this instance. */
  usersOnline: () => number;
  /** What the store's in-memory windows of recent messages hold. */
  recentWindows?: () => { rooms: number; messages: number };
  /** Rooms (besides the default) with someone in them on this instance. */
  roomsOccupied?: () => number;
}

/** How often event-loop lag is sampled. */
const LAG_SAMPLE_MS = 500;

/** The server's metrics registry; the chat reports to it as its observer. */
export class Metrics {
  readonly registry = new Registry();
  readonly #chat: ReturnType<typeof chatMetrics>;
  readonly #hooks: ReturnType<typeof webhookMetrics>;
  #lagSeconds = 0;
  #lagTimer?: ReturnType<typeof setInterval>;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    registerGauges(registers, sources, () => this.#lagSeconds);
    this.#chat = chatMetrics(registers);
    this.#hooks = webhookMetrics(registers);
    registerRuntimeMetrics(this.registry);
  }

  /** The Content-Type of {@link render}'s output. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Starts sampling event-loop lag. */
  start(): this {
    let expected = performance.now() + LAG_SAMPLE_MS;
    this.#lagTimer = setInterval(() => {
      const now = performance.now();
      this.#lagSeconds = Math.max(0, now - expected) / 1000;
      expected = now + LAG_SAMPLE_MS;
    }, LAG_SAMPLE_MS);
    Deno.unrefTimer(this.#lagTimer as unknown as number);
    return this;
  }

  /** Stops the lag sampler. */
  stop(): void {
    clearInterval(this.#lagTimer);
  }

  /** The Prometheus text exposition. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** Engine: a transport session was opened (an Engine.IO handshake succeeded). */
  handshake(): void {
    this.#chat.handshakes.inc();
  }

  /** Server API: a request to `route` was answered with `status`. */
  apiRequest(route: string, status: number): void {
    this.#chat.apiRequests.inc({ route, status: String(status) });
  }

  /** Engine: a request was refused; `reason` is one lower_snake word (`unknown_sid`). */
  requestRefused(reason: string): void {
    this.#chat.refusedRequests.inc({ reason });
  }

  /** Store: `count` messages were stored in one KV commit taking `seconds`. */
  messagesStored(count: number, seconds: number): void {
    this.#chat.stored.inc(count);
    this.#chat.kvWrites.observe(seconds);
  }

  connectRefused(code: string): void {
    this.#chat.refusals.inc({ code });
  }

  broadcast(seconds: number): void {
    this.#chat.broadcasts.inc();
    this.#chat.deliveries.observe(seconds);
  }

  errorSent(code: string): void {
    this.#chat.errors.inc({ code });
  }

  /** Webhooks: a receiver accepted an event. */
  webhookSent(): void {
    this.#hooks.sent.inc();
  }

  /** Webhooks: an attempt failed. */
  webhookFailed(): void {
    this.#hooks.failed.inc();
  }

  /** Webhooks: a failed event will be tried again. */
  webhookRetried(): void {
    this.#hooks.retried.inc();
  }

  /** Webhooks: `count` events were dropped unsent. */
  webhookDropped(reason: string, count: number): void {
    this.#hooks.dropped.inc({ reason }, count);
  }

  /**
   * Web Push: an attempt was `sent`, found its subscription `gone` (removed), `refused` (its
   * endpoint leads inside: removed unsent), or `failed`.
   */
  pushAttempted(outcome: string): void {
    this.#hooks.push.inc({ outcome });
  }

  /** The publish hook answered (`allow`, `deny`, `modify`) or `failed`. */
  publishHookCalled(outcome: string): void {
    this.#hooks.publishHook.inc({ outcome });
  }

  /** Webhooks: the outbox holds `depth` events, the oldest `oldestSeconds` old. */
  outboxMeasured(depth: number, oldestSeconds: number): void {
    this.#hooks.outboxDepth.set(depth);
    this.#hooks.outboxOldest.set(oldestSeconds);
  }
}

/** The gauges read from the server and the event loop at scrape time. */
function registerGauges(registers: Registry[], sources: MetricSources, lag: () => number): void {
  new Gauge({
    name: "chat_sockets_connected",
    help: "Open client sessions, by transport.",
    labelNames: ["transport"],
    registers,
    collect() {
      this.reset();
      for (const [transport, count] of Object.entries(sources.socketsByTransport())) {
        this.set({ transport }, count);
      }
    },
  });
  new Gauge({
    name: "chat_users_online",
    help: "Distinct users connected to this instance.",
    registers,
    collect() {
      this.set(sources.usersOnline());
    },
  });
  new Gauge({
    name: "chat_rooms_occupied",
    help: "Rooms besides the default with a connection in them on this instance.",
    registers,
    collect() {
      this.set(sources.roomsOccupied?.() ?? 0);
    },
  });
  new Gauge({
    name: "chat_recent_window_messages",
    help: "Messages held in memory by the store's recent windows, over every room.",
    registers,
    collect() {
      this.set(sources.recentWindows?.().messages ?? 0);
    },
  });
  new Gauge({
    name: "chat_recent_window_rooms",
    help:
      "Rooms whose recent messages the store holds in memory (at most 256 besides the default).",
    registers,
    collect() {
      this.set(sources.recentWindows?.().rooms ?? 0);
    },
  });
  new Gauge({
    name: "chat_event_loop_lag_seconds",
    help: `Worst event-loop delay over the last ${LAG_SAMPLE_MS} ms.`,
    registers,
    collect() {
      this.set(lag());
    },
  });
}

/** The counters and histograms of what the chat does. */
function chatMetrics(registers: Registry[]) {
  return {
    apiRequests: new Counter({
      name: "chat_api_requests_total",
      help: "Server API requests, by route and HTTP status.",
      labelNames: ["route", "status"],
      registers,
    }),
    handshakes: new Counter({
      name: "chat_handshakes_total",
      help: "Transport sessions opened.",
      registers,
    }),
    refusedRequests: new Counter({
      name: "chat_requests_refused_total",
      help: "Engine.IO requests refused (unknown sid, CORS, handshake limit, …), by reason.",
      labelNames: ["reason"],
      registers,
    }),
    refusals: new Counter({
      name: "chat_connections_refused_total",
      help: "Socket.IO connections refused by auth or limits, by code (auth failures included).",
      labelNames: ["code"],
      registers,
    }),
    stored: new Counter({
      name: "chat_messages_stored_total",
      help: "Messages written to the store.",
      registers,
    }),
    broadcasts: new Counter({
      name: "chat_broadcasts_total",
      help: "Messages broadcast to the chat room.",
      registers,
    }),
    errors: new Counter({
      name: "chat_error_events_total",
      help: "`error` events sent to clients, by code.",
      labelNames: ["code"],
      registers,
    }),
    kvWrites: new Histogram({
      name: "chat_kv_write_seconds",
      help: "Duration of one KV commit of a message batch.",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    }),
    deliveries: new Histogram({
      name: "chat_delivery_seconds",
      help: "From a message's arrival at the server to its broadcast to its room.",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
  };
}

/** The webhooks' counters and the outbox's gauges. */
function webhookMetrics(registers: Registry[]) {
  return {
    sent: new Counter({
      name: "chat_webhooks_sent_total",
      help: "Webhook events a receiver accepted (2xx), each counted once per receiver.",
      registers,
    }),
    failed: new Counter({
      name: "chat_webhooks_failed_total",
      help: "Webhook attempts that failed: a non-2xx answer, a timeout or no connection.",
      registers,
    }),
    retried: new Counter({
      name: "chat_webhooks_retried_total",
      help: "Webhook events scheduled for another attempt after a failure.",
      registers,
    }),
    dropped: new Counter({
      name: "chat_webhooks_dropped_total",
      help: "Webhook events dropped unsent: expired (WEBHOOK_MAX_AGE), full (WEBHOOK_OUTBOX_MAX) " +
        "or target_removed (its URL left WEBHOOK_URL).",
      labelNames: ["reason"],
      registers,
    }),
    push: new Counter({
      name: "chat_push_notifications_total",
      help: "Web Push attempts by outcome: sent (2xx), gone (404/410: the subscription was " +
        "removed), refused (the endpoint resolved to an inside address: removed unsent) or " +
        "failed (not retried).",
      labelNames: ["outcome"],
      registers,
    }),
    publishHook: new Counter({
      name: "chat_publish_hook_calls_total",
      help: "Publish hook calls by outcome: allow, deny, modify, or failed (no answer in " +
        "PUBLISH_HOOK_TIMEOUT, a non-2xx or a malformed answer).",
      labelNames: ["outcome"],
      registers,
    }),
    outboxDepth: new Gauge({
      name: "chat_webhook_outbox_depth",
      help: "Events waiting in the outbox (every instance's), as last measured.",
      registers,
    }),
    outboxOldest: new Gauge({
      name: "chat_webhook_outbox_oldest_seconds",
      help: "Age of the oldest event waiting in the outbox, as last measured (0 when empty).",
      registers,
    }),
  };
}
