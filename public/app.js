// @ts-check
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/// <reference lib="esnext" />
/**
 * The chat page: log in (pasted token or dev login), then rooms and direct messages, history,
 * live messages, sending through the outbox, presence, typing and connection state over the
 * stock Socket.IO browser client, which `/socket.io/socket.io.min.js` puts on `window.io`. User
 * text is only ever set as text.
 */
import {
  Budget,
  characterCount,
  cleanToken,
  describe,
  describeLoginError,
  dmPeer,
  dmRoom,
  isRoomId,
  SYSTEM_USER_ID,
} from "./format.js";
import { Outbox } from "./outbox.js";
import { enablePush, pushAvailable } from "./push.js";
import { devBadge, make, Rooms } from "./rooms.js";
import { mintDevToken, Session } from "./session.js";

/** @typedef {import("./format.js").User} User */
/** @typedef {import("./format.js").ChatMessage} ChatMessage */
/** @typedef {import("./format.js").ChatError} ChatError */
/** @typedef {import("./rooms.js").Room} Room */
/** @typedef {{ ok: true, messages: ChatMessage[], hasMore: boolean } | { ok: false, error: ChatError }} HistoryAck */
/**
 * @typedef {{ room: string, unread: number, mentions: number, lastMessage?: ChatMessage }}
 *   RoomSummary
 */
/**
 * @typedef {{ ok: true, rooms: { room: string }[], next?: string, patterns: string[] }
 *   | { ok: false, error: ChatError }} BrowseAck
 */
/**
 * @typedef {{ maxMessageLength: number, defaultRoom: string, devLogin: boolean,
 *   vapidPublicKey?: string }} PageConfig
 */
/**
 * The parts of a socket.io-client `Socket` this page uses.
 * @typedef {{
 *   connected: boolean,
 *   active: boolean,
 *   recovered: boolean,
 *   io: { on(event: string, listener: (...args: any[]) => void): void },
 *   on(event: string, listener: (...args: any[]) => void): void,
 *   emit(event: string, ...args: unknown[]): void,
 *   timeout(ms: number): { emitWithAck(event: string, payload?: unknown): Promise<any> },
 *   connect(): void,
 *   disconnect(): void,
 * }} Socket
 */

/** Typing stops being announced this long after the last keystroke. */
const TYPING_IDLE_MS = 2000;
/** Someone else's typing indicator fades if their "stopped" never arrives. */
const TYPING_STALE_MS = 6000;
const ACK_TIMEOUT_MS = 10_000;
const HISTORY_PAGE = 50;
/** How close to the bottom counts as "following" the conversation, in pixels. */
const FOLLOW_SLACK_PX = 80;
/** The room list is asked for as the server allows (`rooms`: 12 a minute, 2 at once)… */
const ROOMS_BUDGET = { burst: 2, intervalMs: 5000 };
/** Room browsing is asked for as the server allows (`rooms:browse`: 12 a minute, 2 at once). */
const BROWSE_BUDGET = { burst: 2, intervalMs: 5000 };
/** …when messages arrive, and this often anyway, for DMs others start. */
const ROOMS_POLL_MS = 30_000;
/** A read marker waits this long for more messages before it is sent. */
const READ_DELAY_MS = 300;
/** Codes whose acks already tell where they happened: their `error` events add nothing. */
const ANSWERED_BY_ACK = new Set(["rate_limited", "message_too_long", "too_many_rooms"]);
/** Codes that mean the token itself is no good: back to the login form. */
const LOGIN_AGAIN = new Set(["auth_required", "invalid_token", "token_expired"]);

/**
 * @param {string} id
 * @returns {HTMLElement}
 */
function element(id) {
  const found = document.getElementById(id);
  if (!found) throw new Error(`missing #${id}`);
  return found;
}

const view = {
  status: element("status"),
  me: element("me"),
  notify: /** @type {HTMLButtonElement} */ (element("notify")),
  reconnect: /** @type {HTMLButtonElement} */ (element("reconnect")),
  logout: /** @type {HTMLButtonElement} */ (element("logout")),
  login: element("login"),
  devLogin: /** @type {HTMLFormElement} */ (element("dev-login")),
  devName: /** @type {HTMLInputElement} */ (element("dev-name")),
  tokenLogin: /** @type {HTMLFormElement} */ (element("token-login")),
  tokenBox: /** @type {HTMLDetailsElement} */ (element("token-box")),
  tokenInput: /** @type {HTMLTextAreaElement} */ (element("token-input")),
  loginError: element("login-error"),
  chat: element("chat"),
  roomList: element("room-list"),
  dmList: element("dm-list"),
  dmHint: element("dm-hint"),
  roomTitle: element("room-title"),
  scroller: element("scroller"),
  loadOlder: /** @type {HTMLButtonElement} */ (element("load-older")),
  empty: element("empty"),
  logSlot: element("log-slot"),
  newMessages: /** @type {HTMLButtonElement} */ (element("new-messages")),
  typing: element("typing"),
  notice: element("notice"),
  outboxStatus: element("outbox-status"),
  outboxSummary: element("outbox-summary"),
  retryNow: /** @type {HTMLButtonElement} */ (element("retry-now")),
  browse: /** @type {HTMLButtonElement} */ (element("browse")),
  roomDialog: /** @type {HTMLDialogElement} */ (element("room-dialog")),
  roomForm: /** @type {HTMLFormElement} */ (element("room-form")),
  roomDialogClose: /** @type {HTMLButtonElement} */ (element("room-dialog-close")),
  roomSearch: /** @type {HTMLInputElement} */ (element("room-search")),
  roomRules: element("room-rules"),
  roomResults: element("room-results"),
  roomMore: /** @type {HTMLButtonElement} */ (element("room-more")),
  roomDialogError: element("room-dialog-error"),
  roomCreate: /** @type {HTMLButtonElement} */ (element("room-create")),
  composer: /** @type {HTMLFormElement} */ (element("composer")),
  input: /** @type {HTMLTextAreaElement} */ (element("message-input")),
  counter: element("counter"),
  people: element("people"),
  presenceStale: element("presence-stale"),
  presenceSample: element("presence-sample"),
  onlineCount: element("online-count"),
  presence: element("presence"),
  replyBar: element("reply-bar"),
  replyText: element("reply-text"),
  replyCancel: /** @type {HTMLButtonElement} */ (element("reply-cancel")),
  mentionList: element("mention-list"),
  threadDialog: /** @type {HTMLDialogElement} */ (element("thread-dialog")),
  threadTitle: element("thread-title"),
  threadClose: /** @type {HTMLButtonElement} */ (element("thread-close")),
  threadParent: element("thread-parent"),
  threadReplies: element("thread-replies"),
  threadMore: /** @type {HTMLButtonElement} */ (element("thread-more")),
  threadReply: /** @type {HTMLButtonElement} */ (element("thread-reply")),
};

