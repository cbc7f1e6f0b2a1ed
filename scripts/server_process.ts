/**
 * A server as a child process: the one place the tests and the benchmarks start one (`main.ts`,
 * the Node.js reference, the limit server, redis-server). It runs any command, under a prefix that
 * `exec`s it (`taskset`) and with a raised fd limit when asked, waits until the server is ready (a
 * line on its stderr, or its port accepting connections), keeps its pipes drained (stderr in
 * memory or in a log file), and stops it with SIGTERM, then SIGKILL after a grace period.
 * {@link spawnMain} runs `main.ts` the way `deno task start` does.
 *
 * @example
 * ```ts
 * import { spawnMain } from "./server_process.ts";
 *
 * await using server = await spawnMain({
 *   env: { JWT_SECRET: "a-secret-of-at-least-32-bytes-long", PORT: "0", KV_PATH: ":memory:" },
 * });
 * const response = await fetch(`${server.url}/healthz`);
 * console.log(response.status, server.errors());
 * await response.body?.cancel();
 * ```
 *
 * @example A server told its port, on CPU 0, ready once the port accepts connections
 * ```ts
 * import { freePort, spawnServerProcess } from "./server_process.ts";
 *
 * const port = freePort();
 * await using redis = await spawnServerProcess({
 *   argv: ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", ""],
 *   prefix: ["taskset", "-c", "0"],
 *   ready: { port },
 *   stdout: "drop",
 * });
 * console.log(`redis-server ${redis.pid} on port ${port}`);
 * ```
 * @module
 */

/** A running server; `await using` stops it. */
export interface ServerProcess extends AsyncDisposable {
  child: Deno.ChildProcess;
  /** The server's own pid: the prefix and the fd-limit wrapper `exec` it. */
  pid: number;
  /** Where it listens: the ready line's first group, or `http://<hostname>:<port>` for a port. */
  url: string;
  /** Everything it wrote to stdout so far (nothing with `stdout: "drop"`). */
  output(): string;
  /** Everything it wrote to stderr so far; with `stderrLog`, only until it was ready. */
  errors(): string;
  /**
   * Sends SIGTERM (or the `stopSignal` it was started with), then SIGKILL if it has not exited
   * after `graceMs` (straight away when 0), and
   * waits for the exit; does nothing more when it already exited.
   */
  stop(graceMs?: number): Promise<void>;
}

/**
 * When a server is ready: it printed a line matching `stderr` (its first group, if any, is the
 * url), or its `port` accepts TCP connections on `hostname` (default 127.0.0.1).
 */
export type Readiness = { stderr: RegExp } | { port: number; hostname?: string };

/** How to start a server. */
export interface ServerProcessOptions {
  /** The server's command and arguments (`argv[0]` is looked up on the PATH). */
  argv: string[];
  /** When it counts as started. */
  ready: Readiness;
  /** Names it in errors (default: `argv[0]`). */
  name?: string;
  /** A command that `exec`s the server, such as `["taskset", "-c", "0"]` (default none). */
  prefix?: string[];
  /** Variables set for the server, on top of this process's own unless `clearEnv`. */
  env?: Record<string, string>;
  /** Start from an empty environment (default false). */
  clearEnv?: boolean;
  /** Working directory (default: ours). */
  cwd?: string | URL;
  /** Run as this user and group (a server that refuses root, like PostgreSQL; default: ours). */
  uid?: number;
  gid?: number;
  /** Raise the server's soft `ulimit -n` to this, capped at the hard limit (default: unchanged). */
  fdLimit?: number;
  /** Keep its stdout for {@link ServerProcess.output}, or drop it (default "keep"). */
  stdout?: "keep" | "drop";
  /** Write its stderr to this file (created or truncated) instead of keeping it (default: kept). */
  stderrLog?: string;
  /** Copy its stderr to ours as it arrives (default false). */
  echoStderr?: boolean;
  /** How long it may take to be ready (default 15 s). */
  readyTimeoutMs?: number;
  /** {@link ServerProcess.stop}'s default wait between SIGTERM and SIGKILL (default 10 s). */
  stopGraceMs?: number;
  /** The signal {@link ServerProcess.stop} asks it to stop with (default SIGTERM). */
  stopSignal?: Deno.Signal;
}

