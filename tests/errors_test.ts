import assert from "node:assert/strict";
import { CodedError, ERROR_CODES, isErrorCode, toWireError } from "../src/errors.ts";
import { AuthError } from "../src/auth/token.ts";
import { PayloadError } from "../src/chat/payloads.ts";

Deno.test("errors: docs/events.md's error table lists exactly the registry's codes", async () => {
  const page = await Deno.readTextFile(new URL("../docs/events.md", import.meta.url));
  const start = page.indexOf("\n## Error codes\n");
  assert.ok(start >= 0, "docs/events.md has an error codes section");
  const end = page.indexOf("\n## ", start + 1);
  const section = page.slice(start, end === -1 ? undefined : end);
  const documented = [...section.matchAll(/^\| `([a-z_]+)` +\|/gm)].map((match) => match[1]);
  assert.deepEqual(documented.toSorted(), Object.keys(ERROR_CODES).toSorted());
});

Deno.test("errors: auth and payload errors are coded errors with the registry's codes", () => {
  const errors = [
    new AuthError("invalid_token", "bad signature"),
    new PayloadError("invalid_payload", "not an object"),
    new CodedError("rate_limited", "slow down", { retryAfterMs: 250 }),
  ];
  for (const error of errors) {
    assert.ok(error instanceof Error && error instanceof CodedError);
    assert.ok(isErrorCode(error.code));
  }
  assert.deepEqual(toWireError(errors[2]), {
    code: "rate_limited",
    message: "slow down",
    retryAfterMs: 250,
  });
  assert.deepEqual(toWireError(new TypeError("x is undefined"), "history could not be read"), {
    code: "internal",
    message: "history could not be read",
  });
  assert.equal(isErrorCode("not_a_code"), false);
});
