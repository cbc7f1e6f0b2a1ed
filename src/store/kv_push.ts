/**
 * Web Push subscriptions over Deno KV. `["push", user, endpoint]` holds a subscription's keys and
 * an id from a generator (the order they came in); `["push_endpoint", endpoint]` names the user a
 * browser belongs to, so a browser another user subscribes leaves its previous user.
 * @module
 */
import { whenUnlocked } from "./kv_unlocked.ts";
import { createIdGenerator, type MessageIdGenerator } from "./id.ts";
import type { PushSubscriptionRecord } from "./message_store.ts";

const PUSH = "push";
const PUSH_ENDPOINT = "push_endpoint";

/** A subscription as stored. */
interface StoredSubscription {
  keys: PushSubscriptionRecord["keys"];
  order: string;
}

/** The KV store's push subscriptions. */
export class KvPushSubscriptions {
  readonly #kv: Deno.Kv;
  readonly #nextOrder: MessageIdGenerator;

  constructor(kv: Deno.Kv, now: () => number) {
    this.#kv = kv;
    this.#nextOrder = createIdGenerator(now);
  }

  async add(userId: string, subscription: PushSubscriptionRecord, max: number): Promise<void> {
    const { endpoint, keys } = subscription;
    const owner = await whenUnlocked(() => this.#kv.get<string>([PUSH_ENDPOINT, endpoint]));
    const atomic = this.#kv.atomic();
    if (owner.value !== null && owner.value !== userId) {
      atomic.delete([PUSH, owner.value, endpoint]);
    }
    atomic.set([PUSH_ENDPOINT, endpoint], userId);
    atomic.set([PUSH, userId, endpoint], { keys, order: this.#nextOrder() });
    await whenUnlocked(() => atomic.commit());
    const stored = await this.#list(userId);
    const excess = stored.slice(0, Math.max(0, stored.length - max));
    if (excess.length === 0) return;
    const trim = this.#kv.atomic();
    for (const old of excess) {
      trim.delete([PUSH, userId, old.endpoint]).delete([PUSH_ENDPOINT, old.endpoint]);
    }
    await whenUnlocked(() => trim.commit());
  }

  async list(userId: string): Promise<PushSubscriptionRecord[]> {
    return (await this.#list(userId)).map(({ endpoint, keys }) => ({ endpoint, keys }));
  }

  async remove(userId: string, endpoint: string): Promise<boolean> {
    const entry = await whenUnlocked(() =>
      this.#kv.get<StoredSubscription>([PUSH, userId, endpoint])
    );
    if (entry.value === null) return false;
    const result = await whenUnlocked(() =>
      this.#kv.atomic().check(entry).delete([PUSH, userId, endpoint])
        .delete([PUSH_ENDPOINT, endpoint]).commit()
    );
    return result.ok;
  }

  /** The user's subscriptions, oldest first. */
  async #list(userId: string): Promise<(PushSubscriptionRecord & { order: string })[]> {
    const found: (PushSubscriptionRecord & { order: string })[] = [];
    const entries = this.#kv.list<StoredSubscription>({ prefix: [PUSH, userId] });
    for await (const { key, value } of entries) {
      found.push({ endpoint: key[2] as string, keys: value.keys, order: value.order });
    }
    return found.sort((a, b) => a.order < b.order ? -1 : a.order > b.order ? 1 : 0);
  }
}
