/**
 * The chat rules as plain functions over one {@link ChatContext}: each handler reads its payload,
 * applies the rules and returns the ack's success body, or throws a `CodedError`. They know
 * nothing of socket.io; `events.ts` binds them to a socket.
 *
 * @example
 * ```ts
 * import { onMessage } from "./handlers.ts";
 * import type { ChatContext } from "./handlers.ts";
 *
 * declare const ctx: ChatContext; // built per connection by the chat
 * const ack = await onMessage(ctx, { message: "hi" }); // { ok: true, message, duplicate: false }
 * ```
 * @module
 */
import type { Identity } from "../auth/token.ts";
import { CodedError } from "../errors.ts";
import {
  readHistoryQuery,
  readMessage,
  readReaction,
  readRefresh,
  readThreadQuery,
  readTyping,
} from "./payloads.ts";
import { isMessageId, type MessageStore } from "../store/mod.ts";
import type { Timeline } from "./timeline.ts";
import { dmUsers, isRoomId, readRoom, type RoomPolicy, tooManyRooms } from "./rooms.ts";
import type { ChatMessage, User } from "../types.ts";
import type { ChatService, Principal } from "./service.ts";
import type {
  BrowseAck,
  ChangeAck,
  HistoryAck,
  JoinAck,
  MessageAck,
  OkAck,
  ReactAck,
  ReadPosition,
  RefreshAck,
  RoomsAck,
  RoomSummary,
  ThreadAck,
} from "./contract.ts";

/** A room's history as a joining connection gets it. */
export interface Subscription {
  messages: ChatMessage[];
  hasMore: boolean;
}

/** Everything a handler may use: one per connection. */
export interface ChatContext {
  /** The connection's identity; `auth:refresh` replaces it. */
  identity: Identity;
  readonly timeline: Timeline;
  /** Read markers, memberships and unread counts. */
  readonly store: Pick<
    MessageStore,
    | "latest"
    | "countAfter"
    | "countMentions"
    | "readMarkers"
    | "memberships"
    | "listRooms"
    | "addPushSubscription"
    | "removePushSubscription"
  >;
  /** Whether Web Push is on (`VAPID_*` set): else `push:*` events are refused. */
  readonly pushEnabled: boolean;
  /** The chat's rules shared with the server API: publish, change, room checks. */
  readonly service: ChatService;
  /** Who may use which room. */
  readonly policy: RoomPolicy;
  /** The room of events that name none. */
  readonly defaultRoom: string;
  /** Most rooms one connection may be in at once. */
  readonly maxRoomsPerSocket: number;
  /** Longest accepted message in characters (code points), after trimming. */
  readonly maxMessageLength: number;
  readonly verifyToken: (token: string) => Promise<Identity>;
  /** The rooms this connection is in. */
  readonly joined: () => ReadonlySet<string>;
  /**
   * Puts the connection in `room` and resolves with its latest history, at a point where no
   * delivery is under way: whatever is stored after that history reaches the connection live.
   */
  readonly subscribe: (room: string) => Promise<Subscription>;
  /** Takes the connection out of `room`. */
  readonly unsubscribe: (room: string) => void;
  /** The users with a connection in `room` now, on every instance (at most `maxListedUsers`). */
  readonly membersOf: (room: string) => Promise<User[]>;
  /** Most users a join's `online` lists. */
  readonly maxListedUsers: number;
  /** Tells the others in `room` that this user started or stopped typing (volatile). */
  readonly sendTyping: (room: string, typing: boolean) => void;
  /** Called when `auth:refresh` replaced the identity (the expiry moves). */
  readonly onIdentityChanged?: (identity: Identity) => void;
  readonly now: () => number;
  /** The last typing state forwarded, per room. */
  typingState?: Map<string, { typing: boolean; at: number }>;
}

/** A user's typing state is forwarded at most this often unless it changes. */
export const TYPING_THROTTLE_MS = 1000;
/** Most rooms the `rooms` event lists. */
export const MAX_LISTED_ROOMS = 100;
/** Unread counts stop at this (clients show "99+"). */
export const UNREAD_CAP = 100;
/** Most rooms one `rooms:browse` page lists. */
export const BROWSE_PAGE = 50;
/** Most `prefix-*` patterns one `rooms:browse` looks under (public ones first, then the token's). */
export const MAX_BROWSED_PATTERNS = 10;
const ROOM_PREFIX = /^[a-z0-9_.-]{0,64}$/;

