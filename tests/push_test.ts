/**
 * Web Push end to end: a chat server with VAPID keys (and no webhooks) pushes a missed DM to a
 * local push service, which the test's browser keys decrypt (RFC 8291); a 410 removes the
 * subscription; nobody is pushed a room they may not read; `push:subscribe` takes only a
 * well-formed subscription. Polls and retries are shortened; waits are for conditions.
 */
import assert from "node:assert/strict";
import {
  ChatClient,
  SECRET,
  sendMessage as send,
  startChat,
  type TestServer,
} from "./helpers/chat_server.ts";
import { PushReceiver, TestBrowser } from "./helpers/push_receiver.ts";
import { until, within } from "./helpers/time.ts";
import { tempDir } from "./helpers/dispose.ts";
import type { Config } from "../src/config.ts";
import type { ChatMessage } from "../src/types.ts";
import { signToken } from "../src/auth/token.ts";
import { isPublicAddress, pushDraft, PushNotifier, type PushOutcome } from "../src/hooks/push.ts";
import { openKvStore } from "../src/store/mod.ts";
import { createLogger } from "../src/ops/log.ts";

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

/** A fresh VAPID key pair, as `npx web-push generate-vapid-keys` gives one. */
async function vapidKeys(): Promise<Partial<Config>> {
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
  ]) as CryptoKeyPair;
  const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const { d } = await crypto.subtle.exportKey("jwk", pair.privateKey);
  return {
    vapidPublicKey: base64url(publicKey),
    vapidPrivateKey: d!,
    vapidSubject: "mailto:ops@example.com",
  };
}

async function pushing(overrides: Partial<Config> = {}): Promise<TestServer> {
  return startChat({
    ...await vapidKeys(),
    missedAfterMs: 200,
    publicRooms: ["general"],
    rateLimitBurst: 1000,
    // The test's push service listens on loopback.
    pushPrivateEndpoints: true,
    ...overrides,
  }, { webhookTiming: { retryBaseMs: 20, retryMaxMs: 100, pollMs: 20, maintainMs: 20 } });
}

/** Waits until `condition` (asked of the store) holds. */
async function untilStored(condition: () => Promise<boolean>, what: string): Promise<void> {
  const poll = async () => {
    while (!await condition()) await new Promise((resolve) => setTimeout(resolve, 10));
  };
  await within(poll(), 10_000, what);
}

async function outboxEmpty(server: TestServer): Promise<void> {
  await untilStored(
    async () => (await server.store.outbox.outboxStats()).depth === 0,
    "outbox empty",
  );
}

Deno.test("push: a missed DM is pushed, encrypted for the browser, with sender, preview and room", async () => {
  await using receiver = await PushReceiver.start();
  await using server = await pushing();
  const bob = await TestBrowser.create(`${receiver.url}/bob`);
  const mallory = await TestBrowser.create(`${receiver.url}/mallory`);
  await server.store.addPushSubscription("bob", bob.subscription, 10);
  await server.store.addPushSubscription("mallory", mallory.subscription, 10);
  const alice = await ChatClient.join(server.url, "alice");
  try {
    await send(alice, "dm:alice:bob", "are you there?");
    await until(() => receiver.pushes.length > 0, 10_000, "a push");
    await outboxEmpty(server);
    assert.deepEqual(receiver.pushes.map((push) => push.path), ["/bob"], "mallory gets nothing");
    const [push] = receiver.pushes;
    assert.equal(push.headers.get("content-encoding"), "aes128gcm");
    assert.match(push.headers.get("authorization") ?? "", /^vapid t=[\w-]+\.[\w-]+\.[\w-]+, k=/);
    assert.deepEqual(JSON.parse(await bob.decrypt(push.body)), {
      title: "alice",
      body: "are you there?",
      room: "dm:alice:bob",
      url: "/#dm%3Aalice%3Abob",
    });
    assert.equal(await metric(server, 'chat_push_notifications_total{outcome="sent"}'), 1);
  } finally {
    alice.close();
  }
});

