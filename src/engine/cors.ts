/**
 * CORS for the Engine.IO endpoint, as the npm `cors` package answers: `*` for any origin (without
 * credentials), or a list of origins, each echoed back with optional credentials.
 * @module
 */

/** Which cross-origin callers may use the endpoint. */
export interface CorsOptions {
  /** `*` for any origin, or the exact origins allowed (`https://chat.example`). */
  origin: "*" | string[];
  /**
   * Allow cookies and `Authorization` from the listed origins (default false). Never with `*`:
   * browsers refuse credentials with a literal `*`, and echoing any origin would grant them to
   * every site.
   */
  credentials?: boolean;
  /** Seconds a browser may cache a preflight answer (default 600). */
  maxAge?: number;
}

/**
 * Adds CORS headers for `request` to `headers`; returns false when the origin is not allowed.
 * Requests without an `Origin` header are same-origin or non-browser and always pass.
 */
export function applyCors(options: CorsOptions, request: Request, headers: Headers): boolean {
  const origin = request.headers.get("origin");
  if (origin === null) return true;
  if (options.origin === "*") {
    headers.set("Access-Control-Allow-Origin", "*");
  } else {
    // The answer depends on the caller's origin: caches must keep one per origin.
    headers.append("Vary", "Origin");
    if (!options.origin.includes(origin)) return false;
    headers.set("Access-Control-Allow-Origin", origin);
    if (options.credentials) headers.set("Access-Control-Allow-Credentials", "true");
  }
  if (request.method === "OPTIONS") {
    headers.set("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    const requested = request.headers.get("access-control-request-headers");
    if (requested) headers.set("Access-Control-Allow-Headers", requested);
    headers.set("Access-Control-Max-Age", String(options.maxAge ?? 600));
  }
  return true;
}
