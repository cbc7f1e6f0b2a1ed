/**
 * What the bench reads about a process from Linux's `/proc`: CPU time and resident memory.
 * @module
 */

/** Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 on Linux). */
export const CLOCK_TICKS_PER_SECOND = 100;

/** User + system CPU time of every thread of `pid`, in microseconds. */
export function cpuMicros(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // The command name (field 2) may hold spaces; the fields after its closing ")" do not.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) * (1_000_000 / CLOCK_TICKS_PER_SECOND);
}

/** Resident set size of `pid` (VmRSS), in kilobytes. */
export function rssKb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const match = status.match(/^VmRSS:\s+(\d+) kB$/m);
  return match ? Number(match[1]) : NaN;
}

/** CPU time every core spent busy (not idle or waiting for I/O), in microseconds. */
export function machineBusyMicros(): number {
  const line = Deno.readTextFileSync("/proc/stat").split("\n", 1)[0];
  const [user, nice, system, _idle, _iowait, irq, softirq, steal] = line.split(/\s+/).slice(1)
    .map(Number);
  return (user + nice + system + irq + softirq + steal) * (1_000_000 / CLOCK_TICKS_PER_SECOND);
}

/**
 * User + system CPU time of `pid` and of its children alive now, in microseconds: PostgreSQL's
 * postmaster and its backends (one process per connection) and background workers.
 */
export function treeCpuMicros(pid: number): number {
  let total = cpuMicros(pid);
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (parent === pid) total += cpuMicros(Number(entry.name));
    } catch {
      // It exited meanwhile: its CPU is gone with it (a backend lives as long as its connection).
    }
  }
  return total;
}
