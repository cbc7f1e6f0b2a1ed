// @ts-check
/**
 * Messages on their way to the server, sent one at a time in the order they were written. Each
 * keeps its `clientId` from the first try to the last, so the server stores it once however
 * often it is sent, and each is kept in the browser's storage until the server has it: a reload
 * sends what was left. A rate limit holds the queue until the server's `retryAfterMs`, then it
 * goes on by itself; only a refusal that waiting cannot fix marks a message failed, for the
 * person to retry or discard. No DOM here; the page draws from `onChange` and `onHold`.
 */

/** @typedef {import("./format.js").ChatMessage} ChatMessage */
/** @typedef {import("./format.js").ChatError} ChatError */
/**
 * @typedef {{ ok: true, message: ChatMessage, duplicate: boolean }
 *   | { ok: false, error: ChatError }} MessageAck
 */
/**
 * @typedef {{ room: string, message: string, clientId: string, replyTo?: string,
 *   mentions?: string[] }} MessagePayload
 */
/** What a message carries besides its text: the message it answers, the users it mentions. */
/** @typedef {{ replyTo?: string, mentions?: string[] }} MessageExtras */
/**
 * One message on its way: `queued` (for its turn, the connection or the end of a rate limit),
 * `sending` (sent, no ack yet) or `failed` (with the `error` that stopped it).
 * @typedef {{
 *   clientId: string,
 *   room: string,
 *   text: string,
 *   replyTo?: string,
 *   mentions?: string[],
 *   createdAt: string,
 *   seq: number,
 *   state: "queued" | "sending" | "failed",
 *   attempts: number,
 *   error?: ChatError,
 * }} OutboxEntry
 */
/** @typedef {"connected" | "reconnecting" | "offline"} ConnectionState */
/**
 * The part of the Web Storage API the outbox uses (`localStorage`, or a stand-in in tests).
 * @typedef {{
 *   readonly length: number,
 *   key(index: number): string | null,
 *   getItem(key: string): string | null,
 *   setItem(key: string, value: string): void,
 *   removeItem(key: string): void,
 * }} OutboxStorage
 */
/**
 * @typedef {{
 *   send(payload: MessagePayload): Promise<MessageAck>,
 *   onChange(entry: OutboxEntry): void,
 *   onDelivered(entry: OutboxEntry, message: ChatMessage): void,
 *   onHold?(until: number | undefined): void,
 *   storage?: OutboxStorage,
 *   sendAttempts?: number,
 *   newId?: () => string,
 *   now?: () => number,
 * }} OutboxOptions
 */

/** Sends of one message without an answer before it is marked failed. */
export const SEND_ATTEMPTS = 3;
/** Where entries are kept: `chat.outbox.<user id>.<clientId>`. */
export const STORAGE_PREFIX = "chat.outbox.";

/**
 * A user id as a storage key's part: %-encoded, dots too, so one user's prefix is never the start
 * of another's (`alice.` of `alice.bob.`).
 * @param {string} userId
 */
function storageName(userId) {
  return encodeURIComponent(userId).replaceAll(".", "%2E");
}

export class Outbox {
  /** @type {OutboxEntry[]} */
  #entries = [];
  /** @type {ConnectionState} */
  #connection = "offline";
  /** Until when the server asked us to wait (ms since epoch); 0 when not held. */
  #heldUntil = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #holdTimer;
  #pumping = false;
  /** @type {string | undefined} */
  #userId;
  #seq = 0;
  #options;

  /** @param {OutboxOptions} options */
  constructor(options) {
    this.#options = options;
  }

  #now() {
    return (this.#options.now ?? Date.now)();
  }

  /**
   * The entries of `room`, oldest first.
   * @param {string} room
   */
  entriesOf(room) {
    return this.#entries.filter((entry) => entry.room === room);
  }

  /** Until when a rate limit holds the queue (ms since epoch), or undefined. */
  get heldUntil() {
    return this.#heldUntil > this.#now() ? this.#heldUntil : undefined;
  }

  /** How many messages wait to be sent (not failed). */
  get waiting() {
    return this.#entries.filter((entry) => entry.state !== "failed").length;
  }

  /**
   * Takes up the messages `userId` left unsent in this browser (a reload, another tab closed),
   * in the order they were written, and sends them under their own `clientId`s.
   * @param {string} userId
   */
  restore(userId) {
    this.#userId = userId;
    const storage = this.#options.storage;
    if (!storage) return;
    const prefix = `${STORAGE_PREFIX}${storageName(userId)}.`;
    /** @type {OutboxEntry[]} */
    const found = [];
    for (let index = 0; index < storage.length; index++) {
      const key = storage.key(index);
      if (!key?.startsWith(prefix)) continue;
      try {
        const saved = JSON.parse(storage.getItem(key) ?? "null");
        if (this.#entries.some((entry) => entry.clientId === saved.clientId)) continue;
        if (typeof saved.text !== "string" || typeof saved.room !== "string") continue;
        found.push({ ...saved, state: "queued", attempts: 0 });
      } catch {
        storage.removeItem(key);
      }
    }
    found.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.seq - b.seq);
    for (const entry of found) {
      this.#seq = Math.max(this.#seq, entry.seq);
      this.#entries.push(entry);
      this.#options.onChange(entry);
    }
    void this.#pump();
  }

