/**
 * Edits and deletes over real sockets: the room hears `message:updated` and `message:deleted`, and
 * every later read — the history on connect, `history`, a catch-up — has the edited text or the
 * tombstone.
 */
import assert from "node:assert/strict";
import type { ChangeAck, DeletedEvent } from "../src/chat/mod.ts";
import type { ChatMessage } from "../src/types.ts";
import { ChatClient, startChat, tokenFor, within } from "./helpers/chat_server.ts";

function ask<T>(client: ChatClient, event: string, payload: unknown): Promise<T> {
  return within(client.socket.emitWithAck(event, payload), 5000, `${event} ack`);
}

Deno.test("edits: the room hears edits and deletes; history, load and catch-up show them", async () => {
  await using server = await startChat();
  using alice = await ChatClient.join(server.url, "alice");
  using bob = await ChatClient.join(server.url, "bob");
  const before = await alice.send({ message: "before" });
  const sent = await alice.send({ message: "helo" });
  const kept = await alice.send({ message: "kept" });
  assert.ok(before.ok && sent.ok && kept.ok);
  const updates: ChatMessage[] = [];
  const deletions: DeletedEvent[] = [];
  bob.socket.on("message:updated", (message: ChatMessage) => updates.push(message));
  bob.socket.on("message:deleted", (event: DeletedEvent) => deletions.push(event));

  const edited = await ask<ChangeAck>(alice, "message:edit", {
    id: sent.message.id,
    message: "hello",
  });
  assert.ok(edited.ok && edited.message.message === "hello" && edited.message.editedAt);
  await bob.waitFor(() => updates.length === 1, "message:updated");
  assert.deepEqual(updates[0], edited.message);
  const notYours = await ask<ChangeAck>(bob, "message:delete", { id: sent.message.id });
  assert.equal(!notYours.ok && notYours.error.code, "forbidden");
  const deleted = await ask<ChangeAck>(alice, "message:delete", { id: kept.message.id });
  assert.ok(deleted.ok && deleted.message.deleted);
  await bob.waitFor(() => deletions.length === 1, "message:deleted");
  assert.deepEqual(deletions[0], { id: kept.message.id, room: "general" });

  const expected = [before.message.id, sent.message.id, kept.message.id];
  const late = await ChatClient.join(server.url, "carol");
  assert.deepEqual(late.history.map((m) => m.id), expected);
  assert.equal(late.history[1].message, "hello");
  assert.equal(late.history[2].deleted, true);
  assert.equal(late.history[2].message, "");
  const catchUp = new ChatClient(server.url, {
    auth: { token: await tokenFor("dave"), lastId: before.message.id },
  });
  await catchUp.waitFor(() => catchUp.loaded !== undefined, "catch-up");
  assert.deepEqual(catchUp.history.map((m) => [m.id, m.message, m.deleted ?? false]), [
    [sent.message.id, "hello", false],
    [kept.message.id, "", true],
  ]);
  late.close();
  catchUp.close();
});

Deno.test("edits: a chat:moderate token deletes anyone's message", async () => {
  await using server = await startChat();
  using bob = await ChatClient.join(server.url, "bob");
  using moderator = new ChatClient(server.url, {
    auth: { token: await tokenFor("mod", "Mod", 3600, "chat:moderate") },
  });
  await moderator.waitFor(() => moderator.loaded !== undefined, "moderator's history");
  const sent = await bob.send({ message: "spam" });
  assert.ok(sent.ok);
  const removed = await ask<ChangeAck>(moderator, "message:delete", { id: sent.message.id });
  assert.ok(removed.ok && removed.message.deleted);
  assert.equal((await server.store.findMessage(sent.message.id))?.deleted, true);
});

Deno.test("edits: concurrent edits and a delete of one message all answer, applied one at a time", async () => {
  await using server = await startChat({ rateLimitPerMinute: 100_000, rateLimitBurst: 10_000 });
  using alice = await ChatClient.join(server.url, "alice");
  for (let round = 0; round < 20; round++) {
    const sent = await alice.send({ message: `round ${round}` });
    assert.ok(sent.ok);
    const id = sent.message.id;
    const deleting = round % 2 === 0;
    // Acks in the order they arrive, which is the order the changes were applied in.
    const answers: { event: string; ack: ChangeAck }[] = [];
    const change = async (event: string, payload: unknown) => {
      answers.push({ event, ack: await ask<ChangeAck>(alice, event, payload) });
    };
    await Promise.all(
      [...Array(17)].map((_, index) =>
        deleting && index === 8
          ? change("message:delete", { id })
          : change("message:edit", { id, message: `round ${round} edit ${index}` })
      ),
    );
    const codes = answers.map(({ ack }) => ack.ok ? "ok" : ack.error.code);
    assert.ok(codes.every((code) => code === "ok" || code === "not_found"), codes.join());
    const stored = await server.store.findMessage(id);
    if (deleting) {
      assert.equal(stored?.deleted, true);
      const removal = answers.findIndex(({ event }) => event === "message:delete");
      assert.ok(answers[removal].ack.ok, "the delete answers ok");
      // Edits answered before the delete were applied; those after found it deleted.
      assert.deepEqual(codes.slice(removal + 1), codes.slice(removal + 1).map(() => "not_found"));
      assert.ok(codes.slice(0, removal).every((code) => code === "ok"), codes.join());
    } else {
      assert.deepEqual(codes, codes.map(() => "ok"));
      const last = answers.at(-1)!.ack;
      assert.ok(last.ok);
      assert.deepEqual(stored, last.message, "the last edit applied is the one stored");
    }
  }
});