/** The server's limits, or its defaults when the page cannot ask. */
async function loadPageConfig() {
  try {
    const response = await fetch("/page-config.json");
    if (response.ok) return /** @type {PageConfig} */ (await response.json());
  } catch {
    // Shown as a connection problem once the socket tries.
  }
  return /** @type {PageConfig} */ ({
    maxMessageLength: 2000,
    defaultRoom: "general",
    devLogin: false,
  });
}

// ---- state

const settings = await loadPageConfig();
/** @type {Socket | undefined} */
let socket;
/** @type {Session | undefined} */
let session;
const rooms = new Rooms(settings.defaultRoom);
// Own messages carry Edit and Delete: the server decides whether it is still allowed.
rooms.onChange = async (
  /** @type {"edit" | "delete"} */ action,
  /** @type {string} */ id,
  /** @type {string} */ text,
) => {
  if (!socket) return;
  let ack;
  if (action === "edit") {
    const edited = globalThis.prompt("Edit your message", text);
    if (edited === null || edited.trim() === text) return;
    ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("message:edit", { id, message: edited })
      .catch(() => undefined);
  } else {
    if (!globalThis.confirm("Delete this message for everyone?")) return;
    ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("message:delete", { id })
      .catch(() => undefined);
  }
  if (!ack) return showNotice("The server did not answer; try again.");
  if (!ack.ok) return showNotice(describe(ack.error));
  rooms.change(ack.message);
};
rooms.onMessageAction = {
  /**
   * @param {ChatMessage} message
   * @param {string} emoji
   * @param {boolean} on
   */
  async react(message, emoji, on) {
    if (!socket) return;
    const ack = await socket.timeout(ACK_TIMEOUT_MS)
      .emitWithAck("react", { room: message.room, id: message.id, emoji, on })
      .catch(() => undefined);
    if (!ack) return showNotice("The server did not answer; try again.");
    if (!ack.ok) return showNotice(describe(ack.error));
    applyToMessage(message.room, message.id, { reactions: ack.reactions });
  },
  /** @param {ChatMessage} message */
  reply(message) {
    startReply(message);
  },
  /** @param {ChatMessage} message */
  thread(message) {
    void openThread(message);
  },
};
/** The message the composer answers, if any. */
/** @type {ChatMessage | undefined} */
let replyingTo;
/** The thread on screen in the thread panel, if any, and its oldest reply shown. */
/** @type {{ parent: ChatMessage, oldest?: string } | undefined} */
let openedThread;
/** Who the composer's text mentions: display name → user id, as picked from the list. */
const picked = new Map();
/** The people the `@` list offers now, and which one is highlighted. */
/** @type {{ people: User[], index: number, start: number }} */
const mentionChoice = { people: [], index: 0, start: -1 };
/** Messages that arrived in the room on screen while it was scrolled up. */
let unseen = 0;
/** @type {Map<string, User>} */
const online = new Map();
/**
 * How many are online, and whether `online` is all of them and kept current (`presence:count`):
 * with more than the server lists, it is a sample and `user:joined`/`user:left` stop.
 */
const onlineCount = { online: 0, listed: true };
/** Who is typing, by room and user. */
/** @type {Map<string, Map<string, { user: User, timer: ReturnType<typeof setTimeout> }>>} */
const typists = new Map();
let amTyping = false;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let typingTimer;
const roomsBudget = new Budget(ROOMS_BUDGET.burst, ROOMS_BUDGET.intervalMs);
const roomsRefresh = {
  due: Infinity,
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  timer: undefined,
};

const outbox = new Outbox({
  send: (payload) => {
    if (!socket) return Promise.reject(new Error("not connected"));
    return socket.timeout(ACK_TIMEOUT_MS).emitWithAck("message", payload);
  },
  onChange(entry) {
    const { room, hadFocus } = rooms.drawOutgoing(entry, {
      retry: () => outbox.retry(entry),
      discard: () => {
        outbox.discard(entry);
        rooms.removeOutgoing(entry.room, entry.clientId);
        view.input.focus();
        renderOutboxStatus();
      },
      waiting: socket?.connected ? "Waiting to send…" : "Waiting for the connection…",
    });
    // Retry pressed from the keyboard: the focus goes on to the message box, not to the page.
    if (hadFocus) view.input.focus();
    if (room.id === rooms.current) updateEmpty();
    renderOutboxStatus();
  },
  onDelivered(entry, message) {
    const room = rooms.removeOutgoing(entry.room, entry.clientId);
    noteArrivals(room, addMessages(room, [message]));
    renderOutboxStatus();
  },
  onHold: () => renderOutboxStatus(),
  storage: globalThis.localStorage,
});
/** @type {ReturnType<typeof setInterval> | undefined} */
let holdCountdown;

/** One line for everything waiting to go out, with Retry now while a rate limit holds it. */
function renderOutboxStatus() {
  const waiting = outbox.waiting;
  const heldUntil = outbox.heldUntil;
  view.outboxStatus.hidden = waiting === 0 ||
    (heldUntil === undefined && socket?.connected === true);
  view.retryNow.hidden = heldUntil === undefined;
  const count = waiting === 1 ? "1 message" : `${waiting} messages`;
  if (heldUntil !== undefined) {
    const seconds = Math.max(1, Math.ceil((heldUntil - Date.now()) / 1000));
    view.outboxSummary.textContent =
      `${count} waiting: you are sending too fast. Sending again in ${seconds} s, in order.`;
    holdCountdown ??= setInterval(renderOutboxStatus, 1000);
    return;
  }
  clearInterval(holdCountdown);
  holdCountdown = undefined;
  view.outboxSummary.textContent = `${count} will be sent when the connection is back.`;
}

// ---- rooms

/**
 * Adds messages to a room, keeping the view at the end if it was there.
 * @param {Room} room
 * @param {ChatMessage[]} messages
 */
function addMessages(room, messages) {
  const onScreen = room.id === rooms.current;
  const follow = onScreen && isFollowing();
  const fresh = rooms.add(room, messages);
  renderSeen(room);
  if (openedThread) {
    const replies = fresh.filter((message) => message.replyTo?.id === openedThread?.parent.id);
    for (const reply of replies) view.threadReplies.append(rooms.renderPlain(reply));
  }
  if (onScreen) {
    updateEmpty();
    if (follow) scrollToEnd();
  }
  return fresh;
}

