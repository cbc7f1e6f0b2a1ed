/**
 * The server API declared once: each route's path, parameters, body and answers as zod schemas,
 * from which `api.ts` gets its request validation and types, and {@link apiDocument} the OpenAPI
 * 3.1 document served at `/api/v1/openapi.json`. The payload rules that sockets share (message
 * text, `clientId`, room and user ids) are the functions in `payloads.ts`, `chat/rooms.ts` and
 * `auth.ts`, called by the schemas or the handlers, never restated here.
 *
 * @example
 * ```ts
 * import { apiDocument } from "./api_routes.ts";
 *
 * apiDocument().paths?.["/rooms/{room}/messages"]; // the publish and history operations
 * ```
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { isUserId, USER_ID_RULE } from "../auth/token.ts";
import { isRoomId } from "../chat/rooms.ts";
import { ERROR_CODES, type ErrorCode } from "../errors.ts";
import { MAX_CLIENT_ID_LENGTH, MAX_HISTORY_PAGE, MAX_MENTIONS } from "../chat/payloads.ts";

/** Where the API is mounted. */
export const API_BASE = "/api/v1";
/** Largest request body the API reads. */
export const MAX_API_BODY_BYTES = 64 * 1024;
/** Longest `reason` of a ban, in UTF-16 units. */
export const MAX_BAN_REASON_LENGTH = 500;

const User = z.strictObject({ id: z.string(), name: z.string() }).openapi("User");

const Reaction = z.strictObject({
  emoji: z.string(),
  count: z.int(),
  users: z.array(z.string()).openapi({ description: "Up to 20 of the users, the earliest." }),
}).openapi("Reaction");

const ReplyQuote = z.strictObject({
  id: z.string(),
  user: User,
  preview: z.string().openapi({ description: "Its first 100 characters, as it is now." }),
  deleted: z.boolean(),
}).openapi("ReplyQuote");

const Thread = z.strictObject({
  count: z.int(),
  lastId: z.string(),
  users: z.array(z.string()).openapi({ description: "Up to 10 who replied, latest first." }),
}).openapi("Thread");

const Message = z.strictObject({
  id: z.string().regex(/^[0-9A-HJKMNP-TV-Z]{26}$/),
  room: z.string(),
  user: User,
  message: z.string().openapi({ description: "Empty once deleted." }),
  createdAt: z.iso.datetime(),
  editedAt: z.iso.datetime().optional(),
  deleted: z.literal(true).optional().openapi({
    description: "A tombstone: the message was deleted.",
  }),
  reactions: z.array(Reaction).optional().openapi({
    description: "Its reactions, when it has any, each emoji in the order first used.",
  }),
  replyTo: ReplyQuote.optional().openapi({ description: "The message this one answers." }),
  thread: Thread.optional().openapi({ description: "Its replies, when it has any." }),
  mentions: z.array(z.string()).optional().openapi({
    description: "The users it mentions (ids, each once), when it mentions any.",
  }),
}).openapi("Message");

const Ban = z.strictObject({
  since: z.int().openapi({ description: "When it was set (ms since epoch)." }),
  until: z.int().optional().openapi({
    description: "When it ends (ms since epoch); absent: never.",
  }),
  reason: z.string().optional(),
}).openapi("Ban");

const ErrorBody = z.strictObject({
  error: z.strictObject({
    code: z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]),
    message: z.string(),
  }),
}).openapi("Error");

const json = <Schema extends z.ZodType>(description: string, schema: Schema) => ({
  description,
  content: { "application/json": { schema } },
});

const failures = {
  400: json("A malformed parameter or body (`invalid_payload`, `message_too_long`).", ErrorBody),
  401: json("No API key, or the wrong one (`unauthorized`).", ErrorBody),
  404: json("No such route, or not with this method (`not_found`).", ErrorBody),
  429: json(
    "Too many wrong keys from this address (`rate_limited`); `Retry-After` says when to retry.",
    ErrorBody,
  ),
};
const bodyFailures = {
  ...failures,
  413: json(`A body over ${MAX_API_BODY_BYTES} bytes (\`payload_too_large\`).`, ErrorBody),
};

const RoomParams = z.object({
  room: z.string().refine(isRoomId, "not a room id").openapi({
    description: "A room id (`general`, `team-red`) or a DM room (`dm:alice:bob`), URL-encoded.",
  }),
});
const UserParams = z.object({
  id: z.string().refine(isUserId, `not a user id (${USER_ID_RULE})`).openapi({
    description: `A user id (a token's \`sub\`: ${USER_ID_RULE}), URL-encoded.`,
  }),
});
const MessageParams = z.object({ id: z.string().openapi({ description: "A message id." }) });

