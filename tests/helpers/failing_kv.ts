/**
 * A real Deno KV whose chosen atomic commits throw, as a full disk or a dropped KV Connect link
 * would: everything else, including every other commit, goes to the real database.
 * @module
 */

/** Wraps `kv` so that its `failing`-th atomic commits (1-based) throw `error` instead. */
export function failingCommits(kv: Deno.Kv, failing: number[], error = "disk I/O error"): Deno.Kv {
  let commits = 0;
  return new Proxy(kv, {
    get(target, property) {
      if (property === "atomic") {
        return () => {
          const atomic = target.atomic();
          const commit = atomic.commit.bind(atomic);
          atomic.commit = () =>
            failing.includes(++commits) ? Promise.reject(new Error(error)) : commit();
          return atomic;
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
