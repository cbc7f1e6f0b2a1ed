/**
 * Temporary directories and files that remove themselves: `await using` them instead of a
 * `finally` that calls `Deno.remove`.
 *
 * @example
 * ```ts
 * import { tempDir } from "./temp.ts";
 *
 * await using temp = await tempDir();
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
