/**
 * The server API under `/api/v1/`: the application's own backend publishes, reads history and
 * presence, disconnects and bans users. Off unless `API_KEY` is set (then every path is a 404);
 * every request carries `Authorization: Bearer <API_KEY>`, and an address that presents too many
 * wrong keys is answered 429 for a while. The routes are declared in `api_routes.ts`, which also
 * yields the OpenAPI document served at `/api/v1/openapi.json`; errors are the one HTTP shape of
 * `errors.ts`.
 *
 * @example
 * ```ts ignore
 * // A sketch: the app builds it from its own parts (see app.ts) and mounts it at API_BASE.
 * const api = apiRoutes({ key: "k", io, timeline, store, membersOf, stats, ... });
 * ```
 * @module
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import { displayNameOf, isUserId, MAX_NAME_LENGTH } from "../auth/token.ts";
import { type ChatServer, type ChatService, type Principal, roomKey } from "../chat/mod.ts";
import type { ConnectionInfo } from "../engine/mod.ts";
import { readHistoryQuery, readMessage, readThreadQuery } from "../chat/payloads.ts";
import { RateLimiter } from "../rate_limit.ts";
import type { Timeline } from "../chat/timeline.ts";
import type { MessageChange, User } from "../types.ts";
import {
  API_BASE,
  apiDocument,
  MAX_API_BODY_BYTES,
  registerSecurity,
  ROUTES,
} from "./api_routes.ts";
import { bearer } from "./auth.ts";
import { readBody } from "./body.ts";
import { HttpError } from "./errors.ts";

export { API_BASE, MAX_API_BODY_BYTES };

/** The API acts for the application's backend: any room, any message, any user. */
const BACKEND: Principal = { kind: "backend" };

/** What the API needs. */
export interface ApiOptions {
  /** `API_KEY`. */
  key: string;
  io: ChatServer;
  timeline: Timeline;
  /** The chat's rules, which the API applies as the backend. */
  service: ChatService;
  /** Longest message text, as for sockets. */
  maxMessageLength: number;
  /** The users with a connection in a room, on every instance. */
  membersOf: (room: string) => Promise<User[]>;
  /** Figures for `GET /api/v1/stats`. */
  stats: () => Record<string, number>;
  /** Told of each API request: the route's name and the status answered. */
  onRequest?: (route: string, status: number) => void;
  /** Wrong keys one client address may present per minute (`API_AUTH_FAILURES_PER_MIN`). */
  authFailuresPerMinute: number;
  /** A request's client address (`TRUSTED_PROXIES` honoured). */
  clientAddress: (request: Request, info: ConnectionInfo) => string;
}

/** The API's Hono environment: the connection, and the name of the route answering. */
export type ApiEnv = { Bindings: ConnectionInfo; Variables: { route?: string } };

/** Route names by the method and path Hono matched. */
const ROUTE_NAMES = new Map(
  Object.entries(ROUTES).map((
    [name, route],
  ) => [`${route.method.toUpperCase()} ${API_BASE}${route.getRoutingPath()}`, name]),
);

/** Names the request after the route that will answer it (metrics count by that name). */
const nameRoute: MiddlewareHandler<ApiEnv> = async (c, next) => {
  const route = matchedRoutes(c).at(-1);
  c.set("route", route && ROUTE_NAMES.get(`${route.method} ${route.path}`));
  await next();
};

/** A path whose %-escapes do not decode is the client's error, not a different id. */
const wellFormedPath: MiddlewareHandler = async (c, next) => {
  try {
    decodeURIComponent(new URL(c.req.url).pathname);
  } catch {
    throw new HttpError("invalid_payload", "the path has a malformed %-escape");
  }
  await next();
};

function apiUser(userId: string, userName: string | undefined): User {
  if (!isUserId(userId)) throw new HttpError("invalid_payload", "`userId` must be a user id");
  if (userName !== undefined && (userName.length === 0 || userName.length > MAX_NAME_LENGTH)) {
    throw new HttpError("invalid_payload", `\`userName\` must be 1-${MAX_NAME_LENGTH} characters`);
  }
  // Cleaned as a token's name is: no bidi controls or invisible characters.
  return { id: userId, name: displayNameOf(userId, userName) };
}

/** Builds the API, to be mounted at {@link API_BASE}. */
export function apiRoutes(options: ApiOptions): OpenAPIHono<ApiEnv> {
  const app = new OpenAPIHono<ApiEnv>({
    defaultHook(result) {
      if (result.success) return;
      const [issue] = result.error.issues;
      const where = issue.path.length > 0 ? `\`${issue.path.join(".")}\`: ` : "";
      throw new HttpError("invalid_payload", `${where}${issue.message}`);
    },
  });
  registerSecurity(app);
  const failures = new RateLimiter({
    perMinute: options.authFailuresPerMinute,
    burst: options.authFailuresPerMinute,
  });

  app.use(async (c, next) => {
    await next();
    options.onRequest?.(c.get("route") ?? "unknown", c.res.status);
  });
  app.use(bearer({
    secret: options.key,
    realm: "api",
    message: "the API needs Authorization: Bearer <API_KEY>",
    limiter: failures,
    clientKey: (c: Context<ApiEnv>) => options.clientAddress(c.req.raw, c.env),
  }));
  app.use(wellFormedPath, nameRoute);

  messageRoutes(app, options);
  roomRoutes(app, options);
  userRoutes(app, options);
  // Generated on first request, from every route registered here (this one included).
  let document: ReturnType<typeof apiDocument> | undefined;
  app.openapi(ROUTES.openapi, (c) => c.json(document ??= apiDocument(app), 200));
  return app;
}

