// @ts-check
/**
 * "Notify me": registers the service worker (`/sw.js`), subscribes this browser to Web Push with
 * the server's VAPID public key, and hands the subscription to the chat (`push:subscribe`), which
 * then pushes the DMs the user misses while away.
 */

/**
 * The bytes of a base64url text (a VAPID public key), as `applicationServerKey` takes them.
 * @param {string} text
 * @returns {Uint8Array}
 */
export function base64urlBytes(text) {
  const base64 = text.replaceAll("-", "+").replaceAll("_", "/");
  const binary = atob(base64 + "=".repeat((4 - base64.length % 4) % 4));
  return Uint8Array.from(binary, (character) => character.charCodeAt(0));
}

/**
 * @typedef {{
 *   serviceWorker?: { register(url: string, options: { scope: string }): Promise<any> },
 *   Notification?: { requestPermission(): Promise<string> },
 *   PushManager?: unknown,
 * }} PushGlobals
 */

/**
 * Whether the page can offer "Notify me": the server has VAPID keys and the browser can push.
 * @param {{ vapidPublicKey?: string }} settings
 * @param {PushGlobals} globals
 */
export function pushAvailable(settings, globals) {
  return typeof settings.vapidPublicKey === "string" && globals.serviceWorker !== undefined &&
    globals.PushManager !== undefined && globals.Notification !== undefined;
}

/**
 * Asks for permission, registers the worker, subscribes and tells the server.
 * @param {string} vapidPublicKey
 * @param {PushGlobals} globals
 * @param {(subscription: unknown) => Promise<{ ok: boolean }>} subscribe sends `push:subscribe`
 * @returns {Promise<"subscribed" | "denied" | "refused">}
 */
export async function enablePush(vapidPublicKey, globals, subscribe) {
  const permission = await globals.Notification?.requestPermission();
  if (permission !== "granted") return "denied";
  const registration = await globals.serviceWorker?.register("/sw.js", { scope: "/" });
  const subscription = await registration.pushManager.subscribe({
    userVisibleOnly: true,
    applicationServerKey: base64urlBytes(vapidPublicKey),
  });
  const answer = await subscribe(subscription.toJSON());
  return answer.ok ? "subscribed" : "refused";
}
