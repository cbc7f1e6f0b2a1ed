/**
 * `main.ts` as a child process with the tests' defaults, for tests that need the real entry point
 * (signals, exit codes, several instances): the test secret, 127.0.0.1 port 0, in-memory KV.
 * @module
 */
import {
  type MainProcess,
  runMain as runMainWith,
  spawnMain,
} from "../../scripts/server_process.ts";
import { SECRET } from "./chat_server.ts";

/** A running `main.ts`; `stop()` and `await using` kill it (SIGKILL) and wait for the exit. */
export type RunningMain = MainProcess;

const BASE_ENV = { JWT_SECRET: SECRET, PORT: "0", HOST: "127.0.0.1", KV_PATH: ":memory:" };

/**
 * Starts main.ts with `env` and waits for its listening line. Its stderr is copied to the test's
 * own unless `captureStderr` is set (read it with `errors()` either way). `cwd` is its working
 * directory: an instance of another host, with a disk of its own (default: ours).
 */
export function startMain(
  env: Record<string, string>,
  { captureStderr = false, cwd }: { captureStderr?: boolean; cwd?: string } = {},
): Promise<RunningMain> {
  return spawnMain({
    env: { ...BASE_ENV, ...env },
    cwd,
    echoStderr: !captureStderr,
    // A test's server holds nothing worth a graceful shutdown; tests that check one send SIGTERM.
    stopGraceMs: 0,
  });
}

/** Runs main.ts with only `env` (no inherited variables) until it exits, killed after 15 s. */
export function runMain(env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  return runMainWith({ env: { ...BASE_ENV, ...env }, clearEnv: true });
}
