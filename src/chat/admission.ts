/**
 * Who may open a chat connection: a valid token, at most `maxSocketsPerUser` connections per user
 * (reserved before any await, so a burst of connects cannot overshoot), and at most one socket per
 * transport session (further CONNECT packets on it are refused).
 * @module
 */
import { extractToken, type Identity } from "../auth/token.ts";
import { CodedError, toWireError, type WireError } from "../errors.ts";
import {
  checkInternals,
  gateSessionRestore,
  interceptRepeatConnects,
} from "../cluster/socketio_internals.ts";
import type { Namespace } from "socket.io";
import type { Logger } from "../ops/log.ts";
import type { Ban } from "../types.ts";
import type { ChatObserver, ChatSocket } from "./types.ts";

/** What {@link Admission} needs. */
export interface AdmissionOptions {
  verifyToken: (token: string) => Promise<Identity>;
  /** Most simultaneous connections per user. */
  maxSocketsPerUser: number;
  /** The user's ban, while it lasts. */
  banOf?: (userId: string) => Promise<Ban | undefined>;
  /** The user's connections on other instances (with Redis); none without. */
  connectionsElsewhere?: (userId: string) => Promise<number>;
  log: Logger;
  observer: Pick<ChatObserver, "connectRefused">;
}

/**
 * Refuses, with `already_connected`, a CONNECT for a namespace the client already has a socket
 * on. socket.io itself would close the whole session, taking the first socket with it; CONNECTs
 * that arrive while the first is still being admitted are refused by the middleware.
 */
function refuseLaterConnects(socket: ChatSocket): void {
  interceptRepeatConnects(socket, repeatConnectRefusal);
}

/** The CONNECT_ERROR payload of a repeated CONNECT (one function for every connection). */
function repeatConnectRefusal(): unknown {
  const { code, message } = toWireError(
    new CodedError("already_connected", "this transport session already has a socket"),
  );
  return { message: code, data: { code, message } };
}

/** Builds the `connect_error` a refused client receives: `message` is the code. */
function connectError(error: WireError): Error {
  return Object.assign(new Error(error.code), { data: error });
}

/** Per-user connection counts on this instance, and the transport sessions that hold a socket. */
export class Admission {
  #connections = new Map<string, number>();
  #internalsChecked = false;
  /** The identity a recovery attempt's token proved, by connection, until the socket is adopted. */
  #verified = new WeakMap<object, Identity>();
  /** Transport sessions (engine connections) that carry, or are admitting, a socket. */
  #sessions = new WeakSet<object>();
  /** How each admitted socket gives back what it holds; runs once. */
  #releases = new WeakMap<ChatSocket, () => void>();

  constructor(private readonly options: AdmissionOptions) {}

  /** Connections `userId` holds or is being admitted with on this instance. */
  connections(userId: string): number {
    return this.#connections.get(userId) ?? 0;
  }

