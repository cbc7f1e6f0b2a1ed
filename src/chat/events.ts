/**
 * The one place client events meet the chat handlers: each event is checked against its owner's
 * budget, its arguments split into payload and ack, and its outcome turned into the ack and, on
 * failure, the `error` event. Every client event has a budget; an event added here without one
 * does not type-check.
 * @module
 */
import { toWireError, type WireError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { checkEventArguments } from "../payloads.ts";
import { type RateLimit, RateLimiter } from "../rate_limit.ts";
import {
  type ChatContext,
  onDelete,
  onEdit,
  onHistory,
  onJoin,
  onLeave,
  onMessage,
  onRead,
  onRefresh,
  onRooms,
  onTyping,
} from "./handlers.ts";
import type { Ack, ChatObserver, ChatSocket, ClientToServerEvents } from "./types.ts";

/** The per-user budgets, one per client event. */
export type EventBudgets = Record<keyof ClientToServerEvents, RateLimit>;

interface EventSpec {
  handle: (ctx: ChatContext, payload: unknown) => unknown;
  /** Over budget the event is dropped without a word (it has no ack and nothing to retry). */
  dropWhenOver?: boolean;
}

/** Every client event and its handler. */
const EVENTS: Record<keyof ClientToServerEvents, EventSpec> = {
  message: { handle: onMessage },
  history: { handle: onHistory },
  typing: { handle: onTyping, dropWhenOver: true },
  "auth:refresh": { handle: onRefresh },
  join: { handle: onJoin },
  leave: { handle: onLeave },
  read: { handle: onRead },
  rooms: { handle: onRooms },
  "message:edit": { handle: onEdit },
  "message:delete": { handle: onDelete },
};

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
  take(event: keyof ClientToServerEvents, userId: string): WireError | undefined {
    const verdict = this.#limiters[event].take(userId);
    if (verdict.ok) return undefined;
    return {
      code: "rate_limited",
      message: `too many \`${event}\` events; wait before sending again`,
      retryAfterMs: verdict.retryAfterMs,
    };
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

/** Sends a refusal to the client as the `error` event, and counts and logs it. */
export type Reporter = (event: string, error: WireError) => void;

/**
 * Registers every chat event on `socket`, and returns how refusals reach the client: the `error`
 * event, at most `gate.errorEventsPerSecond` a second (acks carry every one).
 */
export function bindEvents(socket: ChatSocket, ctx: ChatContext, gate: EventGate): Reporter {
  const userId = ctx.identity.user.id;
  let errorWindow = { start: 0, sent: 0 };
  const report: Reporter = (event, error) => {
    gate.noteRefusal(userId, socket.id, event, error);
    const now = ctx.now();
    if (now - errorWindow.start >= 1000) errorWindow = { start: now, sent: 0 };
    if (++errorWindow.sent <= gate.errorEventsPerSecond) socket.emit("error", error);
  };

  socket.use((event, next) => {
    try {
      checkEventArguments(event);
    } catch (error) {
      report(String(event[0]), toWireError(error));
      return next(error as Error);
    }
    next();
  });

  for (const [name, spec] of Object.entries(EVENTS)) {
    const event = name as keyof ClientToServerEvents;
    socket.on(event, async (...args: unknown[]) => {
      const [payload, ack] = splitAck(args);
      const refusal = gate.take(event, userId);
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
      function fail(error: WireError) {
        report(event, error);
        ack?.({ ok: false, error });
      }
    });
  }
  return report;
}
