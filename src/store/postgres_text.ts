/**
 * JavaScript strings as PostgreSQL text. A PostgreSQL `text` holds neither NUL nor a lone UTF-16
 * surrogate, both of which a chat message may carry (Deno KV keeps any string). They are stored as
 * an escape: U+E000 (a private-use character) and four hex digits of the code unit; U+E000 itself
 * is escaped too, so the encoding is one-to-one and text without these characters is stored as is.
 *
 * @example
 * ```ts
 * const stored = toPgText("a\u0000b"); // "a\uE0000000b"
 * console.log(fromPgText(stored) === "a\u0000b"); // true
 * ```
 * @module
 */

const ESCAPE = "\uE000";
// NUL is the point of this pattern: PostgreSQL's text cannot hold it.
const UNSTORABLE =
  // deno-lint-ignore no-control-regex
  /[\u0000\uE000]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const ESCAPED = /\uE000([0-9a-f]{4})/g;

/** `text` as PostgreSQL can store it. */
export function toPgText(text: string): string {
  return text.replace(
    UNSTORABLE,
    (character) => ESCAPE + character.charCodeAt(0).toString(16).padStart(4, "0"),
  );
}

/** The string {@link toPgText} stored. */
export function fromPgText(stored: string): string {
  return stored.includes(ESCAPE)
    ? stored.replace(ESCAPED, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    : stored;
}