/**
 * Replaces fields of a message the room holds (its reactions, its thread) and redraws it.
 * @param {string} roomId
 * @param {string} id
 * @param {Partial<ChatMessage>} fields
 */
function applyToMessage(roomId, id, fields) {
  const held = rooms.get(roomId).messages.find((message) => message.id === id);
  if (held) rooms.change({ ...held, ...fields });
}

/**
 * "Seen" under the user's newest message of a DM once the peer has read it, "Seen by N" in a
 * room: the members whose read marker has reached it.
 * @param {Room} room
 */
function renderSeen(room) {
  const me = rooms.me?.id;
  const mine = room.messages.findLast((message) => message.user.id === me);
  let readers = 0;
  if (mine) {
    for (const [user, lastId] of room.reads) if (user !== me && lastId >= mine.id) readers++;
  }
  const text = readers === 0 ? "" : rooms.isDm(room.id) ? "Seen" : `Seen by ${readers}`;
  rooms.showSeen(room, text);
}

/**
 * Puts a message above the composer as the one the next message answers.
 * @param {ChatMessage} message
 */
function startReply(message) {
  replyingTo = message;
  view.replyText.replaceChildren(
    "Replying to ",
    make("bdi", "quote-author", message.user.name),
    ": ",
    make("span", "quote-text", [...message.message].slice(0, 100).join("")),
  );
  view.replyBar.hidden = false;
  view.input.focus();
}

function cancelReply() {
  replyingTo = undefined;
  view.replyBar.hidden = true;
}

/**
 * Opens the thread panel on a message: it, then its replies, oldest first.
 * @param {ChatMessage} parent
 */
async function openThread(parent) {
  openedThread = { parent };
  view.threadParent.replaceChildren(rooms.renderPlain(parent));
  view.threadReplies.replaceChildren();
  view.threadMore.hidden = true;
  if (!view.threadDialog.open) view.threadDialog.showModal();
  view.threadClose.focus();
  await loadReplies();
}

/** Loads a page of the open thread's replies, older than those shown. */
async function loadReplies() {
  const thread = openedThread;
  if (!socket || !thread) return;
  const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("thread", {
    room: thread.parent.room,
    id: thread.parent.id,
    ...(thread.oldest ? { before: thread.oldest } : {}),
  }).catch(() => undefined);
  if (openedThread !== thread) return;
  if (!ack?.ok) return showNotice(ack ? describe(ack.error) : "No answer from the server.");
  const messages = /** @type {ChatMessage[]} */ (ack.messages);
  thread.oldest = messages[0]?.id ?? thread.oldest;
  view.threadReplies.prepend(...messages.map((message) => rooms.renderPlain(message)));
  view.threadMore.hidden = !ack.hasMore;
}

/**
 * The people the `@` list offers in a room: those in it now and those who wrote in it.
 * @param {Room} room
 */
function peopleOf(room) {
  /** @type {Map<string, User>} */
  const people = new Map();
  for (const user of room.people) people.set(user.id, user);
  for (const message of room.messages) {
    if (message.user.id !== SYSTEM_USER_ID) people.set(message.user.id, message.user);
  }
  const peer = rooms.me ? dmPeer(room.id, rooms.me.id) : undefined;
  if (peer) people.set(peer, { id: peer, name: rooms.names.get(peer) ?? peer });
  if (rooms.me) people.delete(rooms.me.id);
  return [...people.values()];
}

/** Shows the `@` list for the word before the caret, or hides it. */
function updateMentionList() {
  const before = view.input.value.slice(0, view.input.selectionStart ?? 0);
  const match = /(?:^|\s)@([^\s@]{0,32})$/.exec(before);
  const query = match?.[1].toLowerCase();
  const people = query === undefined ? [] : peopleOf(rooms.visible())
    .filter((user) => user.name.toLowerCase().startsWith(query) || user.id.startsWith(query))
    .sort((a, b) => a.name.localeCompare(b.name))
    .slice(0, 6);
  mentionChoice.people = people;
  mentionChoice.index = 0;
  mentionChoice.start = match ? before.length - match[1].length - 1 : -1;
  renderMentionList();
}

function renderMentionList() {
  const { people, index } = mentionChoice;
  view.mentionList.hidden = people.length === 0;
  view.mentionList.replaceChildren(...people.map((user, at) => {
    const option = make("li", "mention-option");
    option.id = `mention-${at}`;
    option.setAttribute("role", "option");
    option.setAttribute("aria-selected", String(at === index));
    option.append(make("bdi", "", user.name));
    option.addEventListener("mousedown", (event) => event.preventDefault());
    option.addEventListener("click", () => pickMention(at));
    return option;
  }));
  if (people.length > 0) view.input.setAttribute("aria-activedescendant", `mention-${index}`);
  else view.input.removeAttribute("aria-activedescendant");
}

/**
 * Puts the chosen person's `@name` in place of the word being typed.
 * @param {number} index
 */
function pickMention(index) {
  const user = mentionChoice.people[index];
  if (!user) return;
  const { value } = view.input;
  const caret = view.input.selectionStart ?? value.length;
  const inserted = `@${user.name} `;
  view.input.value = value.slice(0, mentionChoice.start) + inserted + value.slice(caret);
  const at = mentionChoice.start + inserted.length;
  view.input.setSelectionRange(at, at);
  picked.set(user.name, user.id);
  mentionChoice.people = [];
  renderMentionList();
  updateComposer();
}

/**
 * Counts what arrived: unread in rooms not on screen, unseen while scrolled up.
 * @param {Room} room
 * @param {ChatMessage[]} fresh
 */
function noteArrivals(room, fresh) {
  const me = rooms.me;
  const others = fresh.filter((message) => message.user.id !== me?.id);
  for (const message of fresh) clearTyping(room.id, message.user.id);
  if (room.id !== rooms.current) {
    room.unread += others.length;
  } else if (isFollowing()) {
    markRead(room);
  } else {
    unseen += others.length;
    updateUnseen();
  }
  if (others.length > 0) scheduleRoomsRefresh(0);
  renderRooms();
}

/**
 * Marks the newest message of the room on screen as read, and sends that once arrivals settle.
 * @param {Room} room
 */
function markRead(room) {
  room.unread = 0;
  // The newest message now: what arrives after the person has moved on is not read.
  const lastId = room.messages.at(-1)?.id;
  if (lastId === undefined || lastId <= (room.readWanted ?? "")) return;
  room.readWanted = lastId;
  clearTimeout(room.readTimer);
  room.readTimer = setTimeout(() => sendRead(room), READ_DELAY_MS);
}

/**
 * Sends a room's read marker now, if it moved.
 * @param {Room} room
 */
