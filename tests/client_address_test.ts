import assert from "node:assert/strict";
import {
  createClientAddress,
  formatAddress,
  inRange,
  parseAddress,
  parseAddressRange,
} from "../src/http/client_address.ts";
import { startChat } from "./helpers/chat_server.ts";

function matches(address: string, range: string): boolean {
  const bytes = parseAddress(address);
  const parsed = parseAddressRange(range);
  assert.ok(bytes, address);
  assert.ok(parsed, range);
  return inRange(bytes, parsed);
}

function clientOf(trusted: string[], peer: string, forwardedFor?: string): string {
  const headers = forwardedFor === undefined ? undefined : { "X-Forwarded-For": forwardedFor };
  const request = new Request("http://chat.example/socket.io/", { headers });
  return createClientAddress(trusted)(request, { remoteAddr: { hostname: peer } });
}

Deno.test("client address: IPv4 CIDRs match their addresses only", () => {
  assert.equal(matches("10.1.2.3", "10.0.0.0/8"), true);
  assert.equal(matches("11.0.0.1", "10.0.0.0/8"), false);
  assert.equal(matches("192.168.1.77", "192.168.1.64/26"), true);
  assert.equal(matches("192.168.1.128", "192.168.1.64/26"), false);
  assert.equal(matches("127.0.0.1", "127.0.0.1"), true);
  assert.equal(matches("127.0.0.2", "127.0.0.1"), false);
  assert.equal(matches("8.8.8.8", "0.0.0.0/0"), true);
  // An IPv4 range is not an IPv6 wildcard.
  assert.equal(matches("::1", "0.0.0.0/0"), false);
});

Deno.test("client address: IPv6 CIDRs match, in any spelling", () => {
  assert.equal(matches("2001:db8::1", "2001:db8::/32"), true);
  assert.equal(matches("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::/32"), true);
  assert.equal(matches("2001:db9::1", "2001:db8::/32"), false);
  assert.equal(matches("fd12:3456::9", "fd00::/8"), true);
  assert.equal(matches("fe80::1%eth0", "fe80::/10"), true);
  assert.equal(matches("::1", "::1"), true);
  assert.equal(matches("::2", "::1"), false);
  assert.equal(matches("2001:db8::1", "::/0"), true);
});

Deno.test("client address: IPv4-mapped IPv6 addresses match IPv4 ranges and back", () => {
  assert.equal(matches("::ffff:10.0.0.5", "10.0.0.0/8"), true);
  assert.equal(matches("::ffff:a00:5", "10.0.0.0/8"), true);
  assert.equal(matches("::ffff:11.0.0.5", "10.0.0.0/8"), false);
  assert.equal(matches("10.0.0.5", "::ffff:10.0.0.0/104"), true);
  assert.equal(matches("10.0.0.5", "::ffff:0:0/96"), true);
  assert.equal(formatAddress(parseAddress("::ffff:10.0.0.5")!), "10.0.0.5");
});

Deno.test("client address: bad addresses and ranges are refused", () => {
  for (
    const text of [
      "",
      "localhost",
      "256.0.0.1",
      "1.2.3",
      "01.2.3.4",
      "1::2::3",
      "12345::",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      ":1:2:3:4:5:6:7",
      "1.2.3.4::",
    ]
  ) {
    assert.equal(parseAddress(text), undefined, text);
  }
  for (const text of ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/8/8", "10.0.0.0/x"]) {
    assert.equal(parseAddressRange(text), undefined, text);
  }
  assert.throws(() => createClientAddress(["nope"]), TypeError);
});

Deno.test("client address: IPv6 is written in its short form", () => {
  const cases: [string, string][] = [
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["0:0:0:0:0:0:0:0", "::"],
    ["::1", "::1"],
    ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
    ["1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"],
    ["FE80::A", "fe80::a"],
  ];
  for (const [given, short] of cases) assert.equal(formatAddress(parseAddress(given)!), short);
});