Deno.test("push: a DM missed across a restart is still pushed (the outbox keeps it)", async () => {
  await using receiver = await PushReceiver.start();
  await using temp = await tempDir({ prefix: "chat_push_" });
  const settings = { ...await vapidKeys(), kvPath: `${temp.path}/chat.kv`, missedAfterMs: 2500 };
  const bob = await TestBrowser.create(`${receiver.url}/bob`);
  {
    await using first = await pushing(settings);
    await first.store.addPushSubscription("bob", bob.subscription, 10);
    const alice = await ChatClient.join(first.url, "alice");
    await send(alice, "dm:alice:bob", "before the restart");
    alice.close();
  }
  assert.equal(receiver.pushes.length, 0, "stopped before the DM counted as missed");
  await using second = await pushing(settings);
  await until(() => receiver.pushes.length > 0, 10_000, "the push after the restart");
  await outboxEmpty(second);
  assert.equal(receiver.pushes.length, 1);
  const payload = JSON.parse(await bob.decrypt(receiver.pushes[0].body));
  assert.equal(payload.body, "before the restart");
});

Deno.test("push: a DM deleted before it counts as missed is pushed nothing; one edited shows its new text", async () => {
  await using receiver = await PushReceiver.start();
  const missedAfterMs = 1500;
  await using server = await pushing({ missedAfterMs });
  const browsers = new Map<string, TestBrowser>();
  for (const user of ["bob", "carol"]) {
    const browser = await TestBrowser.create(`${receiver.url}/${user}`);
    await server.store.addPushSubscription(user, browser.subscription, 10);
    browsers.set(user, browser);
  }
  const alice = await ChatClient.join(server.url, "alice");
  try {
    const change = async (event: string, payload: unknown): Promise<ChatMessage> => {
      const answer = await within(alice.socket.emitWithAck(event, payload), 5000, event);
      assert.equal(answer.ok, true, JSON.stringify(answer));
      return answer.message;
    };
    const regretted = await send(alice, "dm:alice:bob", "I regret this");
    const deleted = await change("message:delete", { id: regretted.id });
    const sent = await send(alice, "dm:alice:carol", "meet at 5");
    const edited = await change("message:edit", { id: sent.id, message: "meet at 6" });
    for (const [message, changed] of [[regretted, deleted], [sent, edited]]) {
      const due = Date.parse(message.createdAt) + missedAfterMs;
      assert.ok(Date.parse(changed.editedAt!) < due, "changed before it was due");
    }
    await until(() => receiver.pushes.length > 0, 10_000, "carol's push");
    await outboxEmpty(server);
    assert.deepEqual(receiver.pushes.map((push) => push.path), ["/carol"], "bob: nothing");
    const payload = JSON.parse(await browsers.get("carol")!.decrypt(receiver.pushes[0].body));
    assert.equal(payload.body, "meet at 6");
  } finally {
    alice.close();
  }
});

Deno.test("push: a push service answering 410 has its subscription removed", async () => {
  await using receiver = await PushReceiver.start();
  receiver.answer = 410;
  await using server = await pushing();
  const bob = await TestBrowser.create(`${receiver.url}/bob`);
  await server.store.addPushSubscription("bob", bob.subscription, 10);
  const alice = await ChatClient.join(server.url, "alice");
  try {
    await send(alice, "dm:alice:bob", "hello?");
    await untilStored(
      async () => (await server.store.pushSubscriptions("bob")).length === 0,
      "the subscription removed",
    );
    assert.equal(receiver.pushes.length, 1);
  } finally {
    alice.close();
  }
});

Deno.test("push: a user who may not read the room (banned meanwhile) is pushed nothing", async () => {
  await using receiver = await PushReceiver.start();
  await using server = await pushing({ missedAfterMs: 300 });
  const bob = await TestBrowser.create(`${receiver.url}/bob`);
  await server.store.addPushSubscription("bob", bob.subscription, 10);
  const alice = await ChatClient.join(server.url, "alice");
  try {
    await send(alice, "dm:alice:bob", "secret plans");
    await server.store.setBan("bob", { since: Date.now() });
    await outboxEmpty(server);
    assert.equal(receiver.pushes.length, 0);
  } finally {
    alice.close();
  }
});

