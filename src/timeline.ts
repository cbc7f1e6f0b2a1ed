/**
 * The chat's single ordered writer. Messages are group-committed to the store, then delivered in
 * id order; readers join between two deliveries, so the history a reader loads and the live
 * messages it receives afterwards meet exactly: nothing missing, nothing twice.
 *
 * @example
 * ```ts
 * const timeline = new Timeline(store, { historyLimit: 50, deliver: (messages) => send(messages) });
 * await timeline.join((history) => { sendHistory(history); subscribe(); });
 * const stored = await timeline.publish({ user, message: "hi" }); // stored and delivered
 * ```
 * @module
 */
import type { ChatMessage, MessageStore, NewMessage } from "./store/mod.ts";

/** Options of a {@link Timeline}. */
export interface TimelineOptions {
  /** How many recent messages a joining reader gets. */
  historyLimit: number;
  /** Called with each committed batch, in order, before the senders are answered. */
  deliver: (messages: ChatMessage[]) => void;
  /** Most messages committed together (default 128). */
  maxBatch?: number;
}

interface PendingMessage {
  input: NewMessage;
  resolve: (message: ChatMessage) => void;
  reject: (error: unknown) => void;
}

interface PendingJoin {
  onHistory: (history: ChatMessage[]) => void;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** Orders writes and joins over a {@link MessageStore}. */
export class Timeline {
  #messages: PendingMessage[] = [];
  #joins: PendingJoin[] = [];
  #running?: Promise<void>;
  readonly #maxBatch: number;

  constructor(private readonly store: MessageStore, private readonly options: TimelineOptions) {
    this.#maxBatch = options.maxBatch ?? 128;
  }

  /** Stores the message, delivers it, then resolves with the stored message. */
  publish(input: NewMessage): Promise<ChatMessage> {
    return new Promise((resolve, reject) => {
      this.#messages.push({ input, resolve, reject });
      this.#start();
    });
  }

  /**
   * Calls `onHistory` with the latest history at a point where no delivery is under way; what
   * `onHistory` subscribes synchronously receives every later delivery.
   */
  join(onHistory: (history: ChatMessage[]) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#joins.push({ onHistory, resolve, reject });
      this.#start();
    });
  }

  /** Resolves once every queued message and join is done. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  #start(): void {
    this.#running ??= this.#run().finally(() => this.#running = undefined);
  }

  async #run(): Promise<void> {
    while (this.#messages.length > 0 || this.#joins.length > 0) {
      if (this.#messages.length > 0) await this.#commitBatch();
      if (this.#joins.length > 0) await this.#admitReaders();
    }
  }

  async #commitBatch(): Promise<void> {
    const batch = this.#messages.splice(0, this.#maxBatch);
    let stored: ChatMessage[];
    try {
      stored = await this.store.appendMany(batch.map((pending) => pending.input));
    } catch (error) {
      for (const pending of batch) pending.reject(error);
      return;
    }
    try {
      this.options.deliver(stored);
    } finally {
      batch.forEach((pending, index) => pending.resolve(stored[index]));
    }
  }

  async #admitReaders(): Promise<void> {
    const joins = this.#joins.splice(0);
    let history: ChatMessage[];
    try {
      history = await this.store.latest(this.options.historyLimit);
    } catch (error) {
      for (const join of joins) join.reject(error);
      return;
    }
    for (const join of joins) {
      try {
        join.onHistory(history);
        join.resolve();
      } catch (error) {
        join.reject(error);
      }
    }
  }
}
