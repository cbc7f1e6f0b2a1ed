import assert from "node:assert/strict";
import { createTokenVerifier } from "../src/auth/token.ts";
import { parseTokenArgs, parseTtl, UsageError } from "../scripts/token.ts";

const projectRoot = new URL("..", import.meta.url);

function runTokenScript(args: string[], env: Record<string, string>) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-env", "scripts/token.ts", ...args],
    cwd: projectRoot,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
}

Deno.test("token script: parseTtl reads s, m, h, d and plain seconds", () => {
  assert.equal(parseTtl("90s"), 90);
  assert.equal(parseTtl("15m"), 900);
  assert.equal(parseTtl("1h"), 3600);
  assert.equal(parseTtl("7d"), 604_800);
  assert.equal(parseTtl("3600"), 3600);
  for (const text of ["", "0", "0s", "-5", "1.5h", "1w", "h", "1 h", "ten", "366d"]) {
    assert.equal(parseTtl(text), undefined, text);
  }
});

Deno.test("token script: parseTokenArgs turns arguments into claims", () => {
  assert.deepEqual(parseTokenArgs(["alice"]), { sub: "alice" });
  assert.deepEqual(parseTokenArgs(["alice", "--name", "Alice A.", "--ttl", "2m"]), {
    sub: "alice",
    name: "Alice A.",
    ttlSeconds: 120,
  });
  assert.deepEqual(parseTokenArgs(["--ttl=90", "bob"]), { sub: "bob", ttlSeconds: 90 });
  assert.deepEqual(parseTokenArgs(["carol", "--scope", " chat:read   chat:write "]), {
    sub: "carol",
    scope: "chat:read chat:write",
  });
});

Deno.test("token script: parseTokenArgs refuses bad arguments with a UsageError", () => {
  const cases = [
    [],
    ["a", "b"],
    [""],
    ["alice", "--ttl", "soon"],
    ["alice", "--name", ""],
    ["alice", "--colour", "red"],
    ["alice", "--name"],
    ["alice", "--scope", "  "],
    ["alice", "--ttl", "1500ms"],
  ];
  for (const args of cases) {
    assert.throws(() => parseTokenArgs(args), (error) => {
      return error instanceof UsageError && error.code === "invalid_arguments";
    }, JSON.stringify(args));
  }
});

Deno.test("token script: prints a token the server's verifier accepts", async () => {
  const result = await runTokenScript(["alice", "--name", "Alice", "--ttl", "2m"], {
    JWT_SECRET: "s",
  });
  assert.equal(result.code, 0, new TextDecoder().decode(result.stderr));
  const token = new TextDecoder().decode(result.stdout).trim();
  const identity = await createTokenVerifier({ secret: "s" })(token);
  assert.deepEqual(identity.user, { id: "alice", name: "Alice" });
  assert.ok(identity.expiresAt !== undefined);
  assert.ok(Math.abs(identity.expiresAt - (Date.now() + 120_000)) < 5_000);
});

Deno.test("token script: exits 1 naming JWT_SECRET when it is missing", async () => {
  const result = await runTokenScript(["alice"], { JWT_SECRET: "" });
  assert.equal(result.code, 1);
  assert.equal(result.stdout.length, 0);
  assert.match(new TextDecoder().decode(result.stderr), /JWT_SECRET/);
});

Deno.test("token script: exits 2 with the usage line on bad arguments", async () => {
  const result = await runTokenScript(["alice", "--ttl", "forever"], { JWT_SECRET: "s" });
  assert.equal(result.code, 2);
  const stderr = new TextDecoder().decode(result.stderr);
  assert.match(stderr, /--ttl "forever"/);
  assert.match(stderr, /usage: deno task token/);
});
