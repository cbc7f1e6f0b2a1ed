/**
 * Test helpers for the chat: a real app on 127.0.0.1 port 0, signed tokens, and stock
 * socket.io-client connections that record what they receive.
 * @module
 */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import {
  io as connect,
  type ManagerOptions,
  type Socket,
  type SocketOptions,
} from "socket.io-client";
import { type App, type AppOptions, createApp } from "../../src/app.ts";
import { sleep, within } from "./time.ts";

export { sleep, within };
import { signToken } from "../../src/auth/token.ts";
import type { ChatError, LoadedInfo, MessageAck } from "../../src/chat/mod.ts";
import { type Config, DEFAULTS } from "../../src/config.ts";
import { type KvMessageStore, openKvStore } from "../../src/store/mod.ts";
import type { ChatMessage } from "../../src/types.ts";

/** Long enough for HS256 (32 bytes), so servers started with it print no warning. */
export const SECRET = "test-secret-long-enough-for-hs256";

/** The auth settings test servers use: HS256 with {@link SECRET}. */
export const TEST_AUTH: Config["auth"] = {
  key: { kind: "secret", secret: SECRET },
  algorithms: ["HS256"],
  requireWriteScope: false,
  clockToleranceSeconds: 5,
};

/** A running chat server. */
export interface TestServer {
  url: string;
  app: App;
  store: KvMessageStore;
  /** Stops the server and closes the store (idempotent). */
  close(): Promise<void>;
  /** As {@link close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts the app on an ephemeral port with `:memory:` KV unless `kvPath` is given. */
export async function startChat(
  overrides: Partial<Config> = {},
  options: AppOptions = {},
): Promise<TestServer> {
  const config: Config = {
    ...DEFAULTS,
    auth: TEST_AUTH,
    instanceId: "test",
    port: 0,
    hostname: "127.0.0.1",
    ...overrides,
  };
  const store = await openKvStore(config.kvPath === DEFAULTS.kvPath ? ":memory:" : config.kvPath, {
    recentWindow: Math.max(config.historyLimit, config.catchupLimit) + 1,
    roomWindow: config.historyLimit + 1,
    defaultRoom: config.defaultRoom,
    membershipMaxAgeMs: config.membershipMaxAgeMs,
  });
  const app = createApp(config, store, options);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.handler);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await app.close();
    await server.shutdown();
    store.close();
  };
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    app,
    store,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A token for `sub`, valid for an hour unless told otherwise. */
export function tokenFor(
  sub: string,
  name?: string,
  ttlSeconds = 3600,
  scope?: string,
): Promise<string> {
  return signToken(SECRET, { sub, name, ttlSeconds, scope });
}

/** A token whose `exp` passed `secondsAgo` seconds ago (the tolerance is 5 s). */
export async function expiredToken(sub: string, secondsAgo: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return await new SignJWT({ name: sub })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuedAt(now - 3600)
    .setExpirationTime(now - secondsAgo)
    .sign(new TextEncoder().encode(SECRET));
}

/** A stock socket.io-client connection that records every `load` and `error`. */
export class ChatClient {
  readonly socket: Socket;
  readonly loads: ChatMessage[][] = [];
  readonly errors: ChatError[] = [];
  /** The first `loaded` event: the history is complete. */
  loaded?: LoadedInfo;
  /** How many `load`s the history took (those before the first `loaded`). */
  #historyFrames?: number;
  #waiters: (() => void)[] = [];

  constructor(url: string, options: Partial<ManagerOptions & SocketOptions> = {}) {
    this.socket = connect(url, { reconnection: false, forceNew: true, ...options });
    this.socket.on("load", (messages: ChatMessage[]) => {
      this.loads.push(messages);
      this.#notify();
    });
    this.socket.on("loaded", (info: LoadedInfo) => {
      if (this.loaded === undefined) {
        this.loaded = info;
        this.#historyFrames = this.loads.length;
      }
      this.#notify();
    });
    this.socket.on("error", (error: ChatError) => {
      this.errors.push(error);
      this.#notify();
    });
    this.socket.on("disconnect", () => this.#notify());
    // Any-listeners run before the event's own handlers: re-check once those have run.
    this.socket.onAny(() => queueMicrotask(() => this.#notify()));
  }

  /** Connects with a fresh token for `sub` and waits for the whole history. */
  static async join(
    url: string,
    sub: string,
    options: Partial<ManagerOptions & SocketOptions> = {},
  ): Promise<ChatClient> {
    const client = new ChatClient(url, { auth: { token: await tokenFor(sub) }, ...options });
    await client.waitFor(() => client.loaded !== undefined, `${sub}'s history`);
    return client;
  }

  /** The history received on connect (every `load` before `loaded`). */
  get history(): ChatMessage[] {
    return this.loads.slice(0, this.#historyFrames ?? this.loads.length).flat();
  }

  /** Live messages received after the history, in order. */
  get live(): ChatMessage[] {
    return this.#historyFrames === undefined ? [] : this.loads.slice(this.#historyFrames).flat();
  }

  /** Sends a message and resolves with the ack. */
  send(payload: unknown): Promise<MessageAck> {
    return within(this.socket.emitWithAck("message", payload), 5000, "message ack");
  }

  /** Resolves when `condition` holds, re-checked on each event (5 s limit). */
  waitFor(condition: () => boolean, what: string, ms = 5000): Promise<void> {
    if (condition()) return Promise.resolve();
    return within(
      new Promise<void>((resolve) => {
        const check = () => {
          if (!condition()) return;
          this.#waiters = this.#waiters.filter((waiter) => waiter !== check);
          resolve();
        };
        this.#waiters.push(check);
      }),
      ms,
      what,
    );
  }

  /** Waits for a `connect_error` and returns its `data`. */
  connectError(): Promise<{ message: string; data?: { code: string; message: string } }> {
    return within(
      new Promise((resolve) => {
        this.socket.once(
          "connect_error",
          (error: Error & { data?: { code: string; message: string } }) =>
            resolve({ message: error.message, data: error.data }),
        );
      }),
      5000,
      "connect_error",
    );
  }

  close(): void {
    this.socket.close();
  }

  /** As {@link close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}

/** Sends `message` to `room` (mentioning `mentions`), asserts the ack is ok, returns the message. */
export async function sendMessage(
  client: ChatClient,
  room: string,
  message: string,
  mentions?: string[],
): Promise<ChatMessage> {
  const answer = await client.send(mentions ? { room, message, mentions } : { room, message });
  assert.equal(answer.ok, true, JSON.stringify(answer));
  return (answer as { message: ChatMessage }).message;
}
