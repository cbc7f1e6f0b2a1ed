import assert from "node:assert/strict";
import { MAIN_LISTENING, spawnServerProcess } from "../scripts/server_process.ts";
import { SECRET } from "./helpers/chat_server.ts";

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
    await using server = await spawnServerProcess({
      argv: ["dist/chat-server"],
      ready: { stderr: MAIN_LISTENING },
      env: { JWT_SECRET: SECRET, PORT: "0", HOST: "127.0.0.1", KV_PATH: ":memory:" },
    });
    const health = await fetch(`${server.url}/healthz`);
    assert.deepEqual(await health.json(), { status: "ok" });
  },
});

Deno.test({
  name: "compile: without DENORT_BIN, `deno task compile` builds or says in one line what to set",
  ignore: Boolean(denort),
  async fn() {
    const env = Deno.env.toObject();
    delete env.DENORT_BIN;
    const built = await new Deno.Command(Deno.execPath(), {
      args: ["task", "-q", "compile"],
      env,
      clearEnv: true,
      stdout: "null",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(built.stderr).trim();
    if (built.success) {
      // Where Deno's release host is reachable the runtime downloads and the build succeeds.
      assert.ok((await Deno.stat("dist/chat-server")).isFile);
      return;
    }
    assert.equal(stderr.split("\n").length, 1, stderr);
    assert.match(stderr, /^compile: .*set DENORT_BIN/);
  },
});