const MessageText = z.string().openapi({
  description: "Trimmed; at most MAX_MESSAGE_LENGTH characters (code points).",
});

/** The routes, by the name metrics count their requests under. */
export const ROUTES = {
  publish: createRoute({
    operationId: "publish",
    method: "post",
    path: "/rooms/{room}/messages",
    summary: "Publish a message: stored, then broadcast to the room, like a socket message.",
    request: {
      params: RoomParams,
      body: {
        required: true,
        content: {
          "application/json": {
            schema: z.object({
              message: MessageText,
              userId: z.string().optional().openapi({
                description: "Send on behalf of this user; else System.",
              }),
              userName: z.string().optional().openapi({
                description: "That user's display name (default userId); cleaned as token " +
                  "names are (no bidi controls or invisible characters, trimmed).",
              }),
              clientId: z.string().optional().openapi({
                description: "Retries with the same one store one message. The API's " +
                  "clientIds are apart from the user's sockets' ones.",
                maxLength: MAX_CLIENT_ID_LENGTH,
              }),
              replyTo: z.string().optional().openapi({
                description: "The id of a message of this room this one answers.",
              }),
              mentions: z.array(z.string()).optional().openapi({
                description: `Up to ${MAX_MENTIONS} user ids it mentions, each kept once: ` +
                  "those who may read the room get a `mention` event on their connections.",
                maxItems: MAX_MENTIONS,
              }),
              skipPublishHook: z.boolean().optional().openapi({
                description: "`true`: store it without asking the publish hook " +
                  "(`PUBLISH_HOOK_URL`), for what your backend has checked itself.",
              }),
            }),
          },
        },
      },
    },
    responses: {
      201: json(
        "Stored and broadcast.",
        z.strictObject({ message: Message, duplicate: z.literal(false) }),
      ),
      200: json(
        "A retry: the message stored the first time.",
        z.strictObject({ message: Message, duplicate: z.literal(true) }),
      ),
      422: json("The publish hook denied it (`rejected`, its reason as `message`).", ErrorBody),
      ...bodyFailures,
    },
  }),
  history: createRoute({
    operationId: "history",
    method: "get",
    path: "/rooms/{room}/messages",
    summary: "A page of the room's history, oldest first.",
    request: {
      params: RoomParams,
      query: z.object({
        before: z.string().optional(),
        // Read by readHistoryQuery, as the socket event's are; typed here for the document.
        limit: z.string().optional().openapi({
          type: "integer",
          minimum: 1,
          maximum: MAX_HISTORY_PAGE,
        }),
      }),
    },
    responses: {
      200: json(
        "Up to `limit` (default 50) messages before `before` (or the latest).",
        z.strictObject({ messages: z.array(Message), hasMore: z.boolean() }),
      ),
      ...failures,
    },
  }),
  presence: createRoute({
    operationId: "presence",
    method: "get",
    path: "/rooms/{room}/presence",
    summary: "Who has a connection in the room now, on every instance.",
    request: { params: RoomParams },
    responses: {
      200: json(
        "The users in the room.",
        z.strictObject({ room: z.string(), users: z.array(User) }),
      ),
      ...failures,
    },
  }),
  rooms: createRoute({
    operationId: "rooms",
    method: "get",
    path: "/rooms",
    summary: "The rooms with connections on this instance, busiest first.",
    responses: {
      200: json(
        "Rooms and their connection counts.",
        z.strictObject({
          rooms: z.array(z.strictObject({ room: z.string(), connections: z.int() })),
        }),
      ),
      ...failures,
    },
  }),
  stats: createRoute({
    operationId: "stats",
    method: "get",
    path: "/stats",
    summary: "This instance's figures.",
    responses: {
      200: json("Counts by name.", z.record(z.string(), z.number())),
      ...failures,
    },
  }),
  disconnect: createRoute({
    operationId: "disconnect",
    method: "post",
    path: "/users/{id}/disconnect",
    summary: "Disconnects every socket of the user, on every instance.",
    request: { params: UserParams },
    responses: {
      200: json("Done.", z.strictObject({ ok: z.literal(true) })),
      ...failures,
    },
  }),
  ban: createRoute({
    operationId: "ban",
    method: "put",
    path: "/users/{id}/ban",
    summary: "Bans the user: open sockets are cut, connects refused with `banned`.",
    request: {
      params: UserParams,
      body: {
        content: {
          "application/json": {
            schema: z.object({
              until: z.int().optional().openapi({
                description: "When it ends (ms since epoch), in the future.",
              }),
              reason: z.string().max(MAX_BAN_REASON_LENGTH).optional(),
            }),
          },
        },
      },
    },
    responses: {
      200: json("The ban as stored.", z.strictObject({ userId: z.string(), ban: Ban })),
      ...bodyFailures,
    },
  }),
  unban: createRoute({
    operationId: "unban",
    method: "delete",
    path: "/users/{id}/ban",
    summary: "Lifts the user's ban.",
    request: { params: UserParams },
    responses: { 204: { description: "Lifted." }, ...failures },
  }),
  edit: createRoute({
    operationId: "edit",
    method: "patch",
    path: "/messages/{id}",
    summary: "Edits a message's text; the room gets `message:updated`.",
    request: {
      params: MessageParams,
      body: {
        required: true,
        content: { "application/json": { schema: z.object({ message: MessageText }) } },
      },
    },
    responses: {
      200: json("The message as stored now.", z.strictObject({ message: Message })),
      ...bodyFailures,
    },
  }),
  delete: createRoute({
    operationId: "delete",
    method: "delete",
    path: "/messages/{id}",
    summary: "Deletes a message: it stays as a tombstone; the room gets `message:deleted`.",
    request: { params: MessageParams },
    responses: {
      200: json(
        "The tombstone (deleting twice answers the same).",
        z.strictObject({ message: Message }),
      ),
      ...failures,
    },
  }),
  thread: createRoute({
    operationId: "thread",
    method: "get",
    path: "/rooms/{room}/messages/{id}/thread",
    summary: "A page of a message's replies, oldest first.",
    request: {
      params: RoomParams.extend({ id: z.string().openapi({ description: "A message id." }) }),
      query: z.object({
        before: z.string().optional(),
        limit: z.string().optional().openapi({
          type: "integer",
          minimum: 1,
          maximum: MAX_HISTORY_PAGE,
        }),
      }),
    },
    responses: {
      200: json(
        "Up to `limit` (default 50) replies before `before` (or the newest).",
        z.strictObject({ messages: z.array(Message), hasMore: z.boolean() }),
      ),
      ...failures,
    },
  }),
  reactions: createRoute({
    operationId: "reactions",
    method: "get",
    path: "/messages/{id}/reactions",
    summary: "A message's reactions.",
    request: { params: MessageParams },
    responses: {
      200: json(
        "Each emoji with its count and up to 20 of its users (empty: none).",
        z.strictObject({ id: z.string(), room: z.string(), reactions: z.array(Reaction) }),
      ),
      ...failures,
    },
  }),
  openapi: createRoute({
    operationId: "openapi",
    method: "get",
    path: "/openapi.json",
    summary: "This document.",
    responses: { 200: json("The OpenAPI document.", z.looseObject({})) },
  }),
};

