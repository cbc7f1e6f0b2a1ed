/**
 * A real webhook receiver for the tests: `Deno.serve` on 127.0.0.1 port 0 that verifies every
 * request with the `standardwebhooks` library (as a backend would) and records it, answering as
 * told: 204, another status, or never (until the sender gives up and disconnects).
 *
 * @example
 * ```ts ignore
 * await using receiver = await WebhookReceiver.start();
 * receiver.answer = 503; // down
 * receiver.answer = 204; // back
 * await receiver.until((events) => events.length === 3, "three events");
 * ```
 * @module
 */
import { Webhook } from "standardwebhooks";
import { until } from "./time.ts";

/** A secret for the tests: `whsec_` and 32 bytes. */
export const WEBHOOK_SECRET = "whsec_" + btoa("0123456789abcdef0123456789abcdef");

/** One verified request. */
export interface Received {
  /** `webhook-id`. */
  id: string;
  type: string;
  timestamp: string;
  // deno-lint-ignore no-explicit-any
  data: any;
  body: string;
  /** What the receiver answered: a status, or `"hang"`. */
  answered: number | "hang";
}

/** A running receiver; `await using` stops it. */
export class WebhookReceiver implements AsyncDisposable {
  /** Every request that verified, in arrival order. */
  readonly attempts: Received[] = [];
  /** Requests whose signature did not verify. */
  rejected = 0;
  /** How the next requests are answered. */
  answer: number | "hang" = 204;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #verifier: Webhook;
  /** Ends every request held unanswered (on dispose). */
  readonly #released = Promise.withResolvers<void>();

  private constructor(secret: string) {
    this.#verifier = new Webhook(secret);
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (request) => this.#handle(request),
    );
  }

  static start(secret = WEBHOOK_SECRET): Promise<WebhookReceiver> {
    return Promise.resolve(new WebhookReceiver(secret));
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}/hooks`;
  }

  /** The events answered with a 2xx, in order. */
  get delivered(): Received[] {
    return this.attempts.filter((attempt) =>
      typeof attempt.answered === "number" && attempt.answered < 300
    );
  }

  /** Delivered events of `type`. */
  ofType(type: string): Received[] {
    return this.delivered.filter((event) => event.type === type);
  }

  /** Waits until `condition` holds of the delivered events. */
  async until(condition: (delivered: Received[]) => boolean, what: string, ms = 10_000) {
    await until(() => condition(this.delivered), ms, what);
  }

  async #handle(request: Request): Promise<Response> {
    const body = await request.text();
    const answered = this.answer;
    try {
      this.#verifier.verify(body, Object.fromEntries(request.headers));
    } catch {
      this.rejected++;
      return new Response("bad signature", { status: 400 });
    }
    const event = JSON.parse(body);
    this.attempts.push({
      id: request.headers.get("webhook-id")!,
      type: event.type,
      timestamp: event.timestamp,
      data: event.data,
      body,
      answered,
    });
    if (answered === "hang") {
      // Held until the sender gives up and closes the connection, or the receiver stops.
      const aborted = new Promise((resolve) => request.signal.addEventListener("abort", resolve));
      await Promise.race([aborted, this.#released.promise]);
      return new Response(null, { status: 503 });
    }
    return new Response(null, { status: answered });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#released.resolve();
    await this.#server.shutdown();
  }
}
