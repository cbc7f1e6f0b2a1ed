/**
 * Routes that are not Socket.IO: health, readiness, metrics, plus any extra routes (the demo
 * page), and a JSON 404 for everything else. Web-standard `Request` → `Response` only.
 *
 * @example
 * ```ts
 * const handle = createHttpHandler({ readiness: async () => ({ ready: true, checks: {} }) });
 * await handle(new Request("http://localhost/healthz")); // 200 {"status":"ok"}
 * ```
 * @module
 */

/** A route: answers the request, or returns `undefined` to let the next route try. */
export type Route = (
  request: Request,
  url: URL,
) => Response | undefined | Promise<Response | undefined>;

/** The outcome of a readiness check. */
export interface Readiness {
  ready: boolean;
  /** One word per dependency: `"ok"` or what is wrong. */
  checks: Record<string, string>;
}

/** What the HTTP routes need. */
export interface HttpOptions {
  /** Whether the server takes new work (store reachable, not shutting down). */
  readiness: () => Promise<Readiness>;
  /** Prometheus text exposition; `token`, when set, is required as a Bearer token. */
  metrics?: { render(): Promise<string>; contentType: string; token?: string };
  /** Routes tried before the 404 (the demo page, dev login). */
  routes?: Route[];
}

/** A JSON response that caches nowhere. */
export function json(body: unknown, status = 200, headers: HeadersInit = {}): Response {
  return Response.json(body, { status, headers: { "Cache-Control": "no-store", ...headers } });
}

/** HSTS for a year: browsers that saw the server over HTTPS never try plain HTTP again. */
export const STRICT_TRANSPORT_SECURITY = "max-age=31536000";

/**
 * Adds the headers every response carries: `X-Content-Type-Options: nosniff`, and with `tls`
 * `Strict-Transport-Security`. A response with immutable headers is copied; a WebSocket upgrade
 * (101) is left alone.
 */
export function withSecurityHeaders(response: Response, { tls }: { tls: boolean }): Response {
  if (response.status === 101) return response;
  const extra: [string, string][] = [["X-Content-Type-Options", "nosniff"]];
  if (tls) extra.push(["Strict-Transport-Security", STRICT_TRANSPORT_SECURITY]);
  try {
    for (const [name, value] of extra) response.headers.set(name, value);
    return response;
  } catch {
    const copy = new Response(response.body, response);
    for (const [name, value] of extra) copy.headers.set(name, value);
    return copy;
  }
}

function isRead(request: Request): boolean {
  return request.method === "GET" || request.method === "HEAD";
}

/** Compares two strings in time independent of where they differ. */
export function sameSecret(given: string, expected: string): boolean {
  const a = new TextEncoder().encode(given);
  const b = new TextEncoder().encode(expected);
  let difference = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) difference |= (a[i] ?? 0) ^ b[i];
  return difference === 0;
}

/** Builds the handler for every non-Socket.IO request. */
export function createHttpHandler(options: HttpOptions): (request: Request) => Promise<Response> {
  const builtIn: Route[] = [
    (request, url) => {
      if (url.pathname !== "/healthz" || !isRead(request)) return;
      return json({ status: "ok" });
    },
    async (request, url) => {
      if (url.pathname !== "/readyz" || !isRead(request)) return;
      const { ready, checks } = await options.readiness();
      return json({ status: ready ? "ready" : "unavailable", checks }, ready ? 200 : 503);
    },
    async (request, url) => {
      const { metrics } = options;
      if (url.pathname !== "/metrics" || !isRead(request) || !metrics) return;
      if (metrics.token !== undefined) {
        const given = request.headers.get("authorization")?.match(/^Bearer\s+(\S+)$/i)?.[1];
        if (given === undefined || !sameSecret(given, metrics.token)) {
          return json({ code: "unauthorized", message: "metrics need a Bearer token" }, 401, {
            "WWW-Authenticate": 'Bearer realm="metrics"',
          });
        }
      }
      return new Response(await metrics.render(), {
        headers: { "Content-Type": metrics.contentType, "Cache-Control": "no-store" },
      });
    },
  ];
  const routes = [...builtIn, ...options.routes ?? []];
  return async (request) => {
    const url = new URL(request.url);
    for (const route of routes) {
      const response = await route(request, url);
      if (response) return response;
    }
    return json(
      { code: "not_found", message: `no route for ${request.method} ${url.pathname}` },
      404,
    );
  };
}
