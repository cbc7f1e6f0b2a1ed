/**
 * The runtime-neutral base of an Engine.IO transport: it turns wire data into packets for its
 * session and reports packets, `drain`, errors and the close to its {@link TransportListener}.
 * @module
 */
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

/**
 * Who a transport reports to: its session, or the upgrade probing it. One listener at a time, as
 * methods rather than an emitter's listeners: a session then costs no closures or listener
 * arrays for its transport.
 */
export interface TransportListener {
  /** A packet arrived from the client (never `close`: that closes the transport). */
  onTransportPacket(packet: Packet): void;
  /** The transport can send now. */
  onTransportDrain(): void;
  /** The transport failed; its session closes with this as the description. */
  onTransportError(error: TransportError): void;
  /** The transport closed. */
  onTransportClose(): void;
}

/** Base class of the polling and WebSocket transports; they report to a {@link TransportListener}. */
export abstract class Transport {
  /** Whether `send()` reaches the client now. */
  writable = false;
  readyState: TransportState = "open";
  #listener?: TransportListener;

  abstract readonly name: TransportName;
  /** Transports this one may upgrade to (one array per transport class, not per session). */
  abstract readonly upgradesTo: readonly TransportName[];

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

  /** Closes the transport; its listener is told once it is closed. */
  close(): void {
    if (this.readyState !== "open") return;
    this.readyState = "closing";
    this.doClose();
  }

  /** Reports to `listener` from now on; `undefined` stops the reports. */
  listen(listener: TransportListener | undefined): void {
    this.#listener = listener;
  }

  /** Drops the transport after an upgrade, answering any waiting request without a close. */
  discard(): void {
    this.#listener = undefined;
    this.readyState = "closed";
    this.writable = false;
  }

  protected abstract doClose(): void;

  protected onPacket(packet: Packet): void {
    if (packet.type === "close") {
      this.onClosePacket();
      return;
    }
    this.#listener?.onTransportPacket(packet);
  }

  protected onDrain(): void {
    this.#listener?.onTransportDrain();
  }

  /** The client asked to close the session: the transport closes ("transport close"). */
  protected onClosePacket(): void {
    this.close();
  }

  protected onError(code: string, message: string): void {
    if (this.readyState === "closed") return;
    this.#listener?.onTransportError(new TransportError(code, message));
  }

  protected onClose(): void {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.writable = false;
    this.#listener?.onTransportClose();
  }
}
