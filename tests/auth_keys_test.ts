import assert from "node:assert/strict";
import {
  type CryptoKey,
  exportPKCS8,
  exportSPKI,
  generateKeyPair,
  importPKCS8,
  type JWTPayload,
  SignJWT,
} from "jose";
import { createTokenVerifier, hasScope } from "../src/auth/token.ts";
import { readAuthConfig } from "../src/auth/settings.ts";
import { rejectsWith } from "./helpers/auth.ts";
import { tempDir } from "./helpers/dispose.ts";

type KeyPair = { publicKey: CryptoKey; privateKey: CryptoKey; pem: string };

async function keyPair(alg: string): Promise<KeyPair> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { publicKey, privateKey, pem: await exportSPKI(publicKey) };
}

const rsa = await keyPair("RS256");
const ec = await keyPair("ES256");
const ed = await keyPair("EdDSA");

/** The RSA private key re-imported for RSA-PSS, so PS256 tokens verify against `rsa.pem`. */
const rsaPss = await importPKCS8(await exportPKCS8(rsa.privateKey), "PS256");

function sign(
  alg: string,
  key: CryptoKey | Uint8Array,
  payload: JWTPayload = { sub: "u1" },
): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg, typ: "JWT" }).setExpirationTime("1h")
    .sign(key);
}

