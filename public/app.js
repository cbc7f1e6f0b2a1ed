// @ts-check
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/// <reference lib="esnext" />
/**
 * The chat page: log in (pasted token or dev login), then history, live messages, sending with
 * acks, presence, typing and connection state over the stock Socket.IO browser client, which
 * `/socket.io/socket.io.min.js` puts on `window.io`. User text is only ever set as text.
 */

/** @typedef {{ id: string, name: string }} User */
/** @typedef {{ id: string, user: User, message: string, createdAt: string }} ChatMessage */
/** @typedef {{ code: string, message?: string, retryAfterMs?: number }} ChatError */
/** @typedef {{ ok: true, message: ChatMessage, duplicate: boolean } | { ok: false, error: ChatError }} MessageAck */
/** @typedef {{ ok: true, messages: ChatMessage[], hasMore: boolean } | { ok: false, error: ChatError }} HistoryAck */
/**
 * The parts of a socket.io-client `Socket` this page uses.
 * @typedef {{
 *   connected: boolean,
 *   active: boolean,
 *   recovered: boolean,
 *   io: { on(event: string, listener: (...args: any[]) => void): void },
 *   on(event: string, listener: (...args: any[]) => void): void,
 *   emit(event: string, ...args: unknown[]): void,
 *   timeout(ms: number): { emitWithAck(event: string, payload: unknown): Promise<any> },
 *   connect(): void,
 *   disconnect(): void,
 * }} Socket
 */

const TOKEN_KEY = "chat.token";
/** Typing stops being announced this long after the last keystroke. */
const TYPING_IDLE_MS = 2000;
/** Someone else's typing indicator fades if their "stopped" never arrives. */
const TYPING_STALE_MS = 6000;
const ACK_TIMEOUT_MS = 10_000;
const SEND_ATTEMPTS = 3;
const HISTORY_PAGE = 50;
/** How close to the bottom counts as "following" the conversation, in pixels. */
const FOLLOW_SLACK_PX = 80;
const HUES = 8;

/** Plain-words versions of every code in the README's error tables. */
const ERROR_SENTENCES = /** @type {Record<string, string>} */ ({
  auth_required: "No token was sent. Log in again.",
  invalid_token: "The server did not accept this token. Log in again.",
  token_expired: "Your login has expired. Log in again.",
  auth_unavailable: "The server cannot check tokens right now. Try again in a moment.",
  too_many_connections: "You have too many chat tabs open. Close one, then reconnect.",
  invalid_payload: "The server did not understand that request.",
  message_too_long: "That message is too long.",
  rate_limited: "You are sending messages too fast.",
  forbidden: "Your login lets you read but not send messages.",
  internal: "Something went wrong on the server; nothing was sent. Try again.",
});
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
  reconnect: /** @type {HTMLButtonElement} */ (element("reconnect")),
  logout: /** @type {HTMLButtonElement} */ (element("logout")),
  login: element("login"),
  devLogin: /** @type {HTMLFormElement} */ (element("dev-login")),
  devName: /** @type {HTMLInputElement} */ (element("dev-name")),
  tokenLogin: /** @type {HTMLFormElement} */ (element("token-login")),
  tokenInput: /** @type {HTMLTextAreaElement} */ (element("token-input")),
  loginError: element("login-error"),
  chat: element("chat"),
  scroller: element("scroller"),
  loadOlder: /** @type {HTMLButtonElement} */ (element("load-older")),
  empty: element("empty"),
  messages: element("messages"),
  typing: element("typing"),
  notice: element("notice"),
  composer: /** @type {HTMLFormElement} */ (element("composer")),
  input: /** @type {HTMLTextAreaElement} */ (element("message-input")),
  onlineCount: element("online-count"),
  presence: element("presence"),
};

/**
 * A sentence for an error code, with details the server gave.
 * @param {ChatError} error
 */
function describe(error) {
  let sentence = ERROR_SENTENCES[error.code] ?? `The server refused that (${error.code}).`;
  if (error.code === "rate_limited" && error.retryAfterMs !== undefined) {
    sentence += ` Try again in ${Math.ceil(error.retryAfterMs / 1000)} s.`;
  }
  return sentence;
}

/**
 * The user a token names, read without verifying it (the server verifies; this is for display).
 * @param {string} token
 * @returns {User | undefined}
 */
