import assert from "node:assert/strict";
import { SECRET, within } from "./helpers/chat_server.ts";

// `deno compile` downloads the denort runtime unless DENORT_BIN points at one; where neither is
// possible (an offline machine) this test is skipped and says so in its name.
const denort = Deno.env.get("DENORT_BIN");

Deno.test({
  name: denort
    ? "compile: `deno task compile` builds a binary that serves the chat"
    : "compile: skipped because DENORT_BIN is not set (deno compile needs the denort runtime)",
  ignore: !denort,
  async fn() {
    const built = await new Deno.Command(Deno.execPath(), {
      args: ["task", "compile"],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(built.success, new TextDecoder().decode(built.stderr));
    const child = new Deno.Command("dist/chat-server", {
      env: { JWT_SECRET: SECRET, PORT: "0", HOSTNAME: "127.0.0.1", KV_PATH: ":memory:" },
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    try {
      const reader = child.stdout.getReader();
      let output = "";
      const url = await within(
        (async () => {
          while (!/listening on (\S+)/.test(output)) {
            const { value, done } = await reader.read();
            if (done) throw new Error(output);
            output += new TextDecoder().decode(value);
          }
          return output.match(/listening on (\S+)/)![1];
        })(),
        15_000,
        "the binary to listen",
      );
      reader.releaseLock();
      const health = await fetch(`${url}/healthz`);
      assert.deepEqual(await health.json(), { status: "ok" });
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await child.stdout.cancel().catch(() => {});
    }
  },
});
