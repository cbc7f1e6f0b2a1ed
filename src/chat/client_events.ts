/**
 * Every client event, declared once: its handler (which reads the payload and returns the ack's
 * success body), the settings that size its per-user budget, and what happens over budget. The
 * event gate, the budgets the app builds, the server's `ClientToServerEvents` type and the checks
 * of the docs' tables all come from this table: a new event is one entry here.
 *
 * @example
 * ```ts
 * import { budgetsOf, CLIENT_EVENTS } from "./client_events.ts";
 * import { DEFAULTS } from "../config.ts";
 *
 * console.log(Object.keys(CLIENT_EVENTS)); // ["message", "history", …]
 * console.log(budgetsOf(DEFAULTS).typing); // { perMinute: 120, burst: 20 }
 * ```
 * @module
 */
import type { RateLimit } from "../rate_limit.ts";
import type { Ack, Failure } from "./contract.ts";
import {
  type ChatContext,
  onBrowseRooms,
  onDelete,
  onEdit,
  onHistory,
  onJoin,
  onLeave,
  onMessage,
  onReact,
  onRead,
  onRefresh,
  onRooms,
  onThread,
  onTyping,
} from "./handlers.ts";
import { onPushSubscribe, onPushUnsubscribe } from "./push.ts";

/** The settings (their names in the server's config) that size the budgets. */
export type BudgetSetting =
  | "rateLimitPerMinute"
  | "rateLimitBurst"
  | "historyLimitPerMinute"
  | "typingLimitPerMinute"
  | "refreshLimitPerMinute"
  | "joinLimitPerMinute"
  | "readLimitPerMinute"
  | "roomsLimitPerMinute"
  | "reactLimitPerMinute";

/** One client event's facts. */
export interface ClientEventSpec {
  /** Reads the payload, applies the rules and returns the ack's success body (none: no ack). */
  handle: (ctx: ChatContext, payload: unknown) => unknown;
  /**
   * The per-user budget: `perMinute` tokens a minute, `burst` at once (default: a sixth of
   * `perMinute`, at least one).
   */
  budget: { perMinute: BudgetSetting; burst?: BudgetSetting };
  /** Over budget the event is dropped without a word (it has no ack and nothing to retry). */
  dropWhenOver?: boolean;
}

/** Every client event. */
export const CLIENT_EVENTS = {
  message: {
    handle: onMessage,
    budget: { perMinute: "rateLimitPerMinute", burst: "rateLimitBurst" },
  },
  history: { handle: onHistory, budget: { perMinute: "historyLimitPerMinute" } },
  typing: { handle: onTyping, budget: { perMinute: "typingLimitPerMinute" }, dropWhenOver: true },
  "auth:refresh": { handle: onRefresh, budget: { perMinute: "refreshLimitPerMinute" } },
  join: { handle: onJoin, budget: { perMinute: "joinLimitPerMinute" } },
  leave: { handle: onLeave, budget: { perMinute: "joinLimitPerMinute" } },
  read: { handle: onRead, budget: { perMinute: "readLimitPerMinute" } },
  rooms: { handle: onRooms, budget: { perMinute: "roomsLimitPerMinute" } },
  // Browsing costs about what a room list does: the same allowance's size, a budget apart.
  "rooms:browse": { handle: onBrowseRooms, budget: { perMinute: "roomsLimitPerMinute" } },
  // Changing a message costs what sending one does, from the same allowance's size.
  "message:edit": {
    handle: onEdit,
    budget: { perMinute: "rateLimitPerMinute", burst: "rateLimitBurst" },
  },
  "message:delete": {
    handle: onDelete,
    budget: { perMinute: "rateLimitPerMinute", burst: "rateLimitBurst" },
  },
  react: { handle: onReact, budget: { perMinute: "reactLimitPerMinute" } },
  // A page of a thread costs what a page of history does: the same allowance's size.
  thread: { handle: onThread, budget: { perMinute: "historyLimitPerMinute" } },
  // A subscription is asked for about as rarely as a room is joined: that allowance's size.
  "push:subscribe": { handle: onPushSubscribe, budget: { perMinute: "joinLimitPerMinute" } },
  "push:unsubscribe": { handle: onPushUnsubscribe, budget: { perMinute: "joinLimitPerMinute" } },
} as const satisfies Record<string, ClientEventSpec>;

/** A client event's name. */
export type ClientEventName = keyof typeof CLIENT_EVENTS;

/** The per-user budgets, one per client event. */
export type EventBudgets = Record<ClientEventName, RateLimit>;

/** The ack an event's handler answers: its success body or a failure; none for no body. */
type AckOf<E extends ClientEventName> = Awaited<ReturnType<(typeof CLIENT_EVENTS)[E]["handle"]>>;

/** Client events as socket.io types them on the server: any payload, the handler's ack. */
export type ClientToServerEvents = {
  [E in ClientEventName]: AckOf<E> extends void ? (payload: unknown) => void
    : (payload: unknown, ack?: Ack<AckOf<E> | Failure>) => void;
};

/** The budgets the settings give each event. */
export function budgetsOf(config: Readonly<Record<BudgetSetting, number>>): EventBudgets {
  const budgets = {} as EventBudgets;
  for (
    const [event, spec] of Object.entries(CLIENT_EVENTS) as [ClientEventName, ClientEventSpec][]
  ) {
    const perMinute = config[spec.budget.perMinute];
    const burst = spec.budget.burst === undefined
      ? Math.max(1, Math.ceil(perMinute / 6))
      : config[spec.budget.burst];
    budgets[event] = { perMinute, burst };
  }
  return budgets;
}
