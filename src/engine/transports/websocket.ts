/**
 * WebSocket transport over a web-standard `WebSocket` (as returned by `Deno.upgradeWebSocket`):
 * one packet per frame, text frames for text packets and binary frames for binary ones.
 * @module
 */
import { decodePacket, encodePacket, type Packet, PacketParseError } from "../parser.ts";
import { Transport, type TransportName } from "../transport.ts";

/** Options the WebSocket transport needs. */
export interface WebSocketOptions {
  /** Largest accepted frame, in bytes. */
  maxHttpBufferSize: number;
}

const encoder = new TextEncoder();

/** WebSocket close code for a frame over the limit ("Message Too Big", as `ws` sends it). */
const MESSAGE_TOO_BIG = 1009;

const NO_UPGRADES: readonly TransportName[] = Object.freeze([]);

/** The WebSocket events a transport listens to. */
const SOCKET_EVENTS = ["open", "message", "error", "close"] as const;

function exceeds(data: string | ArrayBuffer, limit: number): boolean {
  if (typeof data !== "string") return data.byteLength > limit;
  // A UTF-16 unit is 1 to 3 UTF-8 bytes: encode only when the length alone cannot tell.
  if (data.length > limit) return true;
  if (data.length * 3 <= limit) return false;
  return encoder.encode(data).byteLength > limit;
}

/** The WebSocket transport of one session. */
export class WebSocketTransport extends Transport {
  readonly name = "websocket";
  get upgradesTo(): readonly TransportName[] {
    return NO_UPGRADES;
  }
  override readonly sendsEachPacket = true;
  /** The close code to send, when the close has a reason the client should see. */
  #closeCode?: number;

  constructor(private readonly socket: WebSocket, private readonly options: WebSocketOptions) {
    super();
    socket.binaryType = "arraybuffer";
    // The transport itself listens (`handleEvent`): an `on…` handler costs a wrapper closure, a
    // handler map and a closure of ours per event and socket (about 0.9 KB a connection).
    for (const type of SOCKET_EVENTS) socket.addEventListener(type, this);
    if (socket.readyState === WebSocket.OPEN) this.writable = true;
  }

  /** The WebSocket's events (EventListener object form). */
  handleEvent(event: Event): void {
    switch (event.type) {
      case "message":
        return this.#onFrame((event as MessageEvent<string | ArrayBuffer>).data);
      case "open":
        // Closed before the handshake completed (see doClose): close it now that it can be.
        if (this.readyState !== "open") return this.socket.close();
        this.writable = true;
        this.onDrain();
        return;
      case "error":
        return this.onError("websocket_error", "the WebSocket failed");
      case "close":
        return this.onClose();
    }
  }

  #onFrame(data: string | ArrayBuffer): void {
    if (this.readyState !== "open") return;
    if (exceeds(data, this.options.maxHttpBufferSize)) {
      this.#closeCode = MESSAGE_TOO_BIG;
      this.onError("payload_too_large", "the frame exceeds maxHttpBufferSize");
      return;
    }
    let packet: Packet;
    try {
      packet = decodePacket(typeof data === "string" ? data : new Uint8Array(data));
    } catch (error) {
      this.onError("parse_error", error instanceof PacketParseError ? error.message : "bad frame");
      return;
    }
    this.onPacket(packet);
  }

  override get bufferedAmount(): number {
    return this.socket.bufferedAmount;
  }

  override sendText(frame: string): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(frame);
  }

  send(packets: Packet[]): void {
    if (this.socket.readyState !== WebSocket.OPEN) return;
    for (const packet of packets) this.socket.send(encodePacket(packet, true));
  }

  protected doClose(): void {
    if (this.socket.readyState === WebSocket.CONNECTING) {
      // Closing before the handshake completes throws in Deno: it closes once open.
      this.onClose();
      return;
    }
    this.socket.close(this.#closeCode);
    this.onClose();
  }
}
