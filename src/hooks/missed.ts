/**
 * `message.missed`: a DM or a mention to a user, left unread while they had no connection
 * anywhere. Each such message leaves a candidate in the outbox, in the commit that stores it, due
 * `missedAfterMs` later, on the user's own stream. A candidate names its message (room and id),
 * never copies it: a commit of a long message mentioning many users stays small, and what is sent
 * is the message as it is when due. When the user's oldest candidate is due, the sender hands over
 * all of theirs at once (up to its per-stream count), DMs and mentions alike: if the user is
 * connected somewhere nothing is sent; else one `message.missed` with those they have not read and
 * may still read (not banned, the room still open to them), each read from the store as it is now
 * (edited: its new text; deleted, or gone with retention: left out), and a push job with Web Push,
 * enqueued in the commit that deletes the candidates. A burst is one event while it fits a KV value
 * (`MAX_EVENT_BYTES`): the messages past it are left as candidates, still due, for the next event
 * (a lone message over it has its text cut). A restart loses no candidate, and none goes twice.
 *
 * @example
 * A sketch: `store`, `targets` and the presence check come from the app.
 * ```ts ignore
 * const missed = new MissedMessages({ targets, push, missedAfterMs: 30_000, store, isConnected, mayRead, now });
 * const drafts = missed.candidates(message, ["bob"]); // in the commit that stores `message`
 * const outcome = await missed.settle(entries); // the sender's `deferred`
 * ```
 * @module
 */
import type { MessageStore, OutboxDraft, OutboxEntry } from "../store/mod.ts";
import type { ChatMessage } from "../types.ts";
import {
  cutToFit,
  eventBody,
  eventDrafts,
  type EventMessage,
  MAX_EVENT_BYTES,
  newEventId,
  storedBytes,
} from "./events.ts";
import { pushDraft } from "./push.ts";
import type { DeferredOutcome } from "./sender.ts";

/** The stream of a user's candidates (target `""`). */
const STREAM_PREFIX = "missed:";

/** What a candidate remembers: whom it is for, and the message by its room and id. */
interface Candidate {
  user: string;
  room: string;
  id: string;
}

/** A candidate as earlier versions wrote it, with a copy of the message: only its id is used. */
interface CopyCandidate {
  user: string;
  message: ChatMessage;
}

/** A stored candidate's body, in either form. */
function candidateOf(body: string): Candidate {
  const stored = JSON.parse(body) as Candidate | CopyCandidate;
  if (!("message" in stored)) return stored;
  return { user: stored.user, room: stored.message.room, id: stored.message.id };
}

/** Options of {@link MissedMessages}. */
export interface MissedOptions {
  /** The webhook URLs the event goes to (none: no `message.missed` webhook). */
  targets: readonly string[];
  /** Whether a missed message is also pushed to the user's browsers (Web Push). */
  push: boolean;
  /** How long a message may stay unread before it is missed (ms). */
  missedAfterMs: number;
  store: Pick<MessageStore, "readMarkers" | "findMessage">;
  /** Whether the user has a connection on any instance. */
  isConnected: (userId: string) => Promise<boolean>;
  /** Whether the user may read `room` now: nobody is told about a room they may not read. */
  mayRead: (userId: string, room: string) => Promise<boolean>;
  now: () => number;
}

/** Candidates for `message.missed`, and what becomes of them when due. */
export class MissedMessages {
  constructor(private readonly options: MissedOptions) {}

  /** A candidate per recipient of `message`, due once it may count as missed. */
  candidates(message: ChatMessage, recipients: readonly string[]): OutboxDraft[] {
    const notBefore = Date.parse(message.createdAt) + this.options.missedAfterMs;
    const { room, id } = message;
    return recipients.map((user) => ({
      id: newEventId(),
      target: "",
      stream: STREAM_PREFIX + user,
      body: JSON.stringify({ user, room, id } satisfies Candidate),
      notBefore,
    }));
  }

  /**
   * One user's due candidates: a `message.missed` with those they have not read in rooms they may
   * still read, as stored now, unless they are online. The event takes them oldest first while it
   * fits {@link MAX_EVENT_BYTES}; the candidates past it stay for the next batch, in order.
   */
  async settle(entries: OutboxEntry[]): Promise<DeferredOutcome> {
    const done = (settled: OutboxEntry[]) =>
      settled.map(({ key }) => ({ key, outcome: "done" as const }));
    const candidates = entries.map((entry) => candidateOf(entry.body));
    const user = candidates[0].user;
    if (await this.options.isConnected(user)) return { settlements: done(entries), then: [] };
    const unread = await this.#current(await this.#unread(user, candidates));
    if (unread.length === 0) return { settlements: done(entries), then: [] };
    const at = this.options.now();
    const batch = missedBatch(user, unread.map(({ message }) => message), at);
    // Up to the last message in the event, every candidate is settled (sent, read or gone).
    const settledUpTo = batch.length === unread.length
      ? entries.length
      : candidates.indexOf(unread[batch.length].candidate);
    const settlements = [
      ...done(entries.slice(0, settledUpTo)),
      ...entries.slice(settledUpTo).map(({ key }) => ({ key, outcome: "release" as const })),
    ];
    const data = { user: { id: user }, messages: batch };
    const then = eventDrafts(this.options.targets, "message.missed", data, `user:${user}`, at);
    if (this.options.push) then.push(pushDraft(user, batch));
    return { settlements, then };
  }

  /** The candidates in rooms `user` may still read, past their read marker there. */
  async #unread(user: string, candidates: Candidate[]): Promise<Candidate[]> {
    const readable = [];
    for (const room of new Set(candidates.map(({ room }) => room))) {
      if (await this.options.mayRead(user, room)) readable.push(room);
    }
    if (readable.length === 0) return [];
    const markers = await this.options.store.readMarkers(user, readable);
    const readUpTo = new Map(readable.map((room, index) => [room, markers[index]]));
    // A room they may not read (banned meanwhile, or no longer public) is not in `readUpTo`.
    return candidates.filter(({ room, id }) => {
      if (!readUpTo.has(room)) return false;
      const marker = readUpTo.get(room);
      return marker === undefined || marker < id;
    });
  }

  /** The candidates' messages as stored now: a deleted one, or one gone (retention), left out. */
  async #current(
    candidates: Candidate[],
  ): Promise<{ candidate: Candidate; message: ChatMessage }[]> {
    const found = await Promise.all(
      candidates.map(({ id }) => this.options.store.findMessage(id)),
    );
    return candidates.flatMap((candidate, index) => {
      const message = found[index];
      if (message === undefined || message.deleted || message.room !== candidate.room) return [];
      return [{ candidate, message }];
    });
  }
}

/**
 * The oldest of `messages` (at least one) whose `message.missed` body fits
 * {@link MAX_EVENT_BYTES}; a first message over it alone has its text cut to fit.
 */
function missedBatch(user: string, messages: ChatMessage[], at: number): EventMessage[] {
  const empty = storedBytes(eventBody("message.missed", { user: { id: user }, messages: [] }, at));
  const [first, ...rest] = messages;
  const head = cutToFit(
    first,
    (message) => empty + storedBytes(JSON.stringify(message)) <= MAX_EVENT_BYTES,
  );
  const batch: EventMessage[] = [head];
  let bytes = empty + storedBytes(JSON.stringify(head));
  for (const message of rest) {
    // One more message: its JSON and a comma.
    bytes += storedBytes(JSON.stringify(message) + ",");
    if (bytes > MAX_EVENT_BYTES) break;
    batch.push(message);
  }
  return batch;
}
