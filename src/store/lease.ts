/**
 * One writer per remote KV (`KV_URL`): a lease kept in the database itself, where no process
 * shares a kernel to hold a lock (a local KV file has the lock of `kv_lock.ts` instead).
 * The holder renews it on a heartbeat and deletes it on a clean shutdown; a crashed holder's lease
 * simply runs out, and the next instance takes it over. A second live instance finds it held and
 * must not start: its in-memory history window and message ids assume it is the only writer.
 *
 * @example
 * ```ts
 * const kv = await Deno.openKv("./data/chat.kv");
 * const lease = await WriterLease.acquire(kv, { instanceId: "chat-1" }); // throws LeaseHeld
 * // … serve …
 * await lease.release();
 * kv.close();
 * ```
 * @module
 */
import { whenUnlocked } from "./kv.ts";

/** Who holds the lease, and until when (ms since epoch) unless renewed. */
export interface LeaseHolder {
  instanceId: string;
  expiresAt: number;
}

/** Options of {@link WriterLease.acquire}; defaults in {@link LEASE_DEFAULTS}. */
export interface LeaseOptions {
  /** This instance's name, shown to an instance that finds the lease held. */
  instanceId: string;
  /** How long the lease outlives its last renewal; it is renewed every third of this. */
  durationMs?: number;
  /** The clock (default `Date.now`). */
  now?: () => number;
  /** Called once if a renewal finds the lease taken by another instance (say, after a long pause). */
  onLost?: (holder: LeaseHolder | null) => void;
}

/** Defaults of {@link LeaseOptions}. */
export const LEASE_DEFAULTS = { durationMs: 15_000 } as const;

/** Where the lease lives in the database. */
export const LEASE_KEY = ["lease", "writer"] as const;

/** The lease is held by another live instance. */
export class LeaseHeld extends Error {
  readonly code = "lease_held";
  constructor(readonly holder: LeaseHolder) {
    super(
      `held by instance "${holder.instanceId}" until ${new Date(holder.expiresAt).toISOString()}`,
    );
    this.name = "LeaseHeld";
  }
}

/** Attempts before giving up when other instances keep racing for the lease. */
const MAX_ACQUIRE_ATTEMPTS = 3;

/** A held lease; renews itself until {@link WriterLease.release}. */
export class WriterLease {
  readonly #kv: Deno.Kv;
  readonly #holder: Omit<LeaseHolder, "expiresAt">;
  readonly #durationMs: number;
  readonly #now: () => number;
  readonly #onLost?: LeaseOptions["onLost"];
  #versionstamp: string;
  #timer?: ReturnType<typeof setInterval>;
  #renewing?: Promise<boolean>;
  #held = true;

  private constructor(kv: Deno.Kv, versionstamp: string, options: LeaseOptions) {
    this.#kv = kv;
    this.#holder = { instanceId: options.instanceId };
    this.#durationMs = options.durationMs ?? LEASE_DEFAULTS.durationMs;
    this.#now = options.now ?? Date.now;
    this.#onLost = options.onLost;
    this.#versionstamp = versionstamp;
    this.#timer = setInterval(() => void this.renew(), this.#durationMs / 3);
  }

  /** Takes the lease if it is free or expired; throws {@link LeaseHeld} if another holds it. */
  static async acquire(kv: Deno.Kv, options: LeaseOptions): Promise<WriterLease> {
    const now = options.now ?? Date.now;
    const durationMs = options.durationMs ?? LEASE_DEFAULTS.durationMs;
    let holder: LeaseHolder | null = null;
    for (let attempt = 1; attempt <= MAX_ACQUIRE_ATTEMPTS; attempt++) {
      const current = await whenUnlocked(() => kv.get<LeaseHolder>(LEASE_KEY));
      holder = current.value;
      if (holder !== null && holder.expiresAt > now()) throw new LeaseHeld(holder);
      const taken = { instanceId: options.instanceId, expiresAt: now() + durationMs };
      // The check makes taking an expired lease atomic: of two instances racing, one wins.
      const result = await whenUnlocked(() =>
        kv.atomic().check(current).set(LEASE_KEY, taken).commit()
      );
      if (result.ok) return new WriterLease(kv, result.versionstamp, options);
    }
    throw new LeaseHeld(holder ?? { instanceId: "(unknown)", expiresAt: now() + durationMs });
  }

  /** Pushes the expiry back; false (and `onLost`) once another instance has taken the lease. */
  renew(): Promise<boolean> {
    if (!this.#held) return Promise.resolve(false);
    this.#renewing ??= this.#renew().finally(() => this.#renewing = undefined);
    return this.#renewing;
  }

  async #renew(): Promise<boolean> {
    const renewed = { ...this.#holder, expiresAt: this.#now() + this.#durationMs };
    let result: Deno.KvCommitResult | Deno.KvCommitError;
    try {
      result = await whenUnlocked(() =>
        this.#kv.atomic().check({ key: LEASE_KEY, versionstamp: this.#versionstamp })
          .set(LEASE_KEY, renewed).commit()
      );
    } catch {
      // A busy or failing database: the next heartbeat tries again while the lease still runs.
      return this.#held;
    }
    if (result.ok) {
      this.#versionstamp = result.versionstamp;
      return true;
    }
    if (!this.#held) return false;
    this.#stop();
    let holder: LeaseHolder | null = null;
    try {
      holder = (await whenUnlocked(() => this.#kv.get<LeaseHolder>(LEASE_KEY))).value;
    } catch {
      // Who took it is only for the message.
    }
    this.#onLost?.(holder);
    return false;
  }

  /** Stops renewing and frees the lease for the next instance (if it is still ours). */
  async release(): Promise<void> {
    if (!this.#held) return;
    this.#stop();
    await this.#renewing;
    await whenUnlocked(() =>
      this.#kv.atomic().check({ key: LEASE_KEY, versionstamp: this.#versionstamp })
        .delete(LEASE_KEY).commit()
    );
  }

  #stop(): void {
    this.#held = false;
    clearInterval(this.#timer);
  }
}
