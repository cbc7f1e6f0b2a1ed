import assert from "node:assert/strict";
import { SignJWT } from "jose";
import {
  AuthError,
  type AuthErrorCode,
  cleanDisplayName,
  createTokenVerifier,
  extractToken,
  hasScope,
  isExpired,
  signToken,
  WRITE_SCOPE,
} from "../src/auth/token.ts";

const SECRET = "test-secret-that-is-long-enough";
const key = new TextEncoder().encode(SECRET);
const verify = createTokenVerifier({ key: { kind: "secret", secret: SECRET } });
const nowSeconds = () => Math.floor(Date.now() / 1000);

function rejectsWith(code: AuthErrorCode) {
  return (error: unknown) => {
    assert.ok(error instanceof AuthError, `expected AuthError, got ${error}`);
    assert.equal(error.code, code, error.message);
    return true;
  };
}

function jwt(payload: Record<string, unknown>, secret: Uint8Array = key): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: "HS256" }).sign(secret);
}

function base64url(value: unknown): string {
  return btoa(JSON.stringify(value)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

Deno.test("auth: a valid token gives the identity, name defaulting to sub", async () => {
  const named = await verify(await signToken(SECRET, { sub: "u1", name: "Ada", ttlSeconds: 60 }));
  assert.deepEqual(named.user, { id: "u1", name: "Ada" });
  assert.ok(named.expiresAt !== undefined);
  assert.ok(Math.abs(named.expiresAt - (Date.now() + 60_000)) < 2_000);

  const unnamed = await verify(await signToken(SECRET, { sub: "u2" }));
  assert.deepEqual(unnamed.user, { id: "u2", name: "u2" });

  const forever = await verify(await jwt({ sub: "u3" }));
  assert.deepEqual(forever, { user: { id: "u3", name: "u3" }, scopes: [], rooms: [] });
});

Deno.test("auth: display names lose bidi controls and invisible characters", async () => {
  const reversed = await verify(await signToken(SECRET, { sub: "u1", name: "\u202Egnp.exe" }));
  assert.deepEqual(reversed.user, { id: "u1", name: "gnp.exe" });
  const lookalike = await verify(await signToken(SECRET, { sub: "u2", name: "alice\u200b" }));
  assert.deepEqual(lookalike.user, { id: "u2", name: "alice" });
  // A name derived from sub is cleaned too; the id itself is never changed.
  const fromSub = await verify(await jwt({ sub: "\u2067bob\u2069" }));
  assert.deepEqual(fromSub.user, { id: "\u2067bob\u2069", name: "bob" });
  // Nothing visible left: the sub, then a placeholder.
  const blankName = await verify(await jwt({ sub: "carol", name: "\u200b\u3164 \u00ad" }));
  assert.equal(blankName.user.name, "carol");
  const blankBoth = await verify(await jwt({ sub: "\u200e", name: "\ufeff" }));
  assert.deepEqual(blankBoth.user, { id: "\u200e", name: "anonymous" });
});

Deno.test("auth: cleanDisplayName strips every listed invisible, NFC-normalizes and trims", () => {
  const invisible = [
    ..."\u202A\u202B\u202C\u202D\u202E\u2066\u2067\u2068\u2069\u200E\u200F\u061C",
    ..."\u200B\u200C\u200D\u2060\u2061\u2062\u2063\u2064\uFEFF\u180E\u00AD\u034F",
    ..."\u115F\u1160\u3164\uFFA0\u0000\u0007\u001B\u007F\u009B\u2028\u2029\uFFF9",
    "\u{E0041}", // a tag character (Cf) outside the BMP
  ];
  for (const character of invisible) {
    const code = character.codePointAt(0)!.toString(16);
    assert.equal(cleanDisplayName(`a${character}b`), "ab", `U+${code}`);
  }
  // "e" + combining acute, split by a zero-width space, becomes one precomposed "é".
  assert.equal(cleanDisplayName(" Zoe\u200b\u0301 "), "Zo\u00e9");
  assert.equal(
    cleanDisplayName("\u05e9\u05dc\u05d5\u05dd Ada 日本 🙂"),
    "\u05e9\u05dc\u05d5\u05dd Ada 日本 🙂",
  );
  assert.equal(cleanDisplayName("\u200b \u202e"), "");
});

Deno.test("auth: an expired token is token_expired", async () => {
  const token = await jwt({ sub: "u1", exp: nowSeconds() - 60 });
  await assert.rejects(verify(token), rejectsWith("token_expired"));
  await assert.rejects(verify(token), /token has expired/);
});

Deno.test("auth: a token expired by a few seconds of clock skew is accepted", async () => {
  const identity = await verify(await jwt({ sub: "u1", exp: nowSeconds() - 3 }));
  assert.equal(identity.user.id, "u1");
  const strict = createTokenVerifier({
    key: { kind: "secret", secret: SECRET },
    clockToleranceSeconds: 0,
  });
  await assert.rejects(
    strict(await jwt({ sub: "u1", exp: nowSeconds() - 3 })),
    rejectsWith("token_expired"),
  );
});

Deno.test("auth: a token not valid yet (nbf in the future) is invalid_token", async () => {
  const token = await jwt({ sub: "u1", nbf: nowSeconds() + 120 });
  await assert.rejects(verify(token), rejectsWith("invalid_token"));
  await assert.rejects(verify(token), /not valid yet/);
});

Deno.test("auth: a token signed with another secret is invalid_token", async () => {
  const token = await signToken("some-other-secret", { sub: "u1" });
  await assert.rejects(verify(token), rejectsWith("invalid_token"));
  await assert.rejects(verify(token), /signature is invalid/);
});

Deno.test("auth: an unsigned alg none token is invalid_token", async () => {
  const token = `${base64url({ alg: "none", typ: "JWT" })}.${base64url({ sub: "admin" })}.`;
  await assert.rejects(verify(token), rejectsWith("invalid_token"));
  await assert.rejects(verify(token), /token algorithm none is not accepted/);
});

Deno.test("auth: garbage is invalid_token and an empty token is auth_required", async () => {
  for (const token of ["garbage", "a.b.c", "....", "Bearer x"]) {
    await assert.rejects(verify(token), rejectsWith("invalid_token"));
  }
  await assert.rejects(verify(""), rejectsWith("auth_required"));
});

Deno.test("auth: bad sub or name claims are invalid_token", async () => {
  const badClaims = [
    {},
    { sub: "" },
    { sub: 42 },
    { sub: "x".repeat(257) },
    { sub: "mallory\t" },
    { sub: "mallory\n" },
    { sub: "mallory\u0000" },
    { sub: "mallory\ud800" },
    { sub: "u1", name: 7 },
    { sub: "u1", name: "n".repeat(101) },
  ];
  for (const payload of badClaims) {
    await assert.rejects(verify(await jwt(payload)), rejectsWith("invalid_token"));
  }
  // Ids are opaque and exact: spaces and invisible characters pass unchanged (names are cleaned).
  for (const sub of ["mallory x", "mallory\u00a0", "mallory\u3000", "mallory\ufeff"]) {
    assert.equal((await verify(await jwt({ sub }))).user.id, sub);
  }
  const longest = await verify(await jwt({ sub: "x".repeat(256), name: "n".repeat(100) }));
  assert.equal(longest.user.name.length, 100);
});

Deno.test("auth: JWT_ALGORITHMS picks the HMAC variants a secret accepts", async () => {
  const hs384 = await new SignJWT({ sub: "u1" }).setProtectedHeader({ alg: "HS384" }).sign(key);
  await assert.rejects(verify(hs384), /token algorithm HS384 is not accepted/);
  const both = createTokenVerifier({
    key: { kind: "secret", secret: SECRET },
    algorithms: ["HS256", "HS384"],
  });
  assert.equal((await both(hs384)).user.id, "u1");
});

Deno.test("auth: a secret verifier refuses public-key algorithms at creation", () => {
  assert.throws(
    () => createTokenVerifier({ key: { kind: "secret", secret: SECRET }, algorithms: ["RS256"] }),
    TypeError,
  );
});

Deno.test("auth: the bare { secret } options verify HS256 tokens", async () => {
  const identity = await createTokenVerifier({ secret: SECRET })(await jwt({ sub: "u1" }));
  assert.equal(identity.user.id, "u1");
});

Deno.test("auth: signToken grants scopes and hasScope reads them", async () => {
  const writer = await verify(await signToken(SECRET, { sub: "u1", scope: "chat:write profile" }));
  assert.deepEqual(writer.scopes, ["chat:write", "profile"]);
  assert.equal(hasScope(writer, WRITE_SCOPE), true);
  const reader = await verify(await signToken(SECRET, { sub: "u2" }));
  assert.deepEqual(reader.scopes, []);
  assert.equal(hasScope(reader, WRITE_SCOPE), false);
  assert.equal(WRITE_SCOPE, "chat:write");
});

Deno.test("auth: isExpired re-checks expiry with a tolerance", () => {
  const identity = { user: { id: "u1", name: "u1" }, scopes: [], rooms: [], expiresAt: 10_000 };
  assert.equal(isExpired(identity, 9_000), false);
  assert.equal(isExpired(identity, 14_999), false);
  assert.equal(isExpired(identity, 15_000), true);
  assert.equal(isExpired(identity, 10_500, 0), true);
  assert.equal(
    isExpired({ user: identity.user, scopes: [], rooms: [] }, Number.MAX_SAFE_INTEGER),
    false,
  );
});

Deno.test("auth: extractToken reads auth.token, then the Bearer header", () => {
  assert.equal(extractToken({ token: "abc" }, {}), "abc");
  assert.equal(extractToken({}, { authorization: "Bearer xyz" }), "xyz");
  assert.equal(extractToken(undefined, { authorization: "bearer   xyz  " }), "xyz");
  assert.equal(extractToken(null, { authorization: ["Bearer first", "Bearer second"] }), "first");
  assert.equal(extractToken({ token: "abc" }, { authorization: "Bearer xyz" }), "abc");
  assert.equal(extractToken({ token: "" }, { authorization: "Bearer xyz" }), "xyz");
  assert.equal(extractToken({ token: 42 }, { authorization: "Bearer xyz" }), "xyz");
});

Deno.test("auth: extractToken returns undefined when no usable token is present", () => {
  assert.equal(extractToken(undefined, {}), undefined);
  assert.equal(extractToken({ token: 42 }, {}), undefined);
  assert.equal(extractToken({ token: "   " }, {}), undefined);
  assert.equal(extractToken("abc", {}), undefined);
  assert.equal(extractToken({}, { authorization: undefined }), undefined);
  assert.equal(extractToken({}, { authorization: "Basic dXNlcjpwYXNz" }), undefined);
  assert.equal(extractToken({}, { authorization: "Bearer" }), undefined);
  assert.equal(extractToken({}, { authorization: "Bearer " }), undefined);
  assert.equal(extractToken({}, { authorization: [] }), undefined);
});
