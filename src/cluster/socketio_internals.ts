/**
 * socket.io's private internals, behind one door. Each is used for a reason its public API does
 * not serve, said beside it; {@link checkInternals} (run on the first connection, and by
 * `tests/socketio_internals_test.ts`) names the one a socket.io upgrade changed, so an upgrade
 * fails loudly instead of quietly.
 *
 * @example
 * ```ts ignore
 * // A sketch: `socket` is a connected socket.io socket.
 * checkInternals(socket); // throws "socket.io internals changed: …" after an incompatible upgrade
 * writeEncoded(socket, encodeEvent(socket, ["load", []]));
 * ```
 * @module
 */
import { Namespace, type Socket } from "socket.io";
import { Adapter, type BroadcastOptions, SessionAwareAdapter } from "socket.io-adapter";

/** A socket.io packet, as its parser encodes and decodes it. */
export interface Packet {
  type: number;
  nsp: string;
  data?: unknown;
}
type PacketListener = (packet: Packet) => void;

/** socket.io-parser's packet types, as far as they are used here. */
export const PACKET_TYPE = { CONNECT: 0, EVENT: 2, CONNECT_ERROR: 4 } as const;

/** The per-connection `Client` behind every socket (not exported by socket.io). */
interface Client {
  /** Why: encoding a history once and writing it to many sockets (a connect storm). */
  encoder: { encode(packet: Packet): unknown[] };
  /** Why: writing packets encoded once, and a CONNECT_ERROR without closing the session. */
  _packet(packet: Packet | unknown[], options?: { preEncoded?: boolean; compress?: boolean }): void;
  /** Why: refusing a second CONNECT on one session (socket.io closes the whole session). */
  decoder: {
    on(event: "decoded", listener: PacketListener): unknown;
    off(event: "decoded", listener: PacketListener): unknown;
  };
  ondecoded: PacketListener;
  nsps: Map<string, unknown>;
}

/** The namespace's socket factory (private in socket.io's typings). */
interface SocketFactory {
  /**
   * Why: a recovery attempt (`auth.pid`, `auth.offset`) restores its session here, before any
   * middleware; gating it here, before the restore, keeps the restore and the socket's joining
   * its rooms in one step (broadcasts made in between would be lost).
   */
  _createSocket(client: unknown, auth: Record<string, unknown>): Promise<Socket>;
}

/** An adapter that keeps sessions for recovery. */
interface SessionStore {
  /** Why: the restored session's user is checked before the socket replays what it missed. */
  restoreSession(pid: string, offset: string): Promise<{ data?: unknown } | null>;
}

/** What a recovery gate is told of the attempt. */
export interface RecoveryAttempt {
  /** The engine connection's request headers (for an `Authorization` header). */
  headers: Record<string, string | string[] | undefined>;
  /** The CONNECT packet's `auth`, with `pid` and `offset`. */
  auth: Record<string, unknown>;
  /** The connection: the restored socket's `client`, to match it up after the restore. */
  client: object;
}

/** The adapter's broadcast walk (private in socket.io-adapter's typings). */
interface Walker {
  /** Why: a leaner walk for the one-room broadcast every chat message is. */
  apply(opts: BroadcastOptions, callback: (socket: Socket) => void): void;
  rooms: Map<string, Set<string>>;
  nsp: { sockets: Map<string, Socket> };
}

function clientOf(socket: Socket): Client {
  return socket.client as unknown as Client;
}

/**
 * Throws, naming what changed, unless socket.io still has every internal used here: the
 * adapters' walk and session restore, and (given a socket) its client's encoder, packet writer
 * and decoder hook.
 */
export function checkInternals(socket?: Socket): void {
  const missing: string[] = [];
  const expect = (what: string, value: unknown) => {
    if (typeof value !== "function") missing.push(what);
  };
  expect("Adapter.prototype.apply", (Adapter.prototype as unknown as Walker).apply);
  expect(
    "SessionAwareAdapter.prototype.restoreSession",
    SessionAwareAdapter.prototype.restoreSession,
  );
  if (socket) {
    const client = clientOf(socket);
    expect("client.encoder.encode", client.encoder?.encode);
    expect("client._packet", client._packet);
    expect("client.ondecoded", client.ondecoded);
    expect("client.decoder.on", client.decoder?.on);
    expect("client.decoder.off", client.decoder?.off);
    if (!(client.nsps instanceof Map)) missing.push("client.nsps (a Map)");
  }
  if (missing.length > 0) {
    throw new Error(`socket.io internals changed: ${missing.join(", ")} (see ${import.meta.url})`);
  }
}

