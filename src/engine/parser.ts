/**
 * Engine.IO protocol v4 packet codec: single packets (WebSocket frames) and payloads
 * (HTTP long-polling bodies, packets joined by the record separator).
 *
 * @example
 * ```ts
 * encodePayload([{ type: "message", data: "hi" }, { type: "ping" }]); // "4hi\x1e2"
 * decodePacket("4hi"); // { type: "message", data: "hi" }
 * ```
 * @module
 */
import { Buffer } from "node:buffer";

/** Engine.IO packet types, in protocol order (the index is the wire digit). */
export const PACKET_TYPES = [
  "open",
  "close",
  "ping",
  "pong",
  "message",
  "upgrade",
  "noop",
] as const;

/** An Engine.IO packet type name. */
export type PacketType = typeof PACKET_TYPES[number];

/** Packet data: text, or binary (only `message` packets carry binary). */
export type PacketData = string | Uint8Array;

/** A decoded Engine.IO packet. */
export interface Packet {
  type: PacketType;
  data?: PacketData;
}

/** Separates packets in a polling payload (ASCII record separator). */
export const RECORD_SEPARATOR = "\x1e";

/** Prefix marking a base64-encoded binary packet in a text payload. */
const BASE64_PREFIX = "b";

const BASE64_PATTERN = /^[A-Za-z0-9+/]*={0,2}$/;

/** Why a packet could not be decoded. */
export class PacketParseError extends Error {
  readonly code = "parse_error";
  constructor(message: string) {
    super(message);
    this.name = "PacketParseError";
  }
}

/**
 * Encodes one packet. Binary data stays binary when the transport supports it
 * (WebSocket), else it becomes `b<base64>` (polling).
 */
export function encodePacket(packet: Packet, supportsBinary: boolean): PacketData {
  const { data } = packet;
  if (data instanceof Uint8Array) {
    return supportsBinary ? data : BASE64_PREFIX + Buffer.from(data).toString("base64");
  }
  return PACKET_TYPES.indexOf(packet.type) + (data ?? "");
}

let lastMessage: string | undefined;
let lastMessageFrame = "";

/**
 * The WebSocket frame text of a text `message` packet (`"4" + data`). A broadcast hands the same
 * string to every recipient's session, so the last frame is kept: one concatenation per
 * broadcast instead of one per recipient.
 */
export function encodeMessageText(data: string): string {
  if (data !== lastMessage) {
    lastMessage = data;
    lastMessageFrame = "4" + data;
  }
  return lastMessageFrame;
}

/** Decodes one packet; throws {@link PacketParseError} on anything that is not valid v4. */
export function decodePacket(encoded: PacketData): Packet {
  if (typeof encoded !== "string") {
    return {
      type: "message",
      data: Buffer.from(encoded.buffer, encoded.byteOffset, encoded.length),
    };
  }
  if (encoded.length === 0) throw new PacketParseError("empty packet");
  const head = encoded[0];
  if (head === BASE64_PREFIX) {
    const base64 = encoded.slice(1);
    if (base64.length % 4 !== 0 || !BASE64_PATTERN.test(base64)) {
      throw new PacketParseError("invalid base64 in binary packet");
    }
    return { type: "message", data: Buffer.from(base64, "base64") };
  }
  const type = PACKET_TYPES[head.charCodeAt(0) - 48];
  if (type === undefined) throw new PacketParseError(`unknown packet type "${head}"`);
  return encoded.length > 1 ? { type, data: encoded.slice(1) } : { type };
}

/** Encodes packets into one polling payload. */
export function encodePayload(packets: readonly Packet[]): string {
  let payload = "";
  for (let i = 0; i < packets.length; i++) {
    if (i > 0) payload += RECORD_SEPARATOR;
    payload += encodePacket(packets[i], false) as string;
  }
  return payload;
}

/** Decodes a polling payload; throws {@link PacketParseError} if any packet is invalid. */
export function decodePayload(payload: string): Packet[] {
  return payload.split(RECORD_SEPARATOR).map(decodePacket);
}