Deno.test("push: a missed mention is pushed with sender, preview and room; never to a user the room is closed to", async () => {
  await using receiver = await PushReceiver.start();
  await using server = await pushing({ publicRooms: ["general", "team-*"] });
  const browsers = new Map<string, TestBrowser>();
  for (const user of ["bob", "carol", "erin"]) {
    const browser = await TestBrowser.create(`${receiver.url}/${user}`);
    await server.store.addPushSubscription(user, browser.subscription, 10);
    browsers.set(user, browser);
  }
  // Alice's token opens "ops": carol, away, has no token that does.
  const token = await signToken(SECRET, { sub: "alice", rooms: ["ops"] });
  const alice = new ChatClient(server.url, { auth: { token } });
  try {
    await alice.waitFor(() => alice.loaded !== undefined, "alice's history");
    await send(alice, "ops", "@carol the ops plans", ["carol"]);
    await send(alice, "dm:alice:dave", "@erin not for you", ["erin"]);
    await send(alice, "team-red", "@bob the release is out", ["bob"]);
    await until(() => receiver.pushes.length > 0, 10_000, "a push");
    await outboxEmpty(server);
    assert.deepEqual(receiver.pushes.map((push) => push.path), ["/bob"], "carol, erin: nothing");
    assert.deepEqual(JSON.parse(await browsers.get("bob")!.decrypt(receiver.pushes[0].body)), {
      title: "alice",
      body: "@bob the release is out",
      room: "team-red",
      url: "/#team-red",
    });
  } finally {
    alice.close();
  }
});

Deno.test("push: a push job for a room the user may no longer read (not public now) sends nothing", async () => {
  await using receiver = await PushReceiver.start();
  // "team-red" is not public on this server: a job written while it was (by an earlier
  // configuration) must not show it. A job for a public room goes out, so the path works.
  await using server = await pushing({ publicRooms: ["general"] });
  const bob = await TestBrowser.create(`${receiver.url}/bob`);
  await server.store.addPushSubscription("bob", bob.subscription, 10);
  const message = (room: string, text: string): ChatMessage => ({
    id: "01M973VBWEVAZGW0HCFZ8DCE5F",
    room,
    user: { id: "alice", name: "alice" },
    message: text,
    createdAt: new Date().toISOString(),
    mentions: ["bob"],
  });
  await server.store.outbox.enqueueOutbox([
    pushDraft("bob", [message("team-red", "@bob closed now")]),
    pushDraft("bob", [message("general", "@bob open")]),
  ]);
  await until(() => receiver.pushes.length > 0, 10_000, "the open room's push");
  await outboxEmpty(server);
  assert.equal(receiver.pushes.length, 1);
  assert.equal(JSON.parse(await bob.decrypt(receiver.pushes[0].body)).body, "@bob open");
});

Deno.test("push: push:subscribe stores a well-formed subscription and refuses a bad one", async () => {
  await using server = await pushing();
  const carol = await ChatClient.join(server.url, "carol");
  try {
    const browser = await TestBrowser.create("https://push.example/send/abc");
    const emit = (event: string, payload: unknown) =>
      within(carol.socket.emitWithAck(event, payload), 5000, `${event} ack`);
    assert.deepEqual(await emit("push:subscribe", browser.subscription), { ok: true });
    assert.deepEqual(await server.store.pushSubscriptions("carol"), [browser.subscription]);
    const { keys } = browser.subscription;
    const bad = [
      null,
      "https://push.example/x",
      { ...browser.subscription, endpoint: "http://push.example/x" },
      { ...browser.subscription, endpoint: `https://push.example/${"x".repeat(1024)}` },
      { ...browser.subscription, keys: { ...keys, p256dh: keys.p256dh.slice(1) } },
      { ...browser.subscription, keys: { ...keys, auth: keys.auth + "AA" } },
      { endpoint: browser.subscription.endpoint },
    ];
    for (const payload of bad) {
      const answer = await emit("push:subscribe", payload);
      assert.equal(answer.ok, false, JSON.stringify(payload));
      assert.equal(answer.error.code, "invalid_payload");
    }
    const gone = { endpoint: browser.subscription.endpoint };
    assert.deepEqual(await emit("push:unsubscribe", gone), { ok: true });
    assert.deepEqual(await server.store.pushSubscriptions("carol"), []);
  } finally {
    carol.close();
  }
});

