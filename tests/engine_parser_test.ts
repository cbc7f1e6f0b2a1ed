import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  decodePacket,
  decodePayload,
  encodeMessageText,
  encodePacket,
  encodePayload,
  PACKET_TYPES,
  PacketParseError,
  RECORD_SEPARATOR,
} from "../src/engine/parser.ts";

const isParseError = (error: unknown) => {
  assert.ok(error instanceof PacketParseError, `expected PacketParseError, got ${error}`);
  assert.equal(error.code, "parse_error");
  return true;
};

Deno.test("parser: each packet type encodes as its digit followed by its data", () => {
  assert.deepEqual(PACKET_TYPES, ["open", "close", "ping", "pong", "message", "upgrade", "noop"]);
  PACKET_TYPES.forEach((type, digit) => {
    assert.equal(encodePacket({ type }, false), String(digit));
    assert.equal(encodePacket({ type }, true), String(digit));
  });
  assert.equal(encodePacket({ type: "open", data: '{"sid":"x"}' }, false), '0{"sid":"x"}');
  assert.equal(encodePacket({ type: "ping", data: "probe" }, true), "2probe");
  assert.equal(encodePacket({ type: "message", data: "héllo ✓" }, false), "4héllo ✓");
});

Deno.test("parser: each packet type decodes, with data only when present", () => {
  PACKET_TYPES.forEach((type, digit) => {
    assert.deepEqual(decodePacket(String(digit)), { type });
  });
  assert.deepEqual(decodePacket("3probe"), { type: "pong", data: "probe" });
  assert.deepEqual(decodePacket("4hello"), { type: "message", data: "hello" });
  // Only the first character is the type: "44" is the message "4".
  assert.deepEqual(decodePacket("44"), { type: "message", data: "4" });
});

Deno.test("parser: binary is raw for WebSocket and b<base64> for polling", () => {
  const bytes = new Uint8Array([0, 1, 2, 253, 254, 255]);
  const raw = encodePacket({ type: "message", data: bytes }, true);
  assert.ok(raw instanceof Uint8Array);
  assert.deepEqual([...raw], [...bytes]);
  assert.equal(encodePacket({ type: "message", data: bytes }, false), "bAAEC/f7/");
  assert.equal(encodePacket({ type: "message", data: new Uint8Array() }, false), "b");
});

Deno.test("parser: binary decodes to a Buffer, from a raw frame or from b<base64>", () => {
  const frame = new Uint8Array([9, 8, 7, 6, 5]).subarray(1, 4);
  const fromFrame = decodePacket(frame);
  assert.equal(fromFrame.type, "message");
  assert.ok(Buffer.isBuffer(fromFrame.data));
  assert.deepEqual([...(fromFrame.data as Uint8Array)], [8, 7, 6]);

  const fromBase64 = decodePacket("bAAEC/f7/");
  assert.equal(fromBase64.type, "message");
  assert.ok(Buffer.isBuffer(fromBase64.data));
  assert.deepEqual([...(fromBase64.data as Uint8Array)], [0, 1, 2, 253, 254, 255]);

  assert.deepEqual([...(decodePacket("b").data as Uint8Array)], []);
  assert.deepEqual([...(decodePacket("bAQ==").data as Uint8Array)], [1]);
});

Deno.test("parser: invalid base64 is a parse error", () => {
  for (const bad of ["bAQ", "b!!!!", "bAQ=A", "bA===", "b AQ=="]) {
    assert.throws(() => decodePacket(bad), isParseError, bad);
  }
});

Deno.test("parser: an unknown type or an empty packet is a parse error", () => {
  for (const bad of ["7", "9xyz", "x", "/", ""]) {
    assert.throws(() => decodePacket(bad), isParseError, JSON.stringify(bad));
  }
  assert.throws(() => decodePacket(""), /empty packet/);
  assert.throws(() => decodePacket("9xyz"), /unknown packet type "9"/);
});

Deno.test("parser: a payload joins packets with the record separator", () => {
  assert.equal(RECORD_SEPARATOR, "\x1e");
  const payload = encodePayload([
    { type: "message", data: "hi" },
    { type: "ping" },
    { type: "message", data: new Uint8Array([1, 2, 3]) },
    { type: "noop" },
  ]);
  assert.equal(payload, "4hi\x1e2\x1ebAQID\x1e6");
  assert.equal(encodePayload([{ type: "message", data: "solo" }]), "4solo");
  assert.equal(encodePayload([]), "");
});

Deno.test("parser: a payload decodes into its packets, binary as Buffers", () => {
  const packets = decodePayload("4hi\x1e2\x1ebAQID\x1e6");
  assert.equal(packets.length, 4);
  assert.deepEqual(packets[0], { type: "message", data: "hi" });
  assert.deepEqual(packets[1], { type: "ping" });
  assert.equal(packets[2].type, "message");
  assert.deepEqual([...(packets[2].data as Uint8Array)], [1, 2, 3]);
  assert.deepEqual(packets[3], { type: "noop" });

  const roundTrip = [{ type: "message" as const, data: "a\nb" }, { type: "close" as const }];
  assert.deepEqual(decodePayload(encodePayload(roundTrip)), roundTrip);
});

Deno.test("parser: one bad packet makes the whole payload a parse error", () => {
  for (const bad of ["", "4a\x1e", "\x1e4a", "4a\x1e9xyz", "4a\x1ebAQ"]) {
    assert.throws(() => decodePayload(bad), isParseError, JSON.stringify(bad));
  }
});

Deno.test("parser: encodeMessageText frames a text message, the same for a repeated broadcast", () => {
  const broadcast = '2["load",[{"message":"hi"}]]';
  assert.equal(encodeMessageText(broadcast), '42["load",[{"message":"hi"}]]');
  assert.equal(
    encodeMessageText(broadcast),
    encodePacket({ type: "message", data: broadcast }, true),
  );
  assert.equal(encodeMessageText("2other"), "42other");
  assert.equal(encodeMessageText(""), "4");
  assert.equal(encodeMessageText(broadcast), '42["load",[{"message":"hi"}]]');
});
