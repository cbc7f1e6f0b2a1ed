/**
 * {@link MessageStore} over Deno KV. Each message is one entry under `["messages", room, id]`; ids
 * sort by creation time, so KV's key order is each room's history order and paging is a range
 * list. Read markers live under `["reads", user, room]` and memberships under
 * `["members", user, room]`, so a room's unread count and a user's room list are range reads too.
 * Both expire `membershipMaxAgeMs` after the user last touched the room (sent, read or joined).
 *
 * @example
 * ```ts
 * import { openKvStore } from "./mod.ts";
 *
 * const store = await openKvStore("./data/chat.kv");
 * const shown = await store.latest(50);
 * const earlier = await store.before(shown[0].id, 50); // the 50 before the oldest shown
 * store.close();
 * ```
 * @module
 */

import { dirname } from "node:path";
import { PartialAppendError } from "./append_error.ts";
import { KvOutbox } from "./kv_outbox.ts";
import { KvPushSubscriptions } from "./kv_push.ts";
import { whenUnlocked } from "./kv_unlocked.ts";
import { IDS, MENTIONS, MESSAGES, REACTED, REACTIONS, THREAD_COUNTS, THREADS } from "./kv_keys.ts";
import { trimRoom } from "./kv_trim.ts";

export { whenUnlocked };
import {
  type OutboxDraft,
  type OutboxStore,
  type OutboxWriter,
  REFERENCE_DRAFT_BYTES,
} from "./outbox.ts";
import type {
  AppendResult,
  Ban,
  ChatMessage,
  MessageChange,
  NewMessage,
  Reaction,
  ThreadSummary,
} from "../types.ts";
import {
  type MessageStore,
  type PushSubscriptionRecord,
  type ReactionChange,
  type ReactionLimits,
  type ReactionOutcome,
  type ReadPosition,
  type RoomQuery,
  THREAD_USERS,
} from "./message_store.ts";
import { RateLimiter } from "../rate_limit.ts";
import { RecentWindow, RoomWindows } from "./recent.ts";
import { ReadBatch } from "./read_batch.ts";
import {
  createIdGenerator,
  firstIdAt,
  isMessageId,
  type MessageIdGenerator,
  timeOfId,
} from "./id.ts";
import {
  checkId,
  checkLimit,
  DEFAULT_AFTER_LIMIT,
  DEFAULT_DEDUPE_TTL_MS,
  DEFAULT_MEMBERSHIP_MAX_AGE_MS,
  DEFAULT_PEER_MEMBERSHIPS_PER_MINUTE,
  DEFAULT_ROOM,
  KeyedQueue,
  mentionedOthers,
  type TouchKind,
  TouchMemory,
} from "./rules.ts";

/** Options for {@link KvMessageStore}. */
export interface KvStoreOptions {
  /** Source of message ids (default: a fresh {@link createIdGenerator} on the real clock). */
  generateId?: MessageIdGenerator;
  /** Messages expire this many ms after they are stored (KV `expireIn`); unset keeps them. */
  maxAgeMs?: number;
  /** Keep at most this many messages, deleting the oldest; unset keeps them all. */
  maxCount?: number;
  /** How long a `clientId` is remembered for deduplication (default 24 h). */
  dedupeTtlMs?: number;
  /**
   * Keep the newest this many messages in memory and serve `latest` from them (default 0: off).
   * Only for a store with a single writer process: other writers' messages would be missed.
   */
  recentWindow?: number;
  /**
   * Keep the newest this many messages of each other room in memory too, filled on the room's
   * first read (default 0: off); same single-writer rule as `recentWindow`.
   */
  roomWindow?: number;
  /** Most rooms whose windows are kept, the least recently read dropped first (default 256). */
  roomWindows?: number;
  /**
   * The room of messages sent without one, and of messages stored before rooms existed (default
   * `general`).
   */
  defaultRoom?: string;
  /**
   * Read markers and memberships expire this long after the user last touched the room: sent to
   * it, read it or joined it (default {@link DEFAULT_MEMBERSHIP_MAX_AGE_MS}).
   */
  membershipMaxAgeMs?: number;
  /**
   * Memberships one user may create in other users' room lists (a DM's first message) per minute,
   * on this instance; the rest are not recorded (default 30, as many at once).
   */
  peerMembershipsPerMinute?: number;
  /** The clock that memberships, read markers, bans and retention are measured by (tests move it). */
  now?: () => number;
}

/** Rooms whose recent windows are kept, by default. */
const DEFAULT_ROOM_WINDOWS = 256;

const DEDUPE = "dedupe";
/** The server API's clientIds, apart from the sockets' (whose keys predate it). */
const DEDUPE_API = "dedupe_api";
const READS = "reads" satisfies TouchKind;
const MEMBERS = "members" satisfies TouchKind;
const BANS = "bans";
/** DM rooms' ids start with this; every one of them sorts before {@link DM_ROOMS_END}. */
const DM_ROOM_PREFIX = "dm:";
const DM_ROOMS_END = "dm;";
/** Under this emoji (it sorts first), a message's emoji in the order first used. */
const EMOJI_ORDER = "";
/** Most `reacted` entries read to fill a listed user's place when one takes theirs back. */
const REFILL_SCAN = 500;
/** Thread entries read for a summary's users. */
const THREAD_USERS_SCAN = 50;
/** `["room_reads", room, user]`: a user's read marker again, by room (read receipts). */
const ROOM_READS = "room_reads";
/**
 * The key layout's version: 2 keys messages by room; 3 stores read markers and memberships with
 * the time they were last touched, and an expiry; 4: no id or mention entry outlives its message
 * (trims before it left them behind).
 */
const LAYOUT_KEY = ["meta", "layout"];
const LAYOUT = 4;
const MEMORY_PATH = ":memory:";
// Deno KV caps one atomic commit at 1000 mutations, 100 checks and ~800 KB, getMany at 10 keys.
const MAX_BATCH_MESSAGES = 400;
const MAX_MUTATIONS = 1000;
const MAX_BATCH_CHECKS = 100;
const MAX_BATCH_BYTES = 400_000;
const GET_MANY_LIMIT = 10;
// A failed check means a clientId was stored before (a retry) or by another process meanwhile:
// read and try again, a few times.
const MAX_APPEND_ATTEMPTS = 5;
// Changes of one message on this instance wait their turn; only another instance sharing the KV
// store can make a change's check fail, so a few retries, spread by jitter, are enough.
const MAX_CHANGE_ATTEMPTS = 10;

