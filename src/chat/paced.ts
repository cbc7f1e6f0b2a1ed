/**
 * Presence broadcasts written a slice of sockets at a time. Deno's `WebSocket.send` copies the
 * frame for each socket and writes it only once the event loop runs, so a `user:joined` of 250
 * users (about 10 KB) sent to 19,000 sockets at once held 190 MB of copies before the first went
 * out, and blocked every connect meanwhile. Here each slice is written, then the loop runs (the
 * writes go out, handshakes proceed) before the next: what is in flight is one slice's copies.
 * Broadcasts go out in the order given, each to the sockets that were its audience when it was
 * given; a socket gone meanwhile is skipped.
 * @module
 */
import { encodeEvent, writeEncoded } from "../cluster/socketio_internals.ts";
import type { ChatServer } from "./types.ts";

/** Sockets written before the event loop runs again. */
export const PACED_SLICE = 500;

interface Broadcast {
  ids: string[];
  event: unknown[];
  encoded?: unknown[];
  next: number;
}

/** A queue of broadcasts to this instance's sockets, written {@link PACED_SLICE} at a time. */
export class PacedBroadcasts {
  #queue: Broadcast[] = [];
  #draining = false;
  #closed = false;

  constructor(private readonly io: ChatServer) {}

  /** Emits `event` (name and arguments) to the sockets in `room` now. */
  toRoom(room: string, ...event: unknown[]): void {
    const members = this.io.of("/").adapter.rooms.get(room);
    if (members?.size) this.toSockets([...members], ...event);
  }

  /** Emits `event` (name and arguments) to the sockets with these ids. */
  toSockets(ids: string[], ...event: unknown[]): void {
    if (this.#closed || ids.length === 0) return;
    this.#queue.push({ ids, event, next: 0 });
    if (!this.#draining) void this.#drain();
  }

  /** Drops what is queued (shutdown). */
  close(): void {
    this.#closed = true;
    this.#queue = [];
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      while (this.#queue.length > 0) {
        this.#writeSlice(this.#queue[0]);
        if (this.#queue[0]?.next === this.#queue[0]?.ids.length) this.#queue.shift();
        // The loop runs the writes (and everything else waiting) before the next slice.
        if (this.#queue.length > 0) await new Promise((resolve) => setTimeout(resolve, 0));
      }
    } finally {
      this.#draining = false;
    }
  }

  #writeSlice(broadcast: Broadcast): void {
    const sockets = this.io.of("/").sockets;
    const end = Math.min(broadcast.ids.length, broadcast.next + PACED_SLICE);
    for (; broadcast.next < end; broadcast.next++) {
      const socket = sockets.get(broadcast.ids[broadcast.next]);
      if (socket === undefined || !socket.connected) continue;
      broadcast.encoded ??= encodeEvent(socket, broadcast.event);
      writeEncoded(socket, broadcast.encoded);
    }
  }
}
