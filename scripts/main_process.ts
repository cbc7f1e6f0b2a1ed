/**
 * `main.ts` as a child process, the way an operator runs it: the one place the tests and the load
 * benchmarks start the real server. It waits for the listening line on stderr, keeps both pipes
 * drained, and stops the server with SIGTERM, then SIGKILL after a grace period.
 *
 * @example
 * ```ts
 * import { spawnMain } from "./main_process.ts";
 *
 * await using server = await spawnMain({
 *   env: { JWT_SECRET: "a-secret-of-at-least-32-bytes-long", PORT: "0", KV_PATH: ":memory:" },
 * });
 * const response = await fetch(`${server.url}/healthz`);
 * console.log(response.status, server.errors());
 * await response.body?.cancel();
 * ```
 * @module
 */

/** A running `main.ts`; `await using` stops it. */
export interface MainProcess extends AsyncDisposable {
  child: Deno.ChildProcess;
  /** The server's own pid (the fd-limit wrapper `exec`s it). */
  pid: number;
  /** Where it listens, from its `listening on <url>` line. */
  url: string;
  /** Everything the process wrote to stdout so far. */
  output(): string;
  /** Everything it wrote to stderr so far. */
  errors(): string;
  /**
   * Sends SIGTERM, then SIGKILL if it has not exited after `graceMs` (straight away when 0), and
   * waits for the exit; does nothing more when it already exited.
   */
  stop(graceMs?: number): Promise<void>;
}

/** How to start `main.ts`; each default is what an operator's `deno task start` would do. */
export interface MainOptions {
  /** Variables set for the server, on top of this process's own unless `clearEnv`. */
  env?: Record<string, string>;
  /** Start from an empty environment (default false). */
  clearEnv?: boolean;
  /** `deno run` permission flags (default: net, env, read and write). */
  permissions?: string[];
  /** Working directory, against which relative paths in `permissions` resolve (default: ours). */
  cwd?: string | URL;
  /** Raise the server's soft `ulimit -n` to this, capped at the hard limit (default: unchanged). */
  fdLimit?: number;
  /** Copy the server's stderr to ours as it arrives (default false). */
  echoStderr?: boolean;
  /** How long the server may take to print its listening line (default 15 s). */
  listenTimeoutMs?: number;
  /** {@link MainProcess.stop}'s default wait between SIGTERM and SIGKILL (default 10 s). */
  stopGraceMs?: number;
}

/** The permissions `deno task start` grants (writes unrestricted: tests use temporary KV files). */
export const MAIN_PERMISSIONS = ["--allow-net", "--allow-env", "--allow-read", "--allow-write"];

/** The V8 flags `deno task start` runs with (`deno.json`): every spawned server gets them too. */
export const START_V8_FLAGS: string[] = JSON.parse(
  Deno.readTextFileSync(new URL("../deno.json", import.meta.url)),
).tasks.start.match(/--v8-flags=\S+/g) ?? [];

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const LISTENING = /listening on (https?:\/\/[^ ]+)/;
const decoder = new TextDecoder();

/** The command that runs main.ts, under `bash -c "ulimit -n …; exec deno run …"` for `fdLimit`. */
function mainCommand(options: MainOptions, io: Deno.CommandOptions): Deno.Command {
  const deno = Deno.execPath();
  const args = ["run", ...START_V8_FLAGS, ...(options.permissions ?? MAIN_PERMISSIONS), MAIN];
  const common = { env: options.env, clearEnv: options.clearEnv, cwd: options.cwd, ...io };
  if (options.fdLimit === undefined) return new Deno.Command(deno, { args, ...common });
  const raise = `want=${options.fdLimit}; hard=$(ulimit -Hn); ` +
    `if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi; ulimit -n "$want"`;
  const quoted = [deno, ...args].map((arg) => `'${arg.replaceAll("'", `'\\''`)}'`).join(" ");
  return new Deno.Command("bash", { args: ["-c", `${raise} && exec ${quoted}`], ...common });
}

/** Keeps reading `stream` into `append` so the child never blocks on a full pipe. */
async function drain(stream: ReadableStream<Uint8Array>, append: (text: string) => void) {
  for await (const chunk of stream) append(decoder.decode(chunk, { stream: true }));
}

/** Starts main.ts and resolves once it prints where it listens; rejects if it exits first. */
export async function spawnMain(options: MainOptions = {}): Promise<MainProcess> {
  const child = mainCommand(options, { stdout: "piped", stderr: "piped" }).spawn();
  let output = "";
  let errors = "";
  let onStderr = () => {};
  const drained = Promise.all([
    drain(child.stdout, (text) => output += text),
    drain(child.stderr, (text) => {
      errors += text;
      if (options.echoStderr) Deno.stderr.writeSync(new TextEncoder().encode(text));
      onStderr();
    }),
  ]);
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
          child.kill("SIGTERM");
        } catch { /* exited meanwhile */ }
        timer = setTimeout(kill, graceMs);
      }
    }
    await status;
    clearTimeout(timer);
    await drained;
  };
  const listenTimeoutMs = options.listenTimeoutMs ?? 15_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let url: string;
  try {
    url = await new Promise<string>((resolve, reject) => {
      onStderr = () => {
        const match = errors.match(LISTENING);
        if (match) resolve(match[1]);
      };
      onStderr();
      status.then(() => reject(new Error(`main.ts exited before listening: ${errors}`)));
      timer = setTimeout(
        () => reject(new Error(`main.ts did not listen within ${listenTimeoutMs} ms: ${errors}`)),
        listenTimeoutMs,
      );
    });
  } catch (error) {
    await stop(0);
    throw error;
  } finally {
    clearTimeout(timer);
    onStderr = () => {};
  }
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

/** Runs main.ts until it exits, killed after `timeoutMs` (default 15 s); its stdout is dropped. */
export async function runMain(
  options: MainOptions & { timeoutMs?: number } = {},
): Promise<{ code: number; stderr: string }> {
  const { code, stderr } = await mainCommand(options, {
    stdout: "null",
    stderr: "piped",
    // A server that should have refused to start would otherwise hang its caller.
    signal: AbortSignal.timeout(options.timeoutMs ?? 15_000),
  }).output();
  return { code, stderr: decoder.decode(stderr) };
}
