/**
 * Message ids: ULID-like, 26 characters of Crockford base32 (48-bit millisecond time, then 80
 * random bits), so sorting ids as strings sorts messages by creation. One generator hands out
 * strictly increasing ids even when the clock stalls or steps back.
 *
 * @example
 * ```ts
 * const nextId = createIdGenerator();
 * const first = nextId();
 * const second = nextId();
 * console.log(first < second, new Date(timeOfId(first))); // true, about now
 * ```
 * @module
 */

/** Returns a fresh id each call, greater than every id it returned before. */
export type MessageIdGenerator = () => string;

const CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const TIME_LENGTH = 10;
const RANDOM_LENGTH = 16;
const ID_LENGTH = TIME_LENGTH + RANDOM_LENGTH;
const MAX_TIME = 2 ** 48 - 1;
const ID_PATTERN = new RegExp(`^[${CROCKFORD_ALPHABET}]{${ID_LENGTH}}$`);

function encode(value: bigint, length: number): string {
  let text = "";
  for (let index = 0; index < length; index++) {
    text = CROCKFORD_ALPHABET[Number(value & 31n)] + text;
    value >>= 5n;
  }
  return text;
}

const SEQUENCE_BITS = 64n;
const MAX_SEQUENCE = (1n << SEQUENCE_BITS) - 1n;

function randomSequence(): bigint {
  let value = 0n;
  // 62 random bits leave room to count up within one millisecond without overflowing 64.
  for (const byte of crypto.getRandomValues(new Uint8Array(8))) {
    value = (value << 8n) | BigInt(byte);
  }
  return value >> 2n;
}

/** A random 16-bit instance number, used when none is given. */
export function randomInstance(): number {
  return crypto.getRandomValues(new Uint16Array(1))[0];
}

/** Hashes an instance name (`INSTANCE_ID`) to the 16-bit instance number ids carry. */
export function instanceNumber(name: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(name)) hash = Math.imul(hash ^ byte, 0x01000193);
  return (hash >>> 0) & 0xffff;
}

/**
 * Creates a monotonic id generator; `now` is injectable so tests can freeze the clock.
 *
 * An id is 48 bits of milliseconds, 16 bits naming the instance, then a 64-bit sequence that
 * starts at random each millisecond and counts up within it. Several instances writing one store
 * never collide, and each instance's ids sort in the order it made them.
 */
export function createIdGenerator(
  now: () => number = Date.now,
  instance: number = randomInstance(),
): MessageIdGenerator {
  if (!Number.isInteger(instance) || instance < 0 || instance > 0xffff) {
    throw new RangeError(`instance ${instance} is outside 0-65535`);
  }
  const instancePart = BigInt(instance) << SEQUENCE_BITS;
  let lastTime = -1;
  let sequence = 0n;
  return () => {
    const time = Math.floor(now());
    if (!Number.isSafeInteger(time) || time < 0 || time > MAX_TIME) {
      throw new RangeError(`clock returned ${time}, outside the 48-bit millisecond range`);
    }
    if (time > lastTime) {
      lastTime = time;
      sequence = randomSequence();
    } else if (sequence < MAX_SEQUENCE) {
      // The clock stalled or stepped back: stay on the last timestamp so order is kept.
      sequence += 1n;
    } else {
      // 2^62 ids in one millisecond cannot happen; borrow the next millisecond.
      lastTime += 1;
      sequence = randomSequence();
    }
    return encode(BigInt(lastTime), TIME_LENGTH) + encode(instancePart | sequence, RANDOM_LENGTH);
  };
}

/** Room numbers a {@link sequencedId} can carry: 32 bits. */
export const MAX_ROOM_NUMBER = 2 ** 32 - 1;
/** Messages one room can number in {@link sequencedId}s: 48 bits. */
export const MAX_ROOM_SEQUENCE = 2 ** 48 - 1;

/**
 * The id of a room's `sequence`-th message, for a store that numbers each room's messages in its
 * commit (PostgreSQL): `time` (which the store keeps from going back within a room), then 32 bits
 * of the room's number and 48 of the sequence. Within a room such ids sort by sequence; the room
 * number keeps them unique across rooms.
 */
export function sequencedId(time: number, roomNumber: number, sequence: number): string {
  if (!Number.isSafeInteger(time) || time < 0 || time > MAX_TIME) {
    throw new RangeError(`time ${time} is outside the 48-bit millisecond range`);
  }
  if (!Number.isInteger(roomNumber) || roomNumber < 0 || roomNumber > MAX_ROOM_NUMBER) {
    throw new RangeError(`room number ${roomNumber} is outside 0-${MAX_ROOM_NUMBER}`);
  }
  if (!Number.isInteger(sequence) || sequence < 0 || sequence > MAX_ROOM_SEQUENCE) {
    throw new RangeError(`sequence ${sequence} is outside 0-${MAX_ROOM_SEQUENCE}`);
  }
  const suffix = (BigInt(roomNumber) << 48n) | BigInt(sequence);
  return encode(BigInt(time), TIME_LENGTH) + encode(suffix, RANDOM_LENGTH);
}

/** The millisecond timestamp (ms since epoch) encoded in the first 10 characters of an id. */
export function timeOfId(id: string): number {
  if (!isMessageId(id)) throw new RangeError(`"${id}" is not a message id`);
  let time = 0;
  for (const character of id.slice(0, TIME_LENGTH)) {
    time = time * 32 + CROCKFORD_ALPHABET.indexOf(character);
  }
  return time;
}

/** True when `value` has the shape of a message id: 26 upper-case Crockford base32 characters. */
export function isMessageId(value: unknown): value is string {
  return typeof value === "string" && ID_PATTERN.test(value);
}

/** The smallest id that can be generated at `time` (ms since epoch): a range bound for reads. */
export function firstIdAt(time: number): string {
  const clamped = Math.min(MAX_TIME, Math.max(0, Math.floor(time)));
  return encode(BigInt(clamped), TIME_LENGTH) + "0".repeat(RANDOM_LENGTH);
}