Deno.test("push: push:subscribe refuses an endpoint a push service never has (the server would POST to it)", async () => {
  // push:subscribe spends the join budget: enough for every case here.
  await using server = await pushing({ joinLimitPerMinute: 600 });
  const mallory = await ChatClient.join(server.url, "mallory");
  try {
    const browser = await TestBrowser.create("https://push.example/send/abc");
    const internal = [
      "https://127.0.0.1/x",
      "https://127.0.0.1:6379/x",
      "https://2130706433/x",
      "https://0x7f000001/x",
      "https://169.254.169.254/latest/meta-data",
      "https://10.0.0.1/x",
      "https://[::1]/x",
      "https://[::ffff:127.0.0.1]/x",
      "https://localhost/x",
      "https://localhost./x",
      "https://api.localhost/x",
      "https://metadata.google.internal/computeMetadata/v1/",
      "https://printer.local/x",
      "https://redis/x",
      "https://push.example:8443/x",
      "https://user:secret@push.example/x",
    ];
    for (const endpoint of internal) {
      const answer = await within(
        mallory.socket.emitWithAck("push:subscribe", { ...browser.subscription, endpoint }),
        5000,
        "ack",
      );
      assert.equal(answer.ok, false, endpoint);
      assert.equal(answer.error.code, "invalid_payload", endpoint);
    }
    assert.deepEqual(await server.store.pushSubscriptions("mallory"), []);
    const real = [
      "https://fcm.googleapis.com/fcm/send/abc:def",
      "https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
      "https://web.push.apple.com/QGuQ",
      "https://push.example:443/x",
    ];
    for (const endpoint of real) {
      const answer = await within(
        mallory.socket.emitWithAck("push:subscribe", { ...browser.subscription, endpoint }),
        5000,
        "ack",
      );
      assert.deepEqual(answer, { ok: true }, endpoint);
    }
  } finally {
    mallory.close();
  }
});

Deno.test("push: without VAPID keys push:subscribe is forbidden", async () => {
  await using server = await startChat();
  const dave = await ChatClient.join(server.url, "dave");
  try {
    const browser = await TestBrowser.create("https://push.example/send/abc");
    const answer = await within(
      dave.socket.emitWithAck("push:subscribe", browser.subscription),
      5000,
      "ack",
    );
    assert.equal(answer.ok, false);
    assert.equal(answer.error.code, "forbidden");
    assert.deepEqual(await server.store.pushSubscriptions("dave"), []);
  } finally {
    dave.close();
  }
});

/** A metric's value in the app's scrape (0 when absent). */
async function metric(server: TestServer, name: string): Promise<number> {
  const text = await server.app.metrics.render();
  const line = text.split("\n").find((line) => line.startsWith(name + " "));
  return line === undefined ? 0 : Number(line.split(" ")[1]);
}

Deno.test("push: 20 long DMs missed are pushed; the push jobs hold a bounded preview, never the messages", async () => {
  await using receiver = await PushReceiver.start();
  // Long enough for the burst to be stored before the first DM is due.
  await using server = await pushing({ missedAfterMs: 1500 });
  const bob = await TestBrowser.create(`${receiver.url}/bob`);
  await server.store.addPushSubscription("bob", bob.subscription, 10);
  // Every push job the sender enqueues, as it writes it.
  const jobs: string[] = [];
  const outbox = server.store.outbox;
  const settle = outbox.settleOutbox.bind(outbox);
  outbox.settleOutbox = (owner, settlements, then = []) => {
    jobs.push(...then.filter((draft) => draft.stream === "push:bob").map((draft) => draft.body));
    return settle(owner, settlements, then);
  };
  const alice = await ChatClient.join(server.url, "alice");
  try {
    // 80 KB as KV keeps them: more than one value holds.
    const burst = [];
    for (let n = 0; n < 20; n++) {
      burst.push(await send(alice, "dm:alice:bob", `${n} ${"語".repeat(1995)}`));
    }
    await untilStored(async () => {
      const shown = await Promise.all(
        receiver.pushes.map(async (push) => JSON.parse(await bob.decrypt(push.body))),
      );
      return shown.some((payload) => payload.body.startsWith("19 "));
    }, "the newest DM pushed");
    await outboxEmpty(server);
    assert.ok(jobs.length >= 1);
    for (const job of jobs) assert.ok(job.length < 1000, `a push job of ${job.length} units`);
    for (const push of receiver.pushes) {
      const payload = JSON.parse(await bob.decrypt(push.body));
      assert.equal(payload.title, "alice");
      assert.equal(payload.room, "dm:alice:bob");
      assert.ok([...payload.body].length <= 120 + " (+19 more)".length, payload.body);
      assert.match(payload.body, /^\d+ 語+… \(\+\d+ more\)$/);
    }
  } finally {
    alice.close();
  }
});