async function sendRead(room) {
  clearTimeout(room.readTimer);
  const lastId = room.readWanted;
  if (!socket?.connected || lastId === undefined || lastId <= (room.readSent ?? "")) return;
  try {
    const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("read", { room: room.id, lastId });
    if (ack.ok && lastId > (room.readSent ?? "")) {
      room.readSent = lastId;
      room.readStoredAt = performance.now();
    }
  } catch {
    // The next message or visit sends it again.
  }
}

/**
 * Joins a room; its history comes with the ack.
 * @param {Room} room
 */
async function join(room) {
  if (!socket?.connected) return;
  room.state = "joining";
  try {
    const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("join", { room: room.id });
    if (!ack.ok) return refuseRoom(room, ack.error);
    room.state = "joined";
    room.people = ack.online;
    room.reads = new Map(
      ack.reads.map((
        /** @type {{ user: string, lastId: string }} */ read,
      ) => [read.user, read.lastId]),
    );
    if (room.messages.length === 0) room.hasMore = ack.hasMore;
    // Its history, not news: the room list's next refresh says how much of it is unread.
    addMessages(room, ack.messages);
    if (room.id === rooms.current) {
      updateLoadOlder();
      updateEmpty();
      scrollToEnd();
      markRead(room);
    }
    renderRooms();
  } catch {
    room.state = "none";
    if (room.id === rooms.current) showNotice("No answer from the server; pick the room again.");
  }
}

/**
 * @param {Room} room
 * @param {ChatError} error
 */
function refuseRoom(room, error) {
  room.state = "refused";
  // The notice stays with the room: it goes once the person moves on, with the room.
  showNotice(describe(error), room);
  renderRooms();
}

/**
 * Puts a room on screen: its messages, title and composer; joins it on the first visit.
 * @param {string} id
 */
function showRoom(id) {
  const previous = rooms.visible();
  if (previous.id !== id) {
    previous.following = isFollowing();
    previous.scrollTop = view.scroller.scrollTop;
    announceTyping(false);
    void sendRead(previous);
    // A room that refused us and holds nothing goes, and what was said about it with it.
    if (previous.state === "refused") {
      delete previous.notice;
      if (!previous.listed && previous.messages.length === 0 && previous.outgoing.size === 0) {
        rooms.forget(previous.id);
      }
    }
  }
  rooms.current = id;
  const room = rooms.visible();
  room.unread = room.mentions = 0;
  unseen = 0;
  view.logSlot.replaceChildren(room.log);
  showRoomName();
  updateLoadOlder();
  updateEmpty();
  renderTyping();
  renderNotice();
  if (room.following || room.scrollTop === undefined) scrollToEnd();
  else view.scroller.scrollTop = room.scrollTop;
  if (room.state === "none") void join(room);
  else if (room.state === "joined") markRead(room);
  renderRooms();
}

/** The room's name where it shows: heading, log, message box and document title. */
function showRoomName() {
  const label = rooms.label(rooms.current);
  const dm = rooms.isDm(rooms.current);
  view.roomTitle.replaceChildren(
    ...dm ? [make("span", "room-kind", "Direct message with ")] : [],
    make("bdi", "", label),
  );
  rooms.visible().log.setAttribute("aria-label", `Messages in ${label}`);
  view.input.setAttribute("aria-label", `Message ${label}`);
  updateUnseen();
}

function roomFromHash() {
  let id = "";
  try {
    id = decodeURIComponent(location.hash.slice(1));
  } catch {
    // A malformed hash shows the default room.
  }
  return isRoomId(id) ? id : settings.defaultRoom;
}

/**
 * Asks for the room list in `delay` ms, or as soon after as the budget allows.
 * @param {number} delay
 */
function scheduleRoomsRefresh(delay) {
  const due = Date.now() + Math.max(delay, roomsBudget.wait());
  if (due >= roomsRefresh.due) return;
  clearTimeout(roomsRefresh.timer);
  roomsRefresh.due = due;
  roomsRefresh.timer = setTimeout(refreshRooms, due - Date.now());
}

async function refreshRooms() {
  roomsRefresh.due = Infinity;
  if (!socket?.connected) return;
  roomsBudget.take();
  scheduleRoomsRefresh(ROOMS_POLL_MS);
  const askedAt = performance.now();
  try {
    const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("rooms");
    if (!ack.ok) {
      if (ack.error.retryAfterMs !== undefined) scheduleRoomsRefresh(ack.error.retryAfterMs);
      return;
    }
    for (const summary of /** @type {RoomSummary[]} */ (ack.rooms)) {
      const room = rooms.get(summary.room);
      room.listed = true;
      // A read marker on its way, or stored while the list was read: the page counts better.
      const reading = (room.readWanted ?? "") > (room.readSent ?? "") ||
        (room.readStoredAt ?? 0) > askedAt;
      if (room.id === rooms.current) room.unread = room.mentions = 0;
      else if (!reading) [room.unread, room.mentions] = [summary.unread, summary.mentions];
      const last = summary.lastMessage;
      if (last && (!room.lastMessage || room.lastMessage.id < last.id)) room.lastMessage = last;
      if (last) rooms.names.set(last.user.id, last.user.name);
    }
    renderRooms();
  } catch {
    // Asked again at the next poll.
  }
}

function stopRoomsRefresh() {
  clearTimeout(roomsRefresh.timer);
  roomsRefresh.due = Infinity;
}

function renderRooms() {
  view.dmHint.hidden = rooms.renderList(view.roomList, view.dmList) > 0;
}

// ---- rendering

/**
 * @param {string} state "connected" | "connecting" | "reconnecting" | "disconnected" | "idle"
 * @param {string} text
 */
function setStatus(state, text) {
  view.status.dataset.state = state;
  view.status.textContent = text;
  view.reconnect.hidden = state !== "disconnected" || socket === undefined;
  const connected = state === "connected";
  view.composer.classList.toggle("offline", !connected);
  view.people.classList.toggle("stale", !connected);
  view.presenceStale.hidden = connected || socket === undefined;
}

/**
 * Says something about a room (the one on screen by default); cleared with no text.
 * @param {string} [text]
 * @param {Room} [room]
 */
function showNotice(text, room = rooms.visible()) {
  if (text) room.notice = text;
  else delete room.notice;
  if (room.id === rooms.current) renderNotice();
}

function renderNotice() {
  const room = rooms.visible();
  view.notice.hidden = !room.notice;
  const browse = make("button", "quiet", "Browse rooms");
  browse.setAttribute("type", "button");
  browse.addEventListener("click", () => openRoomDialog());
  view.notice.replaceChildren(
    ...room.notice ? [room.notice, ...room.state === "refused" ? [" ", browse] : []] : [],
  );
}

