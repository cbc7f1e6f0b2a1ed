/**
 * {@link MessageStore} over Deno KV. Each message is one entry under `["messages", id]`; ids sort
 * by creation time, so KV's key order is history order and paging is a range list.
 *
 * @example
 * ```ts
 * const store = await openKvStore("./data/chat.kv");
 * const page = await store.before(oldestSeenId, 50);
 * store.close();
 * ```
 * @module
 */

import { dirname } from "node:path";
import type { ChatMessage, MessageStore, NewMessage } from "./mod.ts";
import { createIdGenerator, isMessageId, type MessageIdGenerator, timeOfId } from "./id.ts";

/** Why a store call was refused. */
export type StoreErrorCode = "invalid_id" | "invalid_limit";

/** A store call rejected for its arguments; `code` is stable, the message is for humans. */
export class StoreError extends Error {
  constructor(readonly code: StoreErrorCode, message: string) {
    super(message);
    this.name = "StoreError";
  }
}

/** Options for {@link KvMessageStore}. */
export interface KvStoreOptions {
  /** Source of message ids (default: a fresh {@link createIdGenerator} on the real clock). */
  generateId?: MessageIdGenerator;
}

const MESSAGES = "messages";
const DEFAULT_AFTER_LIMIT = 1000;
const MEMORY_PATH = ":memory:";
const MAX_BATCH_MESSAGES = 500;
const MAX_BATCH_BYTES = 400_000;

/** Message history kept in a Deno KV database, which the store owns and closes. */
export class KvMessageStore implements MessageStore {
  readonly #kv: Deno.Kv;
  readonly #generateId: MessageIdGenerator;

  constructor(kv: Deno.Kv, options: KvStoreOptions = {}) {
    this.#kv = kv;
    this.#generateId = options.generateId ?? createIdGenerator();
  }

  async append(input: NewMessage): Promise<ChatMessage> {
    const [stored] = await this.appendMany([input]);
    return stored;
  }

  async appendMany(inputs: readonly NewMessage[]): Promise<ChatMessage[]> {
    const stored = inputs.map((input): ChatMessage => {
      const id = this.#generateId();
      return {
        id,
        user: { id: input.user.id, name: input.user.name },
        message: input.message,
        createdAt: new Date(timeOfId(id)).toISOString(),
      };
    });
    // KV caps one atomic commit's mutation count and size: split large batches.
    for (let start = 0; start < stored.length;) {
      const atomic = this.#kv.atomic();
      let bytes = 0;
      let end = start;
      while (end < stored.length && end - start < MAX_BATCH_MESSAGES && bytes < MAX_BATCH_BYTES) {
        const message = stored[end];
        bytes += message.message.length * 3 + message.user.name.length * 3 + 256;
        atomic.set([MESSAGES, message.id], message);
        end++;
      }
      const result = await atomic.commit();
      if (!result.ok) throw new Error("KV refused the message batch");
      start = end;
    }
    return stored;
  }

  async latest(limit: number): Promise<ChatMessage[]> {
    checkLimit(limit);
    if (limit === 0) return [];
    const newestFirst = await this.#collect({ prefix: [MESSAGES] }, { reverse: true, limit });
    return newestFirst.reverse();
  }

  async after(id: string, limit: number = DEFAULT_AFTER_LIMIT): Promise<ChatMessage[]> {
    checkId(id);
    checkLimit(limit);
    if (limit === 0) return [];
    // "\0" sorts right after `id` itself, which makes the start exclusive.
    return await this.#collect({ prefix: [MESSAGES], start: [MESSAGES, id + "\u0000"] }, { limit });
  }

  async before(id: string, limit: number): Promise<ChatMessage[]> {
    checkId(id);
    checkLimit(limit);
    if (limit === 0) return [];
    const selector = { prefix: [MESSAGES], end: [MESSAGES, id] };
    const newestFirst = await this.#collect(selector, { reverse: true, limit });
    return newestFirst.reverse();
  }

  close(): void {
    this.#kv.close();
  }

  async #collect(
    selector: Deno.KvListSelector,
    options: Deno.KvListOptions,
  ): Promise<ChatMessage[]> {
    const messages: ChatMessage[] = [];
    for await (const entry of this.#kv.list<ChatMessage>(selector, options)) {
      messages.push(entry.value);
    }
    return messages;
  }
}

function checkId(id: string): void {
  if (!isMessageId(id)) {
    throw new StoreError("invalid_id", `"${String(id)}" is not a message id`);
  }
}

function checkLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new StoreError("invalid_limit", `limit must be a whole number ≥ 0, got ${limit}`);
  }
}

/**
 * Opens the KV database at `path` (creating its directory if missing) and wraps it in a store.
 * `:memory:` gives a store that keeps nothing after close.
 */
export async function openKvStore(path: string): Promise<KvMessageStore> {
  if (path !== MEMORY_PATH) await Deno.mkdir(dirname(path), { recursive: true });
  return new KvMessageStore(await Deno.openKv(path));
}
