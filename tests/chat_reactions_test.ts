/**
 * Reactions over real sockets, on both transports: `react` adds and takes back, idempotently and
 * within bounds; the room hears `message:reactions`, batched; every read — `join`, `history`, the
 * history on connect, a catch-up, after a restart — carries them; and nobody outside the room
 * (a DM's outsider, a user the room's policy leaves out) can react or hears of a reaction.
 */
import assert from "node:assert/strict";
import type { HistoryAck, JoinAck, ReactAck, ReactionsEvent } from "../src/chat/mod.ts";
import { dmRoom } from "../src/chat/rooms.ts";
import { REACTION_LIMITS } from "../src/chat/service.ts";
import { ChatClient, startChat, tokenFor, within } from "./helpers/chat_server.ts";
import { tempDir } from "./helpers/dispose.ts";

const TRANSPORTS = [["websocket"], ["polling"]] as const;

function ask<T>(client: ChatClient, event: string, payload?: unknown): Promise<T> {
  return within(client.socket.emitWithAck(event, payload), 5000, `${event} ack`);
}

/** Records `message:reactions` events. */
function reactionsHeard(client: ChatClient): ReactionsEvent[] {
  const heard: ReactionsEvent[] = [];
  client.socket.on("message:reactions", (event: ReactionsEvent) => heard.push(event));
  return heard;
}