/** The document's top: title, description, server and security. */
const DOCUMENT_INFO = {
  openapi: "3.1.0",
  info: {
    title: "deno-chat server API",
    version: "1",
    description: "Publish, read history and presence, disconnect and ban users. Every request " +
      "needs `Authorization: Bearer <API_KEY>`; without `API_KEY` the API does not exist.",
  },
  servers: [{ url: API_BASE }],
  security: [{ apiKey: [] }],
};

/** Registers the security scheme every route is under. */
export function registerSecurity(app: Pick<OpenAPIHono, "openAPIRegistry">): void {
  app.openAPIRegistry.registerComponent("securitySchemes", "apiKey", {
    type: "http",
    scheme: "bearer",
  });
}

/** The OpenAPI 3.1 document of the routes `app` registered (all of {@link ROUTES} by default). */
export function apiDocument(
  app?: Pick<OpenAPIHono, "openAPIRegistry" | "getOpenAPI31Document">,
): ReturnType<OpenAPIHono["getOpenAPI31Document"]> {
  if (app === undefined) {
    app = new OpenAPIHono();
    registerSecurity(app);
    for (const route of Object.values(ROUTES)) app.openAPIRegistry.registerPath(route);
  }
  return app.getOpenAPI31Document(DOCUMENT_INFO);
}
