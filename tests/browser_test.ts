import { decodeJwt, SignJWT } from "jose";
import assert from "node:assert/strict";
import type { Browser, BrowserContext, Page } from "playwright-core";
import type { ChatSocket } from "../src/chat/mod.ts";
import { type Config, DEFAULTS } from "../src/config.ts";
import { type PageOptions, pageRoutes } from "../src/http/page.ts";
import { signToken } from "../src/auth/token.ts";
import {
  ChatClient,
  SECRET,
  startChat,
  TEST_AUTH,
  type TestServer,
  tokenFor,
} from "./helpers/chat_server.ts";

// Debian's `chromium-headless-shell`, the headless-only build Playwright itself runs headless
// Chromium on: the browser test costs a third of the CPU it does in the full `chromium` (11 against
// 31 CPU-seconds), which it falls back to. Without either these tests are skipped and say so.
const CHROMIUM_CANDIDATES = ["/usr/bin/chromium-headless-shell", "/usr/bin/chromium"];
const CHROMIUM = CHROMIUM_CANDIDATES.find((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
});
const hasChromium = CHROMIUM !== undefined;

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-quic",
  "--no-first-run",
  "--disable-component-update",
  "--disable-sync",
];

/** `UPDATE_SCREENSHOTS=1` writes docs/screenshot*.png from the accessibility test's chat. */
const UPDATE_SCREENSHOTS = Deno.env.get("UPDATE_SCREENSHOTS") === "1";

const XSS = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=1>";
/** The message list on screen: the visible room's log (the others are kept off the page). */
const LOG = "#scroller .messages";
const SENT = `${LOG} .message:not(.outgoing)`;

/** A chat server and the people on it, each in their own browser context; closed on dispose. */
interface BrowserChat extends AsyncDisposable {
  server: TestServer;
  /** Page errors and console errors (a CSP violation, say), by person. */
  problems: string[];
  /** A new browser context (its own sessionStorage) on the page, not logged in. */
  visit(name: string, hash?: string): Promise<Page>;
  /** `visit`, then dev login by name. */
  open(name: string, hash?: string): Promise<Page>;
  /** Someone on the stock socket.io client instead of a browser (quicker to start). */
  client(id: string, name: string): Promise<ChatClient>;
}

/** Chromium, launched once for every step; closed on dispose. */
async function launchBrowser(): Promise<Browser & AsyncDisposable> {
  // is-wsl (bundled in playwright-core) probes /proc/sys at import unless this is set, and Deno
  // allows /proc/sys only under --allow-all.
  Deno.env.set("__IS_WSL_TEST__", "1");
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({ executablePath: CHROMIUM!, args: CHROMIUM_ARGS });
  return Object.assign(browser, { [Symbol.asyncDispose]: () => browser.close() });
}

async function startBrowserChat(
  browser: Browser,
  overrides: Partial<Config> = {},
  devLogin: PageOptions["devLogin"] = { secret: SECRET },
  now?: () => number,
): Promise<BrowserChat> {
  // A reload is a new session anyway, and socket.io's recovery adapter starts an interval that
  // io.close() never clears, which the sanitizers report once a browser has connected.
  const config = { connectionRecoveryMs: 0, ...overrides };
  // The page is told the limits the chat enforces, from the same config.
  const routes = pageRoutes({ config: { ...DEFAULTS, ...config }, devLogin });
  const server = await startChat(config, { routes, now });
  const problems: string[] = [];
  const contexts: BrowserContext[] = [];
  const clients: ChatClient[] = [];
  const visit: BrowserChat["visit"] = async (name, hash = "") => {
    // A context per person: a tab in a shared one would be in the background, where Chromium
    // pauses animation frames and every click waits for them.
    const context = await browser.newContext({
      viewport: { width: 960, height: 600 },
      colorScheme: "light",
      locale: "en-GB",
      timezoneId: "UTC",
    });
    contexts.push(context);
    const page = await context.newPage();
    page.on("pageerror", (error) => problems.push(`${name}: ${error.message}`));
    page.on("console", (message) => {
      // The URL says which request failed, when one did ("Failed to load resource").
      const url = message.location().url;
      if (message.type() === "error") problems.push(`${name}: ${message.text()} ${url}`.trim());
    });
    await page.goto(`${server.url}/${hash}`);
    return page;
  };
  return {
    server,
    problems,
    visit,
    async open(name, hash) {
      const page = await visit(name, hash);
      await page.locator("#dev-name").fill(name);
      await page.getByRole("button", { name: "Join" }).click();
      await connected(page);
      return page;
    },
    async client(id, name) {
      const client = new ChatClient(server.url, { auth: { token: await tokenFor(id, name) } });
      clients.push(client);
      await client.waitFor(() => client.loaded !== undefined, `${name}'s history`);
      return client;
    },
    async [Symbol.asyncDispose]() {
      for (const client of clients) client.close();
      await Promise.all(contexts.map((context) => context.close()));
      await server.close();
    },
  };
}

function connected(page: Page): Promise<void> {
  return page.locator('#status[data-state="connected"]').waitFor();
}

async function send(page: Page, text: string): Promise<void> {
  await page.locator("#message-input").fill(text);
  await page.locator("#message-input").press("Enter");
}

function messageTexts(page: Page): Promise<string[]> {
  return page.locator(`${SENT} .text`).allTextContents();
}

async function waitForMessage(page: Page, text: string): Promise<void> {
  await page.locator(`${SENT} .text`, { hasText: text }).first().waitFor();
}

/** Resolves once nothing on the page matches `selector`. */
async function gone(page: Page, selector: string, timeout = 5000): Promise<void> {
  const deadline = Date.now() + timeout;
  const matches = page.locator(selector);
  while (await matches.count() > 0) {
    await matches.first().waitFor({ state: "detached", timeout: deadline - Date.now() });
  }
}

