import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import { pageRoutes } from "../src/page.ts";
import { SECRET, startChat } from "./helpers/chat_server.ts";

// Debian's chromium (`apt-get install chromium`); without it this test is skipped and says so.
const CHROMIUM = "/usr/bin/chromium";
const hasChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();

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

const XSS = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=1>";

/**
 * Opens the chat in a fresh browser context (its own sessionStorage) and logs in by name; page
 * errors and console errors (a CSP violation, say) are collected in `problems`.
 */
async function joinAs(
  browser: Browser,
  url: string,
  name: string,
  problems: string[],
): Promise<Page> {
  const context = await browser.newContext({
    viewport: { width: 960, height: 600 },
    colorScheme: "light",
    locale: "en-GB",
    timezoneId: "UTC",
  });
  const page = await context.newPage();
  page.on("pageerror", (error) => problems.push(`${name}: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`${name}: ${message.text()}`);
  });
  await page.goto(url);
  await page.locator("#dev-name").fill(name);
  await page.getByRole("button", { name: "Join" }).click();
  await page.locator('#status[data-state="connected"]').waitFor();
  return page;
}

async function send(page: Page, text: string): Promise<void> {
  await page.locator("#message-input").fill(text);
  await page.locator("#message-input").press("Enter");
}

function messageTexts(page: Page): Promise<string[]> {
  return page.locator("#messages .message:not(.pending) .text").allTextContents();
}

async function waitForMessage(page: Page, text: string): Promise<void> {
  await page.locator("#messages .message:not(.pending) .text", { hasText: text }).first()
    .waitFor();
}

Deno.test({
  name: hasChromium
    ? "browser: two people chat, see each other, reload into history, and markup stays text"
    : `browser: skipped because ${CHROMIUM} is not installed (apt-get install chromium)`,
  ignore: !hasChromium,
  async fn() {
    // A short history, so the reload has older messages to fetch with "Load older". Recovery is
    // off: a reload is a new session anyway, and socket.io's recovery adapter starts an interval
    // that io.close() never clears, which the sanitizers report once a browser has connected.
    const server = await startChat({ historyLimit: 3, connectionRecoveryMs: 0 }, {
      routes: pageRoutes({ devLogin: { secret: SECRET } }),
    });
    let browser: Browser | undefined;
    const problems: string[] = [];
    try {
      // is-wsl (bundled in playwright-core) probes /proc/sys at import unless this is set, and Deno
      // allows /proc/sys only under --allow-all.
      Deno.env.set("__IS_WSL_TEST__", "1");
      const { chromium } = await import("playwright-core");
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
      const alice = await joinAs(browser, server.url, "Alice", problems);
      const bob = await joinAs(browser, server.url, "Bob", problems);

      for (const page of [alice, bob]) {
        await page.locator("#online-count", { hasText: "2" }).waitFor();
        assert.deepEqual(await page.locator("#presence .name").allTextContents(), [
          "Alice",
          "Bob",
        ]);
      }

      await send(alice, "Hi Bob! The server is up.");
      await waitForMessage(bob, "Hi Bob!");
      await send(bob, "Hello Alice. History, presence and typing all work here.");
      await waitForMessage(alice, "History, presence");
      await send(alice, "Try a reload: you stay logged in and the history comes back.");
      await waitForMessage(bob, "Try a reload");

      await bob.locator("#message-input").pressSequentially("Looks good", { delay: 20 });
      await alice.locator("#typing", { hasText: "Bob is typing…" }).waitFor();
      assert.equal(
        await alice.locator("#messages .message").last().locator(".author").textContent(),
        "Alice",
      );
      // Names and texts are isolated: a right-to-left override in one cannot flip its neighbours.
      const last = alice.locator("#messages .message").last();
      assert.equal(await last.locator(".author").evaluate((node) => node.tagName), "BDI");
      assert.equal(await last.locator(".text").getAttribute("dir"), "auto");
      assert.equal(
        await alice.locator("#presence .name").first().evaluate((n) => n.tagName),
        "BDI",
      );
      assert.match(
        (await alice.locator("#messages .time").first().textContent()) ?? "",
        /^\d{2}:\d{2}$/,
      );
      if (Deno.env.get("UPDATE_SCREENSHOT") === "1") {
        await alice.screenshot({ path: "docs/screenshot.png" });
      }
      await bob.locator("#message-input").press("Enter");
      await waitForMessage(alice, "Looks good");
      await alice.locator("#typing", { hasText: /^$/ }).waitFor();

      await send(alice, XSS);
      await waitForMessage(bob, "window.__pwned");
      for (const page of [alice, bob]) {
        const shown = page.locator("#messages .message:not(.pending) .text").last();
        assert.equal(await shown.textContent(), XSS);
        assert.equal(await page.locator("#messages img, #messages script").count(), 0);
        assert.equal(await page.evaluate(() => "__pwned" in globalThis), false);
      }

      const before = await messageTexts(bob);
      assert.equal(before.length, 5);
      await bob.reload();
      await bob.locator('#status[data-state="connected"]').waitFor();
      await bob.locator("#messages .message").nth(2).waitFor();
      assert.deepEqual(await messageTexts(bob), before.slice(-3));
      await bob.getByRole("button", { name: "Load older messages" }).click();
      await bob.locator("#messages .message").nth(before.length - 1).waitFor();
      assert.deepEqual(await messageTexts(bob), before);
      assert.equal(await bob.locator("#load-older").isHidden(), true);
      assert.equal(await bob.locator("#me").textContent(), "Signed in as Bob");
      assert.equal(await bob.evaluate(() => "__pwned" in globalThis), false);
      await bob.locator("#online-count", { hasText: "2" }).waitFor();

      assert.deepEqual(problems, []);
    } finally {
      await browser?.close();
      await server.close();
    }
  },
});