type DedupeKey = [typeof DEDUPE | typeof DEDUPE_API, string, string];

function dedupeKey(input: NewMessage): DedupeKey | undefined {
  if (input.clientId === undefined) return undefined;
  return [input.source === "api" ? DEDUPE_API : DEDUPE, input.user.id, input.clientId];
}

function keyString(key: DedupeKey): string {
  return JSON.stringify(key);
}

/** A dedupe entry names the message it stored: `[room, id]` (before rooms: the id alone). */
type DedupeValue = [string, string] | string;

/** One emoji's reactions to a message, as stored. */
interface ReactionEntry {
  count: number;
  users: string[];
}

/** A membership: when its user last touched the room (layout 2 stored `true`). */
interface Membership {
  touchedAt: number;
}
/** A read marker: the last message seen, and when (layout 2 stored the id alone). */
interface ReadMarker {
  lastId: string;
  touchedAt: number;
}

/** Message history kept in a Deno KV database, which the store owns and closes. */
export class KvMessageStore implements MessageStore {
  readonly #kv: Deno.Kv;
  readonly #generateId: MessageIdGenerator;
  readonly #options: KvStoreOptions;
  /** Messages stored per room since that room was last trimmed. */
  #appendsSinceTrim = new Map<string, number>();
  /** The default room's newest messages, when kept in memory. */
  readonly #recent?: RecentWindow;
  /** Other rooms' newest messages, when kept in memory. */
  readonly #rooms?: RoomWindows;
  readonly defaultRoom: string;
  readonly #now: () => number;
  readonly #membershipMaxAgeMs: number;
  /** Which markers and memberships this instance refreshed lately. */
  readonly #touches: TouchMemory;
  /** Memberships each user created for others, per minute. */
  readonly #peerMemberships: RateLimiter;
  /** Each message's pending changes. */
  readonly #changes = new KeyedQueue();
  /** Pending appends. */
  readonly #appends = new KeyedQueue();
  readonly #outbox: KvOutbox;
  readonly #push: KvPushSubscriptions;
  /** Ban reads asked at once (a connect storm asks twice per connect) share a `getMany`. */
  readonly #bans = new ReadBatch<Ban | null>((users) =>
    this.#getMany<Ban>(users.map((userId) => [BANS, userId]))
  );

  constructor(kv: Deno.Kv, options: KvStoreOptions = {}) {
    this.#kv = kv;
    this.#generateId = options.generateId ?? createIdGenerator();
    this.#options = options;
    this.defaultRoom = options.defaultRoom ?? DEFAULT_ROOM;
    this.#now = options.now ?? Date.now;
    this.#membershipMaxAgeMs = options.membershipMaxAgeMs ?? DEFAULT_MEMBERSHIP_MAX_AGE_MS;
    this.#touches = new TouchMemory(this.#membershipMaxAgeMs);
    const perMinute = options.peerMembershipsPerMinute ?? DEFAULT_PEER_MEMBERSHIPS_PER_MINUTE;
    this.#peerMemberships = new RateLimiter({ perMinute, burst: perMinute }, this.#now);
    this.#outbox = new KvOutbox(kv, this.#now);
    this.#push = new KvPushSubscriptions(kv, this.#now);
    const size = Math.min(options.recentWindow ?? 0, options.maxCount ?? Infinity);
    if (size > 0) this.#recent = new RecentWindow(size);
    const roomSize = Math.min(options.roomWindow ?? 0, options.maxCount ?? Infinity);
    if (roomSize > 0) {
      this.#rooms = new RoomWindows(roomSize, options.roomWindows ?? DEFAULT_ROOM_WINDOWS);
    }
  }

  /** What the in-memory windows hold: rooms (the default room included) and messages. */
  memory(): { rooms: number; messages: number } {
    return {
      rooms: (this.#rooms?.rooms ?? 0) + (this.#recent ? 1 : 0),
      messages: (this.#rooms?.messages ?? 0) + (this.#recent?.length ?? 0),
    };
  }

  /**
   * Brings an older key layout up to date, then fills the in-memory window of recent messages
   * when there is one; call once, first.
   */
  async warm(): Promise<void> {
    await this.#migrate();
    if (!this.#recent) return;
    const newestFirst = await this.#collect({ prefix: [MESSAGES, this.defaultRoom] }, {
      reverse: true,
      limit: this.#recent.size,
    });
    this.#recent.seed(newestFirst.reverse());
  }

  /**
   * Moves messages stored before rooms (`["messages", id]`) into the default room. Each batch is
   * one commit that copies and deletes, so a crash midway leaves nothing lost or doubled, and the
   * next start carries on.
   */
  async #migrate(): Promise<void> {
    const layout = (await whenUnlocked(() => this.#kv.get<number>(LAYOUT_KEY))).value ?? 0;
    if (layout >= LAYOUT) return;
    if (layout < 2) await this.#moveIntoRooms();
    if (layout < 3) await this.#stampTouches();
    await this.#sweepLeftBehind();
    await whenUnlocked(() => this.#kv.set(LAYOUT_KEY, LAYOUT));
  }

  /** Layout 1 → 2: messages stored before rooms move into the default room. */
  async #moveIntoRooms(): Promise<void> {
    while (true) {
      const legacy: Deno.KvEntry<ChatMessage>[] = [];
      for await (const entry of this.#kv.list<ChatMessage>({ prefix: [MESSAGES] })) {
        if (entry.key.length !== 2) continue;
        legacy.push(entry);
        if (legacy.length === MAX_BATCH_CHECKS) break;
      }
      if (legacy.length === 0) break;
      const atomic = this.#kv.atomic();
      for (const entry of legacy) {
        const message = { ...entry.value, room: this.defaultRoom };
        atomic.check(entry).delete(entry.key).set(
          [MESSAGES, this.defaultRoom, message.id],
          message,
        );
      }
      await whenUnlocked(() => atomic.commit());
    }
  }

  /**
   * Layout 2 → 3: read markers and memberships stored without a touch time get one (now) and an
   * expiry, so those of rooms nobody comes back to go; each batch is one checked commit.
   */
  async #stampTouches(): Promise<void> {
    const touchedAt = this.#now();
    for (const kind of [READS, MEMBERS] as const) {
      const legacy: Deno.KvEntry<unknown>[] = [];
      const flush = async () => {
        const atomic = this.#kv.atomic();
        for (const entry of legacy.splice(0)) {
          const value = kind === READS
            ? { lastId: entry.value as string, touchedAt } satisfies ReadMarker
            : { touchedAt } satisfies Membership;
          atomic.check(entry).set(entry.key, value, { expireIn: this.#membershipMaxAgeMs });
        }
        // A failed check means the entry was written meanwhile, in the new form.
        await whenUnlocked(() => atomic.commit());
      };
      for await (const entry of this.#kv.list({ prefix: [kind] })) {
        if (touchTime(entry.value) !== undefined) continue;
        legacy.push(entry);
        if (legacy.length === MAX_BATCH_CHECKS) await flush();
      }
      if (legacy.length > 0) await flush();
    }
  }

  /**
   * Layout 3 → 4: deletes the id and mention entries whose message a trim deleted before trims
   * took them too (one scan of each space, on the first start after the upgrade). Only a trim
   * deletes a message, and a message is written in one commit with its entries, so an entry
   * without its message is always left behind, never early.
   */
  async #sweepLeftBehind(): Promise<void> {
    await this.#sweep<string>([IDS], (key, room) => [MESSAGES, room, key[1]]);
    await this.#sweep<unknown>([MENTIONS], (key) => [MESSAGES, key[1], key[3]]);
  }

  async #sweep<T>(
    prefix: Deno.KvKey,
    messageKeyOf: (key: Deno.KvKey, value: T) => Deno.KvKey,
  ): Promise<void> {
    const page: Deno.KvEntry<T>[] = [];
    const flush = async () => {
      const entries = page.splice(0);
      const messages = await this.#getEntries(
        entries.map((entry) => messageKeyOf(entry.key, entry.value)),
      );
      const gone = entries.filter((_, index) => messages[index].versionstamp === null);
      if (gone.length === 0) return;
      const atomic = this.#kv.atomic();
      for (const entry of gone) atomic.delete(entry.key);
      await whenUnlocked(() => atomic.commit());
    };
    for await (const entry of this.#kv.list<T>({ prefix })) {
      page.push(entry);
      if (page.length === MAX_BATCH_CHECKS) await flush();
    }
    await flush();
  }

  async append(input: NewMessage): Promise<ChatMessage> {
    const [result] = await this.appendMany([input]);
    return result.message;
  }

  appendMany(inputs: readonly NewMessage[], outbox?: OutboxWriter): Promise<AppendResult[]> {
    // One commit at a time on this instance: the checks of its counters then only fail when
    // another instance shares the store.
    return this.#appends.run("", () => this.#appendMany(inputs, outbox));
  }

  async #appendMany(
    inputs: readonly NewMessage[],
    outbox: OutboxWriter | undefined,
  ): Promise<AppendResult[]> {
    const results: AppendResult[] = [];
    // Each chunk is one atomic commit: a conflict retries that chunk alone, never one stored.
    for (const chunk of commitChunks(inputs, outbox)) {
      for (let attempt = 1;; attempt++) {
        try {
          // Retries are rare: try the commit first and read earlier clientIds only if it fails.
          results.push(...await this.#tryAppend(chunk, attempt > 1, outbox));
          break;
        } catch (error) {
          if (error instanceof CommitConflict && attempt < MAX_APPEND_ATTEMPTS) {
            // Another instance's commit won: wait a little, jittered, so the next one differs.
            await new Promise((resolve) => setTimeout(resolve, 2 ** attempt * Math.random()));
            continue;
          }
          // Earlier chunks are stored for good: say which, so their senders are answered.
          throw results.length === 0 ? error : new PartialAppendError(results, error);
        }
      }
    }
    await this.#trimWhenDue(results.filter((result) => result.created).map((r) => r.message));
    return results;
  }

  async #tryAppend(
    inputs: readonly NewMessage[],
    readFirst: boolean,
    outbox: OutboxWriter | undefined,
  ): Promise<AppendResult[]> {
    // Without the read, a clientId stored earlier makes the commit's check fail: then we read.
    const earlier = readFirst ? await this.#findEarlier(inputs) : new Map<string, ChatMessage>();
    const results: AppendResult[] = [];
    const created: { message: ChatMessage; key?: DedupeKey }[] = [];
    const createdInBatch = new Map<string, ChatMessage>();
    for (const input of inputs) {
      const key = dedupeKey(input);
      const seen = key && (earlier.get(keyString(key)) ?? createdInBatch.get(keyString(key)));
      if (seen) {
        results.push({ message: seen, created: false });
        continue;
      }
      const message = this.#newMessage(input);
      if (key) createdInBatch.set(keyString(key), message);
      created.push({ message, key });
      results.push({ message, created: true });
    }
    await this.#commit(created, await this.#threadCounts(created), outbox);
    const messages = created.map((entry) => entry.message);
    this.#recent?.add(messages.filter((message) => message.room === this.defaultRoom));
    this.#rooms?.add(messages.filter((message) => message.room !== this.defaultRoom));
    return results;
  }

  /** Messages already stored under the batch's clientIds, keyed by dedupe key. */
  async #findEarlier(inputs: readonly NewMessage[]): Promise<Map<string, ChatMessage>> {
    const keys = [
      ...new Map(
        inputs.map(dedupeKey).filter((key) => key !== undefined).map((
          key,
        ) => [keyString(key), key]),
      ).values(),
    ];
    const found = new Map<string, ChatMessage>();
    if (keys.length === 0) return found;
    const stored = (await this.#getMany<DedupeValue>(keys)).map((value) =>
      value === null ? null : typeof value === "string" ? [this.defaultRoom, value] : value
    );
    const messages = await this.#getMany<ChatMessage>(
      stored.filter((entry) => entry !== null).map(([room, id]) => [MESSAGES, room, id]),
    );
    const byId = new Map(messages.filter((m) => m !== null).map((m) => [m.id, m]));
    keys.forEach((key, index) => {
      const entry = stored[index];
      if (entry === null) return;
      // A dedupe entry whose message was trimmed still names it: answer with what is known.
      const [room, id] = entry;
      found.set(keyString(key), byId.get(id) ?? this.#placeholder(room, id, key));
    });
    return found;
  }

  #placeholder(room: string, id: string, key: DedupeKey): ChatMessage {
    return {
      id,
      room,
      user: { id: key[1], name: key[1] },
      message: "",
      createdAt: new Date(timeOfId(id)).toISOString(),
    };
  }

  async #getMany<T>(keys: Deno.KvKey[]): Promise<(T | null)[]> {
    return (await this.#getEntries(keys)).map((entry) => entry.value as T | null);
  }

  #newMessage(input: NewMessage): ChatMessage {
    const id = this.#generateId();
    return {
      id,
      room: input.room ?? this.defaultRoom,
      user: { id: input.user.id, name: input.user.name },
      message: input.message,
      createdAt: new Date(timeOfId(id)).toISOString(),
      ...(input.replyTo ? { replyTo: input.replyTo } : {}),
      ...(input.mentions?.length ? { mentions: input.mentions } : {}),
    };
  }

  /**
   * The thread counters the batch's replies add to, as stored now, and how many each gains: the
   * commit checks them, so concurrent replies are all counted.
   */
  async #threadCounts(
    created: readonly { message: ChatMessage }[],
  ): Promise<ThreadCountChange[]> {
    const added = new Map<string, { key: Deno.KvKey; parent: string; added: number }>();
    for (const { message } of created) {
      if (!message.replyTo) continue;
      const key = [THREAD_COUNTS, message.room, message.replyTo.id];
      const known = added.get(JSON.stringify(key));
      if (known) known.added++;
      else added.set(JSON.stringify(key), { key, parent: message.replyTo.id, added: 1 });
    }
    const changes = [...added.values()];
    const stored = await this.#getEntries(changes.map((change) => change.key));
    return changes.map((change, index) => ({ ...change, stored: stored[index] }));
  }

  async #getEntries(keys: Deno.KvKey[]): Promise<Deno.KvEntryMaybe<unknown>[]> {
    const chunks: Deno.KvKey[][] = [];
    for (let i = 0; i < keys.length; i += GET_MANY_LIMIT) {
      chunks.push(keys.slice(i, i + GET_MANY_LIMIT));
    }
    const entries = await Promise.all(
      chunks.map((chunk) => whenUnlocked(() => this.#kv.getMany<unknown[]>(chunk))),
    );
    return entries.flat();
  }

  async #commit(
    created: { message: ChatMessage; key?: DedupeKey }[],
    threadCounts: readonly ThreadCountChange[],
    outbox: OutboxWriter | undefined,
  ): Promise<void> {
    const messageOptions = this.#options.maxAgeMs ? { expireIn: this.#options.maxAgeMs } : {};
    const dedupeOptions = { expireIn: this.#options.dedupeTtlMs ?? DEFAULT_DEDUPE_TTL_MS };
    const atomic = this.#kv.atomic();
    for (const { message, key } of created) {
      atomic.set([MESSAGES, message.room, message.id], message, messageOptions);
      atomic.set([IDS, message.id], message.room, messageOptions);
      if (message.replyTo) {
        // A thread goes with its parent, the older of the two.
        const parent = message.replyTo.id;
        const thread = [THREADS, message.room, parent, message.id];
        atomic.set(thread, message.user.id, this.#expiryOf(parent));
      }
      for (const userId of mentionedOthers(message)) {
        atomic.set([MENTIONS, message.room, userId, message.id], true, messageOptions);
      }
      if (key) {
        atomic.check({ key, versionstamp: null });
        atomic.set(key, [message.room, message.id] satisfies DedupeValue, dedupeOptions);
      }
    }
    // A KV sum cannot expire: the count is a number, rewritten under a check.
    for (const { key, parent, added, stored } of threadCounts) {
      atomic.check(stored).set(key, countOf(stored.value) + added, this.#expiryOf(parent));
    }
    // The events describing these messages commit with them, or not at all.
    if (outbox) {
      this.#outbox.addTo(
        atomic,
        created.flatMap(({ message }) => draftsOf(outbox, message)),
      );
    }
    const result = await whenUnlocked(() => atomic.commit());
    if (!result.ok) throw new CommitConflict();
  }

  /**
   * Trims to `maxCount` once enough messages were added since the last trim: a trim reads
   * `maxCount` entries, so doing it every `maxCount / 4` appends keeps its cost per message low.
   */
  async #trimWhenDue(created: readonly ChatMessage[]): Promise<void> {
    const { maxCount } = this.#options;
    if (maxCount === undefined) return;
    for (const { room } of created) {
      const count = (this.#appendsSinceTrim.get(room) ?? 0) + 1;
      this.#appendsSinceTrim.set(room, count);
    }
    for (const [room, count] of this.#appendsSinceTrim) {
      if (count < Math.max(50, Math.floor(maxCount / 4))) continue;
      this.#appendsSinceTrim.delete(room);
      await this.trim(room);
    }
  }

  /**
   * Deletes the room's oldest messages beyond `maxCount`, and what derives from them (a no-op
   * without `maxCount`).
   */
  async trim(room: string = this.defaultRoom): Promise<void> {
    const { maxCount } = this.#options;
    if (maxCount === undefined) return;
    await trimRoom(this.#kv, room, maxCount);
  }

  async latest(
    limit: number,
    afterId?: string,
    room: string = this.defaultRoom,
  ): Promise<ChatMessage[]> {
    checkLimit(limit);
    if (afterId !== undefined) checkId(afterId);
    if (limit === 0) return [];
    if (room === this.defaultRoom) {
      const cached = this.#recent?.newest(limit, afterId, this.#youngestId());
      if (cached) return cached;
    } else if (this.#rooms) {
      const rooms = this.#rooms;
      if (!rooms.has(room)) {
        await rooms.fill(room, async () => {
          const range = this.#range(room);
          return (await this.#collect(range, { reverse: true, limit: rooms.windowSize })).reverse();
        });
      }
      const cached = rooms.newest(room, limit, afterId, this.#youngestId());
      if (cached) return cached;
    }
    const newestFirst = await this.#collect(this.#range(room, afterId), { reverse: true, limit });
    return newestFirst.reverse();
  }

  /** The oldest id still within `maxAgeMs`, when messages expire. */
  #youngestId(): string | undefined {
    const { maxAgeMs } = this.#options;
    return maxAgeMs === undefined ? undefined : firstIdAt(this.#now() - maxAgeMs);
  }

  async after(
    id: string,
    limit: number = DEFAULT_AFTER_LIMIT,
    room: string = this.defaultRoom,
  ): Promise<ChatMessage[]> {
    checkId(id);
    checkLimit(limit);
    if (limit === 0) return [];
    return await this.#collect(this.#range(room, id), { limit });
  }

  async before(id: string, limit: number, room: string = this.defaultRoom): Promise<ChatMessage[]> {
    checkId(id);
    checkLimit(limit);
    if (limit === 0) return [];
    const newestFirst = await this.#collect(this.#range(room, undefined, id), {
      reverse: true,
      limit,
    });
    return newestFirst.reverse();
  }

  async countAfter(room: string, afterId: string | undefined, cap: number): Promise<number> {
    if (afterId !== undefined) checkId(afterId);
    checkLimit(cap);
    return await whenUnlocked(async () => {
      let count = 0;
      for await (const _ of this.#kv.list(this.#range(room, afterId), { limit: cap })) count++;
      return count;
    });
  }

  async setReadMarker(userId: string, room: string, lastId: string): Promise<void> {
    checkId(lastId);
    const touchedAt = this.#now();
    const marker: ReadMarker = { lastId, touchedAt };
    const expiry = { expireIn: this.#membershipMaxAgeMs };
    await whenUnlocked(() =>
      this.#kv.atomic().set([READS, userId, room], marker, expiry)
        .set([ROOM_READS, room, userId], marker, expiry).commit()
    );
    this.#touches.note(READS, userId, room, touchedAt, true);
    // Reading a room touches it: its membership lives on too.
    await this.#refresh(userId, room, [MEMBERS]);
  }

  async readMarkers(userId: string, rooms: readonly string[]): Promise<(string | undefined)[]> {
    const markers = await this.#getMany<unknown>(rooms.map((room) => [READS, userId, room]));
    return markers.map((marker) => this.#isLive(marker) ? markerId(marker) : undefined);
  }

  async readPositions(room: string, limit: number): Promise<ReadPosition[]> {
    checkLimit(limit);
    if (limit === 0) return [];
    return await whenUnlocked(async () => {
      const positions: ReadPosition[] = [];
      for await (const entry of this.#kv.list<ReadMarker>({ prefix: [ROOM_READS, room] })) {
        if (!this.#isLive(entry.value)) continue;
        positions.push({ user: entry.key[2] as string, lastId: entry.value.lastId });
        if (positions.length === limit) break;
      }
      return positions;
    });
  }

  async countMentions(
    room: string,
    userId: string,
    afterId: string | undefined,
    cap: number,
  ): Promise<number> {
    if (afterId !== undefined) checkId(afterId);
    checkLimit(cap);
    if (cap === 0) return 0;
    const prefix = [MENTIONS, room, userId];
    let start = afterId === undefined ? undefined : afterId + "\u0000";
    const youngest = this.#youngestId();
    if (youngest !== undefined && (start === undefined || youngest > start)) start = youngest;
    const selector = start === undefined ? { prefix } : { prefix, start: [...prefix, start] };
    const entries = await whenUnlocked(() =>
      Array.fromAsync(this.#kv.list(selector, { limit: cap }))
    );
    // A mention whose message was deleted, trimmed or expired is not counted.
    const messages = await this.#getMany<ChatMessage>(
      entries.map((entry) => [MESSAGES, room, entry.key[3] as string]),
    );
    return messages.filter((message) => message !== null && !message.deleted).length;
  }

  async addMembership(userId: string, room: string, by: string = userId): Promise<void> {
    const now = this.#now();
    if (this.#touches.isFresh(MEMBERS, userId, room, now)) return;
    // A user filling others' room lists (DMs to invented or many peers) is held to a rate.
    if (by !== userId && !this.#peerMemberships.take(by).ok) return;
    const membership: Membership = { touchedAt: now };
    await whenUnlocked(() =>
      this.#kv.set([MEMBERS, userId, room], membership, { expireIn: this.#membershipMaxAgeMs })
    );
    this.#touches.note(MEMBERS, userId, room, now, true);
  }

  async touchRoom(userId: string, room: string): Promise<void> {
    await this.#refresh(userId, room, [MEMBERS, READS]);
  }

  async memberships(userId: string, limit: number): Promise<string[]> {
    checkLimit(limit);
    if (limit === 0) return [];
    return await whenUnlocked(async () => {
      const rooms: string[] = [];
      for await (const entry of this.#kv.list({ prefix: [MEMBERS, userId] })) {
        if (!this.#isLive(entry.value)) continue;
        rooms.push(entry.key[2] as string);
        if (rooms.length === limit) break;
      }
      return rooms;
    });
  }

  /**
   * Skips from room to room over the message keys: each step reads the first key past the rooms
   * found so far, so a page of `limit` rooms costs about `limit` one-entry reads, however many
   * messages they hold. All DM rooms are passed over in one step (they sort together).
   */
  async listRooms({ prefix = "", after, limit }: RoomQuery): Promise<string[]> {
    checkLimit(limit);
    const rooms: string[] = [];
    let from = after !== undefined && after >= prefix ? after + "\u0000" : prefix;
    while (rooms.length < limit) {
      const [entry] = await whenUnlocked(() =>
        Array.fromAsync(
          this.#kv.list({ prefix: [MESSAGES], start: [MESSAGES, from] }, { limit: 1 }),
        )
      );
      const room = entry?.key[1];
      if (typeof room !== "string" || !room.startsWith(prefix)) break;
      if (room.startsWith(DM_ROOM_PREFIX)) {
        from = DM_ROOMS_END;
        continue;
      }
      from = room + "\u0000";
      // KV deletes expired messages lazily: a room whose messages all expired is not listed.
      const youngest = this.#youngestId();
      const live = youngest === undefined || String(entry.key[2]) >= youngest ||
        (await this.#collect(this.#range(room), { limit: 1 })).length > 0;
      if (live) rooms.push(room);
    }
    return rooms;
  }

  /**
   * Rewrites `userId`'s existing entries of these kinds in `room` with a fresh touch time and
   * expiry, skipping those this instance wrote within the refresh interval.
   */
  async #refresh(userId: string, room: string, kinds: readonly TouchKind[]): Promise<void> {
    const now = this.#now();
    const stale = this.#touches.stale(kinds, userId, room, now);
    if (stale.length === 0) return;
    const entries = await whenUnlocked(() =>
      this.#kv.getMany<unknown[]>(stale.map((kind) => [kind, userId, room]))
    );
    const live = entries.map((entry) => this.#isLive(entry.value));
    if (live.includes(true)) {
      const atomic = this.#kv.atomic();
      entries.forEach((entry, index) => {
        atomic.check(entry);
        if (!live[index]) return;
        const value = entry.key[0] === READS
          ? { lastId: markerId(entry.value), touchedAt: now } satisfies ReadMarker
          : { touchedAt: now } satisfies Membership;
        atomic.set(entry.key, value, { expireIn: this.#membershipMaxAgeMs });
      });
      // A failed check: one was written meanwhile, freshly; the next touch tries again.
      if (!(await whenUnlocked(() => atomic.commit())).ok) return;
    }
    stale.forEach((kind, index) => this.#touches.note(kind, userId, room, now, live[index]));
  }

  /** Whether a marker or membership is within its age (KV deletes expired entries lazily). */
  #isLive(value: unknown): boolean {
    const touchedAt = touchTime(value);
    // Layout 2 entries have no touch time until the migration stamps them.
    if (touchedAt === undefined) return value !== null && value !== undefined;
    return this.#now() - touchedAt < this.#membershipMaxAgeMs;
  }

  async findMessage(id: string): Promise<ChatMessage | undefined> {
    if (!isMessageId(id)) return undefined;
    // An expired message is gone, whether or not it has been deleted yet.
    const youngest = this.#youngestId();
    if (youngest !== undefined && id < youngest) return undefined;
    const { value: room } = await whenUnlocked(() => this.#kv.get<string>([IDS, id]));
    // Messages stored before the index went into the default room.
    const key = [MESSAGES, room ?? this.defaultRoom, id];
    const { value } = await whenUnlocked(() => this.#kv.get<ChatMessage>(key));
    return value ?? undefined;
  }

  changeMessage(
    id: string,
    change: MessageChange,
    at: Date,
    outbox?: OutboxWriter,
  ): Promise<ChatMessage | undefined> {
    // Changes of one message run one after the other, in the order asked: none races another.
    return this.#changes.run(id, () => this.#change(id, change, at, outbox));
  }

  async #change(
    id: string,
    change: MessageChange,
    at: Date,
    outbox: OutboxWriter | undefined,
  ): Promise<ChatMessage | undefined> {
    if (!isMessageId(id)) return undefined;
    for (let attempt = 1, delay = 2;; attempt++, delay = Math.min(delay * 2, 50)) {
      const { value: room } = await whenUnlocked(() => this.#kv.get<string>([IDS, id]));
      const key = [MESSAGES, room ?? this.defaultRoom, id];
      const entry = await whenUnlocked(() => this.#kv.get<ChatMessage>(key));
      const stored = entry.value;
      if (!stored) return undefined;
      // Deleting twice changes nothing; a deleted message has no text left to edit.
      if (stored.deleted) return "deleted" in change ? stored : undefined;
      const changed: ChatMessage = "deleted" in change
        ? { ...stored, message: "", deleted: true, editedAt: at.toISOString() }
        : { ...stored, message: change.message, editedAt: at.toISOString() };
      // The edit keeps the message's own expiry.
      const { maxAgeMs } = this.#options;
      const expireIn = maxAgeMs === undefined
        ? undefined
        : Math.max(1, timeOfId(id) + maxAgeMs - this.#now());
      const atomic = this.#kv.atomic().check(entry).set(key, changed, expireIn ? { expireIn } : {});
      if (outbox) this.#outbox.addTo(atomic, draftsOf(outbox, changed));
      const result = await whenUnlocked(() => atomic.commit());
      if (result.ok) {
        this.#recent?.replace(changed);
        this.#rooms?.replace(changed);
        return changed;
      }
      // Another instance sharing the store changed it meanwhile: read again, after a jittered wait.
      if (attempt === MAX_CHANGE_ATTEMPTS) {
        throw new Error(`message ${id} kept changing under this edit`);
      }
      await new Promise((resolve) => setTimeout(resolve, delay * (0.5 + Math.random())));
    }
  }

  async react(change: ReactionChange, limits: ReactionLimits): Promise<ReactionOutcome> {
    const { room, id, userId, emoji, on } = change;
    checkId(id);
    const orderKey = [REACTIONS, room, id, EMOJI_ORDER];
    const emojiKey = [REACTIONS, room, id, emoji];
    const mineKey = [REACTED, room, id, userId];
    for (let attempt = 1, delay = 2;; attempt++, delay = Math.min(delay * 2, 50)) {
      const [message, order, entry, mine] = await whenUnlocked(() =>
        this.#kv.getMany<[ChatMessage, string[], ReactionEntry, string[]]>([
          [MESSAGES, room, id],
          orderKey,
          emojiKey,
          mineKey,
        ])
      );
      if (message.value === null) return { status: "not_found", reactions: [] };
      const emojis = order.value ?? [];
      const own = mine.value ?? [];
      const current = () => this.#reactionsOfOne(room, id, limits.listedUsers);
      if (own.includes(emoji) === on) return { status: "unchanged", reactions: await current() };
      // The message too: a reaction never outlives a trim that raced it.
      const atomic = this.#kv.atomic().check(message, order, entry, mine);
      const options = this.#expiryOf(id);
      if (on) {
        if (!emojis.includes(emoji) && emojis.length >= limits.maxEmoji) {
          return { status: "too_many_emoji", reactions: await current() };
        }
        if (own.length >= limits.maxPerUser) {
          return { status: "too_many_reactions", reactions: await current() };
        }
        const stored = entry.value ?? { count: 0, users: [] };
        const users = stored.users.length < limits.listedUsers
          ? [...stored.users, userId]
          : stored.users;
        atomic.set(emojiKey, { count: stored.count + 1, users } satisfies ReactionEntry, options);
        if (!emojis.includes(emoji)) atomic.set(orderKey, [...emojis, emoji], options);
        atomic.set(mineKey, [...own, emoji], options);
      } else {
        const stored = entry.value ?? { count: 1, users: [] };
        const count = stored.count - 1;
        if (count <= 0) {
          atomic.delete(emojiKey);
          const rest = emojis.filter((each) => each !== emoji);
          if (rest.length > 0) atomic.set(orderKey, rest, options);
          else atomic.delete(orderKey);
        } else {
          const users = stored.users.filter((each) => each !== userId);
          if (users.length < Math.min(count, limits.listedUsers)) {
            users.push(...await this.#otherReactors(room, id, emoji, [...users, userId], count));
          }
          const kept = users.slice(0, limits.listedUsers);
          atomic.set(emojiKey, { count, users: kept } satisfies ReactionEntry, options);
        }
        const rest = own.filter((each) => each !== emoji);
        if (rest.length > 0) atomic.set(mineKey, rest, options);
        else atomic.delete(mineKey);
      }
      if ((await whenUnlocked(() => atomic.commit())).ok) {
        return { status: "changed", reactions: await current() };
      }
      // Another reaction to the message was stored meanwhile: read again, after a jittered wait.
      if (attempt === MAX_CHANGE_ATTEMPTS) throw new Error(`reactions of ${id} kept changing`);
      await new Promise((resolve) => setTimeout(resolve, delay * (0.5 + Math.random())));
    }
  }

  /** Users with `emoji` on the message besides `listed`, to fill the listed users' places. */
  async #otherReactors(
    room: string,
    id: string,
    emoji: string,
    listed: string[],
    most: number,
  ): Promise<string[]> {
    const found: string[] = [];
    const skip = new Set(listed);
    const entries = this.#kv.list<string[]>({ prefix: [REACTED, room, id] }, {
      limit: REFILL_SCAN,
    });
    for await (const entry of entries) {
      const user = entry.key[3] as string;
      if (skip.has(user) || !entry.value.includes(emoji)) continue;
      found.push(user);
      if (found.length >= most) break;
    }
    return found;
  }

  async #reactionsOfOne(room: string, id: string, listedUsers: number): Promise<Reaction[]> {
    return (await this.reactionsOf(room, [id], listedUsers)).get(id) ?? [];
  }

  async reactionsOf(
    room: string,
    ids: readonly string[],
    listedUsers: number,
  ): Promise<Map<string, Reaction[]>> {
    const found = new Map<string, Reaction[]>();
    const wanted = this.#unexpired(ids);
    if (wanted.size === 0) return found;
    const sorted = [...wanted].sort();
    // The ids of a page are neighbours in their room: one range read covers them.
    const selector = {
      start: [REACTIONS, room, sorted[0]],
      end: [REACTIONS, room, sorted.at(-1)! + "\u0000"],
    };
    const orders = new Map<string, string[]>();
    const entries = new Map<string, Map<string, ReactionEntry>>();
    await whenUnlocked(async () => {
      for await (const entry of this.#kv.list<unknown>(selector)) {
        const [, , id, emoji] = entry.key as [string, string, string, string];
        if (!wanted.has(id)) continue;
        if (emoji === EMOJI_ORDER) orders.set(id, entry.value as string[]);
        else {
          const ofMessage = entries.get(id) ?? new Map<string, ReactionEntry>();
          ofMessage.set(emoji, entry.value as ReactionEntry);
          entries.set(id, ofMessage);
        }
      }
    });
    for (const [id, order] of orders) {
      const ofMessage = entries.get(id);
      const reactions = order.flatMap((emoji) => {
        const entry = ofMessage?.get(emoji);
        return entry
          ? [{ emoji, count: entry.count, users: entry.users.slice(0, listedUsers) }]
          : [];
      });
      if (reactions.length > 0) found.set(id, reactions);
    }
    return found;
  }

  async threadsOf(room: string, ids: readonly string[]): Promise<Map<string, ThreadSummary>> {
    const found = new Map<string, ThreadSummary>();
    const wanted = this.#unexpired(ids);
    if (wanted.size === 0) return found;
    const sorted = [...wanted].sort();
    const counts = await whenUnlocked(() =>
      Array.fromAsync(this.#kv.list<unknown>({
        start: [THREAD_COUNTS, room, sorted[0]],
        end: [THREAD_COUNTS, room, sorted.at(-1)! + "\u0000"],
      }))
    );
    await Promise.all(counts.map(async ({ key, value }) => {
      const parent = key[2] as string;
      if (!wanted.has(parent)) return;
      const newest = await whenUnlocked(() =>
        Array.fromAsync(
          this.#kv.list<string>({ prefix: [THREADS, room, parent] }, {
            reverse: true,
            limit: THREAD_USERS_SCAN,
          }),
        )
      );
      if (newest.length === 0) return;
      const users = [...new Set(newest.map((entry) => entry.value))].slice(0, THREAD_USERS);
      const lastId = newest[0].key[3] as string;
      found.set(parent, { count: countOf(value), lastId, users });
    }));
    return found;
  }

  async threadReplies(
    room: string,
    parentId: string,
    before: string | undefined,
    limit: number,
  ): Promise<ChatMessage[]> {
    checkId(parentId);
    if (before !== undefined) checkId(before);
    checkLimit(limit);
    if (limit === 0) return [];
    const prefix = [THREADS, room, parentId];
    const selector = before === undefined ? { prefix } : { prefix, end: [...prefix, before] };
    const newestFirst = await whenUnlocked(() =>
      Array.fromAsync(this.#kv.list<string>(selector, { reverse: true, limit }))
    );
    const ids = newestFirst.map((entry) => entry.key[3] as string).reverse();
    const messages = await this.#getMany<ChatMessage>(ids.map((id) => [MESSAGES, room, id]));
    // A reply that expired or was trimmed is gone from its thread too.
    return messages.filter((message) => message !== null);
  }

  /** What derives from message `id` (its reactions, its thread) expires with it. */
  #expiryOf(id: string): { expireIn?: number } {
    const { maxAgeMs } = this.#options;
    if (maxAgeMs === undefined) return {};
    return { expireIn: Math.min(maxAgeMs, Math.max(1, timeOfId(id) + maxAgeMs - this.#now())) };
  }

  /** The ids that are not past `maxAgeMs`: KV deletes expired entries lazily. */
  #unexpired(ids: readonly string[]): Set<string> {
    const youngest = this.#youngestId();
    return new Set(youngest === undefined ? ids : ids.filter((id) => id >= youngest));
  }

  async setBan(userId: string, ban: Ban): Promise<void> {
    const expireIn = ban.until === undefined ? undefined : Math.max(1, ban.until - this.#now());
    await whenUnlocked(() => this.#kv.set([BANS, userId], ban, expireIn ? { expireIn } : {}));
  }

  async getBan(userId: string): Promise<Ban | undefined> {
    const value = await this.#bans.read(userId);
    // KV deletes expired entries lazily: a ban past its end is over.
    if (!value || (value.until !== undefined && value.until <= this.#now())) return undefined;
    return value;
  }

  addPushSubscription(
    userId: string,
    subscription: PushSubscriptionRecord,
    max: number,
  ): Promise<void> {
    return this.#push.add(userId, subscription, max);
  }

  pushSubscriptions(userId: string): Promise<PushSubscriptionRecord[]> {
    return this.#push.list(userId);
  }

  removePushSubscription(userId: string, endpoint: string): Promise<boolean> {
    return this.#push.remove(userId, endpoint);
  }

  async deleteBan(userId: string): Promise<boolean> {
    const existed = (await this.getBan(userId)) !== undefined;
    await whenUnlocked(() => this.#kv.delete([BANS, userId]));
    return existed;
  }

  /**
   * The key range strictly after `afterId` and before `beforeId`. With `maxAgeMs` it also starts
   * at the oldest id still young enough: KV deletes expired entries lazily, reads must not wait.
   */
  #range(room: string, afterId?: string, beforeId?: string): Deno.KvListSelector {
    // "\0" sorts right after an id itself, which makes the start exclusive.
    let start = afterId === undefined ? undefined : afterId + "\u0000";
    const youngest = this.#youngestId();
    if (youngest !== undefined && (start === undefined || youngest > start)) start = youngest;
    const prefix = [MESSAGES, room];
    if (start !== undefined && beforeId !== undefined) {
      // A range whose start is past its end would be refused by KV: make it empty instead.
      const end = start < beforeId ? beforeId : start;
      return { start: [...prefix, start], end: [...prefix, end] };
    }
    if (start !== undefined) return { prefix, start: [...prefix, start] };
    if (beforeId !== undefined) return { prefix, end: [...prefix, beforeId] };
    return { prefix };
  }

  /** The events to send about this history (webhooks, push), kept beside it. */
  get outbox(): OutboxStore {
    return this.#outbox;
  }

  async ping(): Promise<void> {
    await whenUnlocked(() => this.#kv.get([MESSAGES]));
  }

  close(): void {
    this.#kv.close();
  }

  /** As {@link close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  async #collect(
    selector: Deno.KvListSelector,
    options: Deno.KvListOptions,
  ): Promise<ChatMessage[]> {
    return await whenUnlocked(async () => {
      const messages: ChatMessage[] = [];
      for await (const entry of this.#kv.list<ChatMessage>(selector, options)) {
        messages.push(entry.value);
      }
      return messages;
    });
  }
}

/** When a marker or membership was last touched; undefined for a layout 2 entry. */
function touchTime(value: unknown): number | undefined {
  return typeof value === "object" && value !== null && "touchedAt" in value
    ? Number(value.touchedAt)
    : undefined;
}

/** The message id of a read marker, in either layout. */
function markerId(value: unknown): string {
  return typeof value === "string" ? value : (value as ReadMarker).lastId;
}

/**
 * Splits a batch into chunks that each fit one KV atomic commit, with the outbox entries the writer
 * may give each message: copies of it, and references to it (a few ids each).
 */
function commitChunks(
  inputs: readonly NewMessage[],
  outbox: OutboxWriter | undefined,
): NewMessage[][] {
  const chunks: NewMessage[][] = [];
  let chunk: NewMessage[] = [];
  let checks = 0;
  let bytes = 0;
  let mutations = 0;
  // One mutation of a commit with outbox entries is the outbox's depth counter.
  const maxMutations = outbox === undefined ? MAX_MUTATIONS : MAX_MUTATIONS - 1;
  for (const input of inputs) {
    const draftsPerMessage = outbox?.maxDraftsFor(input) ?? 0;
    const copies = Math.min(outbox?.maxCopiesFor?.(input) ?? draftsPerMessage, draftsPerMessage);
    const mentioned = input.mentions?.reduce((sum, userId) => sum + userId.length, 0) ?? 0;
    const quote = input.replyTo
      ? input.replyTo.preview.length + input.replyTo.user.name.length + input.replyTo.user.id.length
      : 0;
    const text = input.message.length + input.user.name.length + (input.room?.length ?? 0) + quote +
      mentioned;
    // An outbox entry holds its message as JSON, where a control character takes 6 bytes.
    const size = text * 3 + mentioned * 3 + (input.mentions?.length ?? 0) * 128 + 512 +
      copies * (text * 6 + 1024) + (draftsPerMessage - copies) * REFERENCE_DRAFT_BYTES;
    // A clientId's entry, a reply's thread counter.
    const check = (input.clientId === undefined ? 0 : 1) + (input.replyTo ? 1 : 0);
    // The message, its id, its thread entries, its dedupe entry, its mentions, its outbox entries.
    const mutation = 2 + (input.replyTo ? 2 : 0) + check + (input.mentions?.length ?? 0) +
      draftsPerMessage;
    const full = chunk.length === MAX_BATCH_MESSAGES || checks + check > MAX_BATCH_CHECKS ||
      bytes + size > MAX_BATCH_BYTES || mutations + mutation > maxMutations;
    if (full && chunk.length > 0) {
      chunks.push(chunk);
      chunk = [];
      checks = 0;
      bytes = 0;
      mutations = 0;
    }
    chunk.push(input);
    checks += check;
    bytes += size;
    mutations += mutation;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/**
 * Another writer stored one of the batch's clientIds, or a reply to one of its replies' parents,
 * between our read and our commit.
 */
class CommitConflict extends Error {}

/** A thread counter a commit rewrites: its parent, the replies it gains, the entry as read. */
interface ThreadCountChange {
  key: Deno.KvKey;
  parent: string;
  added: number;
  stored: Deno.KvEntryMaybe<unknown>;
}

/** A thread counter's count: a number, or a `Deno.KvU64` written by a sum before. */
function countOf(value: unknown): number {
  if (value instanceof Deno.KvU64) return Number(value.value);
  return typeof value === "number" ? value : 0;
}

/** Whether `path` names a KV file (not `:memory:`, not a KV Connect URL). */
export function isKvFile(path: string): boolean {
  return path !== MEMORY_PATH && !/^https?:\/\//.test(path);
}

/** Opens the KV database at `path`, creating its directory if missing. */
export async function openKv(path: string): Promise<Deno.Kv> {
  // A KV Connect URL (several instances sharing one remote store) has no directory to create.
  if (isKvFile(path)) await Deno.mkdir(dirname(path), { recursive: true });
  return await Deno.openKv(path);
}

/**
 * Opens the KV database at `path` (creating its directory if missing) and wraps it in a store.
 * `:memory:` gives a store that keeps nothing after close.
 */
export async function openKvStore(
  path: string,
  options: KvStoreOptions = {},
): Promise<KvMessageStore> {
  const store = new KvMessageStore(await openKv(path), options);
  await store.warm();
  return store;
}

/** The writer's drafts for `message`, held to the bound the commit was sized by. */
function draftsOf(outbox: OutboxWriter, message: ChatMessage): OutboxDraft[] {
  const drafts = outbox.draftsFor(message);
  const most = outbox.maxDraftsFor(message);
  if (drafts.length > most) {
    throw new RangeError(`${drafts.length} outbox drafts for one message, over ${most}`);
  }
  return drafts;
}