/** The id of the element with the focus. */
function focused(page: Page): Promise<string | undefined> {
  return page.evaluate("document.activeElement?.id");
}

/** The room links' names and badges, as "name" or "name 3". */
function sidebar(page: Page): Promise<string[]> {
  return page.locator(".room-link").evaluateAll((links) =>
    links.map((link) => {
      const name = link.querySelector(".room-name")?.textContent ?? "";
      const badge = link.querySelector(".badge")?.firstChild?.textContent;
      return badge ? `${name} ${badge}` : name;
    })
  );
}

/** The chat sockets of one user on the server. */
function socketsOf(server: TestServer, userId: string): ChatSocket[] {
  return [...server.app.io.of("/").sockets.values()].filter((socket) =>
    socket.data.identity?.user.id === userId
  );
}

/** The browser test's steps, in order: one Chromium for all, a server of its own for each. */
const STEPS: [string, (browser: Browser) => Promise<void>][] = [];
function step(name: string, fn: (browser: Browser) => Promise<void>): void {
  STEPS.push([name, fn]);
}

Deno.test({
  name: hasChromium
    ? "browser: the chat page in Chromium"
    : "browser: skipped because Chromium is not installed (apt-get install chromium-headless-shell)",
  ignore: !hasChromium,
  async fn(t) {
    await using browser = await launchBrowser();
    for (const [name, run] of STEPS) await t.step(name, () => run(browser));
  },
});

step(
  "two people chat, see each other, reload into history, and markup stays text",
  async (browser) => {
    // A short history, so the reload has older messages to fetch with "Load older".
    await using chat = await startBrowserChat(browser, { historyLimit: 3 });
    const alice = await chat.open("Alice");
    const bob = await chat.open("Bob");

    for (const page of [alice, bob]) {
      await page.locator("#online-count", { hasText: "2" }).waitFor();
      assert.deepEqual(await page.locator("#presence .name").allTextContents(), ["Alice", "Bob"]);
    }
    // Two authors, two colours.
    const avatars = await alice.locator("#presence .avatar").evaluateAll((nodes) =>
      nodes.map((node) => node.className)
    );
    assert.notEqual(avatars[0], avatars[1]);

    await send(alice, "Hi Bob! The server is up.");
    await waitForMessage(bob, "Hi Bob!");
    await send(bob, "Hello Alice. Details: https://example.com/docs?page=1.");
    await waitForMessage(alice, "Details:");
    await send(alice, "Try a reload: you stay logged in and the history comes back.");
    await waitForMessage(bob, "Try a reload");

    // A link is a link, opened apart from this page; the full stop stays text.
    const link = alice.locator(`${SENT} .text a`);
    assert.equal(await link.getAttribute("href"), "https://example.com/docs?page=1");
    assert.equal(await link.getAttribute("rel"), "noopener noreferrer");
    assert.equal(await link.getAttribute("target"), "_blank");
    assert.equal(
      await alice.locator(`${SENT} .text`).nth(1).textContent(),
      "Hello Alice. Details: https://example.com/docs?page=1.",
    );

    await bob.locator("#message-input").pressSequentially("Looks good", { delay: 20 });
    await alice.locator("#typing", { hasText: "Bob is typing…" }).waitFor();
    const last = alice.locator(SENT).last();
    assert.equal(await last.locator(".author").textContent(), "Alice");
    // Names and texts are isolated: a right-to-left override in one cannot flip its neighbours.
    assert.equal(await last.locator(".author").evaluate((node) => node.tagName), "BDI");
    assert.equal(await last.locator(".text").getAttribute("dir"), "auto");
    assert.equal(await alice.locator("#presence .name").first().evaluate((n) => n.tagName), "BDI");
    assert.match(
      (await alice.locator(`${LOG} .time`).first().textContent()) ?? "",
      /^\d{2}:\d{2}$/,
    );
    await bob.locator("#message-input").press("Enter");
    await waitForMessage(alice, "Looks good");
    await alice.locator("#typing", { hasText: /^$/ }).waitFor();

    await send(alice, "And one more thing:");
    await send(alice, XSS);
    await waitForMessage(bob, "window.__pwned");
    // Alice's two messages within a minute are one group: the second shows no name of its own.
    const [first, second] = await bob.locator(`${SENT} time`).evaluateAll((times) =>
      times.slice(-2).map((time) => time.getAttribute("datetime")!.slice(0, 16))
    );
    const grouped = first === second ? " continued" : "";
    const classes = await bob.locator(SENT).evaluateAll((items) => items.map((i) => i.className));
    assert.deepEqual(classes.slice(-3), ["message mine", "message", `message${grouped}`]);
    if (grouped) {
      const meta = await bob.locator(SENT).last().locator(".meta").boundingBox();
      assert.ok(meta !== null && meta.width <= 1, "the name is for screen readers only");
    }
    for (const page of [alice, bob]) {
      await waitForMessage(page, "window.__pwned");
      const shown = page.locator(`${SENT} .text`).last();
      assert.equal(await shown.textContent(), XSS);
      assert.equal(await page.locator(`${LOG} img, ${LOG} script`).count(), 0);
      assert.equal(await page.evaluate(() => "__pwned" in globalThis), false);
    }

    const before = await messageTexts(bob);
    assert.equal(before.length, 6);
    await bob.reload();
    await connected(bob);
    await bob.locator(SENT).nth(2).waitFor();
    assert.deepEqual(await messageTexts(bob), before.slice(-3));
    await bob.getByRole("button", { name: "Load older messages" }).click();
    await bob.locator(SENT).nth(before.length - 1).waitFor();
    assert.deepEqual(await messageTexts(bob), before);
    assert.equal(await bob.locator("#load-older").isHidden(), true);
    assert.equal(await bob.locator("#me bdi").textContent(), "Bob");
    assert.equal(await bob.locator("#me .dev-badge").textContent(), "dev");
    assert.equal(await bob.evaluate(() => "__pwned" in globalThis), false);
    await bob.locator("#online-count", { hasText: "2" }).waitFor();

    assert.deepEqual(chat.problems, []);
  },
);

