/**
 * Shared parts of the load benchmarks (`stress`, `soak`) and their CI-sized test: the server as
 * a child process with a raised fd limit (started by `scripts/server_process.ts`), raw chat clients
 * that speak just enough Engine.IO v4 / Socket.IO v5, a stock-client probe, and the server's
 * memory and open fds from /proc.
 *
 * @example
 * ```ts
 * import { signToken } from "../src/auth/token.ts";
 * import { RawChatClient, readProcess, spawnServer } from "./harness.ts";
 *
 * await using server = await spawnServer({ fdLimit: 20_000 });
 * const client = new RawChatClient(server.url, await signToken(server.secret, { sub: "u1" }));
 * await client.loaded;
 * console.log(await readProcess(server.pid)); // { rssKb, fds }
 * await client.close();
 * ```
 * @module
 */
import { io as connect } from "socket.io-client";
import { signToken } from "../src/auth/token.ts";
import { MAIN_PERMISSIONS, type MainProcess, spawnMain } from "../scripts/server_process.ts";
import { CLOCK_TICKS_PER_SECOND } from "./proc.ts";

/** A `main.ts` child process; `stop()` and `await using` send SIGTERM, then SIGKILL after 10 s. */
export interface BenchServer extends MainProcess {
  secret: string;
}

/** How to start the server. */
export interface ServerOptions {
  /** Extra environment (the defaults: in-memory KV, no handshake limit, quiet logs). */
  env?: Record<string, string>;
  /** `ulimit -n` for the server (default 65536, capped at the hard limit). */
  fdLimit?: number;
  /** `deno run` flags besides the permissions (say `--cpu-prof`). */
  flags?: string[];
}

/** Starts main.ts on 127.0.0.1 port 0 with a raised fd limit and limits out of the load's way. */
export async function spawnServer(options: ServerOptions = {}): Promise<BenchServer> {
  const secret = "bench-secret";
  const server = await spawnMain({
    env: {
      JWT_SECRET: secret,
      PORT: "0",
      HOST: "127.0.0.1",
      KV_PATH: ":memory:",
      HANDSHAKE_LIMIT_PER_MIN: "0",
      MAX_SOCKETS_PER_USER: "10000",
      RATE_LIMIT_PER_MIN: "1000000",
      RATE_LIMIT_BURST: "10000",
      LOG_LEVEL: "warn",
      ...options.env,
    },
    fdLimit: options.fdLimit ?? 65_536,
    permissions: [...MAIN_PERMISSIONS, ...options.flags ?? []],
    listenTimeoutMs: 20_000,
    stopGraceMs: 10_000,
  });
  return Object.assign(server, { secret });
}

/** The soft `ulimit -n` this process passes on to its children. */
export async function fdLimit(): Promise<number> {
  const { stdout } = await new Deno.Command("bash", { args: ["-c", "ulimit -n"] }).output();
  const text = new TextDecoder().decode(stdout).trim();
  return text === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(text);
}

/** What /proc says about a process. */
export interface ProcessReading {
  /** Resident memory (VmRSS), in KB. */
  rssKb: number;
  /** Open file descriptors. */
  fds: number;
  /** User + system CPU time so far, in seconds. */
  cpuSeconds: number;
}

/**
 * Reads `pid`'s memory and open fds. Through `bash`: Deno lets only `--allow-all` read another
 * process's /proc entries, and the test suite runs with `--allow-run` but not `-A`.
 */
export async function readProcess(pid: number): Promise<ProcessReading> {
  const script =
    `cat /proc/${pid}/stat; grep VmRSS: /proc/${pid}/status; ls /proc/${pid}/fd | wc -l`;
  const { stdout } = await new Deno.Command("bash", { args: ["-c", script] }).output();
  const text = new TextDecoder().decode(stdout);
  // The command name (field 2) may hold spaces; utime and stime are the 12th and 13th after it.
  const stat = text.slice(text.indexOf(") ") + 2).split(" ");
  return {
    rssKb: Number(text.match(/VmRSS:\s+(\d+) kB/)?.[1] ?? NaN),
    fds: Number(text.trim().split("\n").at(-1)),
    cpuSeconds: (Number(stat[11]) + Number(stat[12])) / CLOCK_TICKS_PER_SECOND,
  };
}

