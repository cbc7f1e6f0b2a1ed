/**
 * Trimming a Deno KV room to its newest `maxCount` messages, with everything derived from the
 * messages it deletes: their id index entries, mentions, thread entries and counters, reactions.
 * @module
 */
import type { ChatMessage } from "../types.ts";
import { IDS, KEYED_BY_MESSAGE, MENTIONS, MESSAGES, THREADS } from "./kv_keys.ts";
import { whenUnlocked } from "./kv_unlocked.ts";
import { mentionedOthers } from "./rules.ts";

/** Most deletions in one commit: under KV's 1000 mutations, and its ~800 KB at 2 KB a key. */
const DELETES_PER_COMMIT = 350;

/**
 * Deletes `room`'s messages older than its newest `maxCount`, then what is keyed by their ids. A
 * message goes in one commit with its id, mention and reply entries, and before its reactions and
 * thread: a reader may find those of a message already gone (and ignores them), never a message
 * without them. The ranges also take what a reaction or reply racing an earlier trim left.
 */
export async function trimRoom(kv: Deno.Kv, room: string, maxCount: number): Promise<void> {
  const boundary = await oldestTrimmed(kv, room, maxCount);
  if (boundary === undefined) return;
  const through = boundary + "\u0000";
  const deletes = new DeleteBatches(kv);
  const trimmed = kv.list<ChatMessage>({
    prefix: [MESSAGES, room],
    end: [MESSAGES, room, through],
  });
  for await (const { key, value } of trimmed) await deletes.add([key, ...derivedKeys(room, value)]);
  for (const space of KEYED_BY_MESSAGE) {
    for await (const { key } of kv.list({ prefix: [space, room], end: [space, room, through] })) {
      await deletes.add([key]);
    }
  }
  await deletes.flush();
}

/** The id of the newest message past `maxCount`, when the room holds more. */
async function oldestTrimmed(
  kv: Deno.Kv,
  room: string,
  maxCount: number,
): Promise<string | undefined> {
  const newestFirst = kv.list({ prefix: [MESSAGES, room] }, { reverse: true, limit: maxCount + 1 });
  let kept = 0;
  for await (const entry of newestFirst) {
    if (++kept > maxCount) return entry.key[2] as string;
  }
  return undefined;
}

/** The keys a message's own commit wrote beside it, bar those keyed by its id first. */
function derivedKeys(room: string, message: ChatMessage): Deno.KvKey[] {
  const { id } = message;
  const keys: Deno.KvKey[] = [[IDS, id]];
  for (const userId of mentionedOthers(message)) keys.push([MENTIONS, room, userId, id]);
  if (message.replyTo) keys.push([THREADS, room, message.replyTo.id, id]);
  return keys;
}

/** Deletions gathered into commits; the keys of one `add` share a commit. */
class DeleteBatches {
  readonly #kv: Deno.Kv;
  #keys: Deno.KvKey[] = [];

  constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  async add(keys: readonly Deno.KvKey[]): Promise<void> {
    if (this.#keys.length + keys.length > DELETES_PER_COMMIT) await this.flush();
    this.#keys.push(...keys);
  }

  async flush(): Promise<void> {
    if (this.#keys.length === 0) return;
    const atomic = this.#kv.atomic();
    for (const key of this.#keys.splice(0)) atomic.delete(key);
    await whenUnlocked(() => atomic.commit());
  }
}
