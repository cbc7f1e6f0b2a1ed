import assert from "node:assert/strict";
import { ChatClient, startChat, tokenFor } from "./helpers/chat_server.ts";
import type { ChatError, LoadedInfo, MessageAck } from "../src/chat/mod.ts";
import type { ChatMessage } from "../src/types.ts";

// Debian's python3-socketio, not whatever `python3` is first on PATH: its client needs
// python3-websocket for the WebSocket transport and python3-requests for polling.
const PYTHON = "/usr/bin/python3";
const SCRIPT = new URL("./python/chat_client.py", import.meta.url).pathname;
const PACKAGES: Record<string, string> = {
  socketio: "python3-socketio",
  websocket: "python3-websocket",
  requests: "python3-requests",
};

/** The Python modules the client needs that `PYTHON` cannot import (all of them without it). */
function missingModules(): string[] {
  const modules = Object.keys(PACKAGES);
  try {
    const found = new Deno.Command(PYTHON, {
      args: [
        "-c",
        "import importlib.util, sys\n" +
        "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))",
        ...modules,
      ],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    if (!found.success) return modules;
    return new TextDecoder().decode(found.stdout).split(" ").map((m) => m.trim()).filter(Boolean);
  } catch {
    return modules;
  }
}

const missing = missingModules();

/** The test's name, or where Python is not ready, the name saying why it is skipped. */
function named(name: string): string {
  if (missing.length === 0) return `python client: ${name}`;
  return `python client: ${name}: skipped because ${PYTHON} cannot import ${missing.join(", ")} ` +
    `(apt-get install ${missing.map((m) => PACKAGES[m]).join(" ")})`;
}

/** The JSON line `chat_client.py` prints. */
interface Observed {
  transport: string;
  history: ChatMessage[];
  historyFrames: number;
  loaded: LoadedInfo;
  ack: MessageAck;
  broadcast: ChatMessage[];
  badAck: MessageAck;
  errors: ChatError[];
}

/** Runs the Python client against `url` as `sub` and returns what it observed. */
async function runPythonClient(
  url: string,
  sub: string,
  transport: "polling" | "websocket",
): Promise<Observed> {
  const token = await tokenFor(sub, sub.toUpperCase());
  // The script gives up after 10 s by itself; this only stops a client that hangs anyway.
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 20_000);
  try {
    const output = await new Deno.Command(PYTHON, {
      args: [SCRIPT, url, "--transport", transport, "--timeout", "10"],
      env: { TOKEN: token },
      stdout: "piped",
      stderr: "piped",
      signal: abort.signal,
    }).output();
    const stderr = new TextDecoder().decode(output.stderr).trim();
    assert.ok(
      output.success,
      abort.signal.aborted
        ? `the Python client (${transport}) hung for 20 s: ${stderr}`
        : `the Python client (${transport}) exited ${output.code}: ${stderr}`,
    );
    return JSON.parse(new TextDecoder().decode(output.stdout));
  } finally {
    clearTimeout(timer);
  }
}

for (const transport of ["polling", "websocket"] as const) {
  Deno.test({
    name: named(`${transport}: load, ack, own broadcast, invalid_payload error`),
    ignore: missing.length > 0,
    async fn() {
      await using server = await startChat();
      using bob = await ChatClient.join(server.url, "bob");
      const observed = await runPythonClient(server.url, "py", transport);
      assert.equal(observed.transport, transport);
      assert.deepEqual(observed.history, []);
      assert.equal(observed.historyFrames, 1);
      assert.deepEqual(observed.loaded, {
        room: "general",
        hasMore: false,
        catchUp: false,
        reads: [],
      });

      const ack = observed.ack;
      assert.ok(ack.ok, JSON.stringify(ack));
      assert.equal(ack.duplicate, false);
      assert.equal(ack.message.message, `hello over ${transport}`);
      assert.deepEqual(ack.message.user, { id: "py", name: "PY" });
      assert.deepEqual(await server.store.latest(10), [ack.message]);
      assert.deepEqual(observed.broadcast, [ack.message]);
      await bob.waitFor(() => bob.live.length === 1, "bob receives the Python message");
      assert.deepEqual(bob.live, [ack.message]);

      assert.ok(!observed.badAck.ok);
      assert.equal(observed.badAck.error.code, "invalid_payload");
      assert.deepEqual(observed.errors.map((error) => error.code), ["invalid_payload"]);
      assert.deepEqual(
        await server.store.latest(10),
        [ack.message],
        "the bad payload stored nothing",
      );
    },
  });
}

Deno.test({
  name: named("the first load is the whole history, oldest first"),
  ignore: missing.length > 0,
  async fn() {
    await using server = await startChat();
    const alice = await ChatClient.join(server.url, "alice");
    const seeded: ChatMessage[] = [];
    try {
      for (const text of ["one", "two", "three"]) {
        const ack = await alice.send({ message: text });
        assert.ok(ack.ok);
        seeded.push(ack.message);
      }
    } finally {
      alice.close();
    }
    const observed = await runPythonClient(server.url, "py", "websocket");
    assert.equal(observed.historyFrames, 1);
    assert.deepEqual(observed.history, seeded);
    assert.deepEqual(observed.loaded, {
      room: "general",
      hasMore: false,
      catchUp: false,
      reads: [],
    });
  },
});
