/**
 * Runs `main.ts` as a child process, the way an operator does, for tests that need the real
 * entry point (signals, exit codes, several instances).
 * @module
 */
import { SECRET, within } from "./chat_server.ts";

/** A running `main.ts`. */
export interface RunningMain {
  child: Deno.ChildProcess;
  url: string;
  /** Everything the process wrote to stdout so far. */
  output: () => string;
  /** Everything it wrote to stderr so far, when started with `captureStderr`. */
  errors: () => string;
  /** Kills the process (SIGKILL) unless it already exited, and waits for it. */
  stop(): Promise<void>;
}

const decoder = new TextDecoder();
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const PERMISSIONS = ["--allow-net", "--allow-env", "--allow-read", "--allow-write"];
const BASE_ENV = { JWT_SECRET: SECRET, PORT: "0", HOST: "127.0.0.1", KV_PATH: ":memory:" };

/** Keeps reading `stream` into `append` so the child never blocks on a full pipe. */
async function drain(stream: ReadableStream<Uint8Array>, append: (text: string) => void) {
  for await (const chunk of stream) append(decoder.decode(chunk));
}

/**
 * Starts main.ts with `env` on 127.0.0.1 port 0 and waits for its listening line (on stderr, where
 * the server writes what a person reads). Its stderr is copied to the test's own unless
 * `captureStderr` is set.
 */
export async function startMain(
  env: Record<string, string>,
  { captureStderr = false } = {},
): Promise<RunningMain> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMISSIONS, MAIN],
    env: { ...BASE_ENV, ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  let errors = "";
  let onStderr = () => {};
  // Keep draining both pipes so the child never blocks on a full one.
  const drained = Promise.all([
    drain(child.stdout, (text) => output += text),
    drain(child.stderr, (text) => {
      errors += text;
      if (!captureStderr) Deno.stderr.writeSync(new TextEncoder().encode(text));
      onStderr();
    }),
  ]);
  const stop = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await child.status;
    await drained;
  };
  let url: string;
  try {
    url = await within(
      new Promise<string>((resolve, reject) => {
        onStderr = () => {
          const match = errors.match(/listening on (https?:\/\/[^ ]+)/);
          if (match) resolve(match[1]);
        };
        child.status.then(() => reject(new Error(`main.ts exited before listening: ${errors}`)));
      }),
      15_000,
      "main.ts to listen",
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { child, url, output: () => output, errors: () => errors, stop };
}

/** Runs main.ts with only `env` (no inherited variables) until it exits, killed after 15 s. */
export async function runMain(
  env: Record<string, string>,
): Promise<{ code: number; stderr: string }> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMISSIONS, MAIN],
    env: { ...BASE_ENV, ...env },
    clearEnv: true,
    stdout: "null",
    stderr: "piped",
    // A server that should have refused to start would otherwise hang the test.
    signal: AbortSignal.timeout(15_000),
  }).output();
  return { code, stderr: decoder.decode(stderr) };
}
