/**
 * Refused requests: Engine.IO's error codes and JSON error body, the `connection_error` each
 * refusal is reported with, and the stable reason word it is counted under.
 *
 * @example
 * ```ts
 * import { Engine, refusalReason } from "./mod.ts";
 *
 * const engine = new Engine();
 * engine.on("connection_error", (error) => console.log(refusalReason(error))); // "unknown_sid", …
 * ```
 * @module
 */

/** Engine.IO's error codes (engine.io's `Server.errors`), sent as `{code, message}`. */
export const ERROR_CODES = {
  UNKNOWN_TRANSPORT: 0,
  UNKNOWN_SID: 1,
  BAD_HANDSHAKE_METHOD: 2,
  BAD_REQUEST: 3,
  FORBIDDEN: 4,
  UNSUPPORTED_PROTOCOL_VERSION: 5,
} as const;

/** One of {@link ERROR_CODES}. */
export type ErrorCode = typeof ERROR_CODES[keyof typeof ERROR_CODES];

/** A refused request, as engine.io reports it in `connection_error`. */
export interface ConnectionError {
  req: Request;
  code: ErrorCode;
  message: string;
  /**
   * What was wrong (`{ sid }`, `{ transport }`, …). A `reason` names a cause narrower than the
   * code: `cors`, or the `code` of the error `allowRequest` threw (`shutting_down`).
   */
  context: Record<string, unknown>;
}

/** Each code's reason word, for refusals that name no narrower one. */
const REASONS_BY_CODE: Record<ErrorCode, string> = {
  [ERROR_CODES.UNKNOWN_TRANSPORT]: "unknown_transport",
  [ERROR_CODES.UNKNOWN_SID]: "unknown_sid",
  [ERROR_CODES.BAD_HANDSHAKE_METHOD]: "bad_handshake_method",
  [ERROR_CODES.BAD_REQUEST]: "bad_request",
  [ERROR_CODES.FORBIDDEN]: "forbidden",
  [ERROR_CODES.UNSUPPORTED_PROTOCOL_VERSION]: "unsupported_protocol_version",
};

/** A reason must be one lower_snake word: it becomes a metrics label. */
const REASON_WORD = /^[a-z][a-z0-9_]{0,39}$/;

/**
 * Why a request was refused, as one stable lower_snake word (a metrics label, a log field): the
 * refusal's own `context.reason` when it names one, else its code's (`unknown_sid`, …).
 */
export function refusalReason(error: ConnectionError): string {
  const { reason } = error.context;
  if (typeof reason === "string" && REASON_WORD.test(reason)) return reason;
  return REASONS_BY_CODE[error.code];
}

/** A refusal on its way to the response: HTTP status, Engine.IO code, message and context. */
export class RequestError {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    readonly message: string,
    readonly context: Record<string, unknown> = {},
  ) {}
}

/** A request on a transport its session has left: a poll after the upgrade to a WebSocket. */
export function transportMismatch(transport: string, currentTransport: string): RequestError {
  return new RequestError(400, ERROR_CODES.BAD_REQUEST, "Bad request", {
    name: "TRANSPORT_MISMATCH",
    transport,
    previousTransport: currentTransport,
  });
}

/** A JSON error response in the Engine.IO error shape. */
export function errorResponse(
  status: number,
  code: ErrorCode,
  message: string,
  headers = new Headers(),
): Response {
  headers.set("Content-Type", "application/json");
  return new Response(JSON.stringify({ code, message }), { status, headers });
}

/** Where the engine logs refusals; src/log.ts's `Logger` is one. */
export interface EngineLogger {
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
}

/** Refusals of one reason are logged at most once per this many milliseconds. */
export const REFUSAL_LOG_WINDOW_MS = 10_000;

interface LogWindow {
  /** Refusals counted but not logged since this reason's last line. */
  suppressed: number;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Logs refused requests, at most one line per reason per window, so a flood of bad requests
 * cannot flood the log: the first refusal of a reason is logged (`request.refused`, info) and
 * opens a window; refusals during it are only counted. A window that counted some ends with one
 * `request.refused.suppressed` line (warn, with the count) and opens the next.
 */
export class RefusalLog {
  readonly #windows = new Map<string, LogWindow>();

  constructor(
    private readonly logger: EngineLogger,
    private readonly windowMs = REFUSAL_LOG_WINDOW_MS,
  ) {}

  /** Logs a refusal with `describe()`'s fields, or counts it while `reason`'s window is open. */
  record(reason: string, describe: () => Record<string, unknown>): void {
    const window = this.#windows.get(reason);
    if (window) {
      window.suppressed++;
      return;
    }
    this.logger.info("request.refused", { reason, ...describe() });
    this.#open(reason);
  }

  /** Logs the counts of the open windows and closes them. */
  close(): void {
    for (const [reason, window] of this.#windows) {
      clearTimeout(window.timer);
      if (window.suppressed > 0) this.#report(reason, window);
    }
    this.#windows.clear();
  }

  #open(reason: string): void {
    const timer = setTimeout(() => this.#end(reason), this.windowMs);
    // A window left open must not hold the process up after the server has shut down.
    Deno.unrefTimer(timer as unknown as number);
    this.#windows.set(reason, { suppressed: 0, timer });
  }

  #end(reason: string): void {
    const window = this.#windows.get(reason)!;
    this.#windows.delete(reason);
    if (window.suppressed === 0) return;
    this.#report(reason, window);
    this.#open(reason);
  }

  #report(reason: string, window: LogWindow): void {
    this.logger.warn("request.refused.suppressed", { reason, suppressed: window.suppressed });
  }
}