  /**
   * Sends `text` to `room` after what is already queued; the entry is reported at once, and
   * again as it changes.
   * @param {string} room
   * @param {string} text
   * @param {MessageExtras} [extras]
   */
  add(room, text, extras = {}) {
    /** @type {OutboxEntry} */
    const entry = {
      clientId: (this.#options.newId ?? (() => crypto.randomUUID()))(),
      room,
      text,
      ...extrasOf(extras),
      createdAt: new Date(this.#now()).toISOString(),
      seq: ++this.#seq,
      state: "queued",
      attempts: 0,
    };
    this.#entries.push(entry);
    this.#save(entry);
    this.#options.onChange(entry);
    void this.#pump();
    return entry;
  }

  /**
   * Queues a failed entry again, with the same `clientId`.
   * @param {OutboxEntry} entry
   */
  retry(entry) {
    if (entry.state !== "failed" || !this.#entries.includes(entry)) return;
    entry.attempts = 0;
    this.#update(entry, "queued");
    void this.#pump();
  }

  /**
   * Drops an entry that was not sent (the person gave up on it).
   * @param {OutboxEntry} entry
   */
  discard(entry) {
    if (entry.state === "sending" || !this.#entries.includes(entry)) return;
    this.#remove(entry);
  }

  /** Ends a rate-limit hold now: the queue is sent again at once. */
  retryNow() {
    this.#hold(0);
    void this.#pump();
  }

  /**
   * Reports an entry again, as it is (its circumstances changed: the connection came or went).
   * @param {OutboxEntry} entry
   */
  redraw(entry) {
    if (this.#entries.includes(entry)) this.#options.onChange(entry);
  }

  /** @param {ConnectionState} state */
  setConnection(state) {
    this.#connection = state;
    if (state === "connected") void this.#pump();
  }

  /** Forgets the entries here (on logout); the browser's storage keeps them for the next login. */
  clear() {
    this.#entries = [];
    this.#userId = undefined;
    this.#hold(0);
    this.#connection = "offline";
  }

  /** Sends queued entries one at a time, in order, while connected and not held. */
  async #pump() {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#connection === "connected" && this.heldUntil === undefined) {
        const entry = this.#entries.find((candidate) => candidate.state === "queued");
        if (!entry) break;
        await this.#sendOne(entry);
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** @param {OutboxEntry} entry */
  async #sendOne(entry) {
    this.#update(entry, "sending");
    /** @type {MessageAck} */
    let ack;
    try {
      ack = await this.#options.send({
        room: entry.room,
        message: entry.text,
        clientId: entry.clientId,
        ...extrasOf(entry),
      });
    } catch {
      if (!this.#entries.includes(entry)) return;
      // No ack in time. The server may have it: the same clientId makes a resend harmless. A
      // lost connection is no fault of the message: it waits for the next one.
      const counts = this.#connection === "connected";
      if (counts) entry.attempts++;
      if (entry.attempts >= (this.#options.sendAttempts ?? SEND_ATTEMPTS)) {
        return this.#fail(entry, { code: "no_answer" });
      }
      return this.#update(entry, "queued");
    }
    if (!this.#entries.includes(entry)) return;
    if (ack.ok) {
      this.#remove(entry);
      this.#options.onDelivered(entry, ack.message);
      return;
    }
    if (ack.error.code === "rate_limited") {
      this.#update(entry, "queued");
      const wait = ack.error.retryAfterMs ?? 1000;
      this.#hold(this.#now() + wait, wait);
      return;
    }
    this.#fail(entry, ack.error);
  }

  /** @param {number} until */
  /**
   * Holds the queue until `until` (ms since epoch); 0 releases it. `wait` is how long that is from
   * now, given by a caller that knows it: read again, a busy machine's clock could say it is over
   * before the hold began.
   * @param {number} until
   * @param {number} [wait]
   */
  #hold(until, wait = until - this.#now()) {
    clearTimeout(this.#holdTimer);
    this.#heldUntil = until;
    if (wait > 0) {
      this.#holdTimer = setTimeout(() => {
        this.#heldUntil = 0;
        this.#options.onHold?.(undefined);
        void this.#pump();
      }, wait);
    }
    this.#options.onHold?.(wait > 0 ? until : undefined);
  }

  /**
   * @param {OutboxEntry} entry
   * @param {OutboxEntry["state"]} state
   */
  #update(entry, state) {
    if (entry.state === state && state !== "failed") return;
    entry.state = state;
    if (state !== "failed") delete entry.error;
    this.#options.onChange(entry);
  }

  /**
   * @param {OutboxEntry} entry
   * @param {ChatError} error
   */
  #fail(entry, error) {
    entry.error = error;
    this.#update(entry, "failed");
  }

  /** @param {OutboxEntry} entry */
  #remove(entry) {
    this.#entries.splice(this.#entries.indexOf(entry), 1);
    if (this.#userId !== undefined) {
      this.#options.storage?.removeItem(this.#keyOf(entry.clientId));
    }
  }

  /**
   * Where a message waits in storage, under its user's {@link storageName}.
   * @param {string} clientId
   */
  #keyOf(clientId) {
    return `${STORAGE_PREFIX}${storageName(this.#userId ?? "")}.${clientId}`;
  }

  /** @param {OutboxEntry} entry */
  #save(entry) {
    if (this.#userId === undefined) return;
    const { clientId, room, text, createdAt, seq } = entry;
    try {
      this.#options.storage?.setItem(
        this.#keyOf(clientId),
        JSON.stringify({ clientId, room, text, createdAt, seq, ...extrasOf(entry) }),
      );
    } catch {
      // Storage full or off: the message is still sent from memory.
    }
  }
}

/**
 * The extras worth sending: a `replyTo` string, a non-empty `mentions` array of strings.
 * @param {{ replyTo?: unknown, mentions?: unknown }} source
 * @returns {MessageExtras}
 */
function extrasOf(source) {
  /** @type {MessageExtras} */
  const extras = {};
  if (typeof source.replyTo === "string") extras.replyTo = source.replyTo;
  const { mentions } = source;
  if (Array.isArray(mentions) && mentions.length > 0) {
    extras.mentions = mentions.filter((id) => typeof id === "string");
  }
  return extras;
}
