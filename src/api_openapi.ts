/**
 * The OpenAPI 3.1 document of the server API (`GET /api/v1/openapi.json`). Its schemas are JSON
 * Schema 2020-12; the API's tests validate every real response against them.
 * @module
 */

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const jsonBody = (schema: unknown) => ({ content: { "application/json": { schema } } });
const answer = (description: string, schema?: unknown) =>
  schema === undefined ? { description } : { description, ...jsonBody(schema) };
const errors = {
  "400": answer(
    "A malformed parameter or body (`invalid_payload`, `message_too_long`).",
    ref("Error"),
  ),
  "401": answer("No API key, or the wrong one (`unauthorized`).", ref("Error")),
  "404": answer("No such route, or not with this method (`not_found`).", ref("Error")),
};
const roomParam = {
  name: "room",
  in: "path",
  required: true,
  description: "A room id (`general`, `team-red`) or a DM room (`dm:alice:bob`), URL-encoded.",
  schema: { type: "string" },
};
const userParam = {
  name: "id",
  in: "path",
  required: true,
  description:
    "A user id (a token's `sub`: 1-256 characters of well-formed Unicode without control characters), URL-encoded.",
  schema: { type: "string" },
};

const messageAnswer = {
  type: "object",
  required: ["message"],
  properties: { message: ref("Message") },
  additionalProperties: false,
};

