/**
 * A throwaway PostgreSQL cluster on a free loopback port, for the store tests: `initdb` in a
 * temporary directory, `postgres` started as the `postgres` OS user when we are root (both refuse
 * to run as root), databases created on demand, everything stopped and removed on dispose. Start
 * one per test file: `initdb` alone takes a second or two.
 * @module
 */
import postgres from "postgres";
import { freePort, type ServerProcess, spawnServerProcess } from "../../scripts/server_process.ts";

const BIN = "/usr/lib/postgresql/15/bin";
const INITDB = `${BIN}/initdb`;
const POSTGRES = `${BIN}/postgres`;
const PG_ISREADY = `${BIN}/pg_isready`;

/** Whether Debian's PostgreSQL 15 is installed (`.ci/run` installs it). */
export function hasPostgres(): boolean {
  try {
    return Deno.statSync(INITDB).isFile && Deno.statSync(POSTGRES).isFile;
  } catch {
    return false;
  }
}

/** A running throwaway cluster; `await using` stops it and removes its files. */
export interface PostgresServer extends AsyncDisposable {
  /** The superuser's URL of the `postgres` database. */
  url: string;
  /** The postmaster's pid while it runs (its backends are its children). */
  pid(): number | undefined;
  /** Creates an empty database and returns its URL. */
  createDatabase(): Promise<string>;
  /** Stops the server (fast shutdown) and waits for the exit; its files stay. */
  stop(): Promise<void>;
  /** Starts it again on the same port and files (after {@link stop}). */
  start(): Promise<void>;
}

/** Options of {@link startPostgres}. */
export interface PostgresServerOptions {
  /**
   * Keep PostgreSQL's durability (fsync at commit), as a production server would (default false:
   * tests do not survive a power cut and need not pay for it).
   */
  durable?: boolean;
}

/** The uid and gid of the `postgres` OS user, when we are root and must switch to it. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (Deno.uid() !== 0) return undefined;
  const line = Deno.readTextFileSync("/etc/passwd").split("\n").find((entry) =>
    entry.startsWith("postgres:")
  );
  if (line === undefined) throw new Error("running as root, but there is no postgres user");
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * Waits until the server accepts sessions (it listens a moment before): `pg_isready`, not the
 * driver, whose connection to a server still starting up can throw from a timer after `end()`
 * ("Cannot read properties of null (reading 'write')"), outside any promise a test could catch.
 */
async function acceptingQueries(port: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const { success, stdout } = await new Deno.Command(PG_ISREADY, {
      args: ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-t", "5"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (success) return;
    if (Date.now() > deadline) {
      throw new Error(`postgres on ${port} is not ready: ${new TextDecoder().decode(stdout)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Runs `initdb` in a fresh directory and starts `postgres` on a free port. */
export async function startPostgres(options: PostgresServerOptions = {}): Promise<PostgresServer> {
  const user = serverUser();
  const dir = await Deno.makeTempDir({ prefix: "chat_pg_" });
  const data = `${dir}/data`;
  let server: ServerProcess | undefined;
  const remove = () => Deno.remove(dir, { recursive: true });
  try {
    if (user) await Deno.chown(dir, user.uid, user.gid);
    const initdb = await new Deno.Command(INITDB, {
      args: ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
      ...user,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!initdb.success) {
      throw new Error(`initdb failed: ${new TextDecoder().decode(initdb.stderr)}`);
    }
    const port = freePort();
    const settings = ["listen_addresses=127.0.0.1", "max_connections=200"];
    if (!options.durable) settings.push("fsync=off", "synchronous_commit=off");
    // Its log goes to a file: a line on a pipe we drain would be an async op in whichever test
    // is running when PostgreSQL writes it.
    const argv = [POSTGRES, "-D", data, "-p", String(port), "-k", dir, "-r", `${dir}/server.log`];
    for (const setting of settings) argv.push("-c", setting);
    const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    const start = async () => {
      server = await spawnServerProcess({
        argv,
        ...user,
        name: "postgres",
        ready: { port },
        stdout: "drop",
        readyTimeoutMs: 30_000,
        // SIGINT is PostgreSQL's fast shutdown: it ends open sessions instead of waiting for them.
        stopSignal: "SIGINT",
        stopGraceMs: 10_000,
      });
      await acceptingQueries(port);
    };
    await start();
    let databases = 0;
    return {
      url,
      pid: () => server?.pid,
      async createDatabase() {
        const name = `chat_${++databases}`;
        const sql = postgres(url, { max: 1, onnotice: () => {} });
        try {
          await sql.unsafe(`CREATE DATABASE ${name}`);
        } finally {
          await sql.end();
        }
        return `postgres://postgres@127.0.0.1:${port}/${name}`;
      },
      async stop() {
        await server?.stop();
        server = undefined;
      },
      start,
      async [Symbol.asyncDispose]() {
        await server?.stop();
        await remove();
      },
    };
  } catch (error) {
    await server?.stop();
    await remove();
    throw error;
  }
}
