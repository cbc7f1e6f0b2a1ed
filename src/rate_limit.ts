/**
 * Token buckets keyed by a string (a user id, an IP address): each key may spend `burst` tokens at
 * once and regains `perMinute` tokens a minute.
 *
 * @example
 * ```ts
 * const limiter = new RateLimiter({ perMinute: 30, burst: 5 });
 * const verdict = limiter.take("alice");
 * if (!verdict.ok) console.log(`retry in ${verdict.retryAfterMs} ms`);
 * ```
 * @module
 */

/** Bucket size and refill rate. */
export interface RateLimit {
  /** Tokens regained per minute. */
  perMinute: number;
  /** Most tokens a key can hold (and so spend at once). */
  burst: number;
  /**
   * Most keys remembered at once (default {@link RATE_LIMIT_DEFAULTS}.maxKeys): past it the
   * oldest bucket is forgotten, so a flood of new keys (addresses) cannot grow memory without end.
   */
  maxKeys?: number;
}

/** Defaults of {@link RateLimit}. */
export const RATE_LIMIT_DEFAULTS = { maxKeys: 100_000 } as const;

/** The outcome of {@link RateLimiter.take}. */
export type RateVerdict = { ok: true } | { ok: false; retryAfterMs: number };

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/** Idle buckets are full again after this long at most, so forgetting them changes nothing. */
const SWEEP_EVERY = 1024;

/** Per-key token buckets. Memory stays bounded: full buckets are forgotten, and at most `maxKeys` kept. */
export class RateLimiter {
  #buckets = new Map<string, Bucket>();
  #takes = 0;

  constructor(private readonly limit: RateLimit, private readonly now: () => number = Date.now) {}

  /** Spends one token of `key`, or says how long until one is available. */
  take(key: string): RateVerdict {
    const now = this.now();
    if (++this.#takes % SWEEP_EVERY === 0) this.#sweep(now);
    const known = this.#buckets.get(key);
    const bucket = this.#refill(known, now);
    if (!known) {
      if (this.#buckets.size >= (this.limit.maxKeys ?? RATE_LIMIT_DEFAULTS.maxKeys)) {
        this.#buckets.delete(this.#buckets.keys().next().value!);
      }
      this.#buckets.set(key, bucket);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    return this.#refusal(bucket);
  }

  /** What {@link take} would answer, without spending a token. */
  peek(key: string): RateVerdict {
    const known = this.#buckets.get(key);
    if (!known) return { ok: true };
    const bucket = this.#refill(known, this.now());
    return bucket.tokens >= 1 ? { ok: true } : this.#refusal(bucket);
  }

  /** How many keys are remembered now. */
  get size(): number {
    return this.#buckets.size;
  }

  #refusal(bucket: Bucket): RateVerdict {
    const msPerToken = 60_000 / this.limit.perMinute;
    return { ok: false, retryAfterMs: Math.ceil((1 - bucket.tokens) * msPerToken) };
  }

  /**
   * Spends as many whole tokens of `key` as it has, up to `most`, and says how many: a cost that is
   * only known after the work (a read of unknown length) is taken up front, bounded by the budget.
   */
  takeUpTo(key: string, most: number): number {
    const bucket = this.#refill(this.#buckets.get(key), this.now());
    this.#buckets.set(key, bucket);
    const taken = Math.max(0, Math.min(most, Math.floor(bucket.tokens)));
    bucket.tokens -= taken;
    return taken;
  }

  /** Gives back tokens taken by {@link takeUpTo} that the work did not need. */
  giveBack(key: string, tokens: number): void {
    const bucket = this.#buckets.get(key);
    if (bucket) bucket.tokens = Math.min(this.limit.burst, bucket.tokens + tokens);
  }

  #refill(bucket: Bucket | undefined, now: number): Bucket {
    if (!bucket) return { tokens: this.limit.burst, updatedAt: now };
    // A clock that steps back regains nothing (and takes nothing back).
    const regained = (Math.max(0, now - bucket.updatedAt) * this.limit.perMinute) / 60_000;
    bucket.tokens = Math.min(this.limit.burst, bucket.tokens + regained);
    bucket.updatedAt = now;
    return bucket;
  }

  #sweep(now: number): void {
    for (const [key, bucket] of this.#buckets) {
      if (this.#refill(bucket, now).tokens >= this.limit.burst) this.#buckets.delete(key);
    }
  }
}
