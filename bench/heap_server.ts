/**
 * `main.ts` with a heap snapshot on SIGUSR2, for `bench/heap.ts`: the snapshot is written to
 * `HEAP_SNAPSHOT_DIR` and its path printed to stderr as `heap snapshot <path>`.
 * @module
 */
import v8 from "node:v8";

const dir = Deno.env.get("HEAP_SNAPSHOT_DIR") ?? Deno.makeTempDirSync();
let taken = 0;
Deno.addSignalListener("SIGUSR2", () => {
  const memory = Deno.memoryUsage();
  const path = v8.writeHeapSnapshot(`${dir}/${++taken}.heapsnapshot`);
  console.error(`heap snapshot ${path} ${JSON.stringify(memory)}`);
});
await import("../main.ts");
