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
