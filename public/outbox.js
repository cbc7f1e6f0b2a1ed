// @ts-check
/**
 * Messages on their way to the server. Each keeps its `clientId` from the first try to the last,
 * so the server stores it once however often it is sent. A message is delivered, or stays here
 * marked failed with the reason until the person retries it: none is ever dropped. No DOM here;
 * the page draws each entry from `onChange`.
 */

/** @typedef {import("./format.js").ChatMessage} ChatMessage */
/** @typedef {import("./format.js").ChatError} ChatError */
/**
 * @typedef {{ ok: true, message: ChatMessage, duplicate: boolean }
 *   | { ok: false, error: ChatError }} MessageAck
 */
/** @typedef {{ room: string, message: string, clientId: string }} MessagePayload */
/**
 * One message on its way: `sending` (sent, no ack yet), `waiting` (for the connection), or
 * `failed` (with the `error` that stopped it).
 * @typedef {{
 *   clientId: string,
 *   room: string,
 *   text: string,
 *   createdAt: string,
 *   state: "sending" | "waiting" | "failed",
 *   error?: ChatError,
 * }} OutboxEntry
 */
/**
 * "connected"; "reconnecting" (the client is trying); "offline" (it has stopped trying).
 * @typedef {"connected" | "reconnecting" | "offline"} ConnectionState
 */
/**
 * @typedef {{
 *   send(payload: MessagePayload): Promise<MessageAck>,
 *   onChange(entry: OutboxEntry): void,
 *   onDelivered(entry: OutboxEntry, message: ChatMessage): void,
 *   offlineLimitMs?: number,
 *   sendAttempts?: number,
 *   newId?: () => string,
 * }} OutboxOptions
 */

/** How long a message waits for a lost connection before it is marked failed. */
export const OFFLINE_LIMIT_MS = 20_000;
/** Sends of one message without an answer before it is marked failed. */
export const SEND_ATTEMPTS = 3;
/** After Retry, a message refused as `rate_limited` is sent again when allowed, this often. */
export const PATIENT_ATTEMPTS = 6;

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Outbox {
  /** @type {OutboxEntry[]} */
  #entries = [];
  /** @type {ConnectionState} */
  #connection = "offline";
  /** @type {Set<(online: boolean) => void>} */
  #waiters = new Set();
  #options;

  /** @param {OutboxOptions} options */
  constructor(options) {
    this.#options = options;
  }

  /**
   * The entries of `room`, oldest first.
   * @param {string} room
   */
  entriesOf(room) {
    return this.#entries.filter((entry) => entry.room === room);
  }

  /**
   * Sends `text` to `room`; the entry is reported at once, and again as it changes.
   * @param {string} room
   * @param {string} text
   */
  add(room, text) {
    /** @type {OutboxEntry} */
    const entry = {
      clientId: (this.#options.newId ?? (() => crypto.randomUUID()))(),
      room,
      text,
      createdAt: new Date().toISOString(),
      state: "sending",
    };
    this.#entries.push(entry);
    this.#options.onChange(entry);
    void this.#deliver(entry, false);
    return entry;
  }

  /**
   * Sends a failed entry again with the same `clientId`; a rate limit is waited out this time.
   * @param {OutboxEntry} entry
   */
  retry(entry) {
    if (entry.state !== "failed" || !this.#entries.includes(entry)) return;
    void this.#deliver(entry, true);
  }

  /** @param {ConnectionState} state */
  setConnection(state) {
    this.#connection = state;
    if (state === "reconnecting") return;
    for (const wake of this.#waiters) wake(state === "connected");
    this.#waiters.clear();
  }

  /** Forgets every entry (on logout). */
  clear() {
    this.#entries = [];
    this.setConnection("offline");
  }

  /**
   * @param {OutboxEntry} entry
   * @param {boolean} patient whether to wait out a rate limit rather than fail
   */
  async #deliver(entry, patient) {
    const payload = { room: entry.room, message: entry.text, clientId: entry.clientId };
    const attempts = patient ? PATIENT_ATTEMPTS : SEND_ATTEMPTS;
    for (let attempt = 1;; attempt++) {
      if (this.#connection !== "connected") {
        this.#update(entry, "waiting");
        if (!await this.#connected()) return this.#fail(entry, { code: "offline" });
      }
      this.#update(entry, "sending");
      /** @type {MessageAck} */
      let ack;
      try {
        ack = await this.#options.send(payload);
      } catch {
        // No ack in time. The server may have it: the same clientId makes a resend harmless.
        if (attempt >= attempts) return this.#fail(entry, { code: "no_answer" });
        continue;
      }
      if (!this.#entries.includes(entry)) return;
      if (ack.ok) {
        this.#entries.splice(this.#entries.indexOf(entry), 1);
        this.#options.onDelivered(entry, ack.message);
        return;
      }
      if (!patient || ack.error.code !== "rate_limited" || attempt >= attempts) {
        return this.#fail(entry, ack.error);
      }
      await sleep(ack.error.retryAfterMs ?? 1000);
    }
  }

  /** Resolves true once connected, false once offline for good or after the offline limit. */
  #connected() {
    if (this.#connection === "connected") return Promise.resolve(true);
    if (this.#connection === "offline") return Promise.resolve(false);
    return new Promise((resolve) => {
      /** @param {boolean} online */
      const wake = (online) => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
        resolve(online);
      };
      const timer = setTimeout(() => wake(false), this.#options.offlineLimitMs ?? OFFLINE_LIMIT_MS);
      this.#waiters.add(wake);
    });
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
    if (!this.#entries.includes(entry)) return;
    entry.error = error;
    this.#update(entry, "failed");
  }
}