/** Encodes an event for `socket`'s namespace once, to be written to many sockets. */
export function encodeEvent(socket: Socket, data: unknown[]): unknown[] {
  return clientOf(socket).encoder.encode({
    type: PACKET_TYPE.EVENT,
    nsp: socket.nsp.name,
    data,
  });
}

/** Writes packets {@link encodeEvent} encoded to the socket's connection. */
export function writeEncoded(socket: Socket, encoded: unknown[]): void {
  clientOf(socket)._packet(encoded, { preEncoded: true, compress: true });
}

/**
 * Calls `refusal` with every further CONNECT for a namespace the socket's connection already has
 * a socket on, and answers it with that CONNECT_ERROR payload instead of letting socket.io close
 * the whole session.
 */
export function interceptRepeatConnects(socket: Socket, refusal: () => unknown): void {
  const client = clientOf(socket);
  const original = client.ondecoded;
  const guarded = (packet: Packet) => {
    if (packet.type !== PACKET_TYPE.CONNECT || !client.nsps.has(packet.nsp || "/")) {
      return original(packet);
    }
    client._packet({ type: PACKET_TYPE.CONNECT_ERROR, nsp: packet.nsp, data: refusal() });
  };
  // Added before the original is removed: the decoder's listener list never empties, so it keeps
  // its array and its object's shape (an emptied list is deleted, turning the object into a
  // dictionary, and the next listener gets a new array: 0.3 KB a connection).
  client.decoder.on("decoded", guarded);
  client.decoder.off("decoded", original);
  // socket.io's cleanup removes whatever `ondecoded` is then.
  client.ondecoded = guarded;
}

/**
 * Lets socket.io restore a dropped session (connection state recovery) only when `admit`, asked
 * before the restore, says so and its answer accepts the session's data (the user it was for);
 * otherwise the CONNECT is taken as a fresh one (without `pid` and `offset`), which goes through
 * the middleware. The data is checked between the restore and the socket's creation, with no
 * I/O in between: nothing broadcast meanwhile is lost, and nothing replayed reaches a client the
 * session was not for.
 */
export function gateSessionRestore(
  namespace: Namespace,
  admit: (attempt: RecoveryAttempt) => Promise<((data: unknown) => boolean) | false>,
): void {
  const adapter = namespace.adapter as unknown as SessionStore;
  const restore = adapter.restoreSession.bind(adapter);
  /** The check each recovery attempt under way applies to its session's data, by `pid`. */
  const accepts = new Map<string, (data: unknown) => boolean>();
  adapter.restoreSession = async (pid, offset) => {
    const session = await restore(pid, offset);
    const accept = accepts.get(pid);
    return session && accept && !accept(session.data) ? null : session;
  };
  const factory = namespace as unknown as SocketFactory;
  const create = factory._createSocket.bind(namespace);
  factory._createSocket = async (client, auth) => {
    const { pid, offset } = auth ?? {};
    if (typeof pid !== "string" || typeof offset !== "string") return create(client, auth);
    const { request } = client as { request: { headers: RecoveryAttempt["headers"] } };
    const accept = await admit({ headers: request.headers, auth, client: client as object });
    if (!accept || accepts.has(pid)) {
      const { pid: _pid, offset: _offset, ...fresh } = auth;
      return create(client, fresh);
    }
    accepts.set(pid, accept);
    try {
      return await create(client, auth);
    } finally {
      accepts.delete(pid);
    }
  };
}

/**
 * Replaces `apply` on `target`'s prototype: a broadcast to one room with no exceptions visits the
 * room's members directly, without the set of visited ids the general walk builds; every other
 * broadcast takes `base`'s walk.
 */
export function installSingleRoomWalk(target: typeof Adapter, base: typeof Adapter): void {
  const generalWalk = (base.prototype as unknown as Walker).apply;
  (target.prototype as unknown as Walker).apply = function (this: Walker, opts, callback) {
    const { rooms, except } = opts;
    if (rooms.size !== 1 || (except !== undefined && except.size > 0)) {
      return generalWalk.call(this, opts, callback);
    }
    const [room] = rooms;
    const members = this.rooms.get(room);
    if (members === undefined) return;
    const sockets = this.nsp.sockets;
    for (const id of members) {
      const found = sockets.get(id);
      if (found !== undefined) callback(found);
    }
  };
}
