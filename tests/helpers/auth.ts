/**
 * Assertions shared by the auth test suites.
 * @module
 */
import assert from "node:assert/strict";
import { AuthError, type AuthErrorCode } from "../../src/auth/token.ts";

/** An `assert.rejects` validator: the error is an AuthError with `code` (and `message`). */
export function rejectsWith(code: AuthErrorCode, message?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof AuthError, `expected AuthError, got ${error}`);
    assert.equal(error.code, code, error.message);
    if (message) assert.match(error.message, message);
    return true;
  };
}
