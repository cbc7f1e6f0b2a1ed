import assert from "node:assert/strict";
import {
  createIdGenerator,
  instanceNumber,
  isMessageId,
  MAX_ROOM_NUMBER,
  MAX_ROOM_SEQUENCE,
  sequencedId,
  timeOfId,
} from "../src/store/id.ts";

Deno.test("id: ids are 26 Crockford base32 characters", () => {
  const id = createIdGenerator()();
  assert.equal(id.length, 26);
  assert.match(id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
});

Deno.test("id: ids from later milliseconds sort after earlier ones", () => {
  let clock = 1_700_000_000_000;
  const nextId = createIdGenerator(() => clock);
  const ids: string[] = [];
  for (let step = 0; step < 100; step++) {
    clock += 1;
    ids.push(nextId());
  }
  assert.deepEqual([...ids].sort(), ids);
  const independent = createIdGenerator(() => clock + 1)();
  assert.ok(independent > ids[ids.length - 1]);
});

Deno.test("id: 10k ids in one frozen millisecond are unique and in generation order", () => {
  const nextId = createIdGenerator(() => 1_700_000_000_000);
  const ids = Array.from({ length: 10_000 }, () => nextId());
  assert.equal(new Set(ids).size, ids.length);
  assert.deepEqual([...ids].sort(), ids);
  assert.ok(ids.every((id) => timeOfId(id) === 1_700_000_000_000));
});

Deno.test("id: a clock stepping backwards keeps ids increasing on the last timestamp", () => {
  const readings = [5_000, 5_001, 4_000, 3_000, 5_001, 5_002];
  const nextId = createIdGenerator(() => readings.shift()!);
  const ids = Array.from({ length: 6 }, () => nextId());
  assert.deepEqual([...ids].sort(), ids);
  assert.equal(new Set(ids).size, 6);
  assert.deepEqual(ids.map(timeOfId), [5_000, 5_001, 5_001, 5_001, 5_001, 5_002]);
});

Deno.test("id: timeOfId returns the millisecond the id was made in", () => {
  for (const time of [0, 1, 1_700_000_000_123, 2 ** 48 - 1]) {
    assert.equal(timeOfId(createIdGenerator(() => time)()), time);
  }
  const before = Date.now();
  const id = createIdGenerator()();
  assert.ok(timeOfId(id) >= before && timeOfId(id) <= Date.now());
  assert.throws(() => timeOfId("nope"), RangeError);
});

Deno.test("id: a clock outside the 48-bit range is refused", () => {
  assert.throws(() => createIdGenerator(() => -1)(), RangeError);
  assert.throws(() => createIdGenerator(() => 2 ** 48)(), RangeError);
});

Deno.test("id: isMessageId accepts generated ids and rejects everything else", () => {
  assert.equal(isMessageId(createIdGenerator()()), true);
  assert.equal(isMessageId("01ARZ3NDEKTSV4RRFFQ69G5FAV"), true);
  for (const value of ["", "01ARZ3NDEKTSV4RRFFQ69G5FA", "01ARZ3NDEKTSV4RRFFQ69G5FAVX"]) {
    assert.equal(isMessageId(value), false, value);
  }
  assert.equal(isMessageId("01arz3ndektsv4rrffq69g5fav"), false);
  assert.equal(isMessageId("01ARZ3NDEKTSV4RRFFQ69G5FAU"), false, "U is not in the alphabet");
  assert.equal(isMessageId("01ARZ3NDEKTSV4RRFFQ69G5FAI"), false, "I is not in the alphabet");
  for (const value of [undefined, null, 42, {}, ["01ARZ3NDEKTSV4RRFFQ69G5FAV"]]) {
    assert.equal(isMessageId(value), false);
  }
});

Deno.test("id: instances stamped in the id keep ids of several writers apart in one millisecond", () => {
  const frozen = () => 1_700_000_000_000;
  const first = createIdGenerator(frozen, instanceNumber("instance-a"));
  const second = createIdGenerator(frozen, instanceNumber("instance-b"));
  const ids = new Set<string>();
  for (let n = 0; n < 1000; n++) {
    ids.add(first());
    ids.add(second());
  }
  assert.equal(ids.size, 2000);
  assert.notEqual(instanceNumber("instance-a"), instanceNumber("instance-b"));
  assert.equal(instanceNumber("instance-a"), instanceNumber("instance-a"));
  assert.throws(() => createIdGenerator(frozen, 70_000), RangeError);
});

Deno.test("id: sequenced ids are message ids that sort by time, then by the room's sequence", () => {
  const time = 1_700_000_000_000;
  const ids = [
    sequencedId(time, 7, 1),
    sequencedId(time, 7, 2),
    sequencedId(time, 7, 2 ** 32),
    sequencedId(time, 7, MAX_ROOM_SEQUENCE),
    sequencedId(time + 1, 7, 1),
  ];
  assert.ok(ids.every(isMessageId));
  assert.deepEqual([...ids].sort(), ids);
  assert.equal(timeOfId(ids[0]), time);
  assert.notEqual(sequencedId(time, 8, 1), ids[0], "another room's first message differs");
  assert.throws(() => sequencedId(time, MAX_ROOM_NUMBER + 1, 1), RangeError);
  assert.throws(() => sequencedId(time, 1, MAX_ROOM_SEQUENCE + 1), RangeError);
  assert.throws(() => sequencedId(-1, 1, 1), RangeError);
});
