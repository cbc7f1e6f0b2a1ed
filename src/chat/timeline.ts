/**
 * The chat's single ordered writer. Messages are group-committed to the store, then delivered in
 * id order; readers join between two deliveries, so the history a reader loads and the live
 * messages it receives afterwards meet exactly: nothing missing, nothing twice.
 *
 * @example
 * ```ts
 * import { openKvStore } from "../store/mod.ts";
 * import { Timeline } from "./timeline.ts";
 * import type { ChatMessage } from "../types.ts";
 *
 * const store = await openKvStore(":memory:");
 * const deliver = (batch: ChatMessage[]) => console.log(batch);
 * const timeline = new Timeline(store, { historyLimit: 50, deliver });
 * // Whatever the callback subscribes, synchronously, receives every later delivery.
 * await timeline.join((history) => console.log(history));
 * const ada = { id: "u1", name: "Ada" };
 * const { message } = await timeline.publish({ user: ada, message: "hi" }); // stored, delivered
 * store.close();
 * ```
 * @module
 */
import { type MessageStore, type OutboxWriter, PartialAppendError } from "../store/mod.ts";
import type { AppendResult, ChatMessage, NewMessage } from "../types.ts";

/** Options of a {@link Timeline}. */
export interface TimelineOptions {
  /** How many recent messages a joining reader gets. */
  historyLimit: number;
  /**
   * Called with each batch of new messages, in order, before the senders are answered;
   * `receivedAt[i]` is when `messages[i]` reached the server (`performance.now()`).
   */
  deliver: (messages: ChatMessage[], receivedAt: readonly number[]) => void;
  /** Most messages committed together (default 128). */
  maxBatch?: number;
  /** Told of each commit: how many messages it created and how long it took. */
  onCommit?: (created: number, seconds: number) => void;
  /**
   * Under load, how long to gather messages before the next commit: `"auto"` (as long as the
   * store's commits take, see {@link gatherDelay}), or a fixed number of milliseconds (default
   * 0: commit at once). Only applies while commits carry several messages, so a quiet chat never
   * waits.
   */
  gather?: number | "auto";

  /**
   * Adds to messages read from the store what lives beside them (their reactions), before a
   * joining reader or a history page gets them; returns new objects, never changes the given.
   */
  annotate?: (messages: ChatMessage[]) => Promise<ChatMessage[]>;
  /** What each commit also writes to the store's outbox about the messages it creates (webhooks). */
  outbox?: OutboxWriter;
}

/** Which history a joining reader wants. */
export interface JoinOptions {
  /** The room (default: the store's default room). */
  room?: string;
  /** Only messages after this id (a reconnecting client's last seen message). */
  afterId?: string;
  /** At most this many, the newest (default: `historyLimit`). */
  limit?: number;
}

/** What a reader gets besides the messages. */
export interface HistoryInfo {
  /** Older messages (after `afterId`, when given) exist beyond this history. */
  hasMore: boolean;
}

interface PendingMessage {
  input: NewMessage;
  receivedAt: number;
  resolve: (result: AppendResult) => void;
  reject: (error: unknown) => void;
}

interface PendingJoin {
  onHistory: (history: ChatMessage[], info: HistoryInfo) => void;
  options: JoinOptions;
  resolve: () => void;
  reject: (error: unknown) => void;
}

interface PendingTask {
  task: () => Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** The longest the writer gathers in `"auto"`, however slow the store's commits. */
export const MAX_GATHER_MS = 10;

/**
 * How much longer the writer gathers, under load, before committing: until the oldest waiting
 * message has waited about as long as a commit takes (`commitMs`, the store's recent pace), at
 * most {@link MAX_GATHER_MS}. A batch then costs its messages at most about one more commit of
 * latency; a store whose commits take longer gathers more per commit; messages that already
 * waited that long (for the previous commit) go at once.
 */
export function gatherDelay(commitMs: number, oldestAt: number, now: number): number {
  return Math.max(0, oldestAt + Math.min(MAX_GATHER_MS, commitMs) - now);
}

/** Orders writes and joins over a {@link MessageStore}. */
export class Timeline {
  #messages: PendingMessage[] = [];
  #joins: PendingJoin[] = [];
  #tasks: PendingTask[] = [];
  #running?: Promise<void>;
  readonly #maxBatch: number;
  /** Messages in the previous commit: more than one means messages are arriving together. */
  #lastBatchSize = 0;
  /** How long the store's recent commits took, in ms (a moving average). */
  #commitMs = 0;

  constructor(private readonly store: MessageStore, private readonly options: TimelineOptions) {
    this.#maxBatch = options.maxBatch ?? 128;
  }