function isFollowing() {
  const { scrollTop, scrollHeight, clientHeight } = view.scroller;
  return scrollHeight - scrollTop - clientHeight < FOLLOW_SLACK_PX;
}

function scrollToEnd() {
  view.scroller.scrollTop = view.scroller.scrollHeight;
  if (unseen === 0) return;
  unseen = 0;
  updateUnseen();
}

function updateEmpty() {
  const room = rooms.visible();
  view.empty.hidden = room.state !== "joined" || room.messages.length > 0 ||
    room.outgoing.size > 0;
}

function updateLoadOlder() {
  const room = rooms.visible();
  view.loadOlder.hidden = !room.hasMore || room.messages.length === 0;
}

/** The "New messages" button and the count in the title, while scrolled up. */
function updateUnseen() {
  view.newMessages.hidden = unseen === 0;
  view.newMessages.textContent = unseen === 1 ? "1 new message" : `${unseen} new messages`;
  const place = session ? `${rooms.label(rooms.current)} · Chat` : "Chat";
  document.title = unseen > 0 ? `(${unseen}) ${place}` : place;
}

function renderPresence() {
  const people = [...online.values()].sort((a, b) => a.name.localeCompare(b.name));
  view.presence.replaceChildren(...people.map((user) => {
    const item = make("li", "person");
    const avatar = make("span", `avatar ${rooms.hues.classOf(user.id)}`, [...user.name][0] ?? "?");
    avatar.setAttribute("aria-hidden", "true");
    const name = make("bdi", "name", user.name);
    if (user.id === rooms.me?.id) {
      const row = make("span", "person-row");
      row.append(avatar, name, ...devBadge(user), make("span", "you", "(you)"));
      item.append(row);
      return item;
    }
    // Everyone else is a button: a direct message with them.
    const button = make("button", "person-row person-button");
    button.setAttribute("type", "button");
    button.title = `Message ${user.name} directly`;
    const action = make("span", "dm-action", "Message");
    action.setAttribute("aria-hidden", "true");
    button.append(avatar, make("span", "sr-only", "Message "), name, ...devBadge(user), action);
    button.addEventListener("click", () => startDirectMessage(user));
    item.append(button);
    return item;
  }));
  view.onlineCount.textContent = String(onlineCount.listed ? people.length : onlineCount.online);
  view.presenceSample.hidden = onlineCount.listed;
}

/** @param {User[]} users */
function learnNames(users) {
  let renamed = false;
  for (const user of users) {
    renamed ||= rooms.names.get(user.id) !== user.name;
    rooms.names.set(user.id, user.name);
  }
  renderPresence();
  if (renamed) {
    renderRooms();
    showRoomName();
  }
}

/** @param {User} user */
function startDirectMessage(user) {
  if (!rooms.me) return;
  location.hash = `#${dmRoom(rooms.me.id, user.id)}`;
  view.input.focus();
}

function renderTyping() {
  const shown = [...typists.get(rooms.current)?.values() ?? []].map((entry) =>
    make("bdi", "", entry.user.name)
  );
  view.typing.replaceChildren(
    ...shown.length === 0
      ? []
      : shown.length === 1
      ? [shown[0], " is typing…"]
      : shown.length === 2
      ? [shown[0], " and ", shown[1], " are typing…"]
      : [`${shown.length} people are typing…`],
  );
}

/**
 * @param {string} room
 * @param {string} userId
 */
function clearTyping(room, userId) {
  const entry = typists.get(room)?.get(userId);
  if (!entry) return;
  clearTimeout(entry.timer);
  typists.get(room)?.delete(userId);
  if (room === rooms.current) renderTyping();
}

function clearAllTyping() {
  for (const [room, users] of typists) {
    for (const userId of [...users.keys()]) clearTyping(room, userId);
  }
}

/** The counter against the server's limit, and a box as tall as its text. */
function updateComposer() {
  const length = characterCount(view.input.value.trim());
  const over = length > settings.maxMessageLength;
  view.counter.replaceChildren(
    make("span", "sr-only", "Characters: "),
    `${length} / ${settings.maxMessageLength}`,
  );
  view.counter.classList.toggle("over", over);
  view.input.setAttribute("aria-invalid", String(over));
  view.input.style.height = "auto";
  const border = view.input.offsetHeight - view.input.clientHeight;
  view.input.style.height = `${view.input.scrollHeight + border}px`;
}

/** @param {boolean} typing */
function announceTyping(typing) {
  clearTimeout(typingTimer);
  if (typing) typingTimer = setTimeout(() => announceTyping(false), TYPING_IDLE_MS);
  if (typing === amTyping || !socket?.connected) return;
  amTyping = typing;
  socket.emit("typing", { room: rooms.current, typing });
}

// ---- finding and creating rooms

const browseBudget = new Budget(BROWSE_BUDGET.burst, BROWSE_BUDGET.intervalMs);
/** What browsing found: the rooms starting with `prefix`, every page so far. */
const browsing = {
  prefix: "",
  /** @type {string[]} */
  rooms: [],
  /** @type {string | undefined} */
  next: undefined,
  /** @type {string[]} */
  patterns: [],
  loaded: false,
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  timer: undefined,
};

/**
 * Asks the server for a page of the rooms this user may join.
 * @param {string} prefix
 * @param {string} [after]
 */
async function browseRooms(prefix, after) {
  view.roomDialogError.textContent = "";
  const wait = browseBudget.wait();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  if (!socket?.connected) {
    view.roomDialogError.textContent = "Not connected: the rooms show once the chat is back.";
    return;
  }
  browseBudget.take();
  try {
    /** @type {BrowseAck} */
    const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck(
      "rooms:browse",
      after === undefined ? { prefix } : { prefix, after },
    );
    if (!ack.ok) {
      view.roomDialogError.textContent = describe(ack.error);
      return;
    }
    if (after === undefined) browsing.rooms = [];
    browsing.prefix = prefix;
    browsing.rooms.push(...ack.rooms.map((entry) => entry.room));
    browsing.next = ack.next;
    browsing.patterns = ack.patterns;
    browsing.loaded = true;
  } catch {
    view.roomDialogError.textContent = "No answer from the server; try again.";
  }
  renderRoomDialog();
}

