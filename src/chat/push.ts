/**
 * `push:subscribe` and `push:unsubscribe`: a browser's Web Push subscription, stored for the
 * connection's user (at most `PUSH_SUBSCRIPTIONS_MAX`, oldest dropped) so a missed DM or mention can be
 * pushed to it. Payloads are bounded: the endpoint an `https://` URL of at most 1 KB, the keys base64url
 * of exactly the sizes RFC 8291 gives them. The server POSTs to each endpoint, so one must name a
 * push service's host, never an address inside the server's network.
 * @module
 */
import { CodedError } from "../errors.ts";
import type { PushSubscriptionRecord } from "../store/mod.ts";
import type { OkAck } from "./contract.ts";
import type { ChatContext, Success } from "./handlers.ts";

/** Most subscriptions one user keeps: a new one past it drops their oldest. */
export const PUSH_SUBSCRIPTIONS_MAX = 10;

/** Longest endpoint accepted (bytes of its text, ASCII for any URL a browser gives). */
const MAX_ENDPOINT_LENGTH = 1024;
/** An uncompressed P-256 point (65 bytes, `0x04` first) in base64url without padding. */
const P256DH = /^B[A-Za-z0-9_-]{86}$/;
/** 16 random bytes in base64url without padding. */
const AUTH = /^[A-Za-z0-9_-]{22}$/;

const EXAMPLE = '{ endpoint: "https://…", keys: { p256dh: "B…", auth: "…" } }';

function fieldsOf(payload: unknown): Record<string, unknown> {
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    throw new CodedError("invalid_payload", `expected an object like ${EXAMPLE}`);
  }
  return payload as Record<string, unknown>;
}

function readEndpoint(value: unknown): string {
  if (
    typeof value !== "string" || value.length > MAX_ENDPOINT_LENGTH || !URL.canParse(value) ||
    new URL(value).protocol !== "https:"
  ) {
    throw new CodedError(
      "invalid_payload",
      `\`endpoint\` must be an https:// URL of at most ${MAX_ENDPOINT_LENGTH} characters`,
    );
  }
  return value;
}

/** Names that only ever lead inside a network: loopback, mDNS, cloud metadata, home networks. */
const INTERNAL_NAMES = /(^|\.)(localhost|local|internal|home\.arpa)$/;

/**
 * Whether an endpoint could be a push service's: a dotted DNS name on the default port, without
 * user info. The server POSTs to every stored endpoint, so an IP address (loopback, private,
 * metadata), `localhost` or a single-label name would let a user aim its requests inside.
 */
function isPushServiceUrl(endpoint: string): boolean {
  const url = new URL(endpoint);
  const host = url.hostname.replace(/\.$/, "");
  const ipAddress = host.startsWith("[") || /^[\d.]+$/.test(host);
  return url.port === "" && url.username === "" && url.password === "" && !ipAddress &&
    host.includes(".") && !INTERNAL_NAMES.test(host);
}

/** Reads a `push:subscribe` payload, as the browser's `PushSubscription.toJSON()` gives it. */
export function readPushSubscription(payload: unknown): PushSubscriptionRecord {
  const fields = fieldsOf(payload);
  const endpoint = readEndpoint(fields.endpoint);
  if (!isPushServiceUrl(endpoint)) {
    throw new CodedError(
      "invalid_payload",
      "`endpoint` must be a push service's: a DNS name on the default port, not an IP address " +
        "or an internal name",
    );
  }
  const keys = typeof fields.keys === "object" && fields.keys !== null
    ? fields.keys as Record<string, unknown>
    : {};
  const { p256dh, auth } = keys;
  if (typeof p256dh !== "string" || !P256DH.test(p256dh)) {
    throw new CodedError("invalid_payload", "`keys.p256dh` must be a P-256 public key (base64url)");
  }
  if (typeof auth !== "string" || !AUTH.test(auth)) {
    throw new CodedError("invalid_payload", "`keys.auth` must be 16 bytes in base64url");
  }
  return { endpoint, keys: { p256dh, auth } };
}

function checkEnabled(ctx: ChatContext): void {
  if (!ctx.pushEnabled) {
    throw new CodedError("forbidden", "Web Push is not enabled on this server");
  }
}

/** `push:subscribe {endpoint, keys: {p256dh, auth}}`: stores the browser's subscription. */
export async function onPushSubscribe(
  ctx: ChatContext,
  payload: unknown,
): Promise<Success<OkAck>> {
  checkEnabled(ctx);
  const subscription = readPushSubscription(payload);
  await ctx.store.addPushSubscription(ctx.identity.user.id, subscription, PUSH_SUBSCRIPTIONS_MAX);
  return { ok: true };
}

/** `push:unsubscribe {endpoint}`: forgets the browser's subscription (done even if unknown). */
export async function onPushUnsubscribe(
  ctx: ChatContext,
  payload: unknown,
): Promise<Success<OkAck>> {
  checkEnabled(ctx);
  const endpoint = readEndpoint(fieldsOf(payload).endpoint);
  await ctx.store.removePushSubscription(ctx.identity.user.id, endpoint);
  return { ok: true };
}