export type Success<T> = Extract<T, { ok: true }>;

/** The `room` field of an object payload (the payload readers already checked it is one). */
function roomOf(ctx: ChatContext, payload: unknown, required = false): string {
  const field = typeof payload === "object" && payload !== null
    ? (payload as { room?: unknown }).room
    : undefined;
  const room = readRoom(field, required ? undefined : ctx.defaultRoom);
  ctx.service.checkRoom(room, principal(ctx));
  return room;
}

/** The connection's user, as the service's rules see them. */
function principal(ctx: ChatContext): Principal & { kind: "user" } {
  return { kind: "user", identity: ctx.identity };
}

/** `message {room?, message, clientId?, replyTo?, mentions?}`: stores the message, then it is broadcast; acks it. */
export async function onMessage(ctx: ChatContext, payload: unknown): Promise<Success<MessageAck>> {
  // Delivery latency is measured from here.
  const receivedAt = performance.now();
  const input = readMessage(payload, ctx.maxMessageLength);
  const room = roomOf(ctx, payload);
  const publication = {
    room,
    message: input.text,
    clientId: input.clientId,
    ...(input.replyTo === undefined ? {} : { replyTo: input.replyTo }),
    ...(input.mentions === undefined ? {} : { mentions: input.mentions }),
  };
  const result = await ctx.service.publish(publication, principal(ctx), receivedAt);
  return { ok: true, message: result.message, duplicate: !result.created };
}

/** `history {room?, before?, limit?}`: a page of older messages. */
export async function onHistory(ctx: ChatContext, payload: unknown): Promise<Success<HistoryAck>> {
  const query = readHistoryQuery(payload);
  const room = roomOf(ctx, payload);
  try {
    const [messages, { hasMore }] = await ctx.timeline.page(query.before, query.limit, room);
    return { ok: true, messages, hasMore };
  } catch (error) {
    throw new CodedError("internal", "history could not be read", {}, { cause: error });
  }
}

/** `thread {room?, id, before?, limit?}`: a page of a message's replies, oldest first. */
export async function onThread(ctx: ChatContext, payload: unknown): Promise<Success<ThreadAck>> {
  const { id, before, limit } = readThreadQuery(payload);
  const room = roomOf(ctx, payload);
  const page = await ctx.service.thread(room, id, { before, limit }, principal(ctx));
  return { ok: true, room, id, ...page };
}

/** `typing {room?, typing}`: forwarded to the room; a repeat within a second is not. */
export function onTyping(ctx: ChatContext, payload: unknown): void {
  const typing = readTyping(payload);
  const room = roomOf(ctx, payload);
  ctx.service.requireWrite(ctx.identity);
  const now = ctx.now();
  ctx.typingState ??= new Map();
  const last = ctx.typingState.get(room);
  if (last?.typing === typing && now - last.at < TYPING_THROTTLE_MS) return;
  // One entry per joined room at most: forget rooms left meanwhile.
  if (ctx.typingState.size >= ctx.maxRoomsPerSocket) ctx.typingState.clear();
  ctx.typingState.set(room, { typing, at: now });
  ctx.sendTyping(room, typing);
}

/** `join {room}`: the connection enters the room and gets its latest history in the ack. */
export async function onJoin(ctx: ChatContext, payload: unknown): Promise<Success<JoinAck>> {
  const room = roomOf(ctx, objectPayload(payload, '{ room: "general" }'), true);
  const joined = ctx.joined();
  if (!joined.has(room) && joined.size >= ctx.maxRoomsPerSocket) {
    throw tooManyRooms(ctx.maxRoomsPerSocket);
  }
  let subscription: Subscription;
  let online: User[];
  let reads: ReadPosition[];
  try {
    // Asked before joining: once joined, nothing may be awaited before the ack goes out.
    [online, reads] = await Promise.all([
      ctx.membersOf(room),
      ctx.service.readPositions(room, ctx.maxListedUsers, principal(ctx)),
    ]);
    subscription = await ctx.subscribe(room);
  } catch (error) {
    if (error instanceof CodedError) throw error;
    throw new CodedError("internal", "history could not be read", {}, { cause: error });
  }
  // Nothing awaited between the history and this ack: no live message can come before it.
  ctx.service.touchRoom(ctx.identity.user.id, room, true);
  const user = ctx.identity.user;
  // The joiner is always listed, last, within the bound.
  if (!online.some((member) => member.id === user.id)) {
    online = [...online.slice(0, ctx.maxListedUsers - 1), user];
  }
  return {
    ok: true,
    room,
    messages: subscription.messages,
    hasMore: subscription.hasMore,
    online,
    reads,
  };
}

