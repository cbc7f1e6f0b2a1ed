/**
 * The process's own figures under the standard Prometheus names, measured with what Deno gives
 * without extra permissions, and `chat_build_info`. prom-client's `collectDefaultMetrics` is not
 * used: under Deno it reports zeros for what it cannot read (`/proc/self` needs `--allow-all`)
 * and Node's version for the runtime's.
 *
 * @example
 * ```ts
 * import { Registry } from "prom-client";
 * import { registerRuntimeMetrics } from "./runtime_metrics.ts";
 *
 * const registry = new Registry();
 * registerRuntimeMetrics(registry);
 * console.log(await registry.metrics()); // process_cpu_seconds_total …, chat_build_info{…} 1
 * ```
 * @module
 */
import process from "node:process";
import { Counter, Gauge, type Registry } from "prom-client";
import denoConfig from "../../deno.json" with { type: "json" };

/** The server's version (`version` in `deno.json`). */
export const VERSION: string = denoConfig.version;

/** Where the kernel lists the process's open file descriptors (Linux). */
const FD_DIR = "/proc/self/fd";
/** Where the kernel states the process's limits (Linux). */
const LIMITS_FILE = "/proc/self/limits";

/** How many entries `FD_DIR` has, or undefined when it cannot be read. */
function openFds(): number | undefined {
  try {
    let count = 0;
    for (const _ of Deno.readDirSync(FD_DIR)) count++;
    // One of them is the handle that read the directory.
    return count - 1;
  } catch {
    return undefined;
  }
}

/** The soft limit on open files, or undefined when it cannot be read or is unlimited. */
function maxFds(): number | undefined {
  try {
    const line = Deno.readTextFileSync(LIMITS_FILE).split("\n")
      .find((line) => line.startsWith("Max open files"));
    const soft = Number(line?.split(/\s{2,}/)[1]);
    return Number.isFinite(soft) ? soft : undefined;
  } catch {
    return undefined;
  }
}

/** How long one CPU reading serves the CPU counters: far longer than a scrape's collects. */
const CPU_READING_SHARED_MS = 5;

/**
 * Registers CPU time, memory, start time, open and maximum file descriptors (only where
 * `/proc/self` is readable: Linux with `--allow-all`) and `chat_build_info` in `registry`.
 */
export function registerRuntimeMetrics(registry: Registry): void {
  const registers = [registry];
  registerCpuMetrics(registers);
  registerMemoryMetrics(registers);
  registerProcessMetrics(registers);
  new Gauge({
    name: "chat_build_info",
    help: "Always 1; the labels name the server's version and its runtime's.",
    labelNames: ["version", "deno", "v8", "typescript"],
    registers,
  }).set({ version: VERSION, ...Deno.version }, 1);
}

/** User, system and total CPU seconds. */
function registerCpuMetrics(registers: Registry[]): void {
  // The three CPU counters share a reading taken for one scrape (within a few ms), so the total
  // is exactly user + system: other threads (KV's, the GC's) use CPU between two readings.
  let cpuReading = process.cpuUsage();
  let cpuReadAt = -Infinity;
  const cpuUsage = () => {
    if (performance.now() - cpuReadAt > CPU_READING_SHARED_MS) {
      [cpuReading, cpuReadAt] = [process.cpuUsage(), performance.now()];
    }
    return cpuReading;
  };
  const cpuSeconds = (
    name: string,
    help: string,
    read: (usage: ReturnType<typeof process.cpuUsage>) => number,
  ) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        // A counter has no set(): start from zero and add the total since the process started.
        this.reset();
        this.inc(read(cpuUsage()) / 1e6);
      },
    });
  cpuSeconds("process_cpu_user_seconds_total", "User CPU time in seconds.", (usage) => usage.user);
  cpuSeconds(
    "process_cpu_system_seconds_total",
    "System CPU time in seconds.",
    (usage) => usage.system,
  );
  cpuSeconds(
    "process_cpu_seconds_total",
    "User and system CPU time in seconds.",
    (usage) => usage.user + usage.system,
  );
}

/** Resident memory and the V8 heap's. */
function registerMemoryMetrics(registers: Registry[]): void {
  const memory = (name: string, help: string, read: (usage: Deno.MemoryUsage) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read(Deno.memoryUsage()));
      },
    });
  memory("process_resident_memory_bytes", "Resident memory size in bytes.", (usage) => usage.rss);
  memory("nodejs_heap_size_total_bytes", "V8 heap size in bytes.", (usage) => usage.heapTotal);
  memory("nodejs_heap_size_used_bytes", "V8 heap used in bytes.", (usage) => usage.heapUsed);
  memory(
    "nodejs_external_memory_bytes",
    "Memory of objects outside the V8 heap bound to JavaScript ones, in bytes.",
    (usage) => usage.external,
  );
}

/** The start time, and open and maximum file descriptors where `/proc/self` tells them. */
function registerProcessMetrics(registers: Registry[]): void {
  new Gauge({
    name: "process_start_time_seconds",
    help: "Start time of the process since the Unix epoch in seconds.",
    registers,
  }).set(performance.timeOrigin / 1000);
  if (openFds() !== undefined) {
    new Gauge({
      name: "process_open_fds",
      help: "Open file descriptors.",
      registers,
      collect() {
        const count = openFds();
        if (count !== undefined) this.set(count);
      },
    });
  }
  const limit = maxFds();
  if (limit !== undefined) {
    new Gauge({
      name: "process_max_fds",
      help: "Limit on open file descriptors.",
      registers,
    }).set(limit);
  }
}