  /**
   * Stores the message, delivers it, then resolves with the stored message. A repeated
   * `clientId` resolves with the earlier message (`created: false`) and delivers nothing.
   * `receivedAt` (`performance.now()` when the message reached the server) is handed to
   * `deliver` with it.
   */
  publish(input: NewMessage, receivedAt: number = performance.now()): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.#messages.push({ input, receivedAt, resolve, reject });
      this.#start();
    });
  }

  /**
   * Calls `onHistory` with the latest history at a point where no delivery is under way; what
   * `onHistory` subscribes synchronously receives every later delivery.
   */
  join(
    onHistory: (history: ChatMessage[], info: HistoryInfo) => void,
    options: JoinOptions = {},
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#joins.push({ onHistory, options, resolve, reject });
      this.#start();
    });
  }

  /**
   * Runs `task` between commits and joins, never during one: a task that reads what changed
   * beside the messages (reactions) and tells the rooms reaches every reader, because a reader
   * joining before it is in the room by then and one joining after reads the change itself.
   */
  run(task: () => Promise<void>): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#tasks.push({ task, resolve, reject });
      this.#start();
    });
  }

  /**
   * A page of older history of `room` (default: the default room): up to `limit` messages before
   * `beforeId` (or the latest).
   */
  async page(
    beforeId: string | undefined,
    limit: number,
    room?: string,
  ): Promise<[ChatMessage[], HistoryInfo]> {
    const messages = beforeId === undefined
      ? await this.store.latest(limit + 1, undefined, room)
      : await this.store.before(beforeId, limit + 1, room);
    const hasMore = messages.length > limit;
    return [await this.#annotate(hasMore ? messages.slice(1) : messages), { hasMore }];
  }

  /** Resolves once every queued message and join is done. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  #start(): void {
    this.#running ??= this.#run().finally(() => {
      this.#running = undefined;
      // Work queued after the loop's last check and before this cleanup must not wait.
      if (this.#pending()) this.#start();
    });
  }

  #pending(): boolean {
    return this.#messages.length > 0 || this.#joins.length > 0 || this.#tasks.length > 0;
  }

  async #run(): Promise<void> {
    while (this.#pending()) {
      if (this.#messages.length > 0) await this.#commitBatch();
      if (this.#joins.length > 0) await this.#admitReaders();
      if (this.#tasks.length > 0) await this.#runTasks();
    }
  }

  async #runTasks(): Promise<void> {
    for (const { task, resolve, reject } of this.#tasks.splice(0)) {
      await task().then(resolve, reject);
    }
  }

  #annotate(messages: ChatMessage[]): Promise<ChatMessage[]> {
    const { annotate } = this.options;
    return annotate && messages.length > 0 ? annotate(messages) : Promise.resolve(messages);
  }

  /** How long to gather before this commit, in ms: 0 unless messages arrive together. */
  #gatherWait(): number {
    const { gather = 0 } = this.options;
    const queued = this.#messages.length;
    if (queued >= this.#maxBatch) return 0;
    // Several messages in the last commit, or several waiting for this one: they come together.
    if (gather !== "auto") return this.#lastBatchSize > 1 ? gather : 0;
    if (Math.max(this.#lastBatchSize, queued) <= 1) return 0;
    return gatherDelay(this.#commitMs, this.#messages[0].receivedAt, performance.now());
  }

  async #commitBatch(): Promise<void> {
    const wait = this.#gatherWait();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const batch = this.#messages.splice(0, this.#maxBatch);
    this.#lastBatchSize = batch.length;
    let results: AppendResult[];
    let failure: unknown;
    const started = performance.now();
    try {
      results = await this.store.appendMany(
        batch.map((pending) => pending.input),
        this.options.outbox,
      );
      const took = performance.now() - started;
      this.#commitMs = this.#commitMs === 0 ? took : this.#commitMs * 0.8 + took * 0.2;
    } catch (error) {
      if (!(error instanceof PartialAppendError)) {
        for (const pending of batch) pending.reject(error);
        return;
      }
      // The stored part of the batch is history now: deliver and answer it like any commit.
      results = error.stored;
      failure = error.cause;
    }
    try {
      const created: ChatMessage[] = [];
      const receivedAt: number[] = [];
      results.forEach((result, index) => {
        if (!result.created) return;
        created.push(result.message);
        receivedAt.push(batch[index].receivedAt);
      });
      this.options.onCommit?.(created.length, (performance.now() - started) / 1000);
      if (created.length > 0) this.options.deliver(created, receivedAt);
    } finally {
      batch.forEach((pending, index) => {
        if (index < results.length) pending.resolve(results[index]);
        else pending.reject(failure);
      });
    }
  }

  async #admitReaders(): Promise<void> {
    // Readers asking for the same history share one read.
    const groups = new Map<string, PendingJoin[]>();
    for (const join of this.#joins.splice(0)) {
      const { room = "", afterId = "", limit = "" } = join.options;
      const key = JSON.stringify([room, afterId, limit]);
      const group = groups.get(key);
      if (group) group.push(join);
      else groups.set(key, [join]);
    }
    await Promise.all([...groups.values()].map((joins) => this.#admitGroup(joins)));
  }

  async #admitGroup(joins: PendingJoin[]): Promise<void> {
    const { room, afterId, limit = this.options.historyLimit } = joins[0].options;
    let history: ChatMessage[];
    let hasMore: boolean;
    try {
      history = await this.store.latest(limit + 1, afterId, room);
      hasMore = history.length > limit;
      history = await this.#annotate(hasMore ? history.slice(1) : history);
    } catch (error) {
      for (const join of joins) join.reject(error);
      return;
    }
    for (const join of joins) {
      try {
        join.onHistory(history, { hasMore });
        join.resolve();
      } catch (error) {
        join.reject(error);
      }
    }
  }
}