/** The search box as a room id: lower case, no leading #, spaces as hyphens. */
function searchedRoom() {
  return view.roomSearch.value.trim().toLowerCase().replace(/^#/, "").replace(/\s+/g, "-");
}

/** @param {string} room */
function mayJoin(room) {
  return browsing.patterns.some((pattern) =>
    pattern.endsWith("*") ? room.startsWith(pattern.slice(0, -1)) : pattern === room
  );
}

function renderRoomDialog() {
  const query = searchedRoom();
  const shown = browsing.rooms.filter((room) => room.startsWith(query));
  const items = shown.map((room) => {
    const item = make("li", "");
    const link = /** @type {HTMLAnchorElement} */ (make("a", "room-result"));
    link.href = `#${room}`;
    link.append(make("bdi", "room-name", `#${room}`));
    const known = rooms.all().find((candidate) => candidate.id === room);
    if (known?.state === "joined") link.append(make("span", "joined", "joined"));
    link.addEventListener("click", () => view.roomDialog.close());
    item.append(link);
    return item;
  });
  if (!browsing.loaded) items.push(make("li", "hint", "Looking for rooms…"));
  else if (shown.length === 0) items.push(make("li", "hint", "No room by that name yet."));
  view.roomResults.replaceChildren(...items);
  view.roomMore.hidden = browsing.next === undefined;
  const prefixes = browsing.patterns.filter((pattern) => pattern.endsWith("*"))
    .map((pattern) => `${pattern.slice(0, -1)}…`);
  const creatable = query !== "" && isRoomId(query) && !query.startsWith("dm:") &&
    !shown.includes(query) && mayJoin(query);
  view.roomCreate.hidden = !creatable;
  view.roomCreate.textContent = `Create #${query}`;
  view.roomRules.textContent = !browsing.loaded
    ? ""
    : prefixes.length === 0
    ? "This server lets you use the rooms listed here only."
    : `New rooms can be named ${prefixes.join(" or ")} (lower-case letters, digits, - _ .).`;
  if (query !== "" && browsing.loaded && !shown.includes(query) && !creatable) {
    view.roomRules.textContent += ` #${query} is not a room you may create here.`;
  }
}

function openRoomDialog() {
  view.roomDialogError.textContent = "";
  view.roomSearch.value = "";
  if (!view.roomDialog.open) view.roomDialog.showModal();
  view.roomSearch.focus();
  renderRoomDialog();
  void browseRooms("");
}

view.browse.addEventListener("click", () => openRoomDialog());
view.roomDialogClose.addEventListener("click", () => view.roomDialog.close());
view.roomSearch.addEventListener("input", () => {
  renderRoomDialog();
  // The list in hand holds every room under its prefix: narrowing it needs no question.
  const query = searchedRoom();
  clearTimeout(browsing.timer);
  if (browsing.next === undefined && query.startsWith(browsing.prefix)) return;
  if (!/^[a-z0-9_.-]*$/.test(query)) return;
  browsing.timer = setTimeout(() => void browseRooms(query), 300);
});
view.roomMore.addEventListener("click", () => void browseRooms(browsing.prefix, browsing.next));
view.roomForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const room = searchedRoom();
  const first = view.roomResults.querySelector("a");
  if (!view.roomCreate.hidden) {
    view.roomDialog.close();
    location.hash = `#${room}`;
    view.input.focus();
  } else if (first) {
    view.roomDialog.close();
    first.click();
  }
});

// ---- connection

