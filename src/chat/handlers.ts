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
import type { Identity } from "../auth.ts";
import { CodedError } from "../errors.ts";
import { readHistoryQuery, readMessage, readRefresh, readTyping } from "../payloads.ts";
import type { Timeline } from "../timeline.ts";
import type { HistoryAck, MessageAck, RefreshAck } from "./types.ts";

/** Everything a handler may use: one per connection. */
export interface ChatContext {
  /** The connection's identity; `auth:refresh` replaces it. */
  identity: Identity;
  readonly timeline: Timeline;
  /** Longest accepted message in characters (code points), after trimming. */
  readonly maxMessageLength: number;
  /** Whether an identity may send (messages and typing); everyone may read. */
  readonly canWrite: (identity: Identity) => boolean;
  readonly verifyToken: (token: string) => Promise<Identity>;
  /** Tells the others that this user started or stopped typing (volatile: never stored). */
  readonly sendTyping: (typing: boolean) => void;
  /** Called when `auth:refresh` replaced the identity (the expiry moves). */
  readonly onIdentityChanged?: (identity: Identity) => void;
  readonly now: () => number;
  /** The last typing state forwarded, per connection. */
  typingState?: { typing: boolean; at: number };
}

/** A user's typing state is forwarded at most this often unless it changes. */
export const TYPING_THROTTLE_MS = 1000;

type Success<T> = Extract<T, { ok: true }>;

function requireWrite(ctx: ChatContext): void {
  if (!ctx.canWrite(ctx.identity)) {
    throw new CodedError("forbidden", "this token may read but not write");
  }
}

/** `message {message, clientId?}`: stores the message, then it is broadcast; acks the stored one. */
export async function onMessage(ctx: ChatContext, payload: unknown): Promise<Success<MessageAck>> {
  const input = readMessage(payload, ctx.maxMessageLength);
  requireWrite(ctx);
  let result;
  try {
    result = await ctx.timeline.publish({
      user: ctx.identity.user,
      message: input.text,
      clientId: input.clientId,
    });
  } catch (error) {
    throw new CodedError("internal", "the message could not be stored", {}, { cause: error });
  }
  return { ok: true, message: result.message, duplicate: !result.created };
}

/** `history {before?, limit?}`: a page of older messages. */
export async function onHistory(ctx: ChatContext, payload: unknown): Promise<Success<HistoryAck>> {
  const query = readHistoryQuery(payload);
  try {
    const [messages, { hasMore }] = await ctx.timeline.page(query.before, query.limit);
    return { ok: true, messages, hasMore };
  } catch (error) {
    throw new CodedError("internal", "history could not be read", {}, { cause: error });
  }
}

/** `typing {typing}`: forwarded to the others; a repeat of the same state within a second is not. */
export function onTyping(ctx: ChatContext, payload: unknown): void {
  const typing = readTyping(payload);
  requireWrite(ctx);
  const now = ctx.now();
  const last = ctx.typingState;
  if (last?.typing === typing && now - last.at < TYPING_THROTTLE_MS) return;
  ctx.typingState = { typing, at: now };
  ctx.sendTyping(typing);
}

/** `auth:refresh {token}`: a newer token for the same user replaces the connection's. */
export async function onRefresh(ctx: ChatContext, payload: unknown): Promise<Success<RefreshAck>> {
  const identity = await ctx.verifyToken(readRefresh(payload));
  const user = ctx.identity.user;
  if (identity.user.id !== user.id) {
    throw new CodedError("forbidden", "the new token is for another user");
  }
  // The display name stays the one the connection was announced with.
  ctx.identity = { ...identity, user };
  ctx.onIdentityChanged?.(ctx.identity);
  return { ok: true, expiresAt: identity.expiresAt ?? null };
}
