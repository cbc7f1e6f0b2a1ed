/**
 * One Engine.IO session: its current transport, write buffer, heartbeat and the
 * polling → WebSocket upgrade. This is the `conn` that socket.io's server core talks to.
 * @module
 */
import { EventEmitter } from "node:events";
import type { Deadlines } from "../deadlines.ts";
import { encodeMessageText, type Packet, type PacketData, type PacketType } from "./parser.ts";
import { type Transport, TransportError, type TransportListener } from "./transport.ts";

/** Why a session closed, as reported to socket.io (`disconnect` reason). */
export type CloseReason =
  | "transport close"
  | "transport error"
  | "parse error"
  | "ping timeout"
  | "forced close"
  | "server shutting down";

/** The handshake request as socket.io reads it (`socket.handshake` is built from it). */
export interface HandshakeRequest {
  /** Path and query, as Node's `req.url`. */
  url: string;
  method: string;
  /** Lower-case header names. */
  headers: Record<string, string>;
  _query: Record<string, string>;
  connection: { encrypted: boolean; remoteAddress: string };
}

/** What a session shares with the other sessions of its engine: one object per engine. */
export interface SessionHost {
  /** Every session's next ping or pong deadline, on one timer. */
  readonly heartbeats: Deadlines<EngineSocket>;
  /** Told once when a session closes, before its `close` event. */
  sessionClosed(session: EngineSocket, reason: CloseReason): void;
}

/**
 * How far over {@link SessionOptions.maxBufferedBytes} a backlog may grow during its grace period
 * before the session is closed at once, unless {@link SessionOptions.backlogCeilingBytes} says.
 */
export const BACKLOG_CEILING_FACTOR = 8;

/** Session timing and size settings. */
export interface SessionOptions {
  pingInterval: number;
  pingTimeout: number;
  upgradeTimeout: number;
  maxHttpBufferSize: number;
  /**
   * Most bytes a client may leave unread: packets queued for the next poll plus what the
   * WebSocket has not sent yet. Only a backlog that stays over it counts: going over starts a
   * grace period ({@link backlogGraceMs}), and a session still over it when that ends is closed
   * ("transport error", `send_buffer_full`). A client that reads drains a large frame (a 2 MB
   * history) within milliseconds and keeps its session. Over {@link BACKLOG_CEILING_FACTOR} times
   * this the session is closed at once, so a client that never reads cannot make the server
   * buffer without bound.
   */
  maxBufferedBytes: number;
  /** Most packets queued for the next poll; one more closes the session at once. */
  maxBufferedPackets: number;
  /** Milliseconds a backlog over maxBufferedBytes has to drain (default: pingTimeout). */
  backlogGraceMs: number;
  /**
   * A backlog over this closes the session at once (default {@link BACKLOG_CEILING_FACTOR} ×
   * maxBufferedBytes); the app raises it so its largest frame burst (a full history) fits.
   */
  backlogCeilingBytes: number;
  /** Most milliseconds a polling POST body may take to arrive; slower ones close the session. */
  pollBodyTimeout: number;
  /**
   * Packets a client may send per second, sustained; it may send ten seconds' worth at once. One
   * more closes the session ("transport error", `packet_rate_exceeded`): a flood is cut before
   * the layers above spend time and memory on it. 0 turns the limit off.
   */
  maxPacketsPerSecond: number;
}

type ReadyState = "opening" | "open" | "closing" | "closed";
type UpgradeState = "none" | "upgrading" | "upgraded";

/** A client may send this many seconds' worth of maxPacketsPerSecond at once. */
export const PACKET_BURST_SECONDS = 10;

/** Bytes sent between two checks of the transport's own send backlog. */
const BACKLOG_CHECK_BYTES = 64 * 1024;

/** During an upgrade, how often the paused polling GET is nudged with a noop. */
const UPGRADE_NOOP_INTERVAL_MS = 100;

/**
 * What a session reports. socket.io's server core listens to `data` and `close` (and to `error`,
 * which is never emitted: as in engine.io, a failure is the `close` description instead).
 */
