/**
 * The server API under `/api/v1/`: the application's own backend publishes, reads history and
 * presence, disconnects and bans users. Off unless `API_KEY` is set (then every path is a 404);
 * every request carries `Authorization: Bearer <API_KEY>`, compared in constant time. JSON in and
 * out; errors are `{ error: { code, message } }` with their 4xx status. The OpenAPI document is at
 * `/api/v1/openapi.json`.
 *
 * @example
 * ```ts ignore
 * // A sketch: the app builds it from its own parts (see app.ts).
 * const route = apiRoute({ key: "k", io, timeline, store, membersOf, stats });
 * ```
 * @module
 */
import { isUserId, USER_ID_RULE } from "./auth.ts";
import { announceChange, isRoomId, roomKey } from "./chat/mod.ts";
import type { ChatServer } from "./chat/mod.ts";
import { CodedError, type ErrorCode, toWireError } from "./errors.ts";
import { json, type Route, sameSecret } from "./http.ts";
import { readHistoryQuery, readMessage } from "./payloads.ts";
import type { MessageStore } from "./store/mod.ts";
import type { Timeline } from "./timeline.ts";
import type { ChatMessage, User } from "./types.ts";
import { OPENAPI } from "./api_openapi.ts";

/** The prefix of every server API path. */
export const API_PREFIX = "/api/v1/";
/** Largest request body the API reads. */
export const MAX_API_BODY_BYTES = 64 * 1024;
/** The sender of messages the backend publishes without a `userId`. */
export const SYSTEM_USER: User = { id: "system", name: "System" };

/** What the API needs. */
export interface ApiOptions {
  /** `API_KEY`; without it the API does not exist. */
  key?: string;
  io: ChatServer;
  timeline: Timeline;
  store: Pick<MessageStore, "setBan" | "getBan" | "deleteBan" | "findMessage" | "changeMessage">;
  /** Records a change of a message the API made (never the text). */
  onModerated?: (action: "edit" | "delete", message: ChatMessage) => void;
  /** Longest message text, as for sockets. */
  maxMessageLength: number;
  /** Closes every socket of a user on every instance; resolves once none is left. */
  disconnectUser: (userId: string) => Promise<void>;
  /** The users with a connection in a room, on every instance. */
  membersOf: (room: string) => Promise<User[]>;
  /** Figures for `GET /api/v1/stats`. */
  stats: () => Record<string, number>;
  /** Told of each API request: the route's name and the status answered. */
  onRequest?: (route: string, status: number) => void;
}

const STATUS: Partial<Record<ErrorCode, number>> = {
  invalid_payload: 400,
  message_too_long: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  payload_too_large: 413,
};

function failure(error: unknown): Response {
  const { code, message } = toWireError(error);
  return json({ error: { code, message } }, STATUS[code] ?? 500, {
    ...(code === "unauthorized" ? { "WWW-Authenticate": 'Bearer realm="api"' } : {}),
  });
}

async function readBody(request: Request): Promise<unknown> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > MAX_API_BODY_BYTES) {
    throw new CodedError("payload_too_large", `the body is over ${MAX_API_BODY_BYTES} bytes`);
  }
  const bytes = new Uint8Array(await request.arrayBuffer());
  if (bytes.byteLength > MAX_API_BODY_BYTES) {
    throw new CodedError("payload_too_large", `the body is over ${MAX_API_BODY_BYTES} bytes`);
  }
  if (bytes.byteLength === 0) return {};
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new CodedError("invalid_payload", "the body is not JSON");
  }
}

/** A path segment, %-decoded; a malformed escape is the client's error. */
function decodeParam(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new CodedError("invalid_payload", "the path has a malformed %-escape");
  }
}

function readRoomParam(value: string): string {
  const room = decodeParam(value);
  if (!isRoomId(room)) throw new CodedError("invalid_payload", `"${room}" is not a room id`);
  return room;
}

function readUserParam(value: string): string {
  const user = decodeParam(value);
  if (!isUserId(user)) throw new CodedError("invalid_payload", `not a user id (${USER_ID_RULE})`);
  return user;
}

/** A handler of one route: the path's parameters, the request, and what it answers. */
type Handler = (params: string[], request: Request, url: URL) => Promise<Response> | Response;