function base64url(value: unknown): string {
  return btoa(JSON.stringify(value)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

Deno.test("auth keys: RS256, ES256 and EdDSA tokens verify against their PEM public key", async () => {
  for (const [alg, pair] of [["RS256", rsa], ["ES256", ec], ["EdDSA", ed]] as const) {
    const verify = createTokenVerifier({ key: { kind: "publicKey", pem: pair.pem } });
    const identity = await verify(await sign(alg, pair.privateKey, { sub: alg, name: "Key" }));
    assert.deepEqual(identity.user, { id: alg, name: "Key" }, alg);
    assert.ok(identity.expiresAt !== undefined);
  }
});

Deno.test("auth keys: a config from JWT_PUBLIC_KEY with literal \\n verifies tokens", async () => {
  const auth = readAuthConfig({ JWT_PUBLIC_KEY: rsa.pem.trim().replaceAll("\n", "\\n") });
  assert.deepEqual(auth.algorithms, ["RS256", "ES256", "EdDSA"]);
  const identity = await createTokenVerifier(auth)(await sign("RS256", rsa.privateKey));
  assert.equal(identity.user.id, "u1");
});

Deno.test("auth keys: a token signed by another key pair is invalid_token", async () => {
  const other = await keyPair("RS256");
  const verify = createTokenVerifier({ key: { kind: "publicKey", pem: rsa.pem } });
  await assert.rejects(
    verify(await sign("RS256", other.privateKey)),
    rejectsWith("invalid_token", /signature is invalid/),
  );
});

Deno.test("auth keys: an alg none token is invalid_token under a public key", async () => {
  const verify = createTokenVerifier({ key: { kind: "publicKey", pem: rsa.pem } });
  const token = `${base64url({ alg: "none", typ: "JWT" })}.${base64url({ sub: "admin" })}.`;
  await assert.rejects(verify(token), rejectsWith("invalid_token", /algorithm none/));
});

Deno.test("auth keys: HS256 signed with the RSA public key PEM as secret is refused", async () => {
  const verify = createTokenVerifier({ key: { kind: "publicKey", pem: rsa.pem } });
  for (const secret of [rsa.pem, rsa.pem.trim()]) {
    const forged = await sign("HS256", new TextEncoder().encode(secret), { sub: "admin" });
    await assert.rejects(
      verify(forged),
      rejectsWith("invalid_token", /token algorithm HS256 is not accepted/),
    );
  }
  assert.throws(
    () => createTokenVerifier({ key: { kind: "publicKey", pem: rsa.pem }, algorithms: ["HS256"] }),
    TypeError,
  );
});

Deno.test("auth keys: the algorithm allow-list refuses other algorithms", async () => {
  const esOnly = createTokenVerifier({
    key: { kind: "publicKey", pem: rsa.pem },
    algorithms: ["ES256"],
  });
  await assert.rejects(
    esOnly(await sign("RS256", rsa.privateKey)),
    rejectsWith("invalid_token", /token algorithm RS256 is not accepted/),
  );
  const psOnly = createTokenVerifier({
    key: { kind: "publicKey", pem: rsa.pem },
    algorithms: ["PS256"],
  });
  assert.equal((await psOnly(await sign("PS256", rsaPss))).user.id, "u1");
});

Deno.test("auth keys: an algorithm that does not fit the key is invalid_token", async () => {
  const verify = createTokenVerifier({ key: { kind: "publicKey", pem: rsa.pem } });
  await assert.rejects(
    verify(await sign("ES256", ec.privateKey)),
    rejectsWith("invalid_token", /ES256 does not match the server's key/),
  );
  assert.equal((await verify(await sign("RS256", rsa.privateKey))).user.id, "u1");
});

Deno.test("auth keys: issuer and audience must match when configured", async () => {
  const verify = createTokenVerifier({
    key: { kind: "publicKey", pem: ec.pem },
    issuer: ["https://idp.example", "https://idp2.example"],
    audience: ["chat"],
  });
  const good = { sub: "u1", iss: "https://idp2.example", aud: ["other", "chat"] };
  assert.equal((await verify(await sign("ES256", ec.privateKey, good))).user.id, "u1");
  const cases: [JWTPayload, RegExp][] = [
    [{ ...good, iss: "https://evil.example" }, /token issuer is not accepted/],
    [{ sub: "u1", aud: "chat" }, /token has no issuer/],
    [{ ...good, aud: "other" }, /token audience is not accepted/],
    [{ sub: "u1", iss: "https://idp.example" }, /token has no audience/],
  ];
  for (const [payload, message] of cases) {
    await assert.rejects(
      verify(await sign("ES256", ec.privateKey, payload)),
      rejectsWith("invalid_token", message),
    );
  }
});

Deno.test("auth keys: scopes come from scope (string) or scp (array)", async () => {
  const verify = createTokenVerifier({ key: { kind: "publicKey", pem: ed.pem } });
  const scopesOf = async (claims: JWTPayload) =>
    (await verify(await sign("EdDSA", ed.privateKey, { sub: "u1", ...claims }))).scopes;
  assert.deepEqual(await scopesOf({ scope: "chat:write  profile" }), ["chat:write", "profile"]);
  assert.deepEqual(await scopesOf({ scp: ["chat:write", "chat:read"] }), [
    "chat:write",
    "chat:read",
  ]);
  assert.deepEqual(await scopesOf({ scp: "chat:read" }), ["chat:read"]);
  assert.deepEqual(await scopesOf({}), []);
  assert.deepEqual(await scopesOf({ scope: 42 }), []);
  assert.deepEqual(await scopesOf({ scp: ["chat:write", 7] }), ["chat:write"]);
  const identity = await verify(
    await sign("EdDSA", ed.privateKey, { sub: "u1", scp: ["chat:write"] }),
  );
  assert.equal(hasScope(identity, "chat:write"), true);
  assert.equal(hasScope(identity, "chat:admin"), false);
});

Deno.test("auth keys: a PEM X.509 certificate verifies tokens signed by its key", async () => {
  await using temp = await tempDir();
  const dir = temp.path;
  const openssl = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-subj",
      "/CN=idp.test",
      "-days",
      "1",
      "-keyout",
      `${dir}/key.pem`,
      "-out",
      `${dir}/cert.pem`,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(openssl.code, 0, new TextDecoder().decode(openssl.stderr));
  const auth = readAuthConfig({ JWT_PUBLIC_KEY: `@${dir}/cert.pem` });
  assert.equal(auth.key.kind, "publicKey");
  const privateKey = await importPKCS8(await Deno.readTextFile(`${dir}/key.pem`), "ES256");
  const identity = await createTokenVerifier(auth)(await sign("ES256", privateKey));
  assert.equal(identity.user.id, "u1");
  await assert.rejects(
    createTokenVerifier(auth)(await sign("ES256", ec.privateKey)),
    rejectsWith("invalid_token", /signature is invalid/),
  );
});
