// @ts-check
/// <reference lib="dom" />
/**
 * The rooms the page knows: each one's messages in id order, drawn into its own message list
 * (`role="log"`) that is kept while another room is on screen, what it has on its way out, its
 * unread count, and the sidebar that lists them. User text is only ever set as text.
 */
import {
  continuesGroup,
  describe,
  dmPeer,
  formatTime,
  HueAssigner,
  isDevUser,
  linkSegments,
  SYSTEM_USER_ID,
} from "./format.js";

/** @typedef {import("./format.js").User} User */
/** @typedef {import("./format.js").ChatMessage} ChatMessage */
/** @typedef {import("./format.js").Reaction} Reaction */
/** @typedef {import("./format.js").ReplyQuote} ReplyQuote */
/** @typedef {import("./outbox.js").OutboxEntry} OutboxEntry */
/**
 * A room as the page knows it. `state`: not joined, joining (its history is on the way) or
 * joined; the page rejoins every room it is in after a reconnect. `catchUp` gathers the history
 * `load`s of a (re)connection until the room's `loaded`. `readWanted` is the newest message seen
 * on screen; `readSent` the newest the server has stored as read. `notice` is what the page has
 * to say about this room (a refusal), shown while it is on screen and gone with it.
 * @typedef {{
 *   id: string,
 *   log: HTMLElement,
 *   messages: ChatMessage[],
 *   items: Map<string, HTMLElement>,
 *   outgoing: Map<string, HTMLElement>,
 *   state: "none" | "joining" | "joined" | "refused",
 *   notice?: string,
 *   hasMore: boolean,
 *   unread: number,
 *   listed: boolean,
 *   lastMessage?: ChatMessage,
 *   readWanted?: string,
 *   readSent?: string,
 *   readStoredAt?: number,
 *   readTimer?: ReturnType<typeof setTimeout>,
 *   catchUp?: ChatMessage[],
 *   scrollTop?: number,
 *   following: boolean,
 *   reads: Map<string, string>,
 *   mentions: number,
 *   people: User[],
 *   seen?: HTMLElement,
 * }} Room
 */

/** The emoji the reaction picker offers. */
export const PICKER_EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "😢", "👀", "🙏"];

/** Unread counts from this on show as "99+" (the server counts no further). */
const UNREAD_SHOWN = 100;

/**
 * @param {string} tag
 * @param {string} className
 * @param {string} [text]
 */