/** `leave {room}`: the connection stops receiving the room. */
export function onLeave(ctx: ChatContext, payload: unknown): Success<OkAck> {
  const field = (objectPayload(payload, '{ room: "general" }') as { room?: unknown }).room;
  ctx.unsubscribe(readRoom(field));
  return { ok: true };
}

/** `read {room, lastId}`: stores the user's read marker; the room hears of it (receipts). */
export async function onRead(ctx: ChatContext, payload: unknown): Promise<Success<OkAck>> {
  const fields = objectPayload(payload, '{ room: "general", lastId: "<message id>" }');
  const room = roomOf(ctx, fields, true);
  if (!isMessageId(fields.lastId)) {
    throw new CodedError("invalid_payload", "`lastId` must be a message id");
  }
  await ctx.service.markRead(room, fields.lastId, principal(ctx));
  return { ok: true };
}

/**
 * `rooms`: the rooms this user may see — the named public rooms, those named in the token, and
 * those they joined or have a DM in — with unread counts, unread mentions and the last message,
 * latest first.
 */
export async function onRooms(ctx: ChatContext): Promise<Success<RoomsAck>> {
  const { identity, store } = ctx;
  const userId = identity.user.id;
  try {
    const candidates = new Set([
      ...ctx.policy.namedRooms(identity),
      ...await store.memberships(userId, MAX_LISTED_ROOMS * 2),
    ]);
    const rooms = [...candidates].filter((room) => ctx.policy.canJoin(identity, room))
      .slice(0, MAX_LISTED_ROOMS);
    const markers = await store.readMarkers(userId, rooms);
    const summaries = await Promise.all(rooms.map(async (room, index): Promise<RoomSummary> => {
      const [[lastMessage], unread, mentions] = await Promise.all([
        store.latest(1, undefined, room),
        store.countAfter(room, markers[index], UNREAD_CAP),
        store.countMentions(room, userId, markers[index], UNREAD_CAP),
      ]);
      return lastMessage ? { room, unread, mentions, lastMessage } : { room, unread, mentions };
    }));
    summaries.sort((a, b) => (b.lastMessage?.id ?? "").localeCompare(a.lastMessage?.id ?? ""));
    return { ok: true, rooms: summaries };
  } catch (error) {
    throw new CodedError("internal", "the room list could not be read", {}, { cause: error });
  }
}

/**
 * `rooms:browse {prefix?, after?}`: a page of the rooms this user may join — the named public and
 * claimed rooms, and the rooms holding messages under a public or claimed `prefix-*` pattern —
 * in name order. Never a DM: those are listed by `rooms`, to their two users only.
 */