/** A body reader for the routes that take one (limited while it is read). */
const withBody = readBody({ maxBytes: MAX_API_BODY_BYTES, asJson: true });

/** Publishing, history, edits, deletes, threads and reactions. */
function messageRoutes(app: OpenAPIHono<ApiEnv>, options: ApiOptions): void {
  const { timeline, service } = options;
  app.openapi({ ...ROUTES.publish, middleware: [withBody] }, async (c) => {
    const { room } = c.req.valid("param");
    const body = c.req.valid("json");
    const input = readMessage(body, options.maxMessageLength);
    const user = body.userId === undefined ? undefined : apiUser(body.userId, body.userName);
    const { message, created } = await service.publish(
      {
        room,
        message: input.text,
        clientId: input.clientId,
        ...(user ? { user } : {}),
        ...(input.replyTo === undefined ? {} : { replyTo: input.replyTo }),
        ...(input.mentions === undefined ? {} : { mentions: input.mentions }),
        ...(body.skipPublishHook ? { skipPublishHook: true } : {}),
      },
      BACKEND,
    );
    return created
      ? c.json({ message, duplicate: false as const }, 201)
      : c.json({ message, duplicate: true as const }, 200);
  });

  app.openapi(ROUTES.history, async (c) => {
    const { room } = c.req.valid("param");
    const { before, limit } = c.req.valid("query");
    const query = readHistoryQuery({
      before,
      limit: limit === undefined ? undefined : Number(limit),
    });
    const [messages, { hasMore }] = await timeline.page(query.before, query.limit, room);
    return c.json({ messages, hasMore }, 200);
  });

  const change = (id: string, change: MessageChange) => service.change(id, change, BACKEND);

  app.openapi({ ...ROUTES.edit, middleware: [withBody] }, async (c) => {
    const { text } = readMessage(c.req.valid("json"), options.maxMessageLength);
    return c.json({ message: await change(c.req.valid("param").id, { message: text }) }, 200);
  });

  app.openapi(ROUTES.delete, async (c) => {
    return c.json({ message: await change(c.req.valid("param").id, { deleted: true }) }, 200);
  });

  app.openapi(ROUTES.thread, async (c) => {
    const { room, id } = c.req.valid("param");
    const { before, limit } = c.req.valid("query");
    const query = readThreadQuery({
      id,
      before,
      limit: limit === undefined ? undefined : Number(limit),
    });
    return c.json(await service.thread(room, query.id, query, BACKEND), 200);
  });

  app.openapi(ROUTES.reactions, async (c) => {
    const { message } = await service.reactionsOf(c.req.valid("param").id, BACKEND);
    return c.json({ id: message.id, room: message.room, reactions: message.reactions ?? [] }, 200);
  });
}

/** Who is in a room, which rooms are in use, the instance's figures. */
function roomRoutes(app: OpenAPIHono<ApiEnv>, options: ApiOptions): void {
  const { io } = options;
  app.openapi(ROUTES.presence, async (c) => {
    const { room } = c.req.valid("param");
    return c.json({ room, users: await options.membersOf(room) }, 200);
  });

  app.openapi(ROUTES.rooms, (c) => {
    const active = [];
    for (const [name, members] of io.of("/").adapter.rooms) {
      if (name.startsWith(roomKey(""))) {
        active.push({ room: name.slice(roomKey("").length), connections: members.size });
      }
    }
    active.sort((a, b) => b.connections - a.connections || a.room.localeCompare(b.room));
    return c.json({ rooms: active }, 200);
  });

  app.openapi(ROUTES.stats, (c) => c.json(options.stats(), 200));
}

/** Disconnecting, banning and unbanning users. */
function userRoutes(app: OpenAPIHono<ApiEnv>, options: ApiOptions): void {
  const { service } = options;
  app.openapi(ROUTES.disconnect, async (c) => {
    await service.disconnect(c.req.valid("param").id);
    return c.json({ ok: true as const }, 200);
  });

  app.openapi({ ...ROUTES.ban, middleware: [withBody] }, async (c) => {
    const userId = c.req.valid("param").id;
    const { until, reason } = c.req.valid("json");
    const ban = await service.ban(userId, {
      ...(until === undefined ? {} : { until }),
      ...(reason === undefined ? {} : { reason }),
    });
    return c.json({ userId, ban }, 200);
  });

  app.openapi(ROUTES.unban, async (c) => {
    await service.unban(c.req.valid("param").id);
    return c.body(null, 204, { "Cache-Control": "no-store" });
  });
}