Deno.test("client address: X-Forwarded-For counts only from a trusted peer", () => {
  // Anyone may send the header: without trusted proxies, or from an untrusted peer, it is ignored.
  assert.equal(clientOf([], "203.0.113.9", "1.1.1.1"), "203.0.113.9");
  assert.equal(clientOf(["10.0.0.0/8"], "203.0.113.9", "1.1.1.1"), "203.0.113.9");
  // From a trusted proxy: the right-most address that is not a trusted proxy.
  assert.equal(clientOf(["10.0.0.0/8"], "10.0.0.2", "1.1.1.1"), "1.1.1.1");
  assert.equal(clientOf(["10.0.0.0/8"], "10.0.0.2", "6.6.6.6, 1.1.1.1, 10.0.0.7"), "1.1.1.1");
  assert.equal(clientOf(["10.0.0.0/8", "::1"], "::1", "2001:db8::5, 10.9.9.9"), "2001:db8::5");
  // A forged left-hand entry never wins over the address the proxy itself saw.
  assert.equal(clientOf(["127.0.0.1"], "127.0.0.1", "10.0.0.1, 198.51.100.4"), "198.51.100.4");
  // All trusted: the left-most; no header: the proxy itself.
  assert.equal(clientOf(["10.0.0.0/8"], "10.0.0.2", "10.0.0.3, 10.0.0.4"), "10.0.0.3");
  assert.equal(clientOf(["10.0.0.0/8"], "10.0.0.2"), "10.0.0.2");
  // A malformed hop stops the walk at the last trusted address.
  assert.equal(clientOf(["10.0.0.0/8"], "10.0.0.2", "1.1.1.1, unknown, 10.0.0.3"), "10.0.0.3");
  // Ports and brackets some proxies add are dropped; a v4-mapped peer is trusted by a v4 range.
  assert.equal(clientOf(["10.0.0.0/8"], "::ffff:10.0.0.2", "1.1.1.1:5123"), "1.1.1.1");
  assert.equal(clientOf(["10.0.0.0/8"], "10.0.0.2", "[2001:db8::7]:443"), "2001:db8::7");
});

async function handshake(url: string, forwardedFor: string): Promise<Response> {
  const response = await fetch(`${url}/socket.io/?EIO=4&transport=polling`, {
    headers: { "X-Forwarded-For": forwardedFor },
  });
  return response;
}

async function sidOf(response: Response): Promise<string> {
  assert.equal(response.status, 200);
  return JSON.parse((await response.text()).slice(1)).sid;
}

Deno.test("client address: a spoofed X-Forwarded-For from an untrusted peer changes nothing", async () => {
  // 4 a minute allows a burst of 1: the second handshake from one address is refused.
  await using server = await startChat({ handshakeLimitPerMinute: 4 });
  const sid = await sidOf(await handshake(server.url, "1.1.1.1"));
  assert.equal(server.app.engine.clients.get(sid)?.remoteAddress, "127.0.0.1");
  const second = await handshake(server.url, "2.2.2.2");
  assert.equal(second.status, 403);
  assert.equal((await second.json()).message, "too many connections from this address");
});

Deno.test("client address: behind a trusted proxy each forwarded client has its own handshake limit", async () => {
  await using server = await startChat({
    handshakeLimitPerMinute: 4,
    trustedProxies: ["127.0.0.1"],
  });
  const first = await sidOf(await handshake(server.url, "1.1.1.1"));
  const second = await sidOf(await handshake(server.url, "2.2.2.2"));
  assert.equal(server.app.engine.clients.get(first)?.remoteAddress, "1.1.1.1");
  assert.equal(server.app.engine.clients.get(second)?.remoteAddress, "2.2.2.2");
  const again = await handshake(server.url, "1.1.1.1");
  assert.equal(again.status, 403);
  await again.body?.cancel();
});