/** Builds the API's route; `undefined` for other paths. */
export function apiRoute(options: ApiOptions): Route {
  const { io, timeline, store } = options;

  const publish: Handler = async ([room], request) => {
    const body = await readBody(request);
    const input = readMessage(body, options.maxMessageLength);
    const fields = body as { userId?: unknown; userName?: unknown };
    let user = SYSTEM_USER;
    if (fields.userId !== undefined) {
      if (typeof fields.userId !== "string" || !isUserId(fields.userId)) {
        throw new CodedError("invalid_payload", "`userId` must be a user id");
      }
      const name = fields.userName ?? fields.userId;
      if (typeof name !== "string" || name.length === 0 || name.length > 100) {
        throw new CodedError("invalid_payload", "`userName` must be 1-100 characters");
      }
      user = { id: fields.userId, name };
    }
    const { message, created } = await timeline.publish({
      room: readRoomParam(room),
      user,
      message: input.text,
      clientId: input.clientId,
    });
    return json({ message, duplicate: !created }, created ? 201 : 200);
  };

  const history: Handler = async ([room], _request, url) => {
    const before = url.searchParams.get("before") ?? undefined;
    const limit = url.searchParams.get("limit");
    const query = readHistoryQuery({ before, limit: limit === null ? undefined : Number(limit) });
    const [messages, { hasMore }] = await timeline.page(
      query.before,
      query.limit,
      readRoomParam(room),
    );
    return json({ messages, hasMore });
  };

  const presence: Handler = async ([room]) => {
    const name = readRoomParam(room);
    return json({ room: name, users: await options.membersOf(name) });
  };

  const rooms: Handler = () => {
    const active = [];
    for (const [name, members] of io.of("/").adapter.rooms) {
      if (name.startsWith(roomKey(""))) {
        active.push({ room: name.slice(roomKey("").length), connections: members.size });
      }
    }
    active.sort((a, b) => b.connections - a.connections || a.room.localeCompare(b.room));
    return json({ rooms: active });
  };

  const disconnect: Handler = async ([user]) => {
    await options.disconnectUser(readUserParam(user));
    return json({ ok: true });
  };

  const ban: Handler = async ([user], request) => {
    const userId = readUserParam(user);
    const body = await readBody(request) as { until?: unknown; reason?: unknown };
    if (
      body.until !== undefined &&
      (!Number.isSafeInteger(body.until) || body.until as number <= Date.now())
    ) {
      throw new CodedError(
        "invalid_payload",
        "`until` must be a time in the future, in ms since epoch",
      );
    }
    if (
      body.reason !== undefined && (typeof body.reason !== "string" || body.reason.length > 500)
    ) {
      throw new CodedError(
        "invalid_payload",
        "`reason` must be a string of at most 500 characters",
      );
    }
    const record = {
      since: Date.now(),
      ...(body.until === undefined ? {} : { until: body.until as number }),
      ...(body.reason === undefined ? {} : { reason: body.reason as string }),
    };
    await store.setBan(userId, record);
    // Every instance cuts the user's open sockets; the ban refuses them at connect from now on,
    // and a connect admitted meanwhile reads it again once its socket can be cut.
    await options.disconnectUser(userId);
    return json({ userId, ban: record });
  };

  const change = (action: "edit" | "delete"): Handler => async ([id], request) => {
    const messageId = decodeParam(id);
    let text: string | undefined;
    if (action === "edit") {
      text = readMessage(await readBody(request), options.maxMessageLength).text;
    }
    const stored = await store.findMessage(messageId);
    if (!stored || (stored.deleted && action === "edit")) {
      throw new CodedError("not_found", "no such message");
    }
    const unchanged = stored.deleted || (text !== undefined && stored.message === text);
    const changed = unchanged ? stored : await store.changeMessage(
      messageId,
      text === undefined ? { deleted: true } : { message: text },
      new Date(),
    );
    if (!changed) throw new CodedError("not_found", "no such message");
    if (!unchanged) {
      options.onModerated?.(action, changed);
      announceChange(io, changed);
    }
    return json({ message: changed });
  };

  const unban: Handler = async ([user]) => {
    const lifted = await store.deleteBan(readUserParam(user));
    if (!lifted) throw new CodedError("not_found", "this user is not banned");
    return new Response(null, { status: 204, headers: { "Cache-Control": "no-store" } });
  };

  const routes: [string, RegExp, string, Handler][] = [
    ["POST", /^rooms\/([^/]+)\/messages$/, "publish", publish],
    ["GET", /^rooms\/([^/]+)\/messages$/, "history", history],
    ["GET", /^rooms\/([^/]+)\/presence$/, "presence", presence],
    ["GET", /^rooms$/, "rooms", rooms],
    ["GET", /^stats$/, "stats", () => json(options.stats())],
    ["POST", /^users\/([^/]+)\/disconnect$/, "disconnect", disconnect],
    ["PUT", /^users\/([^/]+)\/ban$/, "ban", ban],
    ["DELETE", /^users\/([^/]+)\/ban$/, "unban", unban],
    ["PATCH", /^messages\/([^/]+)$/, "edit", change("edit")],
    ["DELETE", /^messages\/([^/]+)$/, "delete", change("delete")],
    ["GET", /^openapi\.json$/, "openapi", () => json(OPENAPI)],
  ];

  return async (request, url) => {
    if (!url.pathname.startsWith(API_PREFIX) || options.key === undefined) return;
    const path = url.pathname.slice(API_PREFIX.length);
    let name = "unknown";
    let response: Response;
    try {
      const given = request.headers.get("authorization")?.match(/^Bearer\s+(\S+)$/i)?.[1];
      if (given === undefined || !sameSecret(given, options.key)) {
        throw new CodedError("unauthorized", "the API needs Authorization: Bearer <API_KEY>");
      }
      const matching = routes.filter(([, pattern]) => pattern.test(path));
      const route = matching.find(([method]) => method === request.method);
      if (!route) {
        throw new CodedError(
          "not_found",
          matching.length > 0
            ? `${request.method} is not allowed here`
            : `no route for ${request.method} ${url.pathname}`,
        );
      }
      name = route[2];
      response = await route[3](route[1].exec(path)!.slice(1), request, url);
    } catch (error) {
      response = failure(error);
    }
    options.onRequest?.(name, response.status);
    return response;
  };
}
