/**
 * Who may write to a local KV file: a lock on a sidecar file (`<kv path>.lock`) held for the
 * process's whole life. The kernel drops it when the process dies, however it dies, so a killed
 * server restarts at once, while a second live one is refused at once.
 *
 * An instance without Redis takes the lock exclusive: it serves history from memory, so it must be
 * the only writer. Instances with Redis see each other's messages and take it shared, and must all
 * use the same Redis: the lock file records the holders' Redis (host, port and database, never the
 * credentials) and a newcomer with another one is refused. They join one at a time, holding a
 * second file (`<kv path>.setup.lock`) for the few microseconds that takes.
 *
 * Both files stay: deleting a lock file while it is held would let the next instance lock a new
 * file of the same name next to the old one's holder.
 *
 * @example
 * ```ts
 * import { KvFileBusy, KvFileLock } from "./kv_lock.ts";
 *
 * try {
 *   using lock = await KvFileLock.acquire("./data/chat.kv", { instanceId: "chat-1" });
 *   // … open ./data/chat.kv and serve; the lock goes with `lock.release()` or the process …
 * } catch (error) {
 *   if (!(error instanceof KvFileBusy)) throw error;
 *   console.error(`in use, ${error.message}`);
 * }
 * ```
 * @module
 */
import { dirname } from "node:path";

/** What the lock file says about the instance that wrote it last. */
export interface KvLockHolder {
  instanceId: string;
  pid: number;
  /** The {@link redisIdentity} of its Redis, or null for an instance without Redis. */
  redis: string | null;
}

/** Options of {@link KvFileLock.acquire}. */
export interface KvLockOptions {
  /** This instance's name, shown to an instance that finds the file in use. */
  instanceId: string;
  /** The Redis URL when this instance shares the file through Redis (`REDIS_URL`). */
  redisUrl?: string;
}

/** Why the file could not be claimed: held by another instance, or by a group on another Redis. */
export type KvFileBusyCode = "kv_in_use" | "kv_redis_differs";

/** The KV file is held by another live instance that this one cannot share it with. */
export class KvFileBusy extends Error {
  constructor(readonly code: KvFileBusyCode, readonly holder: KvLockHolder | null, detail: string) {
    super(detail);
    this.name = "KvFileBusy";
  }
}

/**
 * How long an instance with Redis waits for others with Redis that are setting up (microseconds
 * each) before it gives up: only a process stopped in the middle of its setup holds them longer.
 */
const SETUP_WAIT_MS = 1_000;

/** The lock file of the KV file at `kvPath`: held for the process's life. */
export function lockPathOf(kvPath: string): string {
  return `${kvPath}.lock`;
}

/** The file instances with Redis lock, one at a time, while they join or start a group. */
export function setupLockPathOf(kvPath: string): string {
  return `${kvPath}.setup.lock`;
}

/**
 * Which Redis a URL names, without its credentials: `host:port/database`. Two URLs of the same
 * server written differently (a name and an address) differ: write the same URL everywhere.
 */
export function redisIdentity(url: string): string {
  const parsed = new URL(url);
  const database = Number(parsed.pathname.slice(1) || "0");
  return `${parsed.hostname.toLowerCase()}:${parsed.port || "6379"}/${database}`;
}

/** A held claim on a KV file; lasts until {@link KvFileLock.release} or the process's end. */
export class KvFileLock {
  readonly #file: Deno.FsFile;

  private constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  /**
   * Claims the KV file at `kvPath` (creating its directory and lock files if missing), at once or
   * not at all: throws {@link KvFileBusy} if a live instance holds it and the two cannot share.
   */
  static async acquire(kvPath: string, options: KvLockOptions): Promise<KvFileLock> {
    const path = lockPathOf(kvPath);
    await Deno.mkdir(dirname(path), { recursive: true });
    const self: KvLockHolder = {
      instanceId: options.instanceId,
      pid: Deno.pid,
      redis: options.redisUrl === undefined ? null : redisIdentity(options.redisUrl),
    };
    const file = await Deno.open(path, { read: true, write: true, create: true });
    try {
      if (self.redis === null) {
        await claimAlone(file, path, self);
      } else {
        using _setup = await setupTurn(setupLockPathOf(kvPath));
        await claimShared(file, path, self);
      }
    } catch (error) {
      file.close();
      throw error;
    }
    return new KvFileLock(file);
  }

