/**
 * Who a request really comes from when the server sits behind reverse proxies: the TCP peer, or,
 * when that peer is a trusted proxy, the right-most `X-Forwarded-For` address that is not itself a
 * trusted proxy (what nginx's `real_ip_recursive on` does). Addresses from untrusted peers'
 * headers are never believed: anyone can send `X-Forwarded-For`.
 *
 * @example
 * ```ts
 * const clientAddress = createClientAddress(["10.0.0.0/8", "::1"]);
 * Deno.serve((request, info) => new Response(clientAddress(request, info)));
 * ```
 * @module
 */
import type { ConnectionInfo } from "../engine/mod.ts";

/** A block of addresses: IPv4 is held as IPv4-mapped IPv6, so one comparison serves both. */
export interface AddressRange {
  /** 16 bytes. */
  bytes: Uint8Array;
  /** Leading bits that must match (0–128). */
  prefixBits: number;
}

const IPV4_OCTET = "(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
const IPV4_PATTERN = new RegExp(`^${IPV4_OCTET}\\.${IPV4_OCTET}\\.${IPV4_OCTET}\\.${IPV4_OCTET}$`);
const HEX_GROUP = /^[0-9a-f]{1,4}$/i;
/** `::ffff:a.b.c.d` holds IPv4 address a.b.c.d. */
const IPV4_MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

function parseIpv4(text: string): number[] | undefined {
  const match = IPV4_PATTERN.exec(text);
  return match ? match.slice(1).map(Number) : undefined;
}

function parseIpv6(text: string): Uint8Array | undefined {
  const halves = text.replace(/%.*$/, "").split("::");
  if (halves.length > 2) return undefined;
  const groups = halves.map((half) => half === "" ? [] : half.split(":"));
  const words: number[][] = groups.map(() => []);
  for (const [side, part] of groups.entries()) {
    for (const [index, group] of part.entries()) {
      const isLast = side === groups.length - 1 && index === part.length - 1;
      const ipv4 = isLast ? parseIpv4(group) : undefined;
      if (ipv4) words[side].push((ipv4[0] << 8) | ipv4[1], (ipv4[2] << 8) | ipv4[3]);
      else if (HEX_GROUP.test(group)) words[side].push(parseInt(group, 16));
      else return undefined;
    }
  }
  const given = words.flat().length;
  if (halves.length === 1 ? given !== 8 : given > 7) return undefined;
  const all = [...words[0], ...Array(8 - given).fill(0), ...(words[1] ?? [])];
  return Uint8Array.from(all.flatMap((word) => [word >> 8, word & 0xff]));
}

/** An IPv4 or IPv6 address as 16 bytes (IPv4 mapped into IPv6), or undefined if it is neither. */
export function parseAddress(text: string): Uint8Array | undefined {
  const ipv4 = parseIpv4(text);
  if (ipv4) return Uint8Array.from([...IPV4_MAPPED_PREFIX, ...ipv4]);
  return text.includes(":") ? parseIpv6(text) : undefined;
}

/** `10.0.0.0/8`, `2001:db8::/32` or a single address; undefined when it is none of these. */
export function parseAddressRange(text: string): AddressRange | undefined {
  const [address, prefix, extra] = text.trim().split("/");
  const bytes = parseAddress(address);
  if (bytes === undefined || extra !== undefined) return undefined;
  const isIpv4 = parseIpv4(address) !== undefined;
  const maxBits = isIpv4 ? 32 : 128;
  if (prefix === undefined) return { bytes, prefixBits: 128 };
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > maxBits) return undefined;
  return { bytes, prefixBits: Number(prefix) + (isIpv4 ? 96 : 0) };
}

/** Whether `address` (from {@link parseAddress}) lies in `range`. */
export function inRange(address: Uint8Array, range: AddressRange): boolean {
  const fullBytes = range.prefixBits >> 3;
  for (let i = 0; i < fullBytes; i++) if (address[i] !== range.bytes[i]) return false;
  const restBits = range.prefixBits & 7;
  if (restBits === 0) return true;
  const mask = (0xff << (8 - restBits)) & 0xff;
  return (address[fullBytes] & mask) === (range.bytes[fullBytes] & mask);
}

/** The usual text of an address: dotted IPv4 (also for IPv4-mapped), compressed lower-case IPv6. */
export function formatAddress(bytes: Uint8Array): string {
  if (IPV4_MAPPED_PREFIX.every((byte, index) => bytes[index] === byte)) {
    return bytes.slice(12).join(".");
  }
  const words = Array.from({ length: 8 }, (_, i) => (bytes[2 * i] << 8) | bytes[2 * i + 1]);
  // RFC 5952: the longest run of two or more zero words (the first of equals) becomes "::".
  let run = { start: -1, length: 1 };
  for (let i = 0; i < 8; i++) {
    if (words[i] !== 0) continue;
    let end = i;
    while (end < 8 && words[end] === 0) end++;
    if (end - i > run.length) run = { start: i, length: end - i };
    i = end;
  }
  const hex = words.map((word) => word.toString(16));
  if (run.start < 0) return hex.join(":");
  return `${hex.slice(0, run.start).join(":")}::${hex.slice(run.start + run.length).join(":")}`;
}

/** One `X-Forwarded-For` entry without the port or brackets some proxies add. */
function stripPort(entry: string): string {
  const bracketed = /^\[([^\]]+)\](:\d+)?$/.exec(entry);
  if (bracketed) return bracketed[1];
  return /^[\d.]+:\d+$/.test(entry) ? entry.slice(0, entry.lastIndexOf(":")) : entry;
}

function peerAddress(info: ConnectionInfo): string {
  const address = info.remoteAddr as { hostname?: string; path?: string };
  return address.hostname ?? address.path ?? "";
}

/**
 * Returns a function giving a request's client address: the TCP peer unless the peer lies in
 * `trustedProxies` (addresses and CIDRs, validated by config), then the right-most
 * `X-Forwarded-For` entry that is not a trusted proxy — or the left-most when all of them are,
 * or the last trusted hop when the next entry is malformed.
 */
export function createClientAddress(
  trustedProxies: readonly string[],
): (request: Request, info: ConnectionInfo) => string {
  const ranges = trustedProxies.map((text) => {
    const range = parseAddressRange(text);
    if (range === undefined) throw new TypeError(`"${text}" is not an address or CIDR`);
    return range;
  });
  const trusted = (bytes: Uint8Array) => ranges.some((range) => inRange(bytes, range));
  return (request, info) => {
    const peer = peerAddress(info);
    const peerBytes = ranges.length === 0 ? undefined : parseAddress(peer);
    if (peerBytes === undefined || !trusted(peerBytes)) return peer;
    const hops = (request.headers.get("x-forwarded-for") ?? "").split(",")
      .map((entry) => entry.trim()).filter((entry) => entry !== "");
    let client = peerBytes;
    for (const hop of hops.reverse()) {
      const bytes = parseAddress(stripPort(hop));
      if (bytes === undefined) break;
      client = bytes;
      if (!trusted(bytes)) break;
    }
    return formatAddress(client);
  };
}
