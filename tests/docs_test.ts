/**
 * README.md and docs/*.md are checked like code: their links, the tasks and paths they name, and
 * the commands and client examples a reader will copy.
 *
 * Every command in a ```sh or ```bash block falls under exactly one rule, or the test fails:
 * - `deno task token …` and `deno task start` (with literal settings) run as written. `start` gets
 *   `PORT=0`, `HOST=127.0.0.1` and `KV_PATH=:memory:` on top, so it neither clashes with a
 *   server already running nor writes `./data`.
 * - Commands that need the network, Docker, Redis or minutes of time are checked statically only
 *   (their task exists, their paths exist), for the reason {@link STATIC_PROGRAMS},
 *   {@link STATIC_TASKS} or {@link SERVICE_VARIABLES} gives.
 *
 * Every ```js and ```python block that connects to `http://localhost:3000` is a complete client:
 * it runs against a real server (on port 0) and its message must reach another client.
 * @module
 */
import assert from "node:assert/strict";
import { createTokenVerifier, signToken } from "../src/auth/token.ts";
import { ALL_SETTINGS } from "../src/config.ts";
import { ChatClient } from "./helpers/chat_server.ts";
import { tempDir } from "./helpers/dispose.ts";
import { type MainProcess, spawnMain } from "../scripts/server_process.ts";
import type { ChatMessage } from "../src/types.ts";

const ROOT = new URL("..", import.meta.url);
const decoder = new TextDecoder();

/** Programs a doc may name that this test never runs, and why. */
const STATIC_PROGRAMS: Record<string, string> = {
  npm: "installs from the npm registry (network)",
  pip: "installs from PyPI (network)",
  "apt-get": "installs Debian packages (network, root)",
  "redis-server": "starts Redis, a service this test does not run",
  docker: "needs Docker",
  curl: "talks to a running server with API_KEY; tests/api_test.ts sends the same requests",
};

/** Tasks a doc may name that this test never runs, and why. */
const STATIC_TASKS: Record<string, string> = {
  test: "runs the whole suite, this test included",
  check: "formats, lints and type-checks the project: `deno task check` runs before every commit",
  dev: "watches files and never exits",
  fuzz: "runs for minutes",
  stress: "runs for minutes and needs a raised open-files limit",
  soak: "runs for minutes",
  bench: "runs for 10 to 20 minutes",
  "bench:kv": "runs for minutes",
  compile: "downloads the denort runtime (network)",
  "migrate-to-postgres": "needs PostgreSQL; tests/migrate_to_postgres_test.ts runs it",
};

/** Settings that make `deno task start` need a service this test does not run. */
const SERVICE_VARIABLES: Record<string, string> = {
  REDIS_URL: "needs Redis",
  DATABASE_URL: "needs PostgreSQL",
  KV_URL: "needs a KV Connect server",
  JWT_JWKS_URL: "needs an identity provider",
  TLS_CERT_FILE: "needs a certificate",
};

interface Doc {
  /** Path from the repository root, like `docs/events.md`. */
  path: string;
  text: string;
}

interface CodeBlock {
  doc: Doc;
  lang: string;
  body: string;
  /** 1-based line of the opening fence. */
  line: number;
}

/** One simple command of a shell block, with the variables set for it. */
interface ShellCommand {
  where: string;
  env: Record<string, string>;
  words: string[];
}

async function readDocs(): Promise<Doc[]> {
  const paths = ["README.md"];
  for await (const entry of Deno.readDir(new URL("docs/", ROOT))) {
    if (entry.isFile && entry.name.endsWith(".md")) paths.push(`docs/${entry.name}`);
  }
  paths.sort();
  return await Promise.all(
    paths.map(async (path) => ({ path, text: await Deno.readTextFile(new URL(path, ROOT)) })),
  );
}

const FENCE = /^```(\w*)\n([\s\S]*?)^```$/gm;

