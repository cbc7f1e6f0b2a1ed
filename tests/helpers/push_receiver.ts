/**
 * A local Web Push service for tests: a `Deno.serve` on port 0 that records each push, and the
 * browser's side of RFC 8291 — a subscription's keys made with WebCrypto (ECDH P-256, a random
 * auth secret) and the decryption of an `aes128gcm` payload with them.
 *
 * @example
 * ```ts ignore
 * await using receiver = await PushReceiver.start();
 * const browser = await TestBrowser.create(receiver.url + "/bob");
 * await store.addPushSubscription("bob", browser.subscription, 10);
 * const payload = await browser.decrypt(receiver.pushes[0].body); // the JSON the server sent
 * ```
 * @module
 */

/** One push the service received. */
export interface ReceivedPush {
  path: string;
  headers: Headers;
  body: Uint8Array;
}

/** A push service that answers `answer` (201 by default) to every push. */
export class PushReceiver implements AsyncDisposable {
  readonly pushes: ReceivedPush[] = [];
  answer = 201;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  private constructor() {
    this.#server = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen() {} },
      async (request) => {
        const body = new Uint8Array(await request.arrayBuffer());
        this.pushes.push({ path: new URL(request.url).pathname, headers: request.headers, body });
        return new Response(null, { status: this.answer });
      },
    );
  }

  static start(): Promise<PushReceiver> {
    return Promise.resolve(new PushReceiver());
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#server.shutdown();
  }
}

const encoder = new TextEncoder();

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const joined = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return joined;
}

async function hkdf(
  salt: Uint8Array<ArrayBuffer>,
  ikm: Uint8Array<ArrayBuffer>,
  info: Uint8Array<ArrayBuffer>,
  bytes: number,
) {
  const key = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt, info },
    key,
    bytes * 8,
  );
  return new Uint8Array(bits);
}

/** A browser's push subscription, with the private key it decrypts with. */
export class TestBrowser {
  private constructor(
    readonly subscription: { endpoint: string; keys: { p256dh: string; auth: string } },
    private readonly privateKey: CryptoKey,
    private readonly publicKey: Uint8Array<ArrayBuffer>,
    private readonly auth: Uint8Array<ArrayBuffer>,
  ) {}

  static async create(endpoint: string): Promise<TestBrowser> {
    const pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, [
      "deriveBits",
    ]) as CryptoKeyPair;
    const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    const auth = crypto.getRandomValues(new Uint8Array(16));
    const keys = { p256dh: base64url(publicKey), auth: base64url(auth) };
    return new TestBrowser({ endpoint, keys }, pair.privateKey, publicKey, auth);
  }

  /** The plaintext of an `aes128gcm` push body (RFC 8188's one record, RFC 8291's keys). */
  async decrypt(body: Uint8Array): Promise<string> {
    const salt = body.slice(0, 16);
    const idLength = body[20];
    const serverKey = body.slice(21, 21 + idLength);
    const ciphertext = body.slice(21 + idLength);
    const serverPublic = await crypto.subtle.importKey(
      "raw",
      serverKey,
      { name: "ECDH", namedCurve: "P-256" },
      false,
      [],
    );
    const shared = new Uint8Array(
      await crypto.subtle.deriveBits(
        { name: "ECDH", public: serverPublic },
        this.privateKey,
        256,
      ),
    );
    const keyInfo = concat(encoder.encode("WebPush: info\0"), this.publicKey, serverKey);
    const ikm = await hkdf(this.auth, shared, keyInfo, 32);
    const cek = await hkdf(salt, ikm, encoder.encode("Content-Encoding: aes128gcm\0"), 16);
    const nonce = await hkdf(salt, ikm, encoder.encode("Content-Encoding: nonce\0"), 12);
    const key = await crypto.subtle.importKey("raw", cek, "AES-GCM", false, ["decrypt"]);
    const padded = new Uint8Array(
      await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce }, key, ciphertext),
    );
    // The last record ends with the delimiter 0x02, then any zero padding.
    let end = padded.length - 1;
    while (end >= 0 && padded[end] === 0) end--;
    if (padded[end] !== 2) throw new Error("not the last record's delimiter");
    return new TextDecoder().decode(padded.slice(0, end));
  }
}
