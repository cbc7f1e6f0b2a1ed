import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { createTokenVerifier } from "../src/auth/token.ts";
import { readAuthConfig } from "../src/auth/settings.ts";
import { rejectsWith } from "./helpers/auth.ts";

const KID = "key-2026";
const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
const publicJwk: JWK = { ...await exportJWK(publicKey), kid: KID, alg: "ES256", use: "sig" };

/** A local identity provider serving one JWKS response; counts the requests it gets. */
function startKeySet(respond: () => Response = () => Response.json({ keys: [publicJwk] })) {
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    requests++;
    return respond();
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/.well-known/jwks.json`,
    get requests() {
      return requests;
    },
    close: () => server.shutdown(),
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

function sign(kid: string, sub = "u1"): Promise<string> {
  return new SignJWT({ sub }).setProtectedHeader({ alg: "ES256", kid }).setExpirationTime("1h")
    .sign(privateKey);
}

Deno.test("auth jwks: tokens with a known kid verify, and the key set is fetched once", async () => {
  await using keySet = startKeySet();
  const verify = createTokenVerifier(readAuthConfig({ JWT_JWKS_URL: keySet.url }));
  for (const sub of ["u1", "u2", "u3", "u4"]) {
    assert.equal((await verify(await sign(KID, sub))).user.id, sub);
  }
  const concurrent = await Promise.all(
    ["a", "b", "c"].map(async (sub) => verify(await sign(KID, sub))),
  );
  assert.deepEqual(concurrent.map((identity) => identity.user.id), ["a", "b", "c"]);
  assert.equal(keySet.requests, 1);
});

Deno.test("auth jwks: a token with an unknown kid is invalid_token", async () => {
  await using keySet = startKeySet();
  const verify = createTokenVerifier({ key: { kind: "jwks", url: keySet.url } });
  await assert.rejects(
    verify(await sign("some-other-key")),
    rejectsWith("invalid_token", /key id \(kid\) is not in/),
  );
  assert.equal((await verify(await sign(KID))).user.id, "u1");
  assert.equal(keySet.requests, 1);
});

Deno.test("auth jwks: an unreachable key set is auth_unavailable", async () => {
  const keySet = startKeySet();
  await keySet.close();
  const verify = createTokenVerifier({ key: { kind: "jwks", url: keySet.url } });
  await assert.rejects(
    verify(await sign(KID)),
    rejectsWith("auth_unavailable", /signing keys could not be fetched/),
  );
});

Deno.test("auth jwks: a key set answering with an error or garbage is auth_unavailable", async () => {
  const responses = [
    () => new Response("down for maintenance", { status: 503 }),
    () => new Response("not json", { headers: { "content-type": "application/json" } }),
    () => Response.json({ keys: "none" }),
  ];
  for (const respond of responses) {
    await using keySet = startKeySet(respond);
    const verify = createTokenVerifier({ key: { kind: "jwks", url: keySet.url } });
    await assert.rejects(verify(await sign(KID)), rejectsWith("auth_unavailable"));
  }
});

Deno.test("auth jwks: HMAC tokens are refused before any key is fetched", async () => {
  await using keySet = startKeySet();
  const verify = createTokenVerifier({ key: { kind: "jwks", url: keySet.url } });
  const forged = await new SignJWT({ sub: "admin" }).setProtectedHeader({
    alg: "HS256",
    kid: KID,
  })
    .sign(new TextEncoder().encode(JSON.stringify(publicJwk)));
  await assert.rejects(verify(forged), rejectsWith("invalid_token", /HS256 is not accepted/));
  assert.equal(keySet.requests, 0);
});
