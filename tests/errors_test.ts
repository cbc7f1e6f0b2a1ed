import assert from "node:assert/strict";
import { CodedError, ERROR_CODES, isErrorCode, toWireError } from "../src/errors.ts";
import { AuthError } from "../src/auth.ts";
import { PayloadError } from "../src/payloads.ts";

Deno.test("errors: the README's error table lists exactly the registry's codes", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const start = readme.indexOf("Error codes —");
  assert.ok(start >= 0, "the README has the error table");
  const table = readme.slice(start).split("\n\n")[1];
  const documented = [...table.matchAll(/^\| `([a-z_]+)` +\|/gm)].map((match) => match[1]);
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