/** A TCP port free on `hostname` right now, for a server that must be told its port. */
export function freePort(hostname = "127.0.0.1"): number {
  const listener = Deno.listen({ hostname, port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * `argv` run by bash with the soft `ulimit -n` raised to `limit` (capped at the hard limit); bash
 * `exec`s it, so the pid stays the command's.
 */
export function withFdLimit(argv: string[], limit: number): string[] {
  const raise = `want=${limit}; hard=$(ulimit -Hn); ` +
    `if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi; ulimit -n "$want"`;
  return ["bash", "-c", `${raise} && exec "$@"`, "bash", ...argv];
}

type CommandSettings = Omit<
  ServerProcessOptions,
  "ready" | "name" | "stdout" | "stopGraceMs" | "stopSignal"
>;

/** The command line: `prefix`, then the fd-limit wrapper when `fdLimit` is set, then `argv`. */
function command(options: CommandSettings, io: Deno.CommandOptions): Deno.Command {
  const server = options.fdLimit === undefined
    ? options.argv
    : withFdLimit(options.argv, options.fdLimit);
  const [program, ...args] = [...(options.prefix ?? []), ...server];
  const { env, clearEnv, cwd, uid, gid } = options;
  return new Deno.Command(program, { args, env, clearEnv, cwd, uid, gid, stdin: "null", ...io });
}

/** Keeps reading `stream` into `append` so the child never blocks on a full pipe. */
async function drain(
  stream: ReadableStream<Uint8Array>,
  append: (chunk: Uint8Array, text: string) => Promise<void> | void,
) {
  const decoder = new TextDecoder();
  for await (const chunk of stream) await append(chunk, decoder.decode(chunk, { stream: true }));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts a server and resolves once it is ready; rejects (and kills it) if it exits first. */
export async function spawnServerProcess(options: ServerProcessOptions): Promise<ServerProcess> {
  const name = options.name ?? options.argv[0];
  const keepStdout = options.stdout !== "drop";
  const log = options.stderrLog === undefined ? undefined : (await Deno.open(options.stderrLog, {
    write: true,
    create: true,
    truncate: true,
  })).writable.getWriter();
  let child: Deno.ChildProcess;
  try {
    child = command(options, { stdout: keepStdout ? "piped" : "null", stderr: "piped" }).spawn();
  } catch (error) {
    await log?.close();
    throw error;
  }
  let output = "";
  let errors = "";
  let ready = false;
  let onStderr = () => {};
  const drained = Promise.all([
    keepStdout && drain(child.stdout, (_, text) => {
      output += text;
    }),
    drain(child.stderr, async (chunk, text) => {
      await log?.write(chunk);
      // A log file takes over once the server is ready; until then the text is kept for errors.
      if (!log || !ready) errors += text;
      if (options.echoStderr) Deno.stderr.writeSync(chunk);
      onStderr();
    }).finally(() => log?.close()),
  ]);
  // stop() reports a failed drain; until then it must not crash this process.
  drained.catch(() => {});
  let exited = false;
  const status = child.status.finally(() => exited = true);
  const stop = async (graceMs = options.stopGraceMs ?? 10_000) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (!exited) {
      const kill = () => {
        try {
          child.kill("SIGKILL");
        } catch { /* exited meanwhile */ }
      };
      if (graceMs <= 0) kill();
      else {
        try {
          child.kill(options.stopSignal ?? "SIGTERM");
        } catch { /* exited meanwhile */ }
        timer = setTimeout(kill, graceMs);
      }
    }
    await status;
    clearTimeout(timer);
    await drained;
  };
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000;
  let waiting = true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let url: string;
  try {
    url = await new Promise<string>((resolve, reject) => {
      const exitedEarly = () => reject(new Error(`${name} exited before it was ready: ${errors}`));
      // After the drain, so the error shows everything it printed.
      status.then(() => drained).then(exitedEarly, exitedEarly);
      timer = setTimeout(
        () => reject(new Error(`${name} was not ready within ${readyTimeoutMs} ms: ${errors}`)),
        readyTimeoutMs,
      );
      const readiness = options.ready;
      if ("stderr" in readiness) {
        onStderr = () => {
          const match = errors.match(readiness.stderr);
          if (match) resolve(match[1] ?? match[0]);
        };
        onStderr();
        return;
      }
      const { port, hostname = "127.0.0.1" } = readiness;
      (async () => {
        while (waiting) {
          try {
            (await Deno.connect({ hostname, port })).close();
            return resolve(`http://${hostname}:${port}`);
          } catch {
            await sleep(20);
          }
        }
      })();
    });
  } catch (error) {
    await stop(0);
    throw error;
  } finally {
    waiting = false;
    clearTimeout(timer);
    onStderr = () => {};
  }
  ready = true;
  return {
    child,
    pid: child.pid,
    url,
    output: () => output,
    errors: () => errors,
    stop,
    [Symbol.asyncDispose]: () => stop(),
  };
}

/** A running `main.ts`. */
export type MainProcess = ServerProcess;

/** How to start `main.ts`; each default is what an operator's `deno task start` would do. */
export interface MainOptions
  extends Omit<ServerProcessOptions, "argv" | "ready" | "name" | "readyTimeoutMs"> {
  /** `deno run` permission flags (default: net, env, read and write). */
  permissions?: string[];
  /** How long the server may take to print its listening line (default 15 s). */
  listenTimeoutMs?: number;
}

/** The permissions `deno task start` grants (writes unrestricted: tests use temporary KV files). */
export const MAIN_PERMISSIONS = ["--allow-net", "--allow-env", "--allow-read", "--allow-write"];

/** The V8 flags `deno task start` runs with (`deno.json`): every spawned server gets them too. */
export const START_V8_FLAGS: string[] = JSON.parse(
  Deno.readTextFileSync(new URL("../deno.json", import.meta.url)),
).tasks.start.match(/--v8-flags=\S+/g) ?? [];

const MAIN = new URL("../main.ts", import.meta.url).pathname;
/** The line main.ts (and the binary `deno task compile` builds of it) prints once it listens. */
export const MAIN_LISTENING = /listening on (https?:\/\/[^ ]+)/;

function mainArgv(permissions = MAIN_PERMISSIONS): string[] {
  return [Deno.execPath(), "run", ...START_V8_FLAGS, ...permissions, MAIN];
}

/** Starts main.ts and resolves once it prints where it listens; rejects if it exits first. */
export function spawnMain(options: MainOptions = {}): Promise<MainProcess> {
  const { permissions, listenTimeoutMs, ...rest } = options;
  return spawnServerProcess({
    ...rest,
    argv: mainArgv(permissions),
    ready: { stderr: MAIN_LISTENING },
    name: "main.ts",
    readyTimeoutMs: listenTimeoutMs,
  });
}

/** Runs main.ts until it exits, killed after `timeoutMs` (default 15 s); its stdout is dropped. */
export async function runMain(
  options: Omit<MainOptions, "stdout" | "stderrLog" | "echoStderr"> & { timeoutMs?: number } = {},
): Promise<{ code: number; stderr: string }> {
  const { code, stderr } = await command({ ...options, argv: mainArgv(options.permissions) }, {
    stdout: "null",
    stderr: "piped",
    // A server that should have refused to start would otherwise hang its caller.
    signal: AbortSignal.timeout(options.timeoutMs ?? 15_000),
  }).output();
  return { code, stderr: new TextDecoder().decode(stderr) };
}
