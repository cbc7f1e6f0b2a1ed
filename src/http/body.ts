/**
 * The one body reader: a middleware that reads a request's body before the route does, counting
 * as it reads, and answers 413 `payload_too_large` as soon as it passes the limit, whether or not
 * the client declared a `Content-Length` (a chunked body is cut off, not read whole). The route
 * then reads the bytes kept in memory.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { readBody } from "./body.ts";
 *
 * const app = new Hono();
 * app.post("/echo", readBody({ maxBytes: 1024 }), async (c) => c.text(await c.req.text()));
 * ```
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { HttpError } from "./errors.ts";

/** Options of {@link readBody}. */
export interface ReadBodyOptions {
  /** Largest body read, in bytes. */
  maxBytes: number;
  /**
   * Hand the route a JSON body whatever `Content-Type` the client sent (an empty body as none):
   * the server API has always read its bodies as JSON.
   */
  asJson?: boolean;
}

function tooLarge(maxBytes: number): HttpError {
  return new HttpError("payload_too_large", `the body is over ${maxBytes} bytes`);
}

/** Reads the whole body, at most `maxBytes`; throws {@link HttpError} past that. */
async function readLimited(request: Request, maxBytes: number): Promise<Uint8Array<ArrayBuffer>> {
  if (Number(request.headers.get("content-length") ?? 0) > maxBytes) throw tooLarge(maxBytes);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body?.getReader();
  while (reader) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      // Stop pulling: the rest of the body is never read.
      reader.cancel().catch(() => {});
      throw tooLarge(maxBytes);
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

/** A middleware that reads the body within `maxBytes` and hands the route the bytes read. */
export function readBody({ maxBytes, asJson = false }: ReadBodyOptions): MiddlewareHandler {
  return async (c, next) => {
    const request = c.req.raw;
    if (request.body === null) return next();
    const body = await readLimited(request, maxBytes);
    const headers = new Headers(request.headers);
    headers.delete("content-length");
    if (asJson) {
      if (body.byteLength === 0) headers.delete("content-type");
      else headers.set("content-type", "application/json");
    }
    c.req.raw = new Request(request.url, {
      method: request.method,
      headers,
      body: body.byteLength === 0 ? null : body,
      signal: request.signal,
    });
    await next();
  };
}