/** @param {Session} current */
function connect(current) {
  session = current;
  rooms.me = current.user;
  if (rooms.me) rooms.names.set(rooms.me.id, rooms.me.name);
  view.me.replaceChildren(
    ...rooms.me ? ["Signed in as ", make("bdi", "", rooms.me.name), ...devBadge(rooms.me)] : [],
  );
  view.login.hidden = true;
  view.chat.hidden = false;
  view.logout.hidden = false;
  view.notify.hidden = !pushAvailable(settings, pushGlobals());
  setStatus("connecting", "Connecting…");
  if (rooms.me) outbox.restore(rooms.me.id);
  showRoom(roomFromHash());
  updateComposer();
  view.input.focus();

  const io = /** @type {(options: object) => Socket} */ (
    /** @type {any} */ (globalThis).io
  );
  /** Rooms whose history the server sends on this connection, each before its `loaded`. */
  let catchingUp = new Set();
  const connection = io({
    // A WebSocket from the start, long-polling only where one cannot open. Starting on polling
    // and upgrading, a refused token raced socket.io-client's own close against its next poll,
    // which the server must then answer 400 (the session is gone), logged by the browser.
    transports: ["websocket", "polling"],
    tryAllTransports: true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
    auth: (/** @type {(auth: object) => void} */ reply) => {
      current.freshToken().then((token) => {
        const lastIds = rooms.lastIds();
        catchingUp = new Set([settings.defaultRoom, ...Object.keys(lastIds)]);
        reply({ token, lastIds });
      });
    },
  });
  socket = connection;
  /**
   * Listens while this connection is the page's: one replaced by a new login stays quiet.
   * @param {string} event
   * @param {(...args: any[]) => void} listener
   */
  const on = (event, listener) =>
    connection.on(event, (...args) => {
      if (socket === connection) listener(...args);
    });

  on("connect", () => {
    setStatus("connected", "Connected");
    if (connectProblem) showNotice();
    connectProblem = false;
    view.tokenInput.value = "";
    if (!connection.recovered) {
      // A new session's `presence` is everyone, unless a `presence:count` follows it.
      onlineCount.listed = true;
      rooms.get(settings.defaultRoom);
      for (const room of rooms.all()) {
        if (catchingUp.has(room.id)) {
          room.state = "joining";
          room.catchUp = [];
        } else if (room.state !== "none" || room.id === rooms.current) {
          void join(room);
        }
      }
    }
    outbox.setConnection("connected");
    redrawOutgoing();
    current.keepRenewed(async (token) => {
      if (!connection.connected) return;
      const ack = await connection.timeout(ACK_TIMEOUT_MS).emitWithAck("auth:refresh", { token });
      if (!ack.ok) throw new Error(ack.error.code);
      // Rooms the new token no longer opens: the server took the connection out of them.
      for (const id of ack.left) {
        const room = rooms.get(id);
        if (room) refuseRoom(room, { code: "forbidden", message: `you may not use room "${id}"` });
      }
    });
    scheduleRoomsRefresh(0);
  });
  on("disconnect", (/** @type {string} */ reason) => {
    amTyping = false;
    clearAllTyping();
    stopRoomsRefresh();
    redrawOutgoing();
    if (connection.active) {
      setStatus("reconnecting", "Reconnecting…");
      outbox.setConnection("reconnecting");
      return;
    }
    setStatus(
      "disconnected",
      reason === "io server disconnect" ? "Disconnected by the server" : "Disconnected",
    );
    outbox.setConnection("offline");
  });
  connection.io.on("reconnect_attempt", () => {
    if (socket === connection) setStatus("reconnecting", "Reconnecting…");
  });
  on("connect_error", (/** @type {Error & { data?: ChatError }} */ error) => {
    const code = error.data?.code;
    if (code && LOGIN_AGAIN.has(code)) return logout(describeLoginError(error.data ?? { code }));
    if (connection.active) {
      setStatus("reconnecting", "Reconnecting…");
      outbox.setConnection("reconnecting");
      return;
    }
    setStatus("disconnected", "Disconnected");
    outbox.setConnection("offline");
    connectProblem = true;
    showNotice(code ? describe({ code }) : `Could not connect: ${error.message}`);
  });
  on("error", (/** @type {ChatError & { room?: string }} */ error) => {
    if (error.code === "token_expired") return logout(describe(error));
    // A room of the reconnect's catch-up the server did not rejoin: it is joined again later
    // (over the join budget: once the budget allows), else shown refused.
    const skipped = error.room === undefined
      ? undefined
      : rooms.all().find((room) => room.id === error.room && catchingUp.has(room.id));
    if (skipped) {
      catchingUp.delete(skipped.id);
      delete skipped.catchUp;
      if (error.code === "forbidden") return refuseRoom(skipped, error);
      skipped.state = "none";
      if (error.code === "rate_limited") {
        setTimeout(() => socket === connection && void join(skipped), error.retryAfterMs ?? 1000);
      } else if (skipped.id === rooms.current) {
        void join(skipped);
      }
      return renderRooms();
    }
    if (!ANSWERED_BY_ACK.has(error.code)) showNotice(describe(error));
  });

  on("load", (/** @type {ChatMessage[]} */ messages) => {
    /** @type {Map<string, ChatMessage[]>} */
    const byRoom = new Map();
    for (const message of messages) {
      let ofRoom = byRoom.get(message.room);
      if (!ofRoom) byRoom.set(message.room, ofRoom = []);
      ofRoom.push(message);
    }
    for (const [id, ofRoom] of byRoom) {
      const room = rooms.get(id);
      if (room.catchUp) room.catchUp.push(...ofRoom);
      else noteArrivals(room, addMessages(room, ofRoom));
    }
  });
  on("loaded", (
    /** @type {{ room: string, hasMore: boolean, catchUp: boolean, reads: { user: string, lastId: string }[] }} */ info,
  ) => {
    const room = rooms.get(info.room);
    const history = room.catchUp ?? [];
    delete room.catchUp;
    room.state = "joined";
    room.reads = new Map(info.reads.map((read) => [read.user, read.lastId]));
    // A catch-up that could not cover the whole gap: start the room afresh.
    if (info.catchUp && info.hasMore) rooms.reset(room);
    if (!info.catchUp || info.hasMore || room.messages.length === 0) room.hasMore = info.hasMore;
    const fresh = addMessages(room, history);
    if (info.catchUp) noteArrivals(room, fresh);
    if (room.id === rooms.current) {
      updateLoadOlder();
      updateEmpty();
      if (!info.catchUp) scrollToEnd();
      if (isFollowing()) markRead(room);
    }
    renderRooms();
  });
  on("presence", (/** @type {User[]} */ users) => {
    online.clear();
    for (const user of users) online.set(user.id, user);
    learnNames(users);
  });
  // Counted: the list is a sample, kept as it came, and named changes are ignored (near the limit
  // another instance's may still arrive for a moment). Listed again: the `presence` that follows
  // is everyone.
  on("presence:count", (/** @type {{ online: number, listed: boolean }} */ count) => {
    onlineCount.online = count.online;
    onlineCount.listed = count.listed;
    renderPresence();
  });
  on("user:joined", (/** @type {User[]} */ users) => {
    if (onlineCount.listed) {
      for (const user of users) online.set(user.id, user);
    }
    learnNames(users);
  });
  on("user:left", (/** @type {User[]} */ users) => {
    for (const user of users) {
      if (onlineCount.listed) online.delete(user.id);
      for (const room of typists.keys()) clearTyping(room, user.id);
    }
    renderPresence();
  });
  on("message:updated", (/** @type {ChatMessage} */ message) => rooms.change(message));
  on("message:deleted", (/** @type {{ id: string, room: string }} */ { id, room }) => {
    const held = rooms.get(room).messages.find((message) => message.id === id);
    if (held) rooms.change({ ...held, message: "", deleted: true });
  });
  on("message:reactions", (/** @type {{ room: string, id: string, reactions: any[] }} */ event) => {
    applyToMessage(event.room, event.id, { reactions: event.reactions });
  });
  on("message:thread", (/** @type {{ room: string, id: string, thread: any }} */ event) => {
    applyToMessage(event.room, event.id, { thread: event.thread });
  });
  on("mention", (/** @type {{ room: string, message: ChatMessage }} */ { room: id, message }) => {
    const room = rooms.get(id);
    room.listed = true;
    rooms.names.set(message.user.id, message.user.name);
    if (id !== rooms.current) room.mentions++;
    renderRooms();
  });
  on("room:read", (/** @type {{ room: string, reads: { user: string, lastId: string }[] }} */ {
    room: id,
    reads,
  }) => {
    const room = rooms.get(id);
    for (const { user, lastId } of reads) room.reads.set(user, lastId);
    renderSeen(room);
  });
  on("typing", (/** @type {{ room: string, user: User, typing: boolean }} */ event) => {
    const { room, user, typing } = event;
    clearTyping(room, user.id);
    if (!typing) return;
    let users = typists.get(room);
    if (!users) typists.set(room, users = new Map());
    const timer = setTimeout(() => clearTyping(room, user.id), TYPING_STALE_MS);
    users.set(user.id, { user, timer });
    if (room === rooms.current) renderTyping();
  });
}

/** Whether the notice on screen is about connecting (cleared once connected). */
let connectProblem = false;

/** Redraws what waits to go out, which says whether it waits for the connection. */
function redrawOutgoing() {
  for (const room of rooms.all()) {
    for (const entry of outbox.entriesOf(room.id)) {
      if (entry.state === "queued") outbox.redraw(entry);
    }
  }
  renderOutboxStatus();
}

/** @param {string} [reason] */
function logout(reason) {
  const pasted = session !== undefined && !session.isDev;
  session?.end();
  session = undefined;
  const connection = socket;
  socket = undefined;
  connection?.disconnect();
  stopRoomsRefresh();
  outbox.clear();
  renderOutboxStatus();
  rooms.clear();
  rooms.me = undefined;
  online.clear();
  onlineCount.listed = true;
  renderPresence();
  clearAllTyping();
  view.chat.hidden = true;
  view.logout.hidden = true;
  view.notify.hidden = true;
  view.me.textContent = "";
  unseen = 0;
  updateUnseen();
  setStatus("idle", "Not connected");
  showNotice();
  showLogin(reason, pasted);
}

