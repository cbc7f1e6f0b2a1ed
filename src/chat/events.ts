/**
 * The one place client events meet the chat handlers: each event is checked against its owner's
 * budget, its arguments split into payload and ack, and its outcome turned into the ack and, on
 * failure, the `error` event. The events, their handlers and budgets come from the table in
 * `client_events.ts`.
 * @module
 */
import { toWireError, type WireError } from "../errors.ts";
import type { Logger } from "../ops/log.ts";
import { checkEventArguments } from "./payloads.ts";
import { RateLimiter } from "../rate_limit.ts";
import { CLIENT_EVENTS, type ClientEventName, type ClientEventSpec } from "./client_events.ts";
import type { ChatContext } from "./handlers.ts";
import type { Ack, ChatObserver } from "./types.ts";

export type { EventBudgets } from "./client_events.ts";
import type { EventBudgets } from "./client_events.ts";

/** A refusal of one user is logged at most once in this many ms; the rest are counted. */
export const REFUSAL_LOG_INTERVAL_MS = 10_000;
/** `error` events one connection receives per second at most, by default; acks carry every one. */
export const ERROR_EVENTS_PER_SECOND = 10;

/** Splits socket.io event arguments into the payload and the ack callback, if any. */
export function splitAck(args: unknown[]): [unknown, Ack<unknown> | undefined] {
  const last = args.at(-1);
  return typeof last === "function"
    ? [args.length > 1 ? args[0] : undefined, last as Ack<unknown>]
    : [args[0], undefined];
}

/** Shared by every connection: one budget per user and event, one refusal log per user. */
export class EventGate {
  readonly #limiters: Record<string, RateLimiter>;
  /** When each user's last refusal was logged, and how many went unlogged since. */
  readonly #refusalLog = new Map<string, { at: number; quiet: number }>();

  constructor(
    budgets: EventBudgets,
    private readonly log: Logger,
    private readonly observer: Pick<ChatObserver, "errorSent">,
    private readonly now: () => number = Date.now,
    /** `error` events one connection receives per second at most. */
    readonly errorEventsPerSecond: number = ERROR_EVENTS_PER_SECOND,
  ) {
    this.#limiters = Object.fromEntries(
      Object.entries(budgets).map(([event, limit]) => [event, new RateLimiter(limit, now)]),
    );
  }

  /**
   * Spends one unit of `userId`'s budget for `event`; when it is spent, returns the refusal (a
   * plain value: a flood is refused without building an `Error` per event).
   */
  take(event: ClientEventName, userId: string): WireError | undefined {
    const verdict = this.#limiters[event].take(userId);
    if (verdict.ok) return undefined;
    return {
      code: "rate_limited",
      message: `too many \`${event}\` events; wait before sending again`,
      retryAfterMs: verdict.retryAfterMs,
    };
  }

  /** Spends up to `most` units of `userId`'s budget for `event` at once; says how many. */
  takeUpTo(event: ClientEventName, userId: string, most: number): number {
    return this.#limiters[event].takeUpTo(userId, most);
  }

  /** Gives back units {@link takeUpTo} took that were not needed. */
  giveBack(event: ClientEventName, userId: string, units: number): void {
    if (units > 0) this.#limiters[event].giveBack(userId, units);
  }

  /** Counts a refusal and logs it unless this user's refusals were logged a moment ago. */
  noteRefusal(userId: string, socketId: string, event: string, error: WireError): void {
    this.observer.errorSent(error.code);
    const now = this.now();
    const entry = this.#refusalLog.get(userId);
    if (entry && now - entry.at < REFUSAL_LOG_INTERVAL_MS) {
      entry.quiet++;
      return;
    }
    if (this.#refusalLog.size >= 10_000) this.#forgetOld(now);
    this.#refusalLog.set(userId, { at: now, quiet: 0 });
    const level = error.code === "internal" ? "warn" : "info";
    this.log[level]("event.refused", {
      clientEvent: event,
      code: error.code,
      user: userId,
      socket: socketId,
      unlogged: entry?.quiet ?? 0,
    });
  }

  #forgetOld(now: number): void {
    for (const [userId, entry] of this.#refusalLog) {
      if (now - entry.at >= REFUSAL_LOG_INTERVAL_MS) this.#refusalLog.delete(userId);
    }
  }
}

/** A connection as its events see it: the handlers' context, and where its refusals go. */
export interface EventContext extends ChatContext {
  /** Sends a refusal to the client as the `error` event, and counts and logs it. */
  report(event: string, error: WireError): void;
}

/**
 * Handles one client event as socket.io decoded it (`[name, ...args]`, the last argument the ack
 * callback when the client asked for one): checks its arguments and its owner's budget, runs its
 * handler and answers the ack; a refusal goes to `ctx.report` and the ack. Events that are not the
 * chat's are dropped.
 * One function for every event and connection, so a connection holds no listener per event.
 */
export async function dispatchEvent(
  ctx: EventContext,
  gate: EventGate,
  packet: unknown[],
): Promise<void> {
  const name = String(packet[0]);
  try {
    checkEventArguments(packet);
  } catch (error) {
    return ctx.report(name, toWireError(error));
  }
  if (!Object.hasOwn(CLIENT_EVENTS, name)) return;
  const args = packet.slice(1);
  const event = name as ClientEventName;
  const spec: ClientEventSpec = CLIENT_EVENTS[event];
  const [payload, ack] = splitAck(args);
  const fail = (error: WireError) => {
    ctx.report(event, error);
    ack?.({ ok: false, error });
  };
  const refusal = gate.take(event, ctx.identity.user.id);
  if (refusal !== undefined) {
    if (!spec.dropWhenOver) fail(refusal);
    return;
  }
  try {
    const result = await spec.handle(ctx, payload);
    if (result !== undefined) ack?.(result);
  } catch (error) {
    fail(toWireError(error));
  }
}