export async function onBrowseRooms(
  ctx: ChatContext,
  payload: unknown,
): Promise<Success<BrowseAck>> {
  const fields = objectPayload(payload ?? {}, '{ prefix: "team-", after: "<room>" }');
  const { prefix = "", after } = fields;
  if (typeof prefix !== "string" || !ROOM_PREFIX.test(prefix)) {
    throw new CodedError("invalid_payload", "`prefix` must be up to 64 of a-z 0-9 _ - .");
  }
  if (after !== undefined && !(typeof after === "string" && isRoomId(after))) {
    throw new CodedError("invalid_payload", "`after` must be a room id (a page's `next`)");
  }
  const { identity, policy } = ctx;
  const allowed = [...new Set([...policy.publicRooms, ...identity.rooms])]
    .filter((pattern) => !pattern.startsWith("dm:"));
  const found = new Set<string>();
  const wanted = (room: string) =>
    room.startsWith(prefix) && (after === undefined || room > after) && !dmUsers(room) &&
    policy.canJoin(identity, room);
  for (const room of policy.namedRooms(identity)) if (wanted(room)) found.add(room);
  const prefixes = allowed.filter((pattern) => pattern.endsWith("*"))
    .map((pattern) => pattern.slice(0, -1))
    // Only where the pattern and the asked prefix overlap; the narrower of the two is read.
    .map((own) => own.startsWith(prefix) ? own : prefix.startsWith(own) ? prefix : undefined)
    .filter((narrowed) => narrowed !== undefined);
  try {
    for (const narrowed of [...new Set(prefixes)].slice(0, MAX_BROWSED_PATTERNS)) {
      const rooms = await ctx.store.listRooms({ prefix: narrowed, after, limit: BROWSE_PAGE + 1 });
      for (const room of rooms) if (wanted(room)) found.add(room);
    }
  } catch (error) {
    throw new CodedError("internal", "the rooms could not be read", {}, { cause: error });
  }
  const sorted = [...found].sort();
  const page = sorted.slice(0, BROWSE_PAGE);
  const next = sorted.length > BROWSE_PAGE ? page.at(-1) : undefined;
  return {
    ok: true,
    rooms: page.map((room) => ({ room })),
    ...next === undefined ? {} : { next },
    patterns: allowed,
  };
}

/** `message:edit {id, message}`: new text for a message, announced as `message:updated`. */
export async function onEdit(ctx: ChatContext, payload: unknown): Promise<Success<ChangeAck>> {
  const fields = objectPayload(payload, '{ id: "<message id>", message }');
  const id = readMessageId(fields.id);
  const text = readMessage({ message: fields.message }, ctx.maxMessageLength).text;
  return { ok: true, message: await ctx.service.change(id, { message: text }, principal(ctx)) };
}

/** `message:delete {id}`: the message becomes a tombstone, announced as `message:deleted`. */
export async function onDelete(ctx: ChatContext, payload: unknown): Promise<Success<ChangeAck>> {
  const id = readMessageId(objectPayload(payload, '{ id: "<message id>" }').id);
  return { ok: true, message: await ctx.service.change(id, { deleted: true }, principal(ctx)) };
}

/** `react {room?, id, emoji, on?}`: adds (or with `on: false` takes back) the user's reaction. */
export async function onReact(ctx: ChatContext, payload: unknown): Promise<Success<ReactAck>> {
  const { id, emoji, on } = readReaction(payload);
  const room = roomOf(ctx, payload);
  const reactions = await ctx.service.react({ room, id, emoji, on }, {
    kind: "user",
    identity: ctx.identity,
  });
  return { ok: true, room, id, reactions };
}

function readMessageId(value: unknown): string {
  if (!isMessageId(value)) throw new CodedError("invalid_payload", "`id` must be a message id");
  return value;
}

/**
 * `auth:refresh {token}`: a newer token for the same user replaces the connection's, and the
 * rooms it no longer opens are left.
 */
export async function onRefresh(ctx: ChatContext, payload: unknown): Promise<Success<RefreshAck>> {
  const identity = await ctx.verifyToken(readRefresh(payload));
  const user = ctx.identity.user;
  if (identity.user.id !== user.id) {
    throw new CodedError("forbidden", "the new token is for another user");
  }
  // The display name stays the one the connection was announced with.
  ctx.identity = { ...identity, user };
  // A room the new token no longer opens is left: none of it may reach this connection now.
  const left = [...ctx.joined()].filter((room) =>
    room !== ctx.defaultRoom && !ctx.policy.canJoin(ctx.identity, room)
  );
  for (const room of left) ctx.unsubscribe(room);
  ctx.onIdentityChanged?.(ctx.identity);
  return { ok: true, expiresAt: identity.expiresAt ?? null, left };
}

/** Only a plain object will do. */
function objectPayload(payload: unknown, example: string): Record<string, unknown> {
  const prototype = typeof payload === "object" && payload !== null
    ? Object.getPrototypeOf(payload)
    : undefined;
  if (prototype !== Object.prototype && prototype !== null) {
    throw new CodedError("invalid_payload", `expected an object like ${example}`);
  }
  return payload as Record<string, unknown>;
}