  /** Gives the file back to the next instance (closing the lock file drops the lock). */
  release(): void {
    try {
      this.#file.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  }

  /** As {@link release}, for `using`. */
  [Symbol.dispose](): void {
    this.release();
  }
}

/** An instance without Redis: exclusive, or refused. */
async function claimAlone(file: Deno.FsFile, path: string, self: KvLockHolder): Promise<void> {
  if (await file.tryLock(true)) return await writeRecord(file, self);
  const holder = await readRecord(path);
  throw holder?.redis
    ? new KvFileBusy(
      "kv_redis_differs",
      holder,
      `held by ${describe(holder)}, and any others with Redis ${holder.redis}, ` +
        "but this instance has no Redis",
    )
    : new KvFileBusy("kv_in_use", holder, `held by ${describe(holder)}`);
}

/**
 * The setup lock, exclusive: instances with Redis take turns, so while one holds it, the lock
 * file held exclusive by someone else means an instance without Redis, never one setting up.
 */
async function setupTurn(setupPath: string): Promise<Deno.FsFile> {
  const setup = await Deno.open(setupPath, { read: true, write: true, create: true });
  const deadline = Date.now() + SETUP_WAIT_MS;
  for (let delay = 1; !await setup.tryLock(true); delay = Math.min(delay * 2, 50)) {
    if (Date.now() > deadline) {
      setup.close();
      throw new KvFileBusy("kv_in_use", null, "held by an instance stuck while starting");
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
  return setup;
}

/**
 * An instance with Redis, on its setup turn: the first of a group takes the lock file exclusive
 * to write the record, then shares it; the others share it if the record names their Redis. The
 * record is never written while the lock is shared, so every sharer checks the same one.
 */
async function claimShared(file: Deno.FsFile, path: string, self: KvLockHolder): Promise<void> {
  const redis = self.redis!;
  if (await file.tryLock(true)) {
    await writeRecord(file, self);
    // Linux drops the lock for a moment while turning it shared: an instance without Redis may
    // take it then, and this fails.
    if (!await file.tryLock(false)) throw heldAlone(await readRecord(path), redis);
  } else if (!await file.tryLock(false)) {
    throw heldAlone(await readRecord(path), redis);
  }
  const holder = await readRecord(path);
  if (holder?.redis === redis) return;
  await file.unlock();
  throw holder?.redis
    ? new KvFileBusy(
      "kv_redis_differs",
      holder,
      `held by ${describe(holder)}, and any others with Redis ${holder.redis}, ` +
        `but this instance has Redis ${redis}`,
    )
    : heldAlone(holder, redis);
}

/** The file is held exclusive by an instance without Redis (its record may not be written yet). */
function heldAlone(holder: KvLockHolder | null, redis: string): KvFileBusy {
  const known = holder?.redis === null ? holder : null;
  return new KvFileBusy(
    "kv_in_use",
    known,
    `held by ${describe(known)}, without Redis, but this instance has Redis ${redis}`,
  );
}

function describe(holder: KvLockHolder | null): string {
  return holder ? `instance "${holder.instanceId}", process ${holder.pid}` : "another instance";
}
async function writeRecord(file: Deno.FsFile, holder: KvLockHolder): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(holder) + "\n");
  await file.truncate(0);
  await file.seek(0, Deno.SeekMode.Start);
  for (let written = 0; written < bytes.length;) {
    written += await file.write(bytes.subarray(written));
  }
}

/** The last holder's record; null while it is being written, or if the file holds something else. */
async function readRecord(path: string): Promise<KvLockHolder | null> {
  try {
    const record = JSON.parse(await Deno.readTextFile(path));
    const valid = typeof record?.instanceId === "string" && typeof record.pid === "number" &&
      (record.redis === null || typeof record.redis === "string");
    return valid ? record : null;
  } catch {
    return null;
  }
}