for (const transports of TRANSPORTS) {
  Deno.test(`reactions (${transports[0]}): add, repeat, take back; the room hears; reads carry them`, async () => {
    await using server = await startChat();
    using alice = await ChatClient.join(server.url, "alice", { transports: [...transports] });
    using bob = await ChatClient.join(server.url, "bob", { transports: [...transports] });
    const heard = reactionsHeard(alice);
    const sent = await alice.send({ message: "vote" });
    assert.ok(sent.ok);
    const id = sent.message.id;

    const first = await ask<ReactAck>(bob, "react", { room: "general", id, emoji: "👍" });
    assert.deepEqual(first, {
      ok: true,
      room: "general",
      id,
      reactions: [{ emoji: "👍", count: 1, users: ["bob"] }],
    });
    const again = await ask<ReactAck>(bob, "react", { id, emoji: "👍", on: true });
    assert.deepEqual(again, first, "adding twice stores one");
    await ask<ReactAck>(alice, "react", { id, emoji: "👍" });
    const both = await ask<ReactAck>(alice, "react", { id, emoji: "🇫🇷" });
    const expected = [
      { emoji: "👍", count: 2, users: ["bob", "alice"] },
      { emoji: "🇫🇷", count: 1, users: ["alice"] },
    ];
    assert.ok(both.ok);
    assert.deepEqual(both.reactions, expected);
    await alice.waitFor(
      () => JSON.stringify(heard.at(-1)?.reactions) === JSON.stringify(expected),
      "message:reactions with both",
    );
    assert.ok(heard.length <= 3, `batched: ${heard.length} events for 3 changes`);
    assert.deepEqual(heard.at(-1), { room: "general", id, reactions: expected });

    const page = await ask<HistoryAck>(bob, "history", { limit: 5 });
    assert.ok(page.ok);
    assert.deepEqual(page.messages.at(-1)?.reactions, expected);
    using carol = await ChatClient.join(server.url, "carol", { transports: [...transports] });
    assert.deepEqual(carol.history.at(-1)?.reactions, expected);
    const before = await alice.send({ message: "after" });
    assert.ok(before.ok);

    const back = await ask<ReactAck>(bob, "react", { id, emoji: "👍", on: false });
    assert.ok(back.ok);
    assert.deepEqual(back.reactions[0], { emoji: "👍", count: 1, users: ["alice"] });
    await alice.waitFor(() => heard.at(-1)?.reactions[0].count === 1, "the take-back heard");
    const none = await ask<ReactAck>(bob, "react", { id, emoji: "👍", on: false });
    assert.deepEqual(none, back, "taking back twice changes nothing");

    // A catch-up after a message older than the reacted one carries its reactions.
    const catchUp = new ChatClient(server.url, {
      auth: { token: await tokenFor("dave"), lastId: "0".repeat(26) },
      transports: [...transports],
    });
    await catchUp.waitFor(() => catchUp.loaded !== undefined, "catch-up");
    assert.deepEqual(catchUp.history.find((m) => m.id === id)?.reactions, back.reactions);
    assert.equal(catchUp.history.at(-1)?.reactions, undefined, "none where there are none");
    catchUp.close();
  });

  Deno.test(`reactions (${transports[0]}): a DM's outsider and a user outside the room's policy neither react nor hear`, async () => {
    await using server = await startChat({ publicRooms: ["general"] });
    const options = { transports: [...transports] };
    using alice = new ChatClient(server.url, {
      ...options,
      auth: { token: await tokenFor("alice") },
    });
    using bob = await ChatClient.join(server.url, "bob", options);
    using mallory = await ChatClient.join(server.url, "mallory", options);
    await alice.waitFor(() => alice.loaded !== undefined, "alice's history");
    const dm = dmRoom("alice", "bob");
    const bobHeard = reactionsHeard(bob);
    const malloryHeard = reactionsHeard(mallory);
    assert.ok((await ask<JoinAck>(bob, "join", { room: dm })).ok);
    const secret = await alice.send({ room: dm, message: "just us" });
    assert.ok(secret.ok);
    const id = secret.message.id;

    const own = await ask<ReactAck>(alice, "react", { room: dm, id, emoji: "❤️" });
    assert.ok(own.ok);
    await bob.waitFor(() => bobHeard.some((event) => event.id === id), "bob hears the DM's");
    const intruding = await ask<ReactAck>(mallory, "react", { room: dm, id, emoji: "😈" });
    assert.equal(!intruding.ok && intruding.error.code, "forbidden");
    const disguised = await ask<ReactAck>(mallory, "react", { room: "general", id, emoji: "😈" });
    assert.equal(
      !disguised.ok && disguised.error.code,
      "not_found",
      "the id alone reveals nothing",
    );
    const elsewhere = await ask<ReactAck>(mallory, "react", { room: "ops", id, emoji: "😈" });
    assert.equal(!elsewhere.ok && elsewhere.error.code, "forbidden");

    // The last thing mallory hears is a reaction in her own room: nothing of the DM came before.
    const open = await bob.send({ message: "public" });
    assert.ok(open.ok);
    await ask<ReactAck>(bob, "react", { id: open.message.id, emoji: "👀" });
    await mallory.waitFor(() => malloryHeard.length > 0, "mallory hears general's");
    assert.deepEqual(malloryHeard.map((event) => event.room), ["general"]);
    assert.equal((await server.store.findMessage(id))?.reactions, undefined);
  });
}