step(
  "rooms: a sidebar with unread badges, the room in the hash, DMs from the presence list, and a catch-up of every room after a drop",
  async (browser) => {
    // The server's `rooms` budget is per user, and a reload starts the page's own copy afresh.
    await using chat = await startBrowserChat(browser, {
      publicRooms: ["general", "team-*"],
      roomsLimitPerMinute: 120,
    });
    const alice = await chat.open("Alice");
    const bob = await chat.open("Bob");
    await alice.locator("#online-count", { hasText: "2" }).waitFor();

    // A room by its hash: joined on the first visit, named in the sidebar and the title.
    await alice.evaluate(() => location.hash = "#team-red");
    await alice.locator("#room-title", { hasText: "#team-red" }).waitFor();
    assert.equal(await alice.title(), "#team-red · Chat");
    await send(alice, "Red team, assemble.");
    await waitForMessage(alice, "Red team");
    assert.deepEqual(await sidebar(alice), ["#general", "#team-red"]);
    assert.equal(
      await alice.locator(".room-link[aria-current=page]").textContent(),
      "#team-red",
    );

    await bob.evaluate(() => location.hash = "#team-red");
    await waitForMessage(bob, "Red team");
    await bob.locator(".room-link", { hasText: "#general" }).click();
    await bob.locator("#room-title", { hasText: "#general" }).waitFor();
    assert.equal(new URL(bob.url()).hash, "#general");
    // A message in a room not on screen: a badge, not a line in the room shown.
    await send(alice, "Anyone in red?");
    await bob.locator(".room-link", { hasText: "#team-red" }).locator(".badge", { hasText: "1" })
      .waitFor();
    assert.deepEqual(await sidebar(bob), ["#general", "#team-red 1"]);
    assert.deepEqual(await messageTexts(bob), []);
    await bob.locator(".room-link", { hasText: "#team-red" }).click();
    await waitForMessage(bob, "Anyone in red?");
    assert.deepEqual(await sidebar(bob), ["#general", "#team-red"]);

    // A room by the Browse / create control: Bob creates one, Alice finds it there and joins.
    await bob.getByRole("button", { name: "Browse / create room" }).click();
    await bob.locator("#room-results .room-result", { hasText: "#team-red" }).waitFor();
    await bob.locator("#room-search").fill("Team Blue");
    await bob.getByRole("button", { name: "Create #team-blue" }).click();
    await bob.locator("#room-title", { hasText: "#team-blue" }).waitFor();
    assert.equal(await focused(bob), "message-input");
    await send(bob, "Blue team starts here.");
    await waitForMessage(bob, "Blue team starts");
    await alice.getByRole("button", { name: "Browse / create room" }).click();
    assert.equal(await alice.locator("#room-dialog").getAttribute("open"), "");
    await alice.locator("#room-search").fill("team-b");
    await alice.locator(".room-result", { hasText: "#team-blue" }).click();
    await waitForMessage(alice, "Blue team starts");
    assert.deepEqual(await sidebar(alice), ["#general", "#team-blue", "#team-red"]);
    // A name outside PUBLIC_ROOMS cannot be created, and the dialog says which names can.
    await alice.getByRole("button", { name: "Browse / create room" }).click();
    await alice.locator("#room-search").fill("ops");
    await alice.locator("#room-rules", { hasText: "#ops is not a room you may create" }).waitFor();
    assert.match(await alice.locator("#room-rules").textContent() ?? "", /named team-…/);
    assert.equal(await alice.locator("#room-create").isHidden(), true);
    await alice.keyboard.press("Escape");
    // A refusal belongs to its room: said there, gone once the person moves on.
    await alice.evaluate(() => location.hash = "#ops");
    await alice.locator("#notice", { hasText: 'you may not use room "ops"' }).waitFor();
    await alice.locator(".room-link", { hasText: "#team-red" }).click();
    await alice.locator("#room-title", { hasText: "#team-red" }).waitFor();
    assert.equal(await alice.locator("#notice").isHidden(), true);
    assert.deepEqual(await sidebar(alice), ["#general", "#team-blue", "#team-red"]);

    // A reload stays in the room of the hash.
    await alice.reload();
    await connected(alice);
    await waitForMessage(alice, "Anyone in red?");
    assert.equal(await alice.locator("#room-title").textContent(), "#team-red");
    assert.deepEqual(await messageTexts(alice), ["Red team, assemble.", "Anyone in red?"]);

    // A DM from the presence list: dm:<a>:<b>, the two ids sorted.
    await bob.getByRole("button", { name: "Message Alice" }).click();
    await bob.locator("#room-title", { hasText: "Direct message with Alice" }).waitFor();
    assert.equal(decodeURIComponent(new URL(bob.url()).hash), "#dm:dev-alice:dev-bob");
    assert.equal(await focused(bob), "message-input");
    await send(bob, "Psst, Alice.");
    await waitForMessage(bob, "Psst");
    // Alice learns of the DM from the room list, asked again as messages arrive.
    await bob.locator(".room-link", { hasText: "#general" }).click();
    await send(bob, "Lunch at noon, everyone?");
    await alice.locator(".room-link", { hasText: "Bob" }).locator(".badge", { hasText: "1" })
      .waitFor({ timeout: 10_000 });
    assert.deepEqual(await sidebar(alice), ["#general 1", "#team-blue", "#team-red", "Bob 1"]);
    await alice.locator(".room-link", { hasText: "Bob" }).click();
    await waitForMessage(alice, "Psst");
    assert.deepEqual(await sidebar(alice), ["#general 1", "#team-blue", "#team-red", "Bob"]);
    // The read marker is the newest message of the room on screen.
    const psst = await alice.locator(SENT).last().getAttribute("data-id");
    for (let tries = 0; tries < 50; tries++) {
      const [marker] = await chat.server.store.readMarkers("dev-alice", ["dm:dev-alice:dev-bob"]);
      if (marker === psst) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.deepEqual(
      await chat.server.store.readMarkers("dev-alice", ["dm:dev-alice:dev-bob"]),
      [psst],
    );

    // Dropped by the server: people greyed, a message fails at once and waits for Retry.
    for (const socket of socketsOf(chat.server, "dev-alice")) socket.disconnect(true);
    await alice.locator('#status[data-state="disconnected"]').waitFor();
    assert.equal(await alice.locator("#people").getAttribute("class"), "people stale");
    assert.equal(await alice.locator("#presence-stale").isVisible(), true);
    // Offline, a message waits for the connection, however long, and says so once.
    await send(alice, "Are you still there?");
    await alice.locator(`${LOG} .outgoing .delivery`, { hasText: "Waiting for the connection" })
      .waitFor();
    await alice.locator("#outbox-status", { hasText: "1 message will be sent when" }).waitFor();

    // Missed meanwhile, in three rooms.
    await send(bob, "While you were away: general.");
    await bob.locator(".room-link", { hasText: "#team-red" }).click();
    await send(bob, "While you were away: red.");
    await bob.locator(".room-link", { hasText: "Alice" }).click();
    await send(bob, "While you were away: just us.");
    await waitForMessage(bob, "just us");

    await alice.getByRole("button", { name: "Reconnect" }).click();
    await connected(alice);
    const [socket] = socketsOf(chat.server, "dev-alice");
    assert.deepEqual(Object.keys(socket.handshake.auth.lastIds).sort(), [
      "dm:dev-alice:dev-bob",
      "general",
      "team-red",
    ]);
    await waitForMessage(alice, "just us");
    await waitForMessage(alice, "Are you still there?");
    assert.equal(await alice.locator("#outbox-status").isHidden(), true);
    await waitForMessage(bob, "Are you still there?");
    assert.equal(await alice.locator(`${LOG} .outgoing`).count(), 0);
    assert.deepEqual(await messageTexts(alice), [
      "Psst, Alice.",
      "While you were away: just us.",
      "Are you still there?",
    ]);
    assert.deepEqual(await sidebar(alice), ["#general 2", "#team-blue", "#team-red 1", "Bob"]);
    await alice.locator(".room-link", { hasText: "#team-red" }).click();
    await waitForMessage(alice, "While you were away: red.");
    assert.deepEqual(await messageTexts(alice), [
      "Red team, assemble.",
      "Anyone in red?",
      "While you were away: red.",
    ]);
    assert.equal(await alice.locator("#people").getAttribute("class"), "people");

    assert.deepEqual(chat.problems, []);
  },
);

step(
  "sending: a burst of 23 goes in order, the 3 over the rate limit wait behind one line, survive a reload and go by themselves; the box follows the server's limit",
  async (browser) => {
    // The chat's clock stands still while the burst is typed, so no budget refills however slowly
    // the keys go in, and runs on from there for the retries.
    let pausedAt: number | undefined;
    let behind = 0;
    const now = () => pausedAt ?? Date.now() - behind;
    await using chat = await startBrowserChat(
      browser,
      { maxMessageLength: 120 },
      { secret: SECRET },
      now,
    );
    const dora = await chat.open("Dora");
    const erin = await chat.client("erin", "Erin");
    const burst = Array.from({ length: 23 }, (_, i) => `Burst ${i + 1}`);
    const input = dora.locator("#message-input");
    await input.focus();
    pausedAt = now();
    for (const text of burst) {
      await dora.keyboard.insertText(text);
      await dora.keyboard.press("Enter");
    }
    // The server takes 20 at once; the other 3 wait behind one line, not a red card each.
    const status = dora.locator("#outbox-status", { hasText: "3 messages waiting" });
    await status.waitFor();
    assert.match(await status.textContent() ?? "", /sending too fast\. Sending again in \d+ s/);
    await waitForMessage(dora, "Burst 20");
    assert.equal(await dora.locator(`${LOG} .failed`).count(), 0);
    assert.deepEqual(await dora.locator(`${LOG} .outgoing .text`).allTextContents(), [
      "Burst 21",
      "Burst 22",
      "Burst 23",
    ]);
    // Retry now asks again at once: the clock still stands, so they go on waiting.
    await dora.getByRole("button", { name: "Retry now" }).click();
    await status.waitFor();
    // A reload keeps them: they come back from the browser's storage, still waiting.
    await dora.reload();
    await connected(dora);
    await dora.locator(`${LOG} .outgoing`).nth(2).waitFor();
    assert.deepEqual(await dora.locator(`${LOG} .outgoing .text`).allTextContents(), [
      "Burst 21",
      "Burst 22",
      "Burst 23",
    ]);
    await status.waitFor();
    // Once the server's wait is over they go by themselves, in order, each stored once.
    behind = Date.now() - pausedAt;
    pausedAt = undefined;
    await gone(dora, `${LOG} .outgoing`, 20_000);
    assert.deepEqual(await messageTexts(dora), burst);
    await erin.waitFor(() => erin.live.length === burst.length, "the whole burst");
    assert.deepEqual(erin.live.map((message) => message.message), burst);
    assert.equal(await status.isHidden(), true);
    assert.equal(await dora.evaluate("localStorage.length"), 0);

    // The counter counts against the server's limit, and the page refuses what it would.
    await input.fill("x".repeat(120));
    assert.equal(await dora.locator("#counter").textContent(), "Characters: 120 / 120");
    await input.fill("é".repeat(121));
    assert.equal(await dora.locator("#counter").getAttribute("class"), "counter over");
    assert.equal(await input.getAttribute("aria-invalid"), "true");
    await input.press("Enter");
    await dora.locator("#notice", { hasText: "the limit is 120" }).waitFor();
    assert.equal(await input.inputValue(), "é".repeat(121));
    assert.equal(await dora.locator(`${LOG} .outgoing`).count(), 0);

    // The box grows with its text, up to a point.
    await input.fill("one line");
    const oneLine = (await input.boundingBox())!.height;
    await input.fill("one\ntwo\nthree\nfour");
    const fourLines = (await input.boundingBox())!.height;
    assert.ok(fourLines > oneLine * 2, `${fourLines} > 2 × ${oneLine}`);
    await input.fill("");

    // Scrolled up, new messages wait behind a button and count in the title.
    await dora.locator("#scroller").evaluate((scroller) => scroller.scrollTop = 0);
    await erin.send({ message: "Look down, Dora." });
    await dora.getByRole("button", { name: "1 new message" }).waitFor();
    assert.equal(await dora.title(), "(1) #general · Chat");
    await dora.getByRole("button", { name: "1 new message" }).click();
    assert.equal(await dora.title(), "#general · Chat");
    assert.equal(await dora.locator("#new-messages").isHidden(), true);
    assert.equal(await focused(dora), "message-input");

    assert.deepEqual(chat.problems, []);
  },
);

step(
  "login: keyboard only from name to message; a dev token is renewed before it expires; a rejected token stays in its box",
  async (browser) => {
    // Tokens live 4 s (3–4 s, as `exp` is in whole seconds) and the server forgives no clock skew:
    // unrenewed, the connection ends within 4 s. The page renews at half the time left, which
    // leaves a busy machine over a second for the renewal's round trips.
    await using chat = await startBrowserChat(browser, {
      auth: { ...TEST_AUTH, clockToleranceSeconds: 0 },
      refreshLimitPerMinute: 600,
    }, { secret: SECRET, ttlSeconds: 4 });
    const kim = await chat.visit("Kim");
    await kim.locator("#dev-name").waitFor();
    assert.equal(await focused(kim), "dev-name");
    await kim.keyboard.type("Kim");
    await kim.keyboard.press("Tab");
    assert.equal(await kim.evaluate("document.activeElement.textContent"), "Join");
    await kim.keyboard.press("Enter");
    await connected(kim);
    assert.equal(await focused(kim), "message-input");
    await kim.keyboard.type("Typed, not clicked.");
    await kim.keyboard.press("Tab");
    assert.equal(await focused(kim), "send");
    await kim.keyboard.press("Enter");
    await waitForMessage(kim, "Typed, not clicked.");
    const [socket] = socketsOf(chat.server, "dev-kim");
    const firstExpiry = decodeJwt(socket.handshake.auth.token).exp! * 1000;

    assert.equal(await kim.locator("#me .dev-badge").textContent(), "dev");

    // One login card: the token form is folded under dev login, and says what is wrong.
    const mallory = await chat.visit("Mallory");
    await mallory.locator("#dev-name").waitFor();
    assert.equal(await mallory.locator("#token-input").isVisible(), false);
    await mallory.getByText("I have a token").click();
    const other = await signToken("another-secret-that-is-long-enough", { sub: "mallory" });
    const expired = await new SignJWT({}).setProtectedHeader({ alg: "HS256" })
      .setSubject("mallory").setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(new TextEncoder().encode(SECRET));
    const problems: [string, string][] = [
      ["not-a-token", "That is not a token"],
      [other, "not signed by this server"],
      [expired, "This token has expired"],
    ];
    for (const [token, problem] of problems) {
      await mallory.locator("#token-input").fill(token);
      await mallory.locator("#token-input").press("Enter");
      await mallory.locator("#login-error", { hasText: problem }).waitFor();
      assert.equal(await mallory.locator("#token-input").inputValue(), token);
      assert.equal(await focused(mallory), "token-input");
      assert.equal(await mallory.locator("#chat").isHidden(), true);
    }
    // A token pasted with its "Bearer " is taken as the token.
    await mallory.locator("#token-input").fill(`Bearer ${await tokenFor("mallory", "Mallory")}`);
    await mallory.locator("#token-input").press("Enter");
    await connected(mallory);
    assert.equal(await mallory.locator("#me").textContent(), "Signed in as Mallory");

    // Past the first token's expiry the same connection still sends: auth:refresh moved it on.
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, firstExpiry + 500 - Date.now()))
    );
    await send(kim, "Still here.");
    await waitForMessage(kim, "Still here.");
    assert.equal(socket.connected, true);
    assert.ok(socket.data.identity.expiresAt! > firstExpiry, "the token was renewed");
    assert.equal(await kim.locator("#status").getAttribute("data-state"), "connected");

    assert.deepEqual(chat.problems, []);
  },
);

