/**
 * Webhooks: the chat's events, signed per Standard Webhooks and sent from the store's outbox to
 * the operator's backend, at least once and in order per room. See docs/webhooks.md.
 *
 * @example
 * A sketch: `app.ts` builds it when `WEBHOOK_URL` is set and hands its writers to the timeline
 * and the chat service.
 * ```ts ignore
 * const webhooks = new Webhooks(settings, dependencies);
 * const timeline = new Timeline(store, { ...options, outbox: webhooks.created });
 * ```
 * @module
 */
export { EVENT_TYPES, type EventData, type EventType } from "./events.ts";
export {
  type DropReason,
  SENDER_DEFAULTS,
  type SenderOptions,
  type WebhookObserver,
  WebhookSender,
} from "./sender.ts";
export {
  type PushNotification,
  PushNotifier,
  type PushObserver,
  type PushSettings,
} from "./push.ts";
export { type WebhookDependencies, Webhooks, type WebhookSettings } from "./webhooks.ts";
export {
  PUBLISH_HOOK_FAILURES,
  PublishHook,
  type PublishHookFailure,
  type PublishHookObserver,
  type PublishHookOutcome,
  type PublishHookSettings,
  type PublishQuestion,
  type PublishVerdict,
} from "./publish.ts";
