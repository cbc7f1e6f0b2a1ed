/**
 * The publish hook (`PUBLISH_HOOK_URL`): before a message is stored, the operator's backend is
 * asked, in a POST signed as webhooks are, whether to allow, deny or modify it. A slow, failing
 * or malformed answer becomes what `PUBLISH_HOOK_FAILURE` says. See docs/webhooks.md.
 *
 * @example
 * A sketch: the chat service asks before its timeline commits.
 * ```ts ignore
 * const hook = new PublishHook({ url, secret, timeoutMs: 2000, onFailure: "deny" }, observer, log);
 * const verdict = await hook.check({ user, room, message: "hi" }, (text) => text.trim());
 * if (verdict.action === "deny") throw new CodedError("rejected", verdict.reason);
 * ```
 * @module
 */
import { Webhook } from "standardwebhooks";
import type { Logger } from "../ops/log.ts";
import type { User } from "../types.ts";
import { newEventId } from "./events.ts";
import { signedHeaders } from "./signature.ts";

/** What a slow or failing backend means: let the message through, or refuse it. */
export const PUBLISH_HOOK_FAILURES = ["allow", "deny"] as const;
export type PublishHookFailure = typeof PUBLISH_HOOK_FAILURES[number];

/** The operator's settings (`PUBLISH_HOOK_*`, `WEBHOOK_SECRET`). */
export interface PublishHookSettings {
  url: string;
  secret: string;
  timeoutMs: number;
  onFailure: PublishHookFailure;
}

/** The question's body: the message as it would be stored. */
export interface PublishQuestion {
  user: User;
  room: string;
  message: string;
  clientId?: string;
  /** The id of the message it answers. */
  replyTo?: string;
  mentions?: string[];
}

/** The answer, after the failure policy: what to do with the message. */
export type PublishVerdict =
  | { action: "allow" }
  | { action: "deny"; reason: string }
  | { action: "modify"; message: string };

/** How a call went, as metrics count it. */
export type PublishHookOutcome = "allow" | "deny" | "modify" | "failed";

/** Told of each call's outcome (the metrics, matched by shape). */
export interface PublishHookObserver {
  publishHookCalled(outcome: PublishHookOutcome): void;
}

/** Why a message is refused when the backend could not answer and the policy is `deny`. */
export const UNCHECKED_REASON = "the message could not be checked; try again later";

/** The reason of a deny that gave none. */
export const DENIED_REASON = "the message was rejected";

/** Asks the backend about each message; one per server. */
export class PublishHook {
  readonly #settings: PublishHookSettings;
  readonly #signer: Webhook;
  readonly #observer: PublishHookObserver;
  readonly #log: Logger;

  constructor(settings: PublishHookSettings, observer: PublishHookObserver, log: Logger) {
    this.#settings = settings;
    this.#signer = new Webhook(settings.secret);
    this.#observer = observer;
    this.#log = log;
  }

  /**
   * The backend's verdict on `question`. A modified text goes through `readText` (the chat's
   * rules for a message: it throws on an empty or too long text), which makes a text it refuses
   * a malformed answer; a malformed answer, a non-2xx or no answer in time is a failure.
   */
  async check(
    question: PublishQuestion,
    readText: (text: string) => string,
  ): Promise<PublishVerdict> {
    let verdict: PublishVerdict;
    try {
      verdict = readVerdict(await this.#ask(question), readText);
    } catch (error) {
      this.#observer.publishHookCalled("failed");
      this.#log.warn("publish_hook.failed", {
        room: question.room,
        user: question.user.id,
        onFailure: this.#settings.onFailure,
        error: error instanceof Error ? error.message : String(error),
      });
      return this.#settings.onFailure === "allow"
        ? { action: "allow" }
        : { action: "deny", reason: UNCHECKED_REASON };
    }
    this.#observer.publishHookCalled(verdict.action);
    return verdict;
  }

  /** One signed POST; the parsed body of a 2xx answer, which must come within the timeout. */
  async #ask(question: PublishQuestion): Promise<unknown> {
    const body = JSON.stringify(question);
    const response = await fetch(this.#settings.url, {
      method: "POST",
      headers: signedHeaders(this.#signer, newEventId(), new Date(), body),
      body,
      signal: AbortSignal.timeout(this.#settings.timeoutMs),
      redirect: "manual",
    });
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`status ${response.status}`);
    }
    return JSON.parse(await readAnswer(response));
  }
}

/**
 * Largest answer read: a modified text of `MAX_MESSAGE_LENGTH` (10,000 at most) code points,
 * each up to 12 bytes as JSON escapes, fits with room to spare; past it the answer is a failure,
 * so a backend gone wrong cannot make the server hold what it sends.
 */
const MAX_ANSWER_BYTES = 256 * 1024;

/** The answer's text, read no further than {@link MAX_ANSWER_BYTES}. */
async function readAnswer(response: Response): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  let size = 0;
  for await (const chunk of response.body ?? []) {
    size += chunk.length;
    if (size > MAX_ANSWER_BYTES) {
      await response.body?.cancel();
      throw new Error(`an answer over ${MAX_ANSWER_BYTES} bytes`);
    }
    text += decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}

/** The verdict an answer holds; throws on anything else. */
function readVerdict(answer: unknown, readText: (text: string) => string): PublishVerdict {
  const fields = typeof answer === "object" && answer !== null
    ? answer as Record<string, unknown>
    : {};
  switch (fields.action) {
    case "allow":
      return { action: "allow" };
    case "deny":
      // A deny is a deny even without its reason: never let it through under `allow`.
      return {
        action: "deny",
        reason: typeof fields.reason === "string" && fields.reason.trim() !== ""
          ? fields.reason.trim()
          : DENIED_REASON,
      };
    case "modify":
      if (typeof fields.message !== "string") throw new Error("a modify without a message");
      return { action: "modify", message: readText(fields.message) };
    default:
      throw new Error("no known action");
  }
}
