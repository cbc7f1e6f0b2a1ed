/**
 * The one error shape of every HTTP answer that is not Socket.IO: `{ error: { code, message } }`
 * with a code from the registry (`src/errors.ts`) and the status that code maps to. Routes throw
 * {@link HttpError} (or any {@link CodedError}); Hono's `onError` and `notFound` render it.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { HttpError, renderError, renderNotFound } from "./errors.ts";
 *
 * const app = new Hono().onError(renderError).notFound(renderNotFound);
 * app.get("/private", () => {
 *   throw new HttpError("forbidden", "not yours");
 * });
 * await app.request("/private"); // 403 {"error":{"code":"forbidden","message":"not yours"}}
 * ```
 * @module
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { CodedError, type ErrorCode, type ErrorDetails, toWireError } from "../errors.ts";

/** The body of every HTTP error answer. */
export interface HttpErrorBody {
  error: { code: ErrorCode; message: string };
}

/** The status each code answers with; a code not listed is a 500. */
export const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  invalid_payload: 400,
  message_too_long: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  payload_too_large: 413,
  rejected: 422,
  rate_limited: 429,
};

/** The code of an exception Hono or a middleware throws with only a status. */
const CODE_OF_STATUS: Record<number, ErrorCode> = {
  400: "invalid_payload",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  413: "payload_too_large",
  415: "invalid_payload",
  429: "rate_limited",
};

/** An error answer: a registered code, a sentence, and headers it must carry. */
export class HttpError extends CodedError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
    details: ErrorDetails = {},
  ) {
    super(code, message, details);
    this.name = "HttpError";
  }
}

/** A JSON response that caches nowhere. */
export function json(body: unknown, status = 200, headers: HeadersInit = {}): Response {
  return Response.json(body, { status, headers: { "Cache-Control": "no-store", ...headers } });
}

/** The response for any thrown value: its code's status, `{ error: { code, message } }`. */
export function errorResponse(error: unknown): Response {
  if (error instanceof HTTPException) {
    const code = CODE_OF_STATUS[error.status] ?? "internal";
    error = new HttpError(code, error.message || `the request failed (${error.status})`);
  }
  const { code, message = code, retryAfterMs } = toWireError(error);
  const headers: Record<string, string> = error instanceof HttpError ? { ...error.headers } : {};
  if (retryAfterMs !== undefined) headers["Retry-After"] = String(Math.ceil(retryAfterMs / 1000));
  const body: HttpErrorBody = { error: { code, message } };
  return json(body, HTTP_STATUS[code] ?? 500, headers);
}

/** Hono's `onError`: every thrown value answered in the one shape. */
export function renderError(error: unknown, _context: Context): Response {
  return errorResponse(error);
}

/** Hono's `notFound`: a JSON 404 naming what was asked. */
export function renderNotFound(context: Context): Response {
  const { method } = context.req;
  return errorResponse(new HttpError("not_found", `no route for ${method} ${context.req.path}`));
}
