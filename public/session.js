// @ts-check
/**
 * Who is logged in: the token, kept in this tab's sessionStorage, and for a dev login the user
 * to mint new tokens for, so the page renews them before they expire.
 */
import { readToken, renewalDelay } from "./format.js";

/** @typedef {import("./format.js").User} User */
/** @typedef {{ token: string, dev?: User }} Login */

const LOGIN_KEY = "chat.login";
/** A dev token this close to expiry (or past it) is renewed before it is used to connect. */
const RENEW_ON_CONNECT_MS = 2000;
/** After a failed renewal, the next try comes this soon (or sooner, when the token is closer). */
const RENEW_RETRY_MS = 5000;

/**
 * A token from the server's dev login (`POST /dev/token`).
 * @param {{ id?: string, name: string }} who
 * @returns {Promise<{ token: string, user: User, expiresAt: number }>}
 */
export async function mintDevToken(who) {
  const response = await fetch("/dev/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(who),
  });
  const body = await response.json();
  if (!response.ok) {
    throw new Error(body.error?.message ?? `Dev login failed (${response.status}).`);
  }
  return body;
}

export class Session {
  /** @type {Login} */
  #login;
  /** @type {number | undefined} */
  #expiresAt;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #renewTimer;
  #ended = false;

  /** @param {Login} login */
  constructor(login) {
    this.#login = login;
    this.#store(login);
  }

  /** The login this tab had, if any. */
  static restore() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(LOGIN_KEY) ?? "null");
      return typeof saved?.token === "string" ? new Session(saved) : undefined;
    } catch {
      return undefined;
    }
  }

  get token() {
    return this.#login.token;
  }

  /** The user the token names (read, not verified: the server verifies). */
  get user() {
    return readToken(this.#login.token)?.user;
  }

  /** Whether the token came from dev login (else it was pasted). */
  get isDev() {
    return this.#login.dev !== undefined;
  }

  /** Forgets the login and stops renewing. */
  end() {
    this.#ended = true;
    clearTimeout(this.#renewTimer);
    sessionStorage.removeItem(LOGIN_KEY);
  }

  /** The token to connect with: a dev token about to expire is renewed first. */
  async freshToken() {
    const { dev } = this.#login;
    if (dev && (this.#expiresAt ?? 0) - Date.now() < RENEW_ON_CONNECT_MS) {
      try {
        const { token } = await mintDevToken(dev);
        if (!this.#ended) this.#store({ token, dev });
      } catch {
        // Connect with the old one; the server says what is wrong with it.
      }
    }
    return this.#login.token;
  }

  /**
   * Renews a dev token before it expires, and again before the new one does. `apply` hands the
   * new token to the live connection (`auth:refresh`) and rejects when that fails. A pasted
   * token cannot be renewed from here.
   * @param {(token: string) => Promise<void>} apply
   */
  keepRenewed(apply) {
    clearTimeout(this.#renewTimer);
    const { dev } = this.#login;
    if (!dev || this.#expiresAt === undefined || this.#ended) return;
    const renew = async () => {
      try {
        const { token } = await mintDevToken(dev);
        await apply(token);
        if (this.#ended) return;
        this.#store({ token, dev });
        this.keepRenewed(apply);
      } catch {
        if (this.#ended) return;
        const left = (this.#expiresAt ?? 0) - Date.now();
        this.#renewTimer = setTimeout(renew, Math.max(500, Math.min(RENEW_RETRY_MS, left / 2)));
      }
    };
    this.#renewTimer = setTimeout(renew, renewalDelay(this.#expiresAt, Date.now()));
  }

  /** @param {Login} login */
  #store(login) {
    this.#login = login;
    this.#expiresAt = readToken(login.token)?.expiresAt;
    sessionStorage.setItem(LOGIN_KEY, JSON.stringify(login));
  }
}