export interface EngineSocketEvents {
  /** The open packet was sent. */
  open: [];
  /**
   * A message packet's data (undefined for an empty one, as in engine.io); `message` is the same
   * under engine.io's other name.
   */
  data: [data: PacketData | undefined];
  message: [data: PacketData | undefined];
  /** Any packet from the client. */
  packet: [packet: Packet];
  /** A packet was queued for the client (only emitted while someone listens). */
  packetCreate: [packet: Packet];
  /** The client answered a ping. */
  heartbeat: [];
  /** The client probed this transport to upgrade to it. */
  upgrading: [transport: Transport];
  /** The session moved to this transport. */
  upgrade: [transport: Transport];
  /** The write buffer was handed to the transport. */
  drain: [];
  /** These packets were handed to the transport. */
  flush: [packets: Packet[]];
  /** The session ended; `description` says what failed, when something did. */
  close: [reason: CloseReason, description?: Error];
}

/** An Engine.IO session; its events are {@link EngineSocketEvents}. */
export class EngineSocket extends EventEmitter<EngineSocketEvents> implements TransportListener {
  /** Protocol revision; socket.io reads it. */
  readonly protocol = 4;
  readyState: ReadyState = "opening";
  transport: Transport;
  #upgradeState: UpgradeState = "none";
  #writeBuffer: Packet[] = [];
  /** Size of `#writeBuffer`'s data, in bytes for binary and UTF-16 units for text. */
  #writeBufferSize = 0;
  /** The heartbeat's entry in the engine's deadlines (-1: none): the next ping, or the pong's. */
  #heartbeatKey = -1;
  /** A ping went out and its pong has not come back. */
  #awaitingPong = false;
  /** When the pong is due (`performance.now()`): see {@link expireIfOverdue}. */
  #pongDeadline = Infinity;
  #sentSinceBacklogCheck = 0;
  /** Packets the client may still send now; unset until its first packet (a full bucket). */
  #packetTokens?: number;
  #packetsCountedAt = 0;
  #backlogTimer?: ReturnType<typeof setTimeout>;
  #upgradeCleanup?: () => void;

  constructor(
    readonly id: string,
    transport: Transport,
    readonly request: HandshakeRequest,
    private readonly options: SessionOptions,
    private readonly host: SessionHost,
  ) {
    super();
    this.transport = transport;
    transport.listen(this);
  }

  /** The client's IP address. */
  get remoteAddress(): string {
    return this.request.connection.remoteAddress;
  }

  /** Bytes sent to the client that it has not read yet: queued packets and the transport's own. */
  get backlogBytes(): number {
    return this.#writeBufferSize + this.transport.bufferedAmount;
  }

  /** Whether this session already moved to (or is moving to) another transport. */
  get upgradeState(): UpgradeState {
    return this.#upgradeState;
  }