function userOfToken(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part), (char) => char.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof claims.sub !== "string") return undefined;
    return { id: claims.sub, name: typeof claims.name === "string" && claims.name || claims.sub };
  } catch {
    return undefined;
  }
}

/**
 * One of a few colours per user, stable across reloads (a class: the CSP forbids inline styles).
 * @param {string} userId
 */
function hueClass(userId) {
  let hash = 0;
  for (const char of userId) hash = (hash * 31 + (char.codePointAt(0) ?? 0)) >>> 0;
  return `hue-${hash % HUES}`;
}

/** @param {string} iso */
function formatTime(iso) {
  const date = new Date(iso);
  const sameDay = date.toDateString() === new Date().toDateString();
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return sameDay
    ? time
    : `${date.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}

/**
 * @param {string} tag
 * @param {string} className
 * @param {string} [text]
 */
function make(tag, className, text) {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---- state

/** @type {Socket | undefined} */
let socket;
/** @type {User | undefined} */
let me;
/** Id of the newest message shown: sent as `auth.lastId` so a reconnect catches up. */
/** @type {string | undefined} */
let lastId;
/** Id of the oldest message shown, for "Load older". */
/** @type {string | undefined} */
let oldestId;
/** @type {Set<string>} */
const shownIds = new Set();
/** @type {Map<string, User>} */
const online = new Map();
/** @type {Map<string, { user: User, timer: ReturnType<typeof setTimeout> }>} */
const typists = new Map();
let amTyping = false;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let typingTimer;
/** The connection's first `load` (history or catch-up) is still to come. */
let awaitingHistory = true;

// ---- rendering

/**
 * @param {string} state "connected" | "connecting" | "reconnecting" | "disconnected" | "idle"
 * @param {string} text
 */
function setStatus(state, text) {
  view.status.dataset.state = state;
  view.status.textContent = text;
  view.reconnect.hidden = state !== "disconnected" || socket === undefined;
  view.composer.classList.toggle("offline", state !== "connected");
}

/** @param {string} [text] */
function showNotice(text) {
  view.notice.hidden = !text;
  view.notice.textContent = text ?? "";
}

function isFollowing() {
  const { scrollTop, scrollHeight, clientHeight } = view.scroller;
  return scrollHeight - scrollTop - clientHeight < FOLLOW_SLACK_PX;
}

function scrollToEnd() {
  view.scroller.scrollTop = view.scroller.scrollHeight;
}

/** @param {ChatMessage} message */
function renderMessage(message) {
  const item = make("li", "message");
  item.dataset.id = message.id;
  if (me && message.user.id === me.id) item.classList.add("mine");
  const header = make("div", "meta");
  // <bdi> and dir="auto" keep a right-to-left (or direction-overriding) name or text to itself.
  const author = make("bdi", `author ${hueClass(message.user.id)}`, message.user.name);
  const time = /** @type {HTMLTimeElement} */ (make("time", "time", formatTime(message.createdAt)));
  time.dateTime = message.createdAt;
  time.title = new Date(message.createdAt).toLocaleString();
  header.append(author, time);
  const text = make("p", "text", message.message);
  text.dir = "auto";
  item.append(header, text);
  return item;
}

/**
 * Adds messages after those shown (live ones, catch-up), skipping any already shown.
 * @param {ChatMessage[]} messages
 */
function appendMessages(messages) {
  const follow = isFollowing();
  for (const message of messages) {
    if (shownIds.has(message.id)) continue;
    shownIds.add(message.id);
    view.messages.append(renderMessage(message));
    lastId = message.id;
    oldestId ??= message.id;
    clearTyping(message.user.id);
  }
  view.empty.hidden = shownIds.size > 0;
  if (follow) scrollToEnd();
}

/**
 * Adds older messages above those shown, keeping the view where it was.
 * @param {ChatMessage[]} messages
 */
function prependMessages(messages) {
  const before = view.scroller.scrollHeight;
  const fresh = messages.filter((message) => !shownIds.has(message.id));
  view.messages.prepend(...fresh.map(renderMessage));
  for (const message of fresh) shownIds.add(message.id);
  if (fresh.length > 0) oldestId = fresh[0].id;
  lastId ??= fresh.at(-1)?.id;
  view.empty.hidden = shownIds.size > 0;
  view.scroller.scrollTop += view.scroller.scrollHeight - before;
}

function clearMessages() {
  view.messages.replaceChildren();
  shownIds.clear();
  lastId = undefined;
  oldestId = undefined;
}

function renderPresence() {
  const people = [...online.values()].sort((a, b) => a.name.localeCompare(b.name));
  view.presence.replaceChildren(...people.map((user) => {
    const item = make("li", "person");
    item.append(
      make("span", `avatar ${hueClass(user.id)}`, [...user.name][0]?.toUpperCase() ?? "?"),
      make("bdi", "name", user.name),
    );
    if (me && user.id === me.id) item.append(make("span", "you", "you"));
    return item;
  }));
  view.onlineCount.textContent = String(people.length);
}

function renderTyping() {
  const names = [...typists.values()].map((entry) => make("bdi", "", entry.user.name));
  view.typing.replaceChildren(
    ...names.length === 0
      ? []
      : names.length === 1
      ? [names[0], " is typing…"]
      : names.length === 2
      ? [names[0], " and ", names[1], " are typing…"]
      : [`${names.length} people are typing…`],
  );
}

/** @param {string} userId */
function clearTyping(userId) {
  const entry = typists.get(userId);
  if (!entry) return;
  clearTimeout(entry.timer);
  typists.delete(userId);
  renderTyping();
}

// ---- sending

/** @param {boolean} typing */
function announceTyping(typing) {
  clearTimeout(typingTimer);
  if (typing) typingTimer = setTimeout(() => announceTyping(false), TYPING_IDLE_MS);
  if (typing === amTyping || !socket?.connected) return;
  amTyping = typing;
  socket.emit("typing", { typing });
}

/**
 * Sends with a `clientId` and retries with the same one until acked: the server stores it once.
 * @param {string} text
 */
async function send(text) {
  if (!socket) return;
  const pending = renderMessage({
    id: "",
    user: me ?? { id: "", name: "You" },
    message: text,
    createdAt: new Date().toISOString(),
  });
  pending.classList.add("pending", "mine");
  view.messages.append(pending);
  scrollToEnd();
  const payload = { message: text, clientId: crypto.randomUUID() };
  /** @type {MessageAck | undefined} */
  let ack;
  for (let attempt = 1; attempt <= SEND_ATTEMPTS && ack === undefined; attempt++) {
    try {
      ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("message", payload);
    } catch {
      // No ack in time: the socket buffers while offline, so asking again is safe and idempotent.
    }
  }
  pending.remove();
  if (ack?.ok) {
    appendMessages([ack.message]);
    return;
  }
  const reason = ack ? `${describe(ack.error)} (${ack.error.code})` : "No answer from the server.";
  showNotice(`Not sent: ${reason}`);
  if (view.input.value.trim() === "") view.input.value = text;
}

// ---- connection

/** @param {string} token */
function connect(token) {
  me = userOfToken(token);
  view.me.replaceChildren(...me ? ["Signed in as ", make("bdi", "", me.name)] : []);
  view.login.hidden = true;
  view.chat.hidden = false;
  view.logout.hidden = false;
  setStatus("connecting", "Connecting…");

  const io = /** @type {(options: object) => Socket} */ (
    /** @type {any} */ (globalThis).io
  );
  const current = io({
    auth: (/** @type {(auth: object) => void} */ reply) => reply({ token, lastId }),
  });
  socket = current;

  current.on("connect", () => {
    awaitingHistory = !current.recovered;
    history = [];
    setStatus("connected", "Connected");
    showNotice();
  });
  current.on("disconnect", (/** @type {string} */ reason) => {
    amTyping = false;
    for (const userId of [...typists.keys()]) clearTyping(userId);
    if (current.active) setStatus("reconnecting", "Reconnecting…");
    else {setStatus(
        "disconnected",
        reason === "io server disconnect" ? "Disconnected by the server" : "Disconnected",
      );}
  });
  current.io.on("reconnect_attempt", () => setStatus("reconnecting", "Reconnecting…"));
  current.on("connect_error", (/** @type {Error & { data?: ChatError }} */ error) => {
    const code = error.data?.code;
    if (code && LOGIN_AGAIN.has(code)) return logout(describe({ code }));
    if (current.active) {
      setStatus("reconnecting", "Reconnecting…");
      return;
    }
    setStatus("disconnected", "Disconnected");
    showNotice(code ? describe({ code }) : `Could not connect: ${error.message}`);
  });
  current.on("error", (/** @type {ChatError} */ error) => {
    if (error.code === "token_expired") return logout(describe(error));
    showNotice(describe(error));
  });

  /** @type {ChatMessage[]} The history `load`s since connecting, until `loaded` says it is whole. */
  let history = [];
  current.on("load", (/** @type {ChatMessage[]} */ messages) => {
    if (awaitingHistory) history.push(...messages);
    else appendMessages(messages);
  });
  current.on("loaded", (/** @type {{ hasMore: boolean }} */ info) => {
    if (!awaitingHistory) return;
    awaitingHistory = false;
    // A first history, or a catch-up that could not cover the whole gap: start the view afresh.
    if (shownIds.size === 0 || info.hasMore) clearMessages();
    const fresh = shownIds.size === 0;
    appendMessages(history);
    history = [];
    if (fresh) {
      view.loadOlder.hidden = !info.hasMore;
      scrollToEnd();
    }
  });
  current.on("presence", (/** @type {User[]} */ users) => {
    online.clear();
    for (const user of users) online.set(user.id, user);
    renderPresence();
  });
  current.on("user:joined", (/** @type {User[]} */ users) => {
    for (const user of users) online.set(user.id, user);
    renderPresence();
  });
  current.on("user:left", (/** @type {User[]} */ users) => {
    for (const user of users) {
      online.delete(user.id);
      clearTyping(user.id);
    }
    renderPresence();
  });
  current.on("typing", (/** @type {{ user: User, typing: boolean }} */ { user, typing }) => {
    clearTyping(user.id);
    if (!typing) return;
    typists.set(user.id, { user, timer: setTimeout(() => clearTyping(user.id), TYPING_STALE_MS) });
    renderTyping();
  });
}

/** @param {string} [reason] */
function logout(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  socket?.disconnect();
  socket = undefined;
  me = undefined;
  clearMessages();
  online.clear();
  renderPresence();
  for (const userId of [...typists.keys()]) clearTyping(userId);
  view.chat.hidden = true;
  view.logout.hidden = true;
  view.me.textContent = "";
  setStatus("idle", "Not connected");
  showNotice();
  showLogin(reason);
}

/**
 * Shows the token form, and the name form when the server has dev login on.
 * @param {string} [reason]
 */
async function showLogin(reason) {
  view.login.hidden = false;
  view.loginError.textContent = reason ?? "";
  try {
    const response = await fetch("/dev/login-enabled");
    const { enabled } = await response.json();
    view.devLogin.hidden = !enabled;
    (enabled ? view.devName : view.tokenInput).focus();
  } catch {
    view.devLogin.hidden = true;
  }
}

/** @param {string} token */
function login(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  view.loginError.textContent = "";
  connect(token);
}

// ---- wiring

view.tokenLogin.addEventListener("submit", (event) => {
  event.preventDefault();
  const token = view.tokenInput.value.trim();
  if (token === "") return;
  view.tokenInput.value = "";
  login(token);
});

view.devLogin.addEventListener("submit", async (event) => {
  event.preventDefault();
  view.loginError.textContent = "";
  try {
    const response = await fetch("/dev/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: view.devName.value }),
    });
    const body = await response.json();
    if (!response.ok) {
      view.loginError.textContent = body.message ?? `Dev login failed (${response.status}).`;
      return;
    }
    login(body.token);
  } catch {
    view.loginError.textContent = "Could not reach the server.";
  }
});

view.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = view.input.value.trim();
  if (text === "") return;
  view.input.value = "";
  announceTyping(false);
  showNotice();
  send(text);
});

view.input.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
  event.preventDefault();
  view.composer.requestSubmit();
});

view.input.addEventListener("input", () => announceTyping(view.input.value.trim() !== ""));

view.loadOlder.addEventListener("click", async () => {
  if (!socket || oldestId === undefined) return;
  view.loadOlder.disabled = true;
  try {
    /** @type {HistoryAck} */
    const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("history", {
      before: oldestId,
      limit: HISTORY_PAGE,
    });
    if (!ack.ok) return showNotice(describe(ack.error));
    prependMessages(ack.messages);
    view.loadOlder.hidden = !ack.hasMore;
  } catch {
    showNotice("No answer from the server; try again.");
  } finally {
    view.loadOlder.disabled = false;
  }
});

view.reconnect.addEventListener("click", () => socket?.connect());
view.logout.addEventListener("click", () => logout());

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) connect(saved);
else showLogin();
