/**
 * CORS for the Engine.IO endpoint: an origin list or `*`, with optional credentials.
 * @module
 */

/** Which cross-origin callers may use the endpoint. */
export interface CorsOptions {
  /** `*` for any origin, or the exact origins allowed (`https://chat.example`). */
  origin: "*" | string[];
  /** Allow cookies and `Authorization` on cross-origin requests (default false). */
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
  headers.append("Vary", "Origin");
  const allowed = options.origin === "*" || options.origin.includes(origin);
  if (!allowed) return false;
  // With credentials, browsers reject a literal "*": reflect the caller's origin instead.
  const reflect = options.origin !== "*" || options.credentials;
  headers.set("Access-Control-Allow-Origin", reflect ? origin : "*");
  if (options.credentials) headers.set("Access-Control-Allow-Credentials", "true");
  if (request.method === "OPTIONS") {
    headers.set("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    const requested = request.headers.get("access-control-request-headers");
    if (requested) headers.set("Access-Control-Allow-Headers", requested);
    headers.set("Access-Control-Max-Age", String(options.maxAge ?? 600));
  }
  return true;
}
