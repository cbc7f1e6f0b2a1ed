/**
 * The one registry of error codes a client can receive — in the `error` event, in a failed ack
 * (`{ ok: false, error }`) and in `connect_error` — with one base class and one wire shape.
 *
 * @example
 * ```ts
 * import { CodedError, toWireError } from "./errors.ts";
 *
 * const refusal = new CodedError("rate_limited", "too many messages", { retryAfterMs: 900 });
 * toWireError(refusal); // { code: "rate_limited", message: "too many messages", retryAfterMs: 900 }
 * ```
 * @module
 */

/** Every code, with when it is sent (docs/events.md's table is checked against this). */
export const ERROR_CODES = {
  auth_required: "connect: no token in `auth.token` or an `Authorization: Bearer` header",
  invalid_token: "connect or `auth:refresh`: the token is malformed, badly signed or not yet valid",
  token_expired: "the token expired; at connect, or while connected (the socket is then closed)",
  auth_unavailable: "connect: the key set (`JWT_JWKS_URL`) could not be fetched",
  too_many_connections: "connect: the user already has `MAX_SOCKETS_PER_USER` connections",
  already_connected: "connect: this transport session already carries a socket (one per session)",
  invalid_payload: "a payload of the wrong shape, or an event with too many arguments",
  message_too_long: "a message longer than `MAX_MESSAGE_LENGTH` characters",
  rate_limited:
    "over the event's budget; `retryAfterMs` says when to try again; nothing stored. Server API: too many wrong keys from the address (HTTP 429, `Retry-After`)",
  forbidden:
    "the token lacks the scope the event needs, the room is not the user's to use, `auth:refresh` names another user, or `push:*` while Web Push is off",
  too_many_rooms: "`join` while the connection is in `MAX_ROOMS_PER_SOCKET` rooms",
  too_many_emoji: "`react` with a new emoji on a message that already has 20 different ones",
  too_many_reactions: "`react` by a user who already has 10 emoji on that message",
  rejected:
    "`message` or a server API publish: the publish hook (`PUBLISH_HOOK_URL`) denied it, with its reason as `message`, or could not answer under `PUBLISH_HOOK_FAILURE=deny`; nothing stored or broadcast (HTTP 422)",
  internal: "the server could not store or read; nothing was broadcast",
  banned: "connect: the user is banned; `until` says when it ends (ms since epoch), if it does",
  unauthorized:
    "server API or `/metrics`: no `Authorization: Bearer` with `API_KEY` (`METRICS_TOKEN`), or the wrong one",
  not_found: "HTTP: no such route; server API: no such message or ban",
  payload_too_large:
    "HTTP: a request body over its limit (64 KB for the server API, 4 KB for dev login)",
} as const;

/** A stable error code. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Extra fields some codes carry. */
export interface ErrorDetails {
  /** With `rate_limited`: milliseconds until the event is accepted again. */
  retryAfterMs?: number;
  /** With `banned`: when the ban ends, in ms since epoch (absent: until it is lifted). */
  until?: number;
  /** With a refusal of one room of the catch-up on connect: that room (join it later). */
  room?: string;
}

/** An error as clients receive it. */
export interface WireError extends ErrorDetails {
  code: ErrorCode;
  message?: string;
}

/** An error with a stable {@link ErrorCode}; the message is a sentence for humans. */
export class CodedError<Code extends ErrorCode = ErrorCode> extends Error {
  constructor(
    readonly code: Code,
    message: string,
    readonly details: ErrorDetails = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "CodedError";
  }
}

/** The wire shape of any thrown value: a {@link CodedError} as it is, anything else `internal`. */
export function toWireError(
  error: unknown,
  fallback = "the request failed unexpectedly",
): WireError {
  if (error instanceof CodedError) {
    return { code: error.code, message: error.message, ...error.details };
  }
  return { code: "internal", message: fallback };
}

/** Whether a string is a registered code. */
export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_CODES, value);
}
