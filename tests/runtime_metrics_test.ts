import assert from "node:assert/strict";
import { Registry } from "prom-client";
import denoConfig from "../deno.json" with { type: "json" };
import { registerRuntimeMetrics, VERSION } from "../src/ops/runtime_metrics.ts";

/** Sample name (with labels) → value, from a Prometheus text exposition. */
function samples(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return values;
}

async function scrape(): Promise<Map<string, number>> {
  const registry = new Registry();
  registerRuntimeMetrics(registry);
  return samples(await registry.metrics());
}

function canRead(path: string): boolean {
  try {
    Deno.readDirSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("runtime metrics: CPU, memory and start time under their standard names", async () => {
  const first = await scrape();
  const user = "process_cpu_user_seconds_total";
  const system = "process_cpu_system_seconds_total";
  const cpu = (sample: Map<string, number>) => sample.get(user)! + sample.get(system)!;
  // Burn CPU until the counters move: on a busy machine 20 ms of wall time may be less than one
  // of the kernel's 10 ms ticks of CPU time. Two seconds of burning without a move is a failure.
  let second = await scrape();
  for (let burned = 0; cpu(second) <= cpu(first) && burned < 2000; burned += 20) {
    const until = performance.now() + 20;
    while (performance.now() < until) Math.sqrt(Math.random());
    second = await scrape();
  }

  const total = "process_cpu_seconds_total";
  assert.ok(first.get(user)! > 0);
  assert.ok(first.get(system)! >= 0);
  assert.ok(second.get(user)! + second.get(system)! > first.get(user)! + first.get(system)!);
  assert.ok(Math.abs(second.get(total)! - second.get(user)! - second.get(system)!) < 0.001);

  assert.ok(second.get("process_resident_memory_bytes")! > 1_000_000);
  const heapUsed = second.get("nodejs_heap_size_used_bytes")!;
  assert.ok(heapUsed > 0 && heapUsed <= second.get("nodejs_heap_size_total_bytes")!);
  assert.ok(second.get("nodejs_external_memory_bytes")! >= 0);

  const started = second.get("process_start_time_seconds")!;
  const now = Date.now() / 1000;
  assert.ok(started <= now && started > now - performance.now() / 1000 - 1, `${started}`);
  // Deno lets only --allow-all read /proc/self: without it, no made-up figure.
  const readable = canRead("/proc/self/fd");
  assert.equal(second.has("process_open_fds"), readable);
});

Deno.test("runtime metrics: chat_build_info names the deno.json version and the runtime", async () => {
  assert.equal(VERSION, denoConfig.version);
  const { deno, v8, typescript } = Deno.version;
  const labels = `version="${VERSION}",deno="${deno}",v8="${v8}",typescript="${typescript}"`;
  assert.equal((await scrape()).get(`chat_build_info{${labels}}`), 1);
});

Deno.test({
  name: "runtime metrics: open and maximum file descriptors where /proc/self is readable",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const module = new URL("../src/ops/runtime_metrics.ts", import.meta.url).href;
    const code = `
      import { Registry } from "prom-client";
      import { registerRuntimeMetrics } from "${module}";
      const registry = new Registry();
      registerRuntimeMetrics(registry);
      console.log(await registry.metrics());`;
    // `deno eval` runs with every permission, which Deno requires for /proc/self.
    const { code: status, stdout } = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--config", new URL("../deno.json", import.meta.url).pathname, code],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    assert.equal(status, 0);
    const values = samples(new TextDecoder().decode(stdout));
    const open = values.get("process_open_fds")!;
    assert.ok(open >= 3 && open < values.get("process_max_fds")!, `${open} open fds`);
  },
});