Deno.test("reactions: bad input, other rooms' and deleted messages, and the bounds", async () => {
  await using server = await startChat({
    publicRooms: ["general", "team"],
    reactLimitPerMinute: 100_000,
  });
  using alice = await ChatClient.join(server.url, "alice");
  const sent = await alice.send({ message: "react to me" });
  const gone = await alice.send({ message: "soon gone" });
  assert.ok(sent.ok && gone.ok);
  const id = sent.message.id;
  const code = async (payload: unknown) => {
    const ack = await ask<ReactAck>(alice, "react", payload);
    return ack.ok ? "ok" : ack.error.code;
  };
  for (
    const payload of [
      undefined,
      "👍",
      { id, emoji: "a" },
      { id, emoji: "👍👍" },
      { id, emoji: "" },
      { id, emoji: 1 },
      { id, emoji: "👍 " },
      { id, emoji: "👨‍👩‍👧‍👦".repeat(3) },
      // One grapheme, but not only an emoji: marks piled on it, or selectors that show nothing
      // more (a look-alike of 👍 under another key), or a prefix that joins it.
      { id, emoji: "👍" + "\u0301".repeat(30) },
      { id, emoji: "👍" + "\uFE0F".repeat(20) },
      { id, emoji: "👍\u200D\u200D" },
      { id, emoji: "\u0600👍" },
      { id, emoji: "👍", on: "yes" },
      { id: "nope", emoji: "👍" },
      { emoji: "👍" },
      { id, emoji: "👍", room: "Not A Room" },
    ]
  ) {
    assert.equal(await code(payload), "invalid_payload", JSON.stringify(payload));
  }
  for (const emoji of ["👨‍👩‍👧‍👦", "🇯🇵", "1️⃣", "❤️", "👍🏽"]) {
    assert.equal(await code({ id, emoji }), "ok", emoji);
  }
  for (const emoji of ["🏴󠁧󠁢󠁥󠁮󠁧󠁿", "©️", "🧑🏽‍🚀"]) {
    assert.equal(await code({ id: gone.message.id, emoji }), "ok", emoji);
  }
  assert.equal(await code({ id, emoji: "👍", room: "team" }), "not_found", "another room's id");
  assert.equal(await code({ id: "0".repeat(26), emoji: "👍" }), "not_found");
  await ask(alice, "message:delete", { id: gone.message.id });
  assert.equal(await code({ id: gone.message.id, emoji: "👍" }), "not_found", "a tombstone");

  // alice has 5 emoji on it; 5 more is her bound.
  for (const emoji of ["😀", "😁", "😂", "🤣", "😃"]) assert.equal(await code({ id, emoji }), "ok");
  assert.equal(await code({ id, emoji: "😄" }), "too_many_reactions");
  const others = Array.from({ length: 3 }, (_, index) => `user${index}`);
  const clients = await Promise.all(others.map((user) => ChatClient.join(server.url, user)));
  try {
    const fresh = ["🍎", "🍐", "🍊", "🍋", "🍌", "🍉", "🍇", "🍓", "🫐", "🍈", "🍒"];
    const answers: string[] = [];
    for (const [index, emoji] of fresh.entries()) {
      const ack = await ask<ReactAck>(clients[index % 3], "react", { id, emoji });
      answers.push(ack.ok ? "ok" : ack.error.code);
    }
    // 10 of alice's + 10 new make 20 different emoji: the 11th new one is refused.
    assert.deepEqual(answers, [...Array(10).fill("ok"), "too_many_emoji"]);
    assert.equal(REACTION_LIMITS.maxEmoji, 20);
  } finally {
    for (const client of clients) client.close();
  }
});

Deno.test("reactions: one user's flood is refused at the budget and costs the others nothing", async () => {
  await using server = await startChat({ reactLimitPerMinute: 12 });
  using mallory = await ChatClient.join(server.url, "mallory");
  using bob = await ChatClient.join(server.url, "bob");
  const sent = await bob.send({ message: "target" });
  assert.ok(sent.ok);
  const id = sent.message.id;
  const acks = await Promise.all(
    Array.from(
      { length: 30 },
      (_, index) => ask<ReactAck>(mallory, "react", { id, emoji: "👍", on: index % 2 === 0 }),
    ),
  );
  const refused = acks.filter((ack) => !ack.ok && ack.error.code === "rate_limited").length;
  assert.equal(refused, 28, "a burst of a sixth of 12 a minute");
  const bobs = await ask<ReactAck>(bob, "react", { id, emoji: "🎉" });
  assert.ok(bobs.ok, "bob's budget is his own");
});

Deno.test("reactions: kept across a restart on the same KV file", async () => {
  await using temp = await tempDir();
  const overrides = { kvPath: `${temp.path}/chat.kv` };
  let id: string;
  {
    await using first = await startChat(overrides);
    using alice = await ChatClient.join(first.url, "alice");
    const sent = await alice.send({ message: "remember" });
    assert.ok(sent.ok);
    id = sent.message.id;
    assert.ok((await ask<ReactAck>(alice, "react", { id, emoji: "💾" })).ok);
  }
  await using server = await startChat(overrides);
  using bob = await ChatClient.join(server.url, "bob");
  assert.deepEqual(bob.history.find((message) => message.id === id)?.reactions, [
    { emoji: "💾", count: 1, users: ["alice"] },
  ]);
});
