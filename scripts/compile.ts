/**
 * `deno task compile`: builds `dist/chat-server` with `deno compile`, and when that fails because
 * the `denort` runtime cannot be downloaded, says so in one line with the way out (`DENORT_BIN`).
 * @module
 */
import { START_V8_FLAGS } from "./server_process.ts";

const ARGS = [
  "compile",
  // The binary runs with the V8 flags `deno task start` does.
  ...START_V8_FLAGS,
  "--allow-net",
  "--allow-env",
  "--allow-read",
  "--allow-write=./data",
  "--include",
  "public",
  "--output",
  "dist/chat-server",
  "main.ts",
];

const { code, stderr } = await new Deno.Command(Deno.execPath(), {
  args: ARGS,
  stdout: "inherit",
  stderr: "piped",
}).output();
const errors = new TextDecoder().decode(stderr);
if (code === 0) {
  await Deno.stderr.write(stderr);
  Deno.exit(0);
}
const downloading = /denort|download|dl\.deno\.land|error sending request/i.test(errors);
if (downloading && !Deno.env.get("DENORT_BIN")) {
  console.error(
    "compile: deno compile could not download its runtime (denort); offline, set DENORT_BIN to a " +
      `denort ${Deno.version.deno} binary for this platform and run again`,
  );
} else {
  await Deno.stderr.write(stderr);
}
Deno.exit(code);