Deno.test("push: a push job written with whole messages (before an upgrade) is still pushed", async () => {
  await using receiver = await PushReceiver.start();
  await using server = await pushing();
  const bob = await TestBrowser.create(`${receiver.url}/bob`);
  await server.store.addPushSubscription("bob", bob.subscription, 10);
  const message = (text: string): ChatMessage => ({
    id: "01M973VBWEVAZGW0HCFZ8DCE5F",
    room: "dm:alice:bob",
    user: { id: "alice", name: "Alice" },
    message: text,
    createdAt: new Date().toISOString(),
  });
  await server.store.outbox.enqueueOutbox([{
    id: "evt_old_job",
    target: "",
    stream: "push:bob",
    body: JSON.stringify({ user: "bob", messages: [message("first"), message("second")] }),
  }]);
  await until(() => receiver.pushes.length > 0, 10_000, "the push");
  await outboxEmpty(server);
  assert.deepEqual(JSON.parse(await bob.decrypt(receiver.pushes[0].body)), {
    title: "Alice",
    body: "second (+1 more)",
    room: "dm:alice:bob",
    url: "/#dm%3Aalice%3Abob",
  });
});

Deno.test("push: an endpoint that leads inside is not sent to, and its subscription is removed", async () => {
  await using receiver = await PushReceiver.start();
  // The default: push services are on the internet. The receiver is on 127.0.0.1.
  await using server = await pushing({ pushPrivateEndpoints: false });
  const bob = await TestBrowser.create(`${receiver.url}/bob`);
  await server.store.addPushSubscription("bob", bob.subscription, 10);
  const alice = await ChatClient.join(server.url, "alice");
  try {
    await send(alice, "dm:alice:bob", "are you there?");
    await untilStored(
      async () => await metric(server, 'chat_push_notifications_total{outcome="refused"}') === 1,
      "the push refused",
    );
    await outboxEmpty(server);
    assert.equal(receiver.pushes.length, 0, "nothing reached the inside address");
    assert.deepEqual(await server.store.pushSubscriptions("bob"), []);
  } finally {
    alice.close();
  }
});

Deno.test("push: isPublicAddress takes only global unicast addresses", () => {
  const inside = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fd00::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "64:ff9b::7f00:1",
    "2001:db8::1",
    "not an address",
  ];
  for (const address of inside) assert.equal(isPublicAddress(address), false, address);
  for (const address of ["93.184.216.34", "8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8"]) {
    assert.equal(isPublicAddress(address), true, address);
  }
});

Deno.test("push: a DNS name is resolved before each push; one address inside is enough to refuse", async () => {
  const store = await openKvStore(":memory:");
  try {
    const records = new Map<string, string[]>([
      ["loopback.push.test", ["127.0.0.1"]],
      ["metadata.push.test", ["::ffff:169.254.169.254"]],
      ["mixed.push.test", ["93.184.216.34", "10.0.0.7"]],
      // A public address: passes the check, then fails to connect here (`.invalid` never resolves).
      ["public.push.invalid", ["93.184.216.34"]],
    ]);
    const outcomes: PushOutcome[] = [];
    const resolved: string[] = [];
    const keys = await vapidKeys();
    const settings = {
      publicKey: keys.vapidPublicKey!,
      privateKey: keys.vapidPrivateKey!,
      subject: keys.vapidSubject!,
    };
    const notifier = new PushNotifier(settings, {
      store,
      mayRead: () => Promise.resolve(true),
      observer: { pushAttempted: (outcome) => outcomes.push(outcome) },
      log: createLogger("error"),
      timeoutMs: 2000,
      resolve: (host) => {
        resolved.push(host);
        return Promise.resolve(records.get(host) ?? []);
      },
    });
    for (const host of records.keys()) {
      const browser = await TestBrowser.create(`https://${host}/push/${host}`);
      await store.addPushSubscription(`user-${host}`, browser.subscription, 10);
    }
    const message = (user: string): ChatMessage => ({
      id: "01M973VBWEVAZGW0HCFZ8DCE5F",
      room: `dm:alice:${user}`,
      user: { id: "alice", name: "Alice" },
      message: "hello",
      createdAt: new Date().toISOString(),
    });
    const entries = [...records.keys()].map((host, index) => ({
      ...pushDraft(`user-${host}`, [message(`user-${host}`)]),
      key: String(index),
      createdAt: Date.now(),
      attempts: 0,
      dueAt: Date.now(),
    }));
    await notifier.settle(entries);
    assert.deepEqual(resolved, [...records.keys()]);
    assert.deepEqual(outcomes, ["refused", "refused", "refused", "failed"]);
    for (const host of records.keys()) {
      const kept = (await store.pushSubscriptions(`user-${host}`)).length;
      assert.equal(kept, host === "public.push.invalid" ? 1 : 0, host);
    }
  } finally {
    store.close();
  }
});
