// @ts-check
/// <reference lib="webworker" />
/**
 * The chat's service worker: shows a pushed notification (`{title, body, room, url}`, sent when
 * a DM or a mention is missed) and, on a click, opens the room in an open chat tab or a new one.
 */
const worker = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));

worker.addEventListener("push", (event) => {
  /** @type {{ title?: string, body?: string, room?: string, url?: string }} */
  let data = {};
  try {
    data = event.data?.json() ?? {};
  } catch {
    // Not ours to read: show a plain notice rather than nothing.
  }
  event.waitUntil(
    worker.registration.showNotification(data.title ?? "Chat", {
      body: data.body ?? "",
      tag: data.room,
      data: { url: data.url ?? "/" },
    }),
  );
});

worker.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = new URL(event.notification.data?.url ?? "/", worker.location.origin).href;
  event.waitUntil((async () => {
    const open = await worker.clients.matchAll({ type: "window", includeUncontrolled: true });
    const tab = open.find((client) => new URL(client.url).origin === worker.location.origin);
    if (tab) {
      await tab.navigate(url);
      await tab.focus();
      return;
    }
    await worker.clients.openWindow(url);
  })());
});