export function make(tag, className, text) {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * A small "dev" tag for a user from dev login: anyone may log in under any name there.
 * @param {User} user
 */
export function devBadge(user) {
  if (!isDevUser(user)) return [];
  const badge = make("span", "dev-badge", "dev");
  badge.title = "Dev login: anyone can pick this name";
  return [badge];
}

export class Rooms {
  /** @type {Map<string, Room>} */
  #rooms = new Map();
  /** Display names of everyone seen, for naming DM rooms. */
  /** @type {Map<string, string>} */
  names = new Map();
  hues = new HueAssigner();
  /** @type {User | undefined} */
  me;
  /** The room on screen. */
  current;
  /**
   * Asked to edit or delete one of the user's own messages.
   * @type {((action: "edit" | "delete", id: string, text: string) => void) | undefined}
   */
  onChange;
  /**
   * Asked to add (`on`) or take back a reaction, to reply to a message, or to open its thread.
   * @type {{
   *   react(message: ChatMessage, emoji: string, on: boolean): void,
   *   reply(message: ChatMessage): void,
   *   thread(message: ChatMessage): void,
   * } | undefined}
   */
  onMessageAction;

  /** @param {string} defaultRoom */
  constructor(defaultRoom) {
    this.defaultRoom = defaultRoom;
    this.current = defaultRoom;
  }

  /** @param {string} id */
  get(id) {
    let room = this.#rooms.get(id);
    if (room === undefined) {
      const log = make("div", "messages");
      log.setAttribute("role", "log");
      log.setAttribute("aria-live", "polite");
      room = {
        id,
        log,
        messages: [],
        items: new Map(),
        outgoing: new Map(),
        state: "none",
        hasMore: false,
        unread: 0,
        listed: false,
        following: true,
        reads: new Map(),
        mentions: 0,
        people: [],
      };
      this.#rooms.set(id, room);
    }
    return room;
  }

  visible() {
    return this.get(this.current);
  }

  all() {
    return [...this.#rooms.values()];
  }

  /** @param {string} id */
  forget(id) {
    this.#rooms.delete(id);
  }

  clear() {
    for (const room of this.#rooms.values()) clearTimeout(room.readTimer);
    this.#rooms.clear();
  }

  /**
   * Whether `id` is one of this user's DMs.
   * @param {string} id
   */
  isDm(id) {
    return this.me !== undefined && dmPeer(id, this.me.id) !== undefined;
  }

  /**
   * `#general`, or for a DM the other person's name.
   * @param {string} id
   */
  label(id) {
    const peer = this.me ? dmPeer(id, this.me.id) : undefined;
    if (peer === undefined) return `#${id}`;
    return this.names.get(peer) ?? peer;
  }

  /**
   * The newest message id of every room the page is in: what a reconnect catches up after.
   * @returns {Record<string, string>}
   */
  lastIds() {
    /** @type {Record<string, string>} */
    const ids = {};
    for (const room of this.#rooms.values()) {
      const lastId = room.messages.at(-1)?.id;
      if (room.state !== "none" && lastId !== undefined) ids[room.id] = lastId;
    }
    return ids;
  }

  /**
   * Inserts messages in id order, skipping those the room has; returns the new ones.
   * @param {Room} room
   * @param {ChatMessage[]} messages
   */
  add(room, messages) {
    /** @type {ChatMessage[]} */
    const fresh = [];
    for (const message of messages) {
      if (room.items.has(message.id)) continue;
      this.names.set(message.user.id, message.user.name);
      let index = room.messages.length;
      while (index > 0 && room.messages[index - 1].id > message.id) index--;
      const previous = room.messages[index - 1];
      const next = room.messages[index];
      room.messages.splice(index, 0, message);
      const item = this.#render(message, continuesGroup(previous, message));
      item.dataset.id = message.id;
      // Messages on their way out stay below every stored one.
      const before = next ? room.items.get(next.id) : room.log.querySelector(".outgoing");
      room.log.insertBefore(item, before ?? null);
      room.items.set(message.id, item);
      if (next) {
        room.items.get(next.id)?.classList.toggle("continued", continuesGroup(message, next));
      }
      fresh.push(message);
    }
    const newest = room.messages.at(-1);
    if (newest && (!room.lastMessage || room.lastMessage.id <= newest.id)) {
      room.lastMessage = newest;
    }
    return fresh;
  }

  /**
   * Shows a message as edited or deleted, where the room has it.
   * @param {ChatMessage} message
   */
  change(message) {
    const room = this.#rooms.get(message.room);
    const item = room?.items.get(message.id);
    if (!room || !item) return;
    const index = room.messages.findIndex((held) => held.id === message.id);
    if (index >= 0) room.messages[index] = message;
    const redrawn = this.#render(message, item.classList.contains("continued"));
    redrawn.dataset.id = message.id;
    // A redraw under the keyboard's focus (a reaction chip pressed) keeps it where it was.
    const focusKey = item.contains(document.activeElement)
      ? /** @type {HTMLElement} */ (document.activeElement).dataset.focusKey
      : undefined;
    item.replaceWith(redrawn);
    room.items.set(message.id, redrawn);
    if (focusKey !== undefined) {
      /** @type {HTMLElement | null} */ (redrawn.querySelector(
        `[data-focus-key="${CSS.escape(focusKey)}"]`,
      ))
        ?.focus();
    }
  }

  /**
   * A message drawn on its own (the thread panel): no actions, nothing to edit.
   * @param {ChatMessage} message
   */
  renderPlain(message) {
    return this.#render({ ...message, id: undefined });
  }

  /**
   * Shows `text` ("Seen", "Seen by 3") under the user's own newest message of the room; none
   * without text.
   * @param {Room} room
   * @param {string} text
   */
  showSeen(room, text) {
    const mine = this.me && room.messages.findLast((message) => message.user.id === this.me?.id);
    const item = mine && room.items.get(mine.id);
    if (!item || text === "") {
      room.seen?.remove();
      delete room.seen;
      return;
    }
    room.seen ??= make("p", "seen");
    room.seen.textContent = text;
    if (item.nextElementSibling !== room.seen) item.after(room.seen);
  }

  /**
   * Forgets a room's messages (its outgoing ones stay): a catch-up could not cover the gap.
   * @param {Room} room
   */
  reset(room) {
    for (const item of room.items.values()) item.remove();
    room.items.clear();
    room.messages = [];
  }

  /**
   * Draws (or redraws in place) a message of the outbox, below the room's stored messages. A
   * queued one says why it waits (`waiting`); a failed one says why and offers Retry and Discard.
   * @param {OutboxEntry} entry
   * @param {{ retry: () => void, discard: () => void, waiting: string }} actions
   */
  drawOutgoing(entry, { retry, discard, waiting }) {
    const room = this.get(entry.room);
    const author = this.me ?? { id: "", name: "You" };
    const item = this.#render({ user: author, createdAt: entry.createdAt, message: entry.text });
    item.classList.add("outgoing", entry.state === "failed" ? "failed" : "pending");
    item.dataset.clientId = entry.clientId;
    const status = make("p", "delivery");
    if (entry.state === "failed" && entry.error) {
      const again = make("button", "quiet retry", "Retry");
      again.setAttribute("type", "button");
      again.addEventListener("click", retry);
      const drop = make("button", "quiet retry", "Discard");
      drop.setAttribute("type", "button");
      drop.setAttribute("aria-label", "Discard this unsent message");
      drop.addEventListener("click", discard);
      status.append(`Not sent: ${describe(entry.error)} `, again, drop);
    } else {
      status.textContent = entry.state === "sending" ? "Sending…" : waiting;
    }
    item.append(status);
    const old = room.outgoing.get(entry.clientId);
    const hadFocus = old?.contains(document.activeElement) ?? false;
    if (old) old.replaceWith(item);
    else room.log.append(item);
    room.outgoing.set(entry.clientId, item);
    return { room, hadFocus };
  }

  /**
   * @param {string} roomId
   * @param {string} clientId
   */
  removeOutgoing(roomId, clientId) {
    const room = this.get(roomId);
    room.outgoing.get(clientId)?.remove();
    room.outgoing.delete(clientId);
    return room;
  }

  /**
   * Lists named rooms and DMs as links to their hash, with unread badges; returns how many DMs.
   * @param {HTMLElement} namedList
   * @param {HTMLElement} directList
   */
  renderList(namedList, directList) {
    /** @type {Room[]} */
    const named = [];
    /** @type {Room[]} */
    const direct = [];
    for (const room of this.#rooms.values()) {
      if (!room.listed && room.state === "none" && room.id !== this.current) continue;
      (this.me && dmPeer(room.id, this.me.id) !== undefined ? direct : named).push(room);
    }
    const order = (/** @type {Room} */ a, /** @type {Room} */ b) =>
      a.id === this.defaultRoom
        ? -1
        : b.id === this.defaultRoom
        ? 1
        : this.label(a.id).localeCompare(this.label(b.id));
    namedList.replaceChildren(...named.sort(order).map((room) => this.#link(room)));
    directList.replaceChildren(...direct.sort(order).map((room) => this.#link(room)));
    return direct.length;
  }

  /** @param {Room} room */
  #link(room) {
    const item = make("li", "");
    const link = /** @type {HTMLAnchorElement} */ (make("a", "room-link"));
    link.href = `#${room.id}`;
    if (this.isDm(room.id)) {
      const peer = /** @type {string} */ (dmPeer(room.id, this.me?.id ?? ""));
      const label = this.label(room.id);
      const avatar = make("span", `avatar small ${this.hues.classOf(peer)}`, [...label][0] ?? "?");
      avatar.setAttribute("aria-hidden", "true");
      link.append(avatar, make("span", "sr-only", "Direct message with "));
    }
    link.append(make("bdi", "room-name", this.label(room.id)));
    if (room.id === this.current) link.setAttribute("aria-current", "page");
    if (room.mentions > 0 && room.id !== this.current) {
      const badge = make("span", "badge mention-badge", "@");
      badge.append(make("span", "sr-only", " mentions you"));
      link.append(badge);
    }
    if (room.unread > 0) {
      const count = room.unread >= UNREAD_SHOWN ? "99+" : String(room.unread);
      const badge = make("span", "badge", count);
      badge.append(make("span", "sr-only", " unread"));
      link.append(badge);
    }
    item.append(link);
    return item;
  }

  /**
   * @param {{ id?: string, room?: string, user: User, createdAt: string, message: string,
   *   editedAt?: string, deleted?: boolean, reactions?: Reaction[], replyTo?: ReplyQuote,
   *   thread?: { count: number }, mentions?: string[] }} message
   * @param {boolean} [continued] the same author's group goes on: no name of its own on screen
   */
  #render(message, continued = false) {
    const item = make("article", "message");
    if (continued) item.classList.add("continued");
    if (this.me && message.user.id === this.me.id) item.classList.add("mine");
    const system = message.user.id === SYSTEM_USER_ID;
    if (system) item.classList.add("system");
    const header = make("div", "meta");
    // <bdi> and dir="auto" keep a right-to-left (or direction-overriding) name or text to itself.
    const author = system
      ? make("bdi", "author", message.user.name)
      : make("bdi", `author ${this.hues.classOf(message.user.id)}`, message.user.name);
    const time =
      /** @type {HTMLTimeElement} */ (make("time", "time", formatTime(message.createdAt)));
    time.dateTime = message.createdAt;
    time.title = new Date(message.createdAt).toLocaleString();
    header.append(author, ...devBadge(message.user), time);
    if (message.deleted) {
      item.classList.add("deleted");
      item.append(header, make("p", "text removed", "This message was deleted."));
      return item;
    }
    if (message.editedAt) header.append(make("span", "edited", "(edited)"));
    const mine = this.me !== undefined && message.user.id === this.me.id;
    if (mine && message.id !== undefined && this.onChange) {
      const id = message.id;
      const edit = make("button", "link-button", "Edit");
      edit.setAttribute("aria-label", "Edit this message");
      edit.addEventListener("click", () => this.onChange?.("edit", id, message.message));
      const remove = make("button", "link-button", "Delete");
      remove.setAttribute("aria-label", "Delete this message");
      remove.addEventListener("click", () => this.onChange?.("delete", id, message.message));
      header.append(edit, remove);
    }
    if (message.replyTo) item.append(header, this.#quote(message.replyTo));
    else item.append(header);
    if (this.me && message.mentions?.includes(this.me.id) && !mine) {
      item.classList.add("mentions-me");
      header.append(make("span", "mention-flag", "mentions you"));
    }
    item.append(renderText(message.message));
    if (message.id !== undefined && message.room !== undefined) {
      item.append(this.#actions(/** @type {ChatMessage} */ (message)));
    }
    return item;
  }

  /**
   * The quote of the message a reply answers.
   * @param {ReplyQuote} quote
   */
  #quote(quote) {
    const block = make("blockquote", "quote");
    block.append(make("span", "sr-only", "Replying to "));
    block.append(make("bdi", "quote-author", quote.user.name));
    const preview = make("span", "quote-text", quote.deleted ? "deleted message" : quote.preview);
    preview.dir = "auto";
    block.append(" ", preview);
    return block;
  }

  /**
   * A stored message's reactions (a chip per emoji, pressed when one is the user's), the picker,
   * Reply, and its thread's count.
   * @param {ChatMessage} message
   */
  #actions(message) {
    const row = make("div", "actions");
    const me = this.me?.id ?? "";
    const act = this.onMessageAction;
    for (const reaction of message.reactions ?? []) {
      const mine = reaction.users.includes(me);
      const chip = button(
        `chip${mine ? " mine" : ""}`,
        `${reaction.emoji} ${reaction.count}`,
        `${reaction.emoji} ${reaction.count} ${reaction.count === 1 ? "reaction" : "reactions"}` +
          (mine ? ", yours: press to take it back" : ": press to add yours"),
        `react:${reaction.emoji}`,
      );
      chip.setAttribute("aria-pressed", String(mine));
      chip.addEventListener("click", () => act?.react(message, reaction.emoji, !mine));
      row.append(chip);
    }
    const picker = make("div", "picker");
    picker.setAttribute("role", "group");
    picker.setAttribute("aria-label", "Pick a reaction");
    picker.hidden = true;
    const open = button("link-button add-reaction", "+😀", "Add a reaction", "picker");
    open.setAttribute("aria-expanded", "false");
    const close = () => {
      picker.hidden = true;
      open.setAttribute("aria-expanded", "false");
    };
    open.addEventListener("click", () => {
      picker.hidden = !picker.hidden;
      open.setAttribute("aria-expanded", String(!picker.hidden));
      if (!picker.hidden) /** @type {HTMLElement} */ (picker.firstElementChild)?.focus();
    });
    for (const emoji of PICKER_EMOJI) {
      const choice = button("pick", emoji, `React with ${emoji}`, `pick:${emoji}`);
      choice.addEventListener("click", () => {
        close();
        open.focus();
        act?.react(message, emoji, true);
      });
      picker.append(choice);
    }
    picker.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      event.stopPropagation();
      close();
      open.focus();
    });
    const reply = button("link-button", "Reply", "Reply to this message", "reply");
    reply.addEventListener("click", () => act?.reply(message));
    row.append(open, reply);
    if (message.thread && message.thread.count > 0) {
      const count = message.thread.count;
      const label = count === 1 ? "1 reply" : `${count} replies`;
      const thread = button(
        "link-button thread-link",
        label,
        `${label}: open the thread`,
        "thread",
      );
      thread.addEventListener("click", () => act?.thread(message));
      row.append(thread);
    }
    row.append(picker);
    return row;
  }
}

/**
 * A button that says `text` and is named `label` for assistive technology.
 * @param {string} className
 * @param {string} text
 * @param {string} label
 * @param {string} focusKey what finds it again after a redraw
 */
function button(className, text, label, focusKey) {
  const element = /** @type {HTMLButtonElement} */ (make("button", className, text));
  element.type = "button";
  element.setAttribute("aria-label", label);
  element.dataset.focusKey = focusKey;
  return element;
}

/**
 * Message text as text nodes, with http(s) links as links (built as elements, never as markup).
 * @param {string} text
 */
function renderText(text) {
  const paragraph = make("p", "text");
  paragraph.dir = "auto";
  for (const segment of linkSegments(text)) {
    if (typeof segment === "string") {
      paragraph.append(segment);
      continue;
    }
    const link = /** @type {HTMLAnchorElement} */ (make("a", "", segment.url));
    link.href = segment.url;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    paragraph.append(link);
  }
  return paragraph;
}
