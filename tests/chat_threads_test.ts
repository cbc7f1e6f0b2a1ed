/**
 * Replies and threads over real sockets, on both transports: a reply quotes its parent as the
 * parent is now (edits and deletes show at every read), the parent carries its thread, the room
 * hears `message:thread`, `thread` pages the replies with no gap or repeat, and nobody outside a
 * room replies into it, reads its threads or hears of them.
 */
import assert from "node:assert/strict";
import type { HistoryAck, JoinAck, MessageAck, ThreadAck, ThreadEvent } from "../src/chat/mod.ts";
import { dmRoom } from "../src/chat/rooms.ts";
import type { ChatMessage } from "../src/types.ts";
import { ChatClient, startChat, within } from "./helpers/chat_server.ts";

const TRANSPORTS = [["websocket"], ["polling"]] as const;

function ask<T>(client: ChatClient, event: string, payload?: unknown): Promise<T> {
  return within(client.socket.emitWithAck(event, payload), 5000, `${event} ack`);
}

function threadsHeard(client: ChatClient): ThreadEvent[] {
  const heard: ThreadEvent[] = [];
  client.socket.on("message:thread", (event: ThreadEvent) => heard.push(event));
  return heard;
}

for (const transports of TRANSPORTS) {
  const options = { transports: [...transports] };

  Deno.test(`threads (${transports[0]}): a reply quotes its parent as it is now; the parent carries its thread`, async () => {
    await using server = await startChat();
    using alice = await ChatClient.join(server.url, "alice", options);
    using bob = await ChatClient.join(server.url, "bob", options);
    const heard = threadsHeard(alice);
    const parent = await alice.send({ message: "x".repeat(150) });
    assert.ok(parent.ok);
    const id = parent.message.id;
    const reply = await bob.send({ message: "answer", replyTo: id });
    assert.ok(reply.ok);
    const quote = { id, user: parent.message.user, preview: "x".repeat(100), deleted: false };
    assert.deepEqual(reply.message.replyTo, quote);
    await alice.waitFor(() => alice.live.some((m) => m.id === reply.message.id), "the reply live");
    assert.deepEqual(alice.live.at(-1)?.replyTo, quote);
    await alice.waitFor(() => heard.length > 0, "message:thread");
    assert.deepEqual(heard.at(-1), {
      room: "general",
      id,
      thread: { count: 1, lastId: reply.message.id, users: ["bob"] },
    });

    await ask(alice, "message:edit", { id, message: "edited parent" });
    const page = await ask<HistoryAck>(bob, "history", {});
    assert.ok(page.ok);
    const [readParent, readReply] = page.messages.slice(-2);
    assert.deepEqual(readParent.thread, { count: 1, lastId: reply.message.id, users: ["bob"] });
    assert.equal(readReply.replyTo?.preview, "edited parent", "the edit shows in the quote");
    await ask(alice, "message:delete", { id });
    using carol = await ChatClient.join(server.url, "carol", options);
    const replied = carol.history.find((m) => m.id === reply.message.id);
    assert.deepEqual(replied?.replyTo, { ...quote, preview: "", deleted: true });
    const refused = await bob.send({ message: "too late", replyTo: id });
    assert.equal(!refused.ok && refused.error.code, "not_found", "no reply to a tombstone");
  });

  Deno.test(`threads (${transports[0]}): thread pages the replies, oldest first, no gap or repeat`, async () => {
    await using server = await startChat({ rateLimitPerMinute: 10_000, rateLimitBurst: 1000 });
    using alice = await ChatClient.join(server.url, "alice", options);
    const parent = await alice.send({ message: "start" });
    assert.ok(parent.ok);
    const id = parent.message.id;
    const replies: ChatMessage[] = [];
    for (let index = 0; index < 12; index++) {
      const sent = await alice.send({ message: `reply ${index}`, replyTo: id });
      assert.ok(sent.ok);
      replies.push(sent.message);
      if (index % 4 === 0) await alice.send({ message: `aside ${index}` });
    }
    const paged: ChatMessage[] = [];
    let before: string | undefined;
    for (let hasMore = true; hasMore;) {
      const page = await ask<ThreadAck>(alice, "thread", { id, before, limit: 5 });
      assert.ok(page.ok);
      paged.unshift(...page.messages);
      hasMore = page.hasMore;
      before = page.messages[0]?.id;
    }
    assert.deepEqual(paged.map((m) => m.id), replies.map((m) => m.id));
    const bad = [
      undefined,
      { id: "nope" },
      { id, limit: 0 },
      { id, limit: 101 },
      { id, before: "x" },
    ];
    for (const payload of bad) {
      const ack = await ask<ThreadAck>(alice, "thread", payload);
      assert.equal(!ack.ok && ack.error.code, "invalid_payload", JSON.stringify(payload));
    }
    const none = await ask<ThreadAck>(alice, "thread", { id: "0".repeat(26) });
    assert.equal(!none.ok && none.error.code, "not_found");
    const badReply = await alice.send({ message: "?", replyTo: "nope" });
    assert.equal(!badReply.ok && badReply.error.code, "invalid_payload");
  });

  Deno.test(`threads (${transports[0]}): a DM's outsider neither replies into it, reads its threads nor hears them`, async () => {
    await using server = await startChat({ publicRooms: ["general", "team"] });
    using alice = await ChatClient.join(server.url, "alice", options);
    using bob = await ChatClient.join(server.url, "bob", options);
    using mallory = await ChatClient.join(server.url, "mallory", options);
    const dm = dmRoom("alice", "bob");
    const bobHeard = threadsHeard(bob);
    const malloryHeard = threadsHeard(mallory);
    assert.ok((await ask<JoinAck>(bob, "join", { room: dm })).ok);
    assert.ok((await ask<JoinAck>(mallory, "join", { room: "team" })).ok);
    const secret = await alice.send({ room: dm, message: "the secret plan" });
    assert.ok(secret.ok);
    const id = secret.message.id;
    const answer = await ask<MessageAck>(bob, "message", { room: dm, message: "ok", replyTo: id });
    assert.ok(answer.ok);
    await bob.waitFor(() => bobHeard.some((event) => event.id === id), "bob hears the thread");

    const intruding = await mallory.send({ room: dm, message: "me too", replyTo: id });
    assert.equal(!intruding.ok && intruding.error.code, "forbidden");
    const smuggled = await mallory.send({ room: "team", message: "quote it", replyTo: id });
    assert.equal(!smuggled.ok && smuggled.error.code, "not_found", "no quote of another room's");
    const reading = await ask<ThreadAck>(mallory, "thread", { room: dm, id });
    assert.equal(!reading.ok && reading.error.code, "forbidden");
    const disguised = await ask<ThreadAck>(mallory, "thread", { room: "general", id });
    assert.equal(!disguised.ok && disguised.error.code, "not_found");

    const open = await bob.send({ room: "team", message: "public" });
    assert.ok(open.ok);
    assert.ok((await mallory.send({ room: "team", message: "re", replyTo: open.message.id })).ok);
    await mallory.waitFor(() => malloryHeard.length > 0, "mallory hears team's thread");
    assert.deepEqual(malloryHeard.map((event) => event.room), ["team"]);
  });
}
