/**
 * Everything HTTP that is not Socket.IO, on one Hono router: health, readiness, metrics, the server
 * API (`/api/v1/`, when it has a key) and extra routes (the demo page). Cross-cutting concerns are
 * middleware written once: security headers on every answer, Bearer auth (`auth.ts`), bodies read
 * within a limit (`body.ts`), and one error shape, `{ error: { code, message } }` (`errors.ts`),
 * for every refusal including the 404 of an unknown path.
 *
 * @example
 * ```ts
 * import { createHttpHandler } from "./mod.ts";
 *
 * const handle = createHttpHandler({ readiness: async () => ({ ready: true, checks: {} }) });
 * await handle(new Request("http://localhost/healthz")); // 200 {"status":"ok"}
 * ```
 * @module
 */
import { Hono } from "hono";
import type { ConnectionInfo } from "../engine/mod.ts";
import type { Logger } from "../ops/log.ts";
import { API_BASE, type ApiOptions, apiRoutes } from "./api.ts";
import { bearer } from "./auth.ts";
import { errorResponse, json, renderNotFound } from "./errors.ts";

export { API_BASE, type ApiOptions, json };
export { HttpError } from "./errors.ts";

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
  /** The server API; without it (no `API_KEY`) every `/api/v1/` path is a 404. */
  api?: ApiOptions;
  /** Routes tried before the 404 (the demo page, dev login), mounted at `/`. */
  routes?: Hono;
  /** Whether the server speaks TLS: then every answer carries HSTS. */
  tls?: boolean;
  /** Where failures of the server's own (500s) are logged. */
  log?: Logger;
}

/** HSTS for a year: browsers that saw the server over HTTPS never try plain HTTP again. */
export const STRICT_TRANSPORT_SECURITY = "max-age=31536000";

/**
 * Adds the headers every response carries: `X-Content-Type-Options: nosniff`, and with `tls`
 * `Strict-Transport-Security`. A response with immutable headers is copied; a WebSocket upgrade
 * (101) is left alone. The router applies it as middleware; the Engine.IO path calls it directly.
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

/** A request handler for every non-Socket.IO request (`info` names the peer, for the API). */
export type HttpHandler = (request: Request, info?: ConnectionInfo) => Promise<Response>;

/** Builds the router for every non-Socket.IO request. */
export function createHttpHandler(options: HttpOptions): HttpHandler {
  const app = new Hono<{ Bindings: ConnectionInfo }>();
  app.onError((error, c) => {
    const response = errorResponse(error);
    if (response.status >= 500) {
      options.log?.error("http.failed", { method: c.req.method, path: c.req.path, error });
    }
    return response;
  });
  app.notFound(renderNotFound);
  app.use(async (c, next) => {
    await next();
    c.res = withSecurityHeaders(c.res, { tls: options.tls ?? false });
  });

  app.get("/healthz", () => json({ status: "ok" }));
  app.get("/readyz", async () => {
    const { ready, checks } = await options.readiness();
    return json({ status: ready ? "ready" : "unavailable", checks }, ready ? 200 : 503);
  });
  const { metrics } = options;
  if (metrics) {
    const scrape = async () =>
      new Response(await metrics.render(), {
        headers: { "Content-Type": metrics.contentType, "Cache-Control": "no-store" },
      });
    if (metrics.token === undefined) app.get("/metrics", scrape);
    else {
      const secret = metrics.token;
      const message = "metrics need a Bearer token";
      app.get("/metrics", bearer({ secret, realm: "metrics", message }), scrape);
    }
  }
  if (options.api) app.route(API_BASE, apiRoutes(options.api));
  if (options.routes) app.route("/", options.routes);
  return async (request, info) => await app.fetch(request, info);
}
