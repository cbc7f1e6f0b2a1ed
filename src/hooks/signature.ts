/**
 * The Standard Webhooks headers every request to the operator's backend carries: the outbox's
 * events and the publish hook's questions are signed the same way, here.
 *
 * @example
 * ```ts
 * import { Webhook } from "standardwebhooks";
 * import { signedHeaders } from "./signature.ts";
 *
 * const signer = new Webhook("whsec_" + btoa("0123456789abcdef0123456789abcdef"));
 * signedHeaders(signer, "evt_1", new Date(), "{}"); // { "webhook-id": "evt_1", … }
 * ```
 * @module
 */
import type { Webhook } from "standardwebhooks";

/** The headers of one signed POST of `body`, as attempt `id` sent at `at`. */
export function signedHeaders(
  signer: Webhook,
  id: string,
  at: Date,
  body: string,
): Record<string, string> {
  return {
    "content-type": "application/json",
    "user-agent": "chat-server-webhooks",
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": signer.sign(id, at, body),
  };
}
