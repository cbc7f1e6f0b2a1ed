/**
 * Resources that clean themselves up, for `using` / `await using` instead of a `finally`:
 * temporary directories and files that remove themselves, and a `close()` made a dispose.
 *
 * @example
 * ```ts
 * import { closing, tempDir } from "./dispose.ts";
 *
 * await using temp = await tempDir();
 * using kv = closing({ close: () => console.log("closed") });
 * await Deno.writeTextFile(`${temp.path}/note.txt`, "gone after the test");
 * ```
 * @module
 */

/** A temporary path, removed (recursively) on dispose. */
export interface TempPath extends AsyncDisposable {
  path: string;
}

function removedOnDispose(path: string): TempPath {
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/** A fresh temporary directory (`Deno.makeTempDir`). */
export async function tempDir(options?: Deno.MakeTempOptions): Promise<TempPath> {
  return removedOnDispose(await Deno.makeTempDir(options));
}

/** A fresh temporary file (`Deno.makeTempFile`). */
export async function tempFile(options?: Deno.MakeTempOptions): Promise<TempPath> {
  return removedOnDispose(await Deno.makeTempFile(options));
}

/** `resource`, closed on dispose: for what has a `close()` but no `[Symbol.dispose]` of its own. */
export function closing<T extends { close(): unknown }>(resource: T): T & Disposable {
  return Object.assign(resource, { [Symbol.dispose]: () => void resource.close() });
}