/** A token for `sub` signed with the server's secret. */
export function benchToken(server: BenchServer, sub: string): Promise<string> {
  return signToken(server.secret, { sub, ttlSeconds: 24 * 3600 });
}

/**
 * A chat client over a raw WebSocket: Engine.IO open, `40{token}`, pings answered, live `load`s
 * counted. Holds no history, so the client side stays small at thousands of connections.
 */
export class RawChatClient {
  readonly ws: WebSocket;
  /** Resolves on the first `load`; rejects on a refusal or an early close. */
  readonly loaded: Promise<void>;
  /** Live `load` events received after the first. */
  liveLoads = 0;
  /** Whether the server closed the connection. */
  closed = false;
  #connected = false;

  constructor(url: string, token: string) {
    this.ws = new WebSocket(`${url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`);
    this.loaded = new Promise((resolve, reject) => {
      this.ws.onmessage = (event: MessageEvent<string>) => {
        const frame = event.data;
        if (frame === "2") return this.ws.send("3");
        if (frame.startsWith("0{")) return this.ws.send(`40${JSON.stringify({ token })}`);
        if (frame.startsWith("44")) return reject(new Error(`refused: ${frame}`));
        if (frame.startsWith('42["load"')) {
          if (this.#connected) this.liveLoads++;
          else {
            this.#connected = true;
            resolve();
          }
        }
      };
      this.ws.onclose = () => {
        this.closed = true;
        reject(new Error("closed before the first load"));
      };
      this.ws.onerror = () => {};
    });
    this.loaded.catch(() => {});
  }

  /** Closes the connection and waits for the close. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.addEventListener("close", () => resolve(), { once: true });
      if (this.ws.readyState === WebSocket.CONNECTING) {
        this.ws.addEventListener("open", () => this.ws.close(), { once: true });
      } else this.ws.close();
    });
  }
}

/**
 * Opens `count` raw clients, at most `concurrency` handshakes at a time; clients that fail are
 * counted, not thrown.
 */
export async function openClients(
  url: string,
  tokens: string[],
  count: number,
  concurrency = 256,
  onProgress?: (opened: number) => void,
): Promise<{ clients: RawChatClient[]; failed: number }> {
  const clients: RawChatClient[] = [];
  let failed = 0;
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const n = next++;
      const client = new RawChatClient(url, tokens[n % tokens.length]);
      try {
        await client.loaded;
        clients.push(client);
        onProgress?.(clients.length);
      } catch {
        failed++;
        await client.close();
      }
    }
  }));
  return { clients, failed };
}

/** One stock-client round trip: connect, send, see the message come back; milliseconds. */
export async function probe(url: string, token: string, timeoutMs = 10_000): Promise<number> {
  const started = performance.now();
  const socket = connect(url, {
    auth: { token },
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      (async () => {
        await new Promise<void>((resolve, reject) => {
          socket.once("load", () => resolve());
          socket.once("connect_error", (error) => reject(error));
        });
        const text = `probe ${crypto.randomUUID()}`;
        const echoed = new Promise<void>((resolve) => {
          socket.on("load", (messages: { message: string }[]) => {
            if (messages.some((message) => message.message === text)) resolve();
          });
        });
        const ack = await socket.emitWithAck("message", { message: text });
        if (!ack.ok) throw new Error(`probe refused: ${JSON.stringify(ack)}`);
        await echoed;
        return performance.now() - started;
      })(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("probe timed out")), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    socket.close();
  }
}

/** A Markdown table from rows of [label, value]. */
export function markdownTable(rows: [string, string | number][]): string {
  const lines = ["| measure | value |", "| --- | --- |"];
  for (const [label, value] of rows) lines.push(`| ${label} | ${value} |`);
  return lines.join("\n");
}

/** Writes `text` to `bench/results/<name>-<date>.md`; returns the path. */
export async function writeResult(name: string, text: string): Promise<string> {
  const dir = new URL("./results/", import.meta.url).pathname;
  await Deno.mkdir(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/\.\d+Z$/, "").replaceAll(":", "");
  const path = `${dir}${name}-${stamp}.md`;
  await Deno.writeTextFile(path, text);
  // Keep `deno fmt --check` clean: results are committed alongside the code.
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", path] }).output();
  return path;
}