/**
 * Shows the token form, and the name form when the server has dev login on.
 * @param {string} [reason]
 * @param {boolean} [pasted] the last login was a pasted token: focus it, to fix or replace
 */
function showLogin(reason, pasted = false) {
  view.login.hidden = false;
  view.loginError.textContent = reason ?? "";
  view.devLogin.hidden = !settings.devLogin;
  // One card: with dev login the token form folds under "I have a token"; without, it is the card.
  view.tokenBox.classList.toggle("only", !settings.devLogin);
  if (!settings.devLogin || pasted) view.tokenBox.open = true;
  (settings.devLogin && !pasted ? view.devName : view.tokenInput).focus();
}

// ---- wiring

view.tokenLogin.addEventListener("submit", (event) => {
  event.preventDefault();
  const token = cleanToken(view.tokenInput.value);
  if (token === "") return;
  view.loginError.textContent = "";
  // The box keeps the token until the server accepts it, so a rejected one can be fixed.
  connect(new Session({ token }));
});

view.tokenInput.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
  event.preventDefault();
  view.tokenLogin.requestSubmit();
});

view.devLogin.addEventListener("submit", async (event) => {
  event.preventDefault();
  view.loginError.textContent = "";
  try {
    const { token, user } = await mintDevToken({ name: view.devName.value });
    connect(new Session({ token, dev: user }));
  } catch (error) {
    view.loginError.textContent = error instanceof TypeError
      ? "Could not reach the server."
      : String(/** @type {Error} */ (error).message);
  }
});

view.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = view.input.value.trim();
  if (text === "") return;
  const length = characterCount(text);
  if (length > settings.maxMessageLength) {
    showNotice(
      `That message is ${length} characters long; the limit is ${settings.maxMessageLength}. ` +
        "Shorten it to send.",
    );
    return;
  }
  view.input.value = "";
  updateComposer();
  announceTyping(false);
  showNotice();
  const mentions = [...picked].filter(([name]) => text.includes(`@${name}`)).map(([, id]) => id);
  picked.clear();
  const replyTo = replyingTo?.room === rooms.current ? replyingTo.id : undefined;
  cancelReply();
  outbox.add(rooms.current, text, {
    ...(replyTo ? { replyTo } : {}),
    ...(mentions.length > 0 ? { mentions: [...new Set(mentions)].slice(0, 20) } : {}),
  });
  scrollToEnd();
});

// The `@` list takes the arrows, Enter, Tab and Escape while it is open.
view.input.addEventListener("keydown", (event) => {
  const count = mentionChoice.people.length;
  if (count === 0 || event.isComposing) return;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    mentionChoice.index = (mentionChoice.index + (event.key === "ArrowDown" ? 1 : count - 1)) %
      count;
    renderMentionList();
  } else if (event.key === "Enter" || event.key === "Tab") {
    pickMention(mentionChoice.index);
  } else if (event.key === "Escape") {
    mentionChoice.people = [];
    renderMentionList();
  } else {
    return;
  }
  event.preventDefault();
  event.stopImmediatePropagation();
});

view.input.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && replyingTo) cancelReply();
});

view.replyCancel.addEventListener("click", () => {
  cancelReply();
  view.input.focus();
});
view.threadClose.addEventListener("click", () => view.threadDialog.close());
view.threadDialog.addEventListener("close", () => {
  openedThread = undefined;
});
view.threadMore.addEventListener("click", () => void loadReplies());
view.threadReply.addEventListener("click", () => {
  const parent = openedThread?.parent;
  view.threadDialog.close();
  if (parent) startReply(parent);
});

view.input.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
  event.preventDefault();
  view.composer.requestSubmit();
});

view.input.addEventListener("input", () => {
  updateComposer();
  updateMentionList();
  announceTyping(view.input.value.trim() !== "");
});

view.scroller.addEventListener("scroll", () => {
  if (!isFollowing()) return;
  if (unseen > 0) {
    unseen = 0;
    updateUnseen();
  }
  const room = rooms.visible();
  if (room.state === "joined") markRead(room);
});

view.newMessages.addEventListener("click", () => {
  scrollToEnd();
  view.input.focus();
});

view.loadOlder.addEventListener("click", async () => {
  const room = rooms.visible();
  const oldest = room.messages[0]?.id;
  if (!socket || oldest === undefined) return;
  view.loadOlder.disabled = true;
  try {
    /** @type {HistoryAck} */
    const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("history", {
      room: room.id,
      before: oldest,
      limit: HISTORY_PAGE,
    });
    if (!ack.ok) return showNotice(describe(ack.error));
    const before = view.scroller.scrollHeight;
    rooms.add(room, ack.messages);
    room.hasMore = ack.hasMore;
    if (room.id === rooms.current) {
      view.scroller.scrollTop += view.scroller.scrollHeight - before;
      updateLoadOlder();
    }
  } catch {
    showNotice("No answer from the server; try again.");
  } finally {
    view.loadOlder.disabled = false;
  }
});

addEventListener("hashchange", () => {
  if (session) showRoom(roomFromHash());
});

/** What "Notify me" needs of the browser (absent where it cannot push). */
function pushGlobals() {
  return {
    serviceWorker: navigator.serviceWorker,
    Notification: globalThis.Notification,
    PushManager: /** @type {{ PushManager?: unknown }} */ (globalThis).PushManager,
  };
}

/** "Notify me": subscribes this browser, so DMs missed while away are pushed to it. */
async function notifyMe() {
  const key = settings.vapidPublicKey;
  if (key === undefined || socket === undefined) return;
  const connected = socket;
  view.notify.disabled = true;
  try {
    const outcome = await enablePush(
      key,
      pushGlobals(),
      (subscription) =>
        connected.timeout(ACK_TIMEOUT_MS).emitWithAck("push:subscribe", subscription),
    );
    if (outcome === "subscribed") view.notify.textContent = "Notifications on";
    else {
      showNotice(
        outcome === "denied"
          ? "Notifications are blocked in this browser."
          : "The server did not take this browser's subscription.",
      );
    }
  } catch {
    showNotice("Notifications could not be turned on; try again later.");
  } finally {
    view.notify.disabled = false;
  }
}

view.notify.addEventListener("click", () => void notifyMe());
view.reconnect.addEventListener("click", () => socket?.connect());
view.logout.addEventListener("click", () => logout());

const saved = Session.restore();
if (saved) connect(saved);
else showLogin();