/** The document. */
export const OPENAPI = {
  openapi: "3.1.0",
  info: {
    title: "deno-chat server API",
    version: "1",
    description: "Publish, read history and presence, disconnect and ban users. Every request " +
      "needs `Authorization: Bearer <API_KEY>`; without `API_KEY` the API does not exist.",
  },
  servers: [{ url: "/api/v1" }],
  security: [{ apiKey: [] }],
  components: {
    securitySchemes: { apiKey: { type: "http", scheme: "bearer" } },
    schemas: {
      User: {
        type: "object",
        required: ["id", "name"],
        properties: { id: { type: "string" }, name: { type: "string" } },
        additionalProperties: false,
      },
      Message: {
        type: "object",
        required: ["id", "room", "user", "message", "createdAt"],
        properties: {
          id: { type: "string", pattern: "^[0-9A-HJKMNP-TV-Z]{26}$" },
          room: { type: "string" },
          user: ref("User"),
          message: { type: "string", description: "Empty once deleted." },
          createdAt: { type: "string", format: "date-time" },
          editedAt: { type: "string", format: "date-time" },
          deleted: { const: true, description: "A tombstone: the message was deleted." },
        },
        additionalProperties: false,
      },
      Ban: {
        type: "object",
        required: ["since"],
        properties: {
          since: { type: "integer", description: "When it was set (ms since epoch)." },
          until: { type: "integer", description: "When it ends (ms since epoch); absent: never." },
          reason: { type: "string" },
        },
        additionalProperties: false,
      },
      Error: {
        type: "object",
        required: ["error"],
        properties: {
          error: {
            type: "object",
            required: ["code", "message"],
            properties: { code: { type: "string" }, message: { type: "string" } },
            additionalProperties: false,
          },
        },
        additionalProperties: false,
      },
    },
  },
  paths: {
    "/rooms/{room}/messages": {
      post: {
        summary: "Publish a message: stored, then broadcast to the room, like a socket message.",
        parameters: [roomParam],
        requestBody: jsonBody({
          type: "object",
          required: ["message"],
          properties: {
            message: { type: "string", description: "Trimmed; at most MAX_MESSAGE_LENGTH." },
            userId: { type: "string", description: "Send on behalf of this user; else System." },
            userName: { type: "string", description: "That user's display name (default userId)." },
            clientId: {
              type: "string",
              description: "Retries with the same one store one message.",
            },
          },
        }),
        responses: {
          "201": answer("Stored and broadcast.", {
            type: "object",
            required: ["message", "duplicate"],
            properties: { message: ref("Message"), duplicate: { const: false } },
            additionalProperties: false,
          }),
          "200": answer("A retry: the message stored the first time.", {
            type: "object",
            required: ["message", "duplicate"],
            properties: { message: ref("Message"), duplicate: { const: true } },
            additionalProperties: false,
          }),
          ...errors,
        },
      },
      get: {
        summary: "A page of the room's history, oldest first.",
        parameters: [
          roomParam,
          { name: "before", in: "query", schema: { type: "string" } },
          { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 100 } },
        ],
        responses: {
          "200": answer("Up to `limit` (default 50) messages before `before` (or the latest).", {
            type: "object",
            required: ["messages", "hasMore"],
            properties: {
              messages: { type: "array", items: ref("Message") },
              hasMore: { type: "boolean" },
            },
            additionalProperties: false,
          }),
          ...errors,
        },
      },
    },
    "/rooms/{room}/presence": {
      get: {
        summary: "Who has a connection in the room now, on every instance.",
        parameters: [roomParam],
        responses: {
          "200": answer("The users in the room.", {
            type: "object",
            required: ["room", "users"],
            properties: { room: { type: "string" }, users: { type: "array", items: ref("User") } },
            additionalProperties: false,
          }),
          ...errors,
        },
      },
    },
    "/rooms": {
      get: {
        summary: "The rooms with connections on this instance, busiest first.",
        responses: {
          "200": answer("Rooms and their connection counts.", {
            type: "object",
            required: ["rooms"],
            properties: {
              rooms: {
                type: "array",
                items: {
                  type: "object",
                  required: ["room", "connections"],
                  properties: { room: { type: "string" }, connections: { type: "integer" } },
                  additionalProperties: false,
                },
              },
            },
            additionalProperties: false,
          }),
          ...errors,
        },
      },
    },
    "/stats": {
      get: {
        summary: "This instance's figures.",
        responses: {
          "200": answer("Counts by name.", {
            type: "object",
            additionalProperties: { type: "number" },
          }),
          ...errors,
        },
      },
    },
    "/users/{id}/disconnect": {
      post: {
        summary: "Disconnects every socket of the user, on every instance.",
        parameters: [userParam],
        responses: {
          "200": answer("Done.", {
            type: "object",
            required: ["ok"],
            properties: { ok: { const: true } },
            additionalProperties: false,
          }),
          ...errors,
        },
      },
    },
    "/users/{id}/ban": {
      put: {
        summary: "Bans the user: open sockets are cut, connects refused with `banned`.",
        parameters: [userParam],
        requestBody: jsonBody({
          type: "object",
          properties: {
            until: { type: "integer", description: "When it ends (ms since epoch)." },
            reason: { type: "string", maxLength: 500 },
          },
        }),
        responses: {
          "200": answer("The ban as stored.", {
            type: "object",
            required: ["userId", "ban"],
            properties: { userId: { type: "string" }, ban: ref("Ban") },
            additionalProperties: false,
          }),
          ...errors,
        },
      },
      delete: {
        summary: "Lifts the user's ban.",
        parameters: [userParam],
        responses: { "204": answer("Lifted."), ...errors },
      },
    },
    "/messages/{id}": {
      patch: {
        summary: "Edits a message's text; the room gets `message:updated`.",
        parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
        requestBody: jsonBody({
          type: "object",
          required: ["message"],
          properties: { message: { type: "string" } },
        }),
        responses: {
          "200": answer("The message as stored now.", messageAnswer),
          ...errors,
        },
      },
      delete: {
        summary: "Deletes a message: it stays as a tombstone; the room gets `message:deleted`.",
        parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
        responses: {
          "200": answer("The tombstone (deleting twice answers the same).", messageAnswer),
          ...errors,
        },
      },
    },
    "/openapi.json": {
      get: {
        summary: "This document.",
        responses: { "200": answer("The OpenAPI document.", { type: "object" }) },
      },
    },
  },
} as const;