  /** Sends the open packet and starts the heartbeat. */
  open(): void {
    this.readyState = "open";
    this.#sendPacket(
      "open",
      JSON.stringify({
        sid: this.id,
        upgrades: this.transport.upgradesTo,
        pingInterval: this.options.pingInterval,
        pingTimeout: this.options.pingTimeout,
        maxPayload: this.options.maxHttpBufferSize,
      }),
    );
    this.emit("open");
    this.#schedulePing();
  }

  /** Sends a message packet; `callback` runs once it is handed to the transport. */
  write(data: PacketData, _options?: unknown, callback?: () => void): this {
    if (typeof data === "string" && callback === undefined && this.#sendsDirectly()) {
      // A broadcast's hot path: no packet object, no batch, one frame text shared by all.
      this.transport.sendText(encodeMessageText(data));
      this.#limitBacklog(data.length);
      return this;
    }
    this.#sendPacket("message", data, callback);
    return this;
  }

  /** Alias of {@link write}, as on engine.io. */
  send(data: PacketData, options?: unknown, callback?: () => void): this {
    return this.write(data, options, callback);
  }

  /** Closes the session once buffered packets are flushed (or at once with `discard`). */
  close(discard = false): void {
    // Engine shutdown discards: it must also end a session still waiting to flush a close.
    if (discard && this.readyState === "closing") return this.#onClose("forced close");
    if (this.readyState !== "open") return;
    this.readyState = "closing";
    if (this.#writeBuffer.length > 0 && !discard) {
      this.once("drain", () => this.#onClose("forced close"));
      return;
    }
    this.#onClose("forced close");
  }

  /** Ends the session right away with the given reason (server shutdown). */
  terminate(reason: CloseReason): void {
    this.#onClose(reason);
  }

  /**
   * Closes the session ("ping timeout") when its pong is overdue, and says whether it did. Timers
   * fire late on a busy machine: a request checked here finds the session as the heartbeat
   * defines it (gone pingInterval + pingTimeout after the open packet or the last pong), not as
   * a late timer left it.
   */
  expireIfOverdue(): boolean {
    if (this.readyState === "closed" || performance.now() < this.#pongDeadline) return false;
    this.#onClose("ping timeout");
    return true;
  }

  /** Starts an upgrade to `transport` (a WebSocket opened with this session's sid). */
  upgrade(transport: Transport): void {
    this.#upgradeState = "upgrading";
    let noopTimer: ReturnType<typeof setInterval> | undefined;
    const upgradeTimer = setTimeout(() => fail(), this.options.upgradeTimeout);
    const cleanup = () => {
      clearTimeout(upgradeTimer);
      clearInterval(noopTimer);
      transport.listen(undefined);
      this.#upgradeCleanup = undefined;
    };
    const fail = () => {
      cleanup();
      transport.close();
      if (this.#upgradeState === "upgrading") this.#upgradeState = "none";
    };
    const sendNoop = () => {
      if (this.transport.name === "polling" && this.transport.writable) {
        this.transport.send([{ type: "noop" }]);
      }
    };
    const onProbePacket = (packet: Packet) => {
      if (packet.type === "ping" && packet.data === "probe") {
        transport.send([{ type: "pong", data: "probe" }]);
        this.emit("upgrading", transport);
        // No noop at once, as in engine.io: the client may send its upgrade packet right after
        // the probe and poll again, and that GET may be read before the packet. Answered now it
        // would see the upgrade undone; still waiting when the packet comes, it is refused.
        clearInterval(noopTimer);
        noopTimer = setInterval(sendNoop, UPGRADE_NOOP_INTERVAL_MS);
      } else if (packet.type === "upgrade" && this.readyState !== "closed") {
        cleanup();
        this.#upgradeState = "upgraded";
        this.transport.discard();
        this.transport = transport;
        transport.listen(this);
        this.emit("upgrade", transport);
        this.#flush();
      } else {
        fail();
      }
    };
    transport.listen({
      onTransportPacket: onProbePacket,
      onTransportDrain: () => {},
      onTransportError: fail,
      onTransportClose: fail,
    });
    this.#upgradeCleanup = fail;
  }

  /** What the current transport reports: see {@link TransportListener}. */
  onTransportDrain(): void {
    this.#flush();
  }

  onTransportError(error: TransportError): void {
    // As in engine.io, a transport error only closes the session (the error is the close
    // description): emitting "error" would throw when nobody listens, before the close ran.
    this.#onClose(error.code === "parse_error" ? "parse error" : "transport error", error);
  }

  onTransportClose(): void {
    this.#onClose("transport close");
  }

  onTransportPacket(packet: Packet): void {
    if (this.readyState !== "open") return;
    if (!this.#takePacketToken()) {
      return this.#onClose(
        "transport error",
        new TransportError("packet_rate_exceeded", "the client sends packets too fast"),
      );
    }
    this.emit("packet", packet);
    switch (packet.type) {
      case "pong":
        if (this.expireIfOverdue()) return;
        this.#schedulePing();
        this.emit("heartbeat");
        break;
      case "message":
        this.emit("data", packet.data);
        this.emit("message", packet.data);
        break;
      case "ping":
        // In v4 only the server pings.
        this.#onClose(
          "transport error",
          new TransportError("invalid_heartbeat", "invalid heartbeat direction"),
        );
        break;
      default:
        // open, upgrade and noop mean nothing on an open transport: ignored, as by engine.io.
    }
  }

  /** One token of the session's packet bucket (refilled at maxPacketsPerSecond, holding 10 s). */
  #takePacketToken(): boolean {
    const rate = this.options.maxPacketsPerSecond;
    if (rate === 0) return true;
    const now = Date.now();
    const burst = rate * PACKET_BURST_SECONDS;
    this.#packetTokens = Math.min(
      burst,
      (this.#packetTokens ?? burst) + ((now - this.#packetsCountedAt) * rate) / 1000,
    );
    this.#packetsCountedAt = now;
    if (this.#packetTokens < 1) return false;
    this.#packetTokens--;
    return true;
  }

  /**
   * Pings pingInterval after the open packet or the last pong; only a pong within pingTimeout of
   * when the ping was due keeps the session (other packets do not, as in engine.io 6).
   */
  #schedulePing(): void {
    this.host.heartbeats.cancel(this, this.#heartbeatKey);
    const { pingInterval, pingTimeout } = this.options;
    const now = performance.now();
    // The deadline counts from when the ping is due, as the client's own timer does: a ping
    // that goes out late must not push the timeout back by its lateness.
    this.#pongDeadline = now + pingInterval + pingTimeout;
    this.#awaitingPong = false;
    this.#heartbeatKey = this.host.heartbeats.set(this, now + pingInterval);
  }

  /** The engine's deadlines say the heartbeat is due: the ping goes out, or the pong is late. */
  heartbeatDue(): void {
    this.#heartbeatKey = -1;
    if (this.readyState === "closed") return;
    if (this.#awaitingPong) return this.#onClose("ping timeout");
    this.#sendPacket("ping");
    this.#awaitingPong = true;
    this.#heartbeatKey = this.host.heartbeats.set(this, this.#pongDeadline);
  }

  /**
   * Whether a packet can go straight to the transport as one frame: an open session on a
   * WebSocket with nothing queued and nobody listening for `packetCreate`, `flush` or `drain`.
   */
  #sendsDirectly(): boolean {
    const transport = this.transport;
    return this.readyState === "open" && transport.sendsEachPacket && transport.writable &&
      this.#writeBuffer.length === 0 && this.listenerCount("packetCreate") === 0 &&
      this.listenerCount("flush") === 0 && this.listenerCount("drain") === 0;
  }

  #sendPacket(type: PacketType, data?: PacketData, callback?: () => void): void {
    if (this.readyState === "closing" || this.readyState === "closed") return;
    const packet: Packet = data === undefined ? { type } : { type, data };
    const size = data?.length ?? 0;
    if (!callback && this.#sendsDirectly()) {
      // The common case on a WebSocket: nothing queued, nobody watching: one frame, no batch.
      this.transport.send([packet]);
    } else {
      if (this.listenerCount("packetCreate") > 0) this.emit("packetCreate", packet);
      this.#writeBuffer.push(packet);
      this.#writeBufferSize += size;
      if (callback) this.once("flush", callback);
      this.#flush();
    }
    this.#limitBacklog(size);
  }

  /**
   * A client that stops reading must not make the server buffer without bound, but one that
   * reads must not be cut for a large frame: see {@link SessionOptions.maxBufferedBytes}.
   * Called on every send, so the common case is a few comparisons.
   */
  #limitBacklog(size: number): void {
    const { maxBufferedBytes, maxBufferedPackets } = this.options;
    if (this.#writeBuffer.length > maxBufferedPackets) return this.#closeUnread();
    let backlog = this.#writeBufferSize;
    // Asking the transport what it holds costs a runtime call: do it once per slice of traffic.
    this.#sentSinceBacklogCheck += size;
    if (this.#sentSinceBacklogCheck >= BACKLOG_CHECK_BYTES) {
      this.#sentSinceBacklogCheck = 0;
      backlog += this.transport.bufferedAmount;
    }
    if (backlog <= maxBufferedBytes) return;
    if (backlog > this.options.backlogCeilingBytes) return this.#closeUnread();
    this.#backlogTimer ??= setTimeout(() => {
      this.#backlogTimer = undefined;
      if (this.#writeBufferSize + this.transport.bufferedAmount > maxBufferedBytes) {
        this.#closeUnread();
      }
    }, this.options.backlogGraceMs);
  }

  #closeUnread(): void {
    this.#onClose(
      "transport error",
      new TransportError("send_buffer_full", "the client is not reading what it is sent"),
    );
  }

  #flush(): void {
    if (this.readyState === "closed" || !this.transport.writable || !this.#writeBuffer.length) {
      return;
    }
    const packets = this.#writeBuffer;
    this.#writeBuffer = [];
    this.#writeBufferSize = 0;
    this.transport.send(packets);
    this.emit("flush", packets);
    this.emit("drain");
  }

  #onClose(reason: CloseReason, description?: Error): void {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.host.heartbeats.cancel(this, this.#heartbeatKey);
    this.#heartbeatKey = -1;
    clearTimeout(this.#backlogTimer);
    this.#upgradeCleanup?.();
    this.#writeBuffer = [];
    this.#writeBufferSize = 0;
    const transport = this.transport;
    transport.listen(undefined);
    transport.close();
    this.host.sessionClosed(this, reason);
    this.emit("close", reason, description);
  }
}
