/**
 * Routes that are not Socket.IO: the health check, and a JSON 404 for everything else.
 * @module
 */

function json(body: unknown, status = 200): Response {
  return Response.json(body, { status, headers: { "Cache-Control": "no-store" } });
}

/** Answers a plain HTTP request. */
export function handleHttp(request: Request): Response {
  const { pathname } = new URL(request.url);
  if (pathname === "/healthz" && (request.method === "GET" || request.method === "HEAD")) {
    return json({ status: "ok" });
  }
  return json({ code: "not_found", message: `no route for ${request.method} ${pathname}` }, 404);
}
