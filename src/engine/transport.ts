/**
 * The runtime-neutral base of an Engine.IO transport: it turns wire data into packets for its
 * session and reports `packet`, `drain`, `error` and `close`.
 * @module
 */
import { EventEmitter } from "node:events";
import type { Packet } from "./parser.ts";

/** Transport names, as they appear in the `transport` query parameter. */
export type TransportName = "polling" | "websocket";

/** Lifecycle of a transport. */
export type TransportState = "open" | "closing" | "closed";

/** A transport-level failure with a stable reason code. */
export class TransportError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = "TransportError";
  }
}

/** What a transport reports to its session. */
export interface TransportEvents {
  /** A packet arrived from the client (never `close`: that closes the transport). */
  packet: [packet: Packet];
  /** The transport can send now. */
  drain: [];
  /** The transport failed; its session closes with this as the description. */
  error: [error: TransportError];
  /** The transport closed. */
  close: [];
}

/** Base class of the polling and WebSocket transports; its events are {@link TransportEvents}. */
export abstract class Transport extends EventEmitter<TransportEvents> {
  /** Whether `send()` reaches the client now. */
  writable = false;
  readyState: TransportState = "open";

  abstract readonly name: TransportName;
  /** Transports this one may upgrade to. */
  abstract readonly upgradesTo: TransportName[];

  /** Bytes handed to `send()` that have not reached the network yet. */
  get bufferedAmount(): number {
    return 0;
  }

  /** Sends packets; only called while `writable`. */
  abstract send(packets: Packet[]): void;

  /**
   * Sends one already encoded text frame (see `encodeMessageText`); only on transports that
   * {@link sendsEachPacket}, and only while `writable`.
   */
  sendText(_frame: string): void {
    throw new Error(`${this.name} does not send single frames`);
  }

  /**
   * Whether one packet can be sent at once, without the write buffer's batching: true for
   * transports that frame each packet (WebSocket), false for those that batch (polling).
   */
  readonly sendsEachPacket: boolean = false;

  /** Closes the transport; `close` is emitted once it is closed. */
  close(): void {
    if (this.readyState !== "open") return;
    this.readyState = "closing";
    this.doClose();
  }

  /** Drops the transport after an upgrade, answering any waiting request without a close. */
  discard(): void {
    this.removeAllListeners();
    this.readyState = "closed";
    this.writable = false;
  }

  protected abstract doClose(): void;

  protected onPacket(packet: Packet): void {
    if (packet.type === "close") {
      this.onClosePacket();
      return;
    }
    this.emit("packet", packet);
  }

  /** The client asked to close the session: the transport closes ("transport close"). */
  protected onClosePacket(): void {
    this.close();
  }

  protected onError(code: string, message: string): void {
    if (this.readyState === "closed") return;
    this.emit("error", new TransportError(code, message));
  }

  protected onClose(): void {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.writable = false;
    this.emit("close");
  }
}