  /** The socket.io middleware. */
  readonly middleware = async (socket: ChatSocket, next: (error?: Error) => void) => {
    const { options } = this;
    const session = socket.conn as object;
    let userId: string | undefined;
    const refuse = (error: unknown) => {
      const wire = toWireError(error, "authentication failed unexpectedly");
      options.observer.connectRefused(wire.code);
      options.log.info("connection.refused", {
        code: wire.code,
        user: userId,
        address: socket.handshake.address,
      });
      next(connectError({ message: "", ...wire }));
    };
    if (this.#sessions.has(session)) {
      return refuse(
        new CodedError("already_connected", "this transport session already has a socket"),
      );
    }
    this.#sessions.add(session);
    let release = (): void => void this.#sessions.delete(session);
    try {
      const token = extractToken(socket.handshake.auth, socket.handshake.headers);
      const identity = await options.verifyToken(token ?? "");
      userId = identity.user.id;
      const ban = await options.banOf?.(userId);
      if (ban) {
        throw new CodedError(
          "banned",
          "this user is banned",
          ban.until ? { until: ban.until } : {},
        );
      }
      if (!this.#reserve(userId)) throw this.#tooMany();
      release = this.#holding(session, userId);
      const elsewhere = await options.connectionsElsewhere?.(userId) ?? 0;
      if (elsewhere + this.connections(userId) > options.maxSocketsPerUser) throw this.#tooMany();
      socket.data.identity = identity;
    } catch (error) {
      release();
      return refuse(error);
    }
    this.#track(socket, release);
    next();
  };

  /**
   * Registers a socket that skipped the middleware (a recovered session): it takes the identity
   * {@link guardRecovery} verified for it and holds a connection and its session like any other,
   * if the user has one to spare. Answers the refusal otherwise (nothing held). A socket the
   * middleware admitted is let through.
   */
  adopt(socket: ChatSocket): WireError | undefined {
    if (this.#releases.has(socket)) return undefined;
    const verified = this.#verified.get(socket.client);
    this.#verified.delete(socket.client);
    const restored = socket.data.identity;
    if (!verified || verified.user.id !== restored.user.id) {
      return { code: "invalid_token", message: "the token is not the restored session's user" };
    }
    // The token sent now (its expiry, scopes, rooms); the name the session was announced with.
    socket.data.identity = { ...verified, user: restored.user };
    const userId = restored.user.id;
    if (!this.#reserve(userId)) return toWireError(this.#tooMany());
    this.#sessions.add(socket.conn as object);
    this.#track(socket, this.#holding(socket.conn as object, userId));
    return undefined;
  }

  /**
   * Lets socket.io restore a dropped session (which skips the middleware) only for a user who
   * would be admitted afresh now, checked before the restore: the token the client sends now is
   * valid and unexpired, the user is not banned and has a connection to spare. Otherwise the
   * client's CONNECT is taken as a new one, which the middleware admits or refuses, saying why.
   */
  guardRecovery(namespace: Namespace, expired: (identity: Identity) => boolean): void {
    gateSessionRestore(namespace, async ({ auth, headers, client }) => {
      try {
        const identity = await this.options.verifyToken(extractToken(auth, headers) ?? "");
        if (expired(identity)) return false;
        const userId = identity.user.id;
        if (await this.options.banOf?.(userId)) return false;
        const elsewhere = await this.options.connectionsElsewhere?.(userId) ?? 0;
        if (elsewhere + this.connections(userId) >= this.options.maxSocketsPerUser) return false;
        this.#verified.set(client, identity);
        // Only the session of the user the token is for.
        return (data) => (data as { identity?: Identity })?.identity?.user.id === userId;
      } catch {
        // A token that does not verify: the middleware refuses the fresh connect with its code.
        return false;
      }
    });
  }

  /** Gives back the socket's connection and session (on disconnect; idempotent). */
  release(socket: ChatSocket): void {
    this.#releases.get(socket)?.();
  }

  #tooMany(): CodedError {
    const limit = this.options.maxSocketsPerUser;
    return new CodedError("too_many_connections", `at most ${limit} connections per user`);
  }

  #reserve(userId: string): boolean {
    const count = this.connections(userId);
    if (count >= this.options.maxSocketsPerUser) return false;
    this.#connections.set(userId, count + 1);
    return true;
  }

  #holding(session: object, userId: string): () => void {
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.#sessions.delete(session);
      const count = this.connections(userId) - 1;
      if (count > 0) this.#connections.set(userId, count);
      else this.#connections.delete(userId);
    };
  }

  /** Releases when the socket disconnects, or when its transport closes before it connected. */
  #track(socket: ChatSocket, release: () => void): void {
    this.#releases.set(socket, release);
    // `on`, not `once`: a session closes once, and `once` costs a wrapper per connection.
    socket.conn.on("close", release);
  }

  /** Guards the socket's transport session against further CONNECTs once the socket is in. */
  connected(socket: ChatSocket): void {
    // The first connection checks that socket.io still has what the chat reaches into.
    if (!this.#internalsChecked) {
      checkInternals(socket);
      this.#internalsChecked = true;
    }
    refuseLaterConnects(socket);
  }
}