function codeBlocks(doc: Doc): CodeBlock[] {
  return [...doc.text.matchAll(FENCE)].map((match) => ({
    doc,
    lang: match[1],
    body: match[2],
    line: doc.text.slice(0, match.index).split("\n").length,
  }));
}

/** The doc's prose: code blocks blanked out, so their contents are neither links nor headings. */
function prose(text: string): string {
  return text.replace(FENCE, (block) => block.replace(/[^\n]/g, " "));
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replaceAll(" ", "-");
}

function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const [, heading] of prose(text).matchAll(/^#{1,6} +(.+)$/gm)) {
    const base = slug(heading.replaceAll("`", ""));
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count === 0 ? base : `${base}-${count}`);
  }
  return result;
}

async function exists(url: URL): Promise<boolean> {
  try {
    await Deno.stat(url);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** The repository's top-level entries that git keeps (not `data/`, `dist/`, …). */
async function trackedRoots(): Promise<Set<string>> {
  const ignored = (await Deno.readTextFile(new URL(".gitignore", ROOT))).split("\n")
    .map((line) => line.trim().replace(/\/$/, ""))
    .filter((line) => line && !line.startsWith("#"));
  const roots = new Set<string>();
  for await (const entry of Deno.readDir(ROOT)) {
    if (entry.name !== ".git" && !ignored.includes(entry.name)) roots.add(entry.name);
  }
  return roots;
}

/**
 * The repository path a word names, or undefined when it names none: it must start with a tracked
 * top-level entry (`src/…`, `main.ts`), so `./data/chat.kv`, `/var/lib/chat` and `client.mjs` are
 * not checked.
 */
function repositoryPath(word: string, roots: Set<string>): string | undefined {
  const path = word.replace(/^\.\//, "").replace(/[.,;:)]+$/, "");
  if (/[<>*…{}$=]/.test(path) || path.startsWith("-")) return undefined;
  return roots.has(path.split("/")[0]) ? path : undefined;
}

/** Splits a line of shell at `&&`, `||`, `;`, `|` and `&`; each `$(…)` is returned as its own. */
function splitShell(line: string): string[] {
  const pieces: string[] = [];
  let current = "";
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const char = line[i];
    if (quote) {
      if (char === quote) quote = undefined;
      current += char;
    } else if (char === '"' || char === "'") {
      quote = char;
      current += char;
    } else if (line.startsWith("$(", i)) {
      let depth = 1;
      let end = i + 2;
      for (; end < line.length && depth > 0; end++) {
        if (line[end] === "(") depth++;
        if (line[end] === ")") depth--;
      }
      pieces.push(...splitShell(line.slice(i + 2, end - 1)));
      current += "$(…)";
      i = end - 1;
    } else if ("&|;".includes(char)) {
      if (line[i + 1] === char) i++;
      pieces.push(current);
      current = "";
    } else {
      current += char;
    }
  }
  pieces.push(current);
  return pieces.map((piece) => piece.trim()).filter(Boolean);
}

/** Words of one simple command, quotes removed. */
function words(command: string): string[] {
  return [...command.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
}

/** A line without its comment (a `#` at the start or after a space, outside quotes). */
function withoutComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const char = line[i];
    if (quote) {
      if (char === quote) quote = undefined;
    } else if (char === '"' || char === "'") quote = char;
    else if (char === "#" && (i === 0 || /\s/.test(line[i - 1]))) return line.slice(0, i);
  }
  return line;
}

const ASSIGNMENT = /^([A-Z_][A-Z0-9_]*)=(.*)$/s;

/** The simple commands of a shell block; `export`s carry on to the commands after them. */
function shellCommands(block: CodeBlock): ShellCommand[] {
  const exported: Record<string, string> = {};
  const commands: ShellCommand[] = [];
  block.body.replaceAll("\\\n", " ").split("\n").forEach((line, index) => {
    const where = `${block.doc.path}:${block.line + 1 + index}`;
    for (const piece of splitShell(withoutComment(line))) {
      let list = words(piece);
      const isExport = list[0] === "export";
      if (isExport) list = list.slice(1);
      const env: Record<string, string> = {};
      while (list.length > 0 && ASSIGNMENT.test(list[0])) {
        const [, name, value] = list.shift()!.match(ASSIGNMENT)!;
        // The shell removes the quotes of `PUBLIC_ROOMS="general,team-*"`.
        env[name] = value.replace(/^(["'])(.*)\1$/s, "$2");
      }
      if (isExport || list.length === 0) Object.assign(exported, env);
      else commands.push({ where, env: { ...exported, ...env }, words: list });
    }
  });
  return commands;
}

function taskName(command: ShellCommand): string | undefined {
  const [program, verb, ...rest] = command.words;
  if (program !== "deno" || verb !== "task") return undefined;
  return rest.find((word) => !word.startsWith("-"));
}

type Verdict = { run: "token" | "start" } | { skip: string } | { unknown: true };

/** Which rule a command falls under. */
function classify(command: ShellCommand): Verdict {
  const program = command.words[0];
  if (program in STATIC_PROGRAMS) return { skip: STATIC_PROGRAMS[program] };
  const task = taskName(command);
  if (task === undefined) return { unknown: true };
  if (task in STATIC_TASKS) return { skip: STATIC_TASKS[task] };
  if (task === "token") return { run: "token" };
  if (task !== "start") return { unknown: true };
  const service = Object.keys(SERVICE_VARIABLES).find((name) => name in command.env);
  if (service) return { skip: `${service}: ${SERVICE_VARIABLES[service]}` };
  if (Object.values(command.env).some((value) => value.includes("$"))) {
    return { skip: "its settings are computed by the shell" };
  }
  return { run: "start" };
}

/** This process's environment without any setting the server reads, so only the doc's apply. */
function environmentWithoutSettings(): Record<string, string> {
  const env = Deno.env.toObject();
  for (const setting of ALL_SETTINGS) delete env[setting.variable];
  return env;
}

async function allShellCommands(): Promise<ShellCommand[]> {
  return (await readDocs()).flatMap(codeBlocks)
    .filter((block) => block.lang === "sh" || block.lang === "bash")
    .flatMap(shellCommands);
}

/** The distinct commands of one kind that are run, each once. */
async function commandsToRun(kind: "token" | "start"): Promise<ShellCommand[]> {
  const unique = new Map<string, ShellCommand>();
  for (const command of await allShellCommands()) {
    const verdict = classify(command);
    if (!("run" in verdict) || verdict.run !== kind) continue;
    unique.set(JSON.stringify([command.env, command.words]), command);
  }
  return [...unique.values()];
}

/** Runs `deno task start`'s own command line (not through `deno task`, so SIGTERM reaches it). */
async function startServer(env: Record<string, string>): Promise<MainProcess> {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const [deno, run, ...args] = (config.tasks.start as string).split(/\s+/);
  assert.deepEqual([deno, run, args.at(-1)], ["deno", "run", "main.ts"]);
  return await spawnMain({
    env: {
      ...environmentWithoutSettings(),
      ...env,
      PORT: "0",
      HOST: "127.0.0.1",
      KV_PATH: ":memory:",
    },
    clearEnv: true,
    permissions: args.slice(0, -1),
    cwd: ROOT,
  });
}

Deno.test("docs: every relative link in README.md and docs/ reaches a file, and its anchor a heading", async () => {
  const broken: string[] = [];
  for (const doc of await readDocs()) {
    for (const [, target] of prose(doc.text).matchAll(/!?\[[^\]]*\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target)) continue;
      const [file, anchor] = target.split("#");
      const url = new URL(file || doc.path.split("/").pop()!, new URL(doc.path, ROOT));
      if (!(await exists(url))) {
        broken.push(`${doc.path}: ${target} (no such file)`);
      } else if (anchor !== undefined && url.pathname.endsWith(".md")) {
        if (!anchors(await Deno.readTextFile(url)).has(anchor)) {
          broken.push(`${doc.path}: ${target} (no such heading)`);
        }
      }
    }
  }
  assert.deepEqual(broken, []);
});

Deno.test("docs: every `deno task` the docs name exists in deno.json", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const missing: string[] = [];
  for (const doc of await readDocs()) {
    for (const [, task] of doc.text.matchAll(/deno task (?:-q )?([\w:-]+)/g)) {
      if (!(task in config.tasks)) missing.push(`${doc.path}: deno task ${task}`);
    }
  }
  assert.deepEqual(missing, []);
});

Deno.test("docs: every repository path the docs name, in commands and in code spans, exists", async () => {
  const roots = await trackedRoots();
  const named = new Set<string>();
  for (const doc of await readDocs()) {
    const spans = [...prose(doc.text).matchAll(/`([^`\n]+)`/g)].map((match) => match[1]);
    for (const text of spans) {
      for (const word of text.split(/\s+/)) {
        const path = repositoryPath(word, roots);
        if (path) named.add(`${doc.path}: ${path}`);
      }
    }
  }
  for (const command of await allShellCommands()) {
    for (const word of command.words) {
      const path = repositoryPath(word, roots);
      if (path) named.add(`${command.where.split(":")[0]}: ${path}`);
    }
  }
  assert.ok(named.size > 20, "the docs name the repository's files");
  const missing: string[] = [];
  for (const entry of named) {
    const path = entry.split(": ")[1];
    if (!(await exists(new URL(path, ROOT)))) missing.push(entry);
  }
  assert.deepEqual(missing, []);
});

Deno.test("docs: every shell command is run here or checked statically for a stated reason", async () => {
  const commands = await allShellCommands();
  const unknown = commands.filter((command) => "unknown" in classify(command))
    .map((command) => `${command.where}: ${command.words.join(" ")}`);
  assert.deepEqual(unknown, [], "add each of these to a rule at the top of tests/docs_test.ts");
  const ran = commands.filter((command) => "run" in classify(command));
  assert.ok(ran.some((command) => taskName(command) === "start"), "the quick start is run");
  assert.ok(ran.some((command) => taskName(command) === "token"), "the token hint is run");
});

Deno.test("docs: `JWT_SECRET=… deno task token <user> --name N`, as written, prints a token the server accepts", async () => {
  const commands = await commandsToRun("token");
  assert.ok(commands.length > 0);
  for (const command of commands) {
    const secret = command.env.JWT_SECRET;
    assert.ok(secret, `${command.where}: the hint sets JWT_SECRET`);
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["task", "-q", ...command.words.slice(2)],
      cwd: ROOT,
      env: { ...environmentWithoutSettings(), ...command.env },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 0, `${command.where}: ${decoder.decode(output.stderr)}`);
    const token = decoder.decode(output.stdout).trim();
    const { user } = await createTokenVerifier({ secret })(token);
    const args = command.words.slice(3);
    assert.equal(user.id, args[0], command.where);
    const name = args.indexOf("--name");
    if (name !== -1) assert.equal(user.name, args[name + 1], command.where);
  }
});

Deno.test("docs: `deno task start`, as written, serves /healthz (and dev login with DEV_LOGIN=1), then stops cleanly on SIGTERM", async () => {
  const commands = await commandsToRun("start");
  assert.ok(commands.length > 0);
  for (const command of commands) {
    const server = await startServer(command.env);
    try {
      const health = await fetch(`${server.url}/healthz`);
      assert.equal(health.status, 200, command.where);
      assert.deepEqual(await health.json(), { status: "ok" });
      const enabled = await (await fetch(`${server.url}/dev/login-enabled`)).json();
      assert.deepEqual(enabled, { enabled: command.env.DEV_LOGIN === "1" }, command.where);
      if (command.env.DEV_LOGIN === "1") {
        const response = await fetch(`${server.url}/dev/token`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ name: "Alice" }),
        });
        assert.equal(response.status, 200, command.where);
        const { token } = await response.json();
        const secret = command.env.JWT_SECRET;
        assert.equal((await createTokenVerifier({ secret })(token)).user.name, "Alice");
      }
    } finally {
      await server.stop();
    }
    assert.equal((await server.child.status).code, 0, `${command.where}: exit code after SIGTERM`);
  }
});

/** The client examples: blocks that connect to the quick start's server. */
async function clientExamples(lang: string): Promise<CodeBlock[]> {
  return (await readDocs()).flatMap(codeBlocks)
    .filter((block) => block.lang === lang && block.body.includes("http://localhost:3000"));
}

/** The text of the message an example sends (`message: "…"`). */
function sentText(example: CodeBlock): string {
  const match = example.body.match(/["']?message["']?\s*:\s*["']([^"']+)["']/);
  assert.ok(match, `${example.doc.path}:${example.line} sends a message`);
  return match[1];
}

const SECRET = "s3cr3t";

/**
 * Runs each example against a server started like the docs' (rooms `team-*` public, for the rooms
 * example), as user `alice`, and checks that what it sent reached another client.
 */
async function runExamples(
  examples: CodeBlock[],
  run: (file: string, env: Record<string, string>) => Promise<Deno.CommandOutput>,
  fileName: string,
): Promise<void> {
  assert.ok(examples.length > 0);
  await using server = await startServer({ JWT_SECRET: SECRET, PUBLIC_ROOMS: "general,team-*" });
  await using temp = await tempDir();
  const dir = temp.path;
  using watcher = new ChatClient(server.url, {
    auth: { token: await signToken(SECRET, { sub: "watcher" }) },
  });
  await watcher.waitFor(() => watcher.loaded !== undefined, "the watcher's history");
  await watcher.socket.emitWithAck("join", { room: "team-red" });
  const token = await signToken(SECRET, { sub: "alice", name: "Alice" });
  for (const example of examples) {
    const where = `${example.doc.path}:${example.line}`;
    const file = `${dir}/${fileName}`;
    await Deno.writeTextFile(file, example.body.replaceAll("http://localhost:3000", server.url));
    const text = sentText(example);
    const arrived = (message: ChatMessage) =>
      message.user.id === "alice" && message.message === text;
    // Two examples may send the same text: count, rather than look for, its arrivals.
    const before = watcher.live.filter(arrived).length;
    const output = await run(file, { TOKEN: token });
    const stdout = decoder.decode(output.stdout);
    assert.equal(output.code, 0, `${where}: ${stdout}${decoder.decode(output.stderr)}`);
    assert.doesNotMatch(stdout, /refused/, where);
    await watcher.waitFor(
      () => watcher.live.filter(arrived).length > before,
      `"${text}" from ${where}`,
    );
  }
}

Deno.test("docs: the JavaScript client examples run as written and their messages arrive", async () => {
  await runExamples(await clientExamples("js"), (file, env) =>
    new Deno.Command(Deno.execPath(), {
      // The docs' `deno add npm:socket.io-client` gives the same import map as this deno.json.
      args: [
        "run",
        "--cached-only",
        "--config",
        new URL("deno.json", ROOT).pathname,
        "--allow-net",
        "--allow-env",
        file,
      ],
      env,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output(), "client.mjs");
});

// Debian's python3-socketio, as in tests/python_client_test.ts; skipped, saying so, without it.
const PYTHON = "/usr/bin/python3";
const pythonReady = (() => {
  try {
    return new Deno.Command(PYTHON, {
      args: ["-c", "import socketio, websocket, requests"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: pythonReady
    ? "docs: the Python client examples run as written and their messages arrive"
    : `docs: the Python client examples: skipped because ${PYTHON} cannot import socketio, ` +
      "websocket and requests (apt-get install python3-socketio python3-websocket python3-requests)",
  ignore: !pythonReady,
  async fn() {
    await runExamples(await clientExamples("python"), (file, env) =>
      new Deno.Command(PYTHON, {
        args: [file],
        env,
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(30_000),
      }).output(), "client.py");
  },
});