/** What axe-core finds on the page: only the serious and critical, with where. */
async function seriousViolations(page: Page, axeSource: string): Promise<string[]> {
  // The page's CSP allows no inline script; evaluating through the DevTools protocol is allowed.
  if (!await page.evaluate("'axe' in globalThis")) await page.evaluate(axeSource);
  const violations = await page.evaluate(`axe.run(document).then((results) =>
    results.violations.map(({ id, impact, nodes }) => ({
      id, impact, where: nodes.map((node) => node.target.join(" ")),
    })))`) as { id: string; impact: string; where: string[] }[];
  return violations.filter(({ impact }) => impact === "serious" || impact === "critical")
    .map(({ id, impact, where }) => `${impact} ${id}: ${where.join(", ")}`);
}

/** WCAG's contrast ratio of two `rgb(…)` colours. */
function contrast(a: string, b: string): number {
  const luminance = (color: string) => {
    const [r, g, b] = color.match(/\d+(\.\d+)?/g)!.slice(0, 3).map((part) => {
      const channel = Number(part) / 255;
      return channel <= 0.03928 ? channel / 12.92 : ((channel + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (light + 0.05) / (dark + 0.05);
}

/** Each author colour as drawn: name on a message and on one's own, initial on the avatar. */
function authorColours(page: Page): Promise<
  { hue: number; name: string; message: string; mine: string; avatar: string; initial: string }[]
> {
  return page.evaluate(`(() => {
    const log = document.querySelector("#scroller .messages");
    const colours = [];
    for (let hue = 0; hue < 8; hue++) {
      const message = document.createElement("article");
      message.className = "message";
      const mine = document.createElement("article");
      mine.className = "message mine";
      const name = document.createElement("bdi");
      name.className = "author hue-" + hue;
      const avatar = document.createElement("span");
      avatar.className = "avatar hue-" + hue;
      message.append(name, avatar);
      log.append(message, mine);
      const style = (node) => getComputedStyle(node);
      colours.push({
        hue,
        name: style(name).color,
        message: style(message).backgroundColor,
        mine: style(mine).backgroundColor,
        avatar: style(avatar).backgroundColor,
        initial: style(avatar).color,
      });
      message.remove();
      mine.remove();
    }
    return colours;
  })()`);
}

step(
  "accessibility: no serious or critical axe-core finding on the login and chat views in light and dark; author colours reach 4.5:1",
  async (browser) => {
    await using chat = await startBrowserChat(browser, {
      publicRooms: ["general", "team-*"],
      roomsLimitPerMinute: 120,
    });
    const { default: axe } = await import("axe-core");
    const ada = await chat.visit("Ada", "#team-red");
    await ada.locator("#dev-name").waitFor();
    for (const colorScheme of ["light", "dark"] as const) {
      await ada.emulateMedia({ colorScheme });
      assert.deepEqual(await seriousViolations(ada, axe.source), [], `login, ${colorScheme}`);
    }
    await ada.emulateMedia({ colorScheme: "light" });
    await ada.locator("#dev-name").fill("Ada");
    await ada.locator("#dev-name").press("Enter");
    await connected(ada);
    await ada.locator("#room-title", { hasText: "#team-red" }).waitFor();
    // The messages are a log a screen reader reads out as they come, without interrupting.
    const log = ada.getByRole("log", { name: "Messages in #team-red" });
    assert.equal(await log.getAttribute("aria-live"), "polite");

    // A conversation with a bit of everything: authors, a group, a link, badges, a DM, typing.
    const grace = await chat.client("grace", "Grace");
    const linus = await chat.client("linus", "Linus");
    await ada.locator(".room-link", { hasText: "#general" }).click();
    await ada.locator("#room-title", { hasText: "#general" }).waitFor();
    for (const room of ["team-red", "dm:dev-ada:grace"]) {
      assert.equal((await grace.socket.emitWithAck("join", { room })).ok, true);
    }
    await grace.send({ room: "team-red", message: "Red team: stand-up moved to 10:30." });
    await grace.send({ room: "team-red", message: "Bring the deploy checklist." });
    await grace.send({ room: "dm:dev-ada:grace", message: "Got a minute after lunch?" });
    await grace.send({ message: "Morning! Release notes: https://example.com/releases/4.2" });
    await linus.send({ message: "Thanks. Reading them now." });
    await linus.send({ message: "The migration section looks right to me." });
    await send(ada, "Great. I'll merge once CI is green.");
    await waitForMessage(ada, "merge once CI");
    await ada.locator(".room-link", { hasText: "Grace" }).waitFor();
    linus.socket.emit("typing", { typing: true });
    await ada.locator("#typing", { hasText: "Linus is typing…" }).waitFor();
    assert.deepEqual(await sidebar(ada), ["#general", "#team-red 2", "Grace 1"]);

    for (const colorScheme of ["light", "dark"] as const) {
      await ada.emulateMedia({ colorScheme });
      assert.deepEqual(await seriousViolations(ada, axe.source), [], `chat, ${colorScheme}`);
      const colours = await authorColours(ada);
      assert.equal(new Set(colours.map(({ name }) => name)).size, 8, "eight distinct colours");
      for (const { hue, name, message, mine, avatar, initial } of colours) {
        for (const background of [message, mine]) {
          const ratio = contrast(name, background);
          assert.ok(ratio >= 4.5, `hue ${hue} ${colorScheme}: ${name} on ${background} ${ratio}`);
        }
        assert.ok(contrast(initial, avatar) >= 4.5, `hue ${hue} avatar, ${colorScheme}`);
      }
      if (UPDATE_SCREENSHOTS) {
        const suffix = colorScheme === "light" ? "" : "-dark";
        await ada.screenshot({ path: `docs/screenshot${suffix}.png` });
      }
      // The room dialog, by keyboard: opened, searched, closed with Escape.
      await ada.getByRole("button", { name: "Browse / create room" }).focus();
      await ada.keyboard.press("Enter");
      await ada.locator(".room-result", { hasText: "#team-red" }).waitFor();
      assert.equal(await focused(ada), "room-search");
      assert.deepEqual(await seriousViolations(ada, axe.source), [], `dialog, ${colorScheme}`);
      await ada.keyboard.press("Escape");
      assert.equal(await ada.locator("#room-dialog").getAttribute("open"), null);
    }

    // On a phone the rooms and people become strips above the messages; nothing runs off.
    await ada.emulateMedia({ colorScheme: "light" });
    await ada.setViewportSize({ width: 390, height: 844 });
    assert.equal(await ada.evaluate("document.documentElement.scrollWidth"), 390);
    assert.equal(await ada.locator("#message-input").isVisible(), true);
    if (UPDATE_SCREENSHOTS) await ada.screenshot({ path: "docs/screenshot-phone.png" });

    assert.deepEqual(chat.problems, []);
  },
);

/** Where an element is on screen, or undefined when it is not shown. */
function box(page: Page, selector: string) {
  return page.locator(selector).first().boundingBox();
}

/** Where the text of the first element matching `selector` starts, in whole pixels. */
function textLeft(page: Page, selector: string): Promise<number> {
  return page.evaluate(`(() => {
    const range = document.createRange();
    range.selectNodeContents(document.querySelector(${JSON.stringify(selector)}));
    return Math.round(range.getBoundingClientRect().x);
  })()`);
}

step(
  "layout: after 60 messages the document never scrolls at desktop and phone sizes, light and dark; only the panes do",
  async (browser) => {
    await using chat = await startBrowserChat(browser, {
      rateLimitBurst: 100,
      apiKey: "layout-test-api-key",
    });
    const erin = await chat.client("erin", "Erin");
    const dora = await chat.open("Dora");
    // Two in a row from one author, again and again: the groups that once pushed the page down.
    for (let i = 1; i <= 60; i++) {
      const ack = await erin.send({ message: `Message ${i}: ${"words ".repeat(i % 7)}` });
      assert.ok(ack.ok);
    }
    // A message from the server API is the system's, and looks it.
    const published = await fetch(`${chat.server.url}/api/v1/rooms/general/messages`, {
      method: "POST",
      headers: {
        Authorization: "Bearer layout-test-api-key",
        "Content-Type": "application/json",
      },
      body: JSON.stringify({ message: "Maintenance at noon" }),
    });
    assert.equal(published.status, 201);
    await published.body?.cancel();
    await waitForMessage(dora, "Maintenance at noon");
    await waitForMessage(dora, "Message 60");
    assert.equal(await dora.locator(`${SENT}.system`).count(), 1);
    assert.equal(await dora.locator(`${SENT}.system .author`).textContent(), "System");

    const sizes = [{ width: 1280, height: 800 }, { width: 390, height: 844 }];
    for (const size of sizes) {
      for (const colorScheme of ["light", "dark"] as const) {
        const where = `${size.width}×${size.height} ${colorScheme}`;
        await dora.setViewportSize(size);
        await dora.emulateMedia({ colorScheme });
        const page = await dora.evaluate(`({
          width: document.documentElement.scrollWidth,
          height: document.documentElement.scrollHeight,
        })`);
        assert.deepEqual(page, size, `${where}: the document is the viewport`);
        // Scrolling over any pane leaves the header and the composer where they are.
        for (const pane of ["#scroller", ".rooms", "#people"]) {
          const paneBox = await box(dora, pane);
          assert.ok(paneBox, `${where}: ${pane} is shown`);
          await dora.mouse.move(paneBox.x + 5, paneBox.y + 5);
          await dora.mouse.wheel(0, -2000);
          await dora.mouse.wheel(0, 2000);
          assert.equal(await dora.evaluate("scrollY"), 0, `${where}: ${pane}`);
          assert.equal((await box(dora, ".bar"))?.y, 0, `${where}: ${pane}`);
          const composer = await box(dora, "#composer");
          assert.ok(composer && composer.y + composer.height <= size.height + 0.5, where);
        }
        // The messages scroll within their pane.
        const scroller = await dora.locator("#scroller").evaluate((node) => ({
          scrollHeight: node.scrollHeight,
          clientHeight: node.clientHeight,
        }));
        assert.ok(scroller.scrollHeight > scroller.clientHeight, `${where}: the log scrolls`);
        if (size.width > 600) {
          // The sidebar's text lines up with the header's, and Online names look like buttons.
          const title = await textLeft(dora, ".bar h1");
          assert.equal(await textLeft(dora, ".rooms h2"), title, `${where}: sidebar heading`);
          assert.equal(await textLeft(dora, ".room-name"), title, `${where}: room name`);
          assert.equal(await dora.locator("#presence .dm-action").first().isVisible(), true);
        } else {
          // On a phone the room shows once, in the strip, not again as a heading.
          const heading = await box(dora, "#room-title");
          assert.ok(heading && heading.width <= 1, `${where}: the room's heading is not shown`);
          // The browse button shows its "+" only, leaving the strip to the rooms and DMs, and is
          // still named for what it does.
          const browse = dora.getByRole("button", { name: "Browse / create room" });
          const browseBox = await browse.boundingBox();
          assert.ok(
            browseBox && browseBox.width <= 48,
            `${where}: browse is ${browseBox?.width} px`,
          );
        }
        type Styles = { getComputedStyle(node: unknown): { cursor: string } };
        const cursor = await dora.locator("#presence .person-button").first()
          .evaluate((node) => (globalThis as unknown as Styles).getComputedStyle(node).cursor);
        assert.equal(cursor, "pointer");
      }
    }
    assert.deepEqual(chat.problems, []);
  },
);

step("edits: an author edits and deletes a message; the other page shows both", async (browser) => {
  await using chat = await startBrowserChat(browser);
  const alice = await chat.open("Alice");
  const bob = await chat.open("Bob");
  await send(alice, "helo everyone");
  await waitForMessage(bob, "helo everyone");
  alice.once("dialog", (dialog) => dialog.accept("hello everyone"));
  await alice.getByRole("button", { name: "Edit this message" }).click();
  await waitForMessage(bob, "hello everyone");
  await bob.locator(".message .edited", { hasText: "(edited)" }).waitFor();
  alice.once("dialog", (dialog) => dialog.accept());
  await alice.getByRole("button", { name: "Delete this message" }).click();
  await bob.locator(".message.deleted .removed").waitFor();
  assert.ok(!(await messageTexts(bob)).includes("hello everyone"), "the text is gone");
  assert.equal(await bob.getByRole("button", { name: "Delete this message" }).count(), 0);
  // A reload brings the tombstone from the history.
  await bob.reload();
  await connected(bob);
  await bob.locator(".message.deleted .removed").waitFor();
});

step(
  "presence: above MAX_LISTED_USERS the Online list shows the count and says it is a sample; under 90 % of it the list is whole again",
  async (browser) => {
    await using chat = await startBrowserChat(browser, { maxListedUsers: 3 });
    const alice = await chat.open("Alice");
    const others = [];
    for (const name of ["Bob", "Carol", "Dan"]) others.push(await chat.client(name, name));
    await alice.locator("#online-count", { hasText: "4" }).waitFor();
    await alice.locator("#presence-sample").waitFor();
    // A newcomer gets a sample of three, and the count of everyone.
    const erin = await chat.open("Erin");
    await erin.locator("#online-count", { hasText: "5" }).waitFor();
    await erin.locator("#presence-sample").waitFor();
    assert.ok((await erin.locator("#presence .name").count()) <= 3);
    await alice.locator("#online-count", { hasText: "5" }).waitFor();
    // Down to two (90 % of three): everyone named again, and changes follow.
    for (const client of others) client.close();
    await alice.locator("#online-count", { hasText: "2" }).waitFor();
    await alice.locator("#presence-sample").waitFor({ state: "hidden" });
    assert.deepEqual(await alice.locator("#presence .name").allTextContents(), ["Alice", "Erin"]);
    await chat.client("Bob", "Bob");
    await alice.locator("#online-count", { hasText: "3" }).waitFor();
    assert.deepEqual(await alice.locator("#presence .name").allTextContents(), [
      "Alice",
      "Bob",
      "Erin",
    ]);
    assert.deepEqual(chat.problems, []);
  },
);

step(
  "conversation: react from the picker, reply with an @ mention, open the thread, see a receipt; axe-clean in light and dark",
  async (browser) => {
    await using chat = await startBrowserChat(browser);
    const { default: axe } = await import("axe-core");
    const alice = await chat.open("Alice");
    const bob = await chat.open("Bob");
    await send(alice, "Lunch at noon?");
    await waitForMessage(bob, "Lunch at noon?");
    const asked = bob.locator(SENT, { hasText: "Lunch at noon?" }).first();

    // A reaction from the picker, by keyboard.
    await asked.getByRole("button", { name: "Add a reaction" }).focus();
    await bob.keyboard.press("Enter");
    const thumbs = asked.getByRole("button", { name: "React with 👍" });
    await thumbs.waitFor();
    await bob.keyboard.press("Enter");
    await alice.getByRole("button", { name: "👍 1 reaction: press to add yours" }).waitFor();
    await bob.getByRole("button", { name: "👍 1 reaction, yours: press to take it back" })
      .waitFor();

    // A reply quoting the message, mentioning Alice picked from the @ list.
    await asked.getByRole("button", { name: "Reply to this message" }).click();
    await bob.locator("#reply-bar", { hasText: "Replying to Alice" }).waitFor();
    assert.equal(await focused(bob), "message-input");
    await bob.locator("#message-input").pressSequentially("@Al");
    await bob.getByRole("option", { name: "Alice" }).waitFor();
    await bob.keyboard.press("Enter");
    await bob.locator("#message-input").pressSequentially("yes!");
    await bob.keyboard.press("Enter");
    const reply = alice.locator(`${SENT}.mentions-me`, { hasText: "@Alice yes!" });
    await reply.waitFor();
    await reply.locator(".quote", { hasText: "Lunch at noon?" }).waitFor();
    assert.equal(await bob.locator("#reply-bar").isHidden(), true);

    // Bob has read Alice's question: she sees it under her message.
    await alice.locator(`${LOG} .seen`, { hasText: "Seen by 1" }).waitFor();

    // The thread, from the message's reply count.
    await alice.getByRole("button", { name: "1 reply: open the thread" }).click();
    await alice.locator("#thread-replies .text", { hasText: "@Alice yes!" }).waitFor();
    for (const colorScheme of ["light", "dark"] as const) {
      await alice.emulateMedia({ colorScheme });
      assert.deepEqual(await seriousViolations(alice, axe.source), [], `thread, ${colorScheme}`);
    }
    await alice.keyboard.press("Escape");
    await alice.locator("#thread-dialog[open]").waitFor({ state: "detached" });
    await asked.getByRole("button", { name: "Add a reaction" }).click();
    for (const colorScheme of ["light", "dark"] as const) {
      await alice.emulateMedia({ colorScheme });
      await bob.emulateMedia({ colorScheme });
      assert.deepEqual(await seriousViolations(alice, axe.source), [], `chat, ${colorScheme}`);
      assert.deepEqual(await seriousViolations(bob, axe.source), [], `picker, ${colorScheme}`);
    }
    assert.deepEqual(chat.problems, []);
  },
);
