import assert from "node:assert/strict";
import {
  type ConnectionError,
  type EngineOptions,
  ERROR_CODES,
  refusalReason,
} from "../src/engine/mod.ts";
import { type EngineLogger, RefusalLog } from "../src/engine/refusals.ts";
import {
  type EngineServer,
  errorOf,
  pollingHandshake,
  RawWebSocket,
  type ReadResponse,
  request,
  sleep,
  startEngine,
  until,
  waitFor,
} from "./helpers/engine_server.ts";
import { closing } from "./helpers/dispose.ts";

/** Sends one request that `target` refuses; returns its response and its `connection_error`. */
async function refusal(
  options: EngineOptions,
  send: (target: EngineServer) => Promise<ReadResponse>,
): Promise<{ response: ReadResponse; error: ConnectionError }> {
  await using target = startEngine(options);
  const refused = waitFor<[ConnectionError]>(target.engine, "connection_error");
  const response = await send(target);
  const [error] = await refused;
  assert.ok(error.req instanceof Request);
  assert.deepEqual(errorOf(response), { code: error.code, message: error.message });
  return { response, error };
}

Deno.test("refusals: an unsupported protocol version is code 5, unsupported_protocol_version", async () => {
  const { response, error } = await refusal({}, (target) => request(target.url({ EIO: "3" })));
  assert.equal(response.status, 400);
  assert.equal(error.code, ERROR_CODES.UNSUPPORTED_PROTOCOL_VERSION);
  assert.deepEqual(error.context, { protocol: "3" });
  assert.equal(refusalReason(error), "unsupported_protocol_version");
});

Deno.test("refusals: an unknown transport is code 0, unknown_transport", async () => {
  const { response, error } = await refusal(
    {},
    (target) => request(target.url({ transport: "flashsocket" })),
  );
  assert.equal(response.status, 400);
  assert.equal(error.code, ERROR_CODES.UNKNOWN_TRANSPORT);
  assert.deepEqual(error.context, { transport: "flashsocket" });
  assert.equal(refusalReason(error), "unknown_transport");
});

Deno.test("refusals: an unknown sid is code 1, unknown_sid", async () => {
  const { response, error } = await refusal({}, (target) => request(target.url({ sid: "gone" })));
  assert.equal(response.status, 400);
  assert.equal(error.code, ERROR_CODES.UNKNOWN_SID);
  assert.deepEqual(error.context, { sid: "gone" });
  assert.equal(refusalReason(error), "unknown_sid");
});

Deno.test("refusals: a POST handshake is code 2, bad_handshake_method", async () => {
  const { response, error } = await refusal(
    {},
    (target) => request(target.url(), { method: "POST", body: "4x" }),
  );
  assert.equal(response.status, 400);
  assert.equal(error.code, ERROR_CODES.BAD_HANDSHAKE_METHOD);
  assert.deepEqual(error.context, { method: "POST" });
  assert.equal(refusalReason(error), "bad_handshake_method");
});

Deno.test("refusals: the websocket transport without an upgrade is code 3, bad_request", async () => {
  const { response, error } = await refusal(
    {},
    (target) => request(target.url({ transport: "websocket" })),
  );
  assert.equal(response.status, 400);
  assert.equal(error.code, ERROR_CODES.BAD_REQUEST);
  assert.equal(refusalReason(error), "bad_request");
});

Deno.test("refusals: a poll on a sid upgraded to WebSocket is code 3, bad_request", async () => {
  let ws: RawWebSocket | undefined;
  try {
    const { error } = await refusal({}, async (target) => {
      const { sid } = await pollingHandshake(target);
      const session = target.engine.clients.get(sid)!;
      ws = new RawWebSocket(target.url({ sid, transport: "websocket" }, "ws"));
      await ws.opened;
      ws.send("2probe");
      assert.equal(await ws.nextText(), "3probe");
      const upgraded = waitFor(session, "upgrade");
      ws.send("5");
      await upgraded;
      return request(target.url({ sid }));
    });
    assert.equal(error.code, ERROR_CODES.BAD_REQUEST);
    assert.deepEqual(error.context, {
      name: "TRANSPORT_MISMATCH",
      transport: "polling",
      previousTransport: "websocket",
    });
    assert.equal(refusalReason(error), "bad_request");
  } finally {
    await ws?.close();
  }
});

Deno.test("refusals: a disallowed origin is code 4, cors", async () => {
  const { response, error } = await refusal(
    { cors: { origin: ["http://a.example"] } },
    (target) => request(target.url(), { headers: { Origin: "http://evil.example" } }),
  );
  assert.equal(response.status, 403);
  assert.equal(error.code, ERROR_CODES.FORBIDDEN);
  assert.deepEqual(error.context, { reason: "cors", origin: "http://evil.example" });
  assert.equal(refusalReason(error), "cors");
});

Deno.test("refusals: allowRequest throwing is code 4, forbidden, with its message", async () => {
  const { response, error } = await refusal(
    {
      allowRequest() {
        throw new Error("token required");
      },
    },
    (target) => request(target.url()),
  );
  assert.equal(response.status, 403);
  assert.equal(error.code, ERROR_CODES.FORBIDDEN);
  assert.equal(error.message, "token required");
  assert.deepEqual(error.context, { message: "token required" });
  assert.equal(refusalReason(error), "forbidden");
});

/** An error `allowRequest` may throw, with an HTTP status and a reason code. */
class Refused extends Error {
  constructor(readonly code: string, readonly status = 403) {
    super(`refused: ${code}`);
  }
}

Deno.test("refusals: an allowRequest error's code names the reason and its status is kept", async () => {
  const limited = await refusal(
    { allowRequest: () => Promise.reject(new Refused("handshake_limited")) },
    (target) => request(target.url()),
  );
  assert.equal(limited.response.status, 403);
  assert.equal(limited.error.code, ERROR_CODES.FORBIDDEN);
  assert.equal(refusalReason(limited.error), "handshake_limited");

  const closing = await refusal(
    { allowRequest: () => Promise.reject(new Refused("shutting_down", 503)) },
    (target) => request(target.url()),
  );
  assert.equal(closing.response.status, 503);
  assert.equal(closing.error.code, ERROR_CODES.FORBIDDEN);
  assert.equal(refusalReason(closing.error), "shutting_down");
});

Deno.test("refusals: an allowRequest code that is not one lower_snake word counts as forbidden", () => {
  const error = (reason: string): ConnectionError => ({
    req: new Request("http://localhost/"),
    code: ERROR_CODES.FORBIDDEN,
    message: "no",
    context: { reason },
  });
  assert.equal(refusalReason(error("ECONNRESET")), "forbidden");
  assert.equal(refusalReason(error("two words")), "forbidden");
  assert.equal(refusalReason(error("x".repeat(100))), "forbidden");
  assert.equal(refusalReason(error("too_busy")), "too_busy");
});

Deno.test("refusals: a malformed WebSocket upgrade is code 3, bad_request, with the runtime's error", async () => {
  const { error } = await refusal({}, (target) =>
    request(target.url({ transport: "websocket" }), {
      headers: { Upgrade: "websocket", Connection: "Upgrade" },
    }));
  assert.equal(error.code, ERROR_CODES.BAD_REQUEST);
  assert.equal(typeof error.context.error, "string");
  assert.equal(refusalReason(error), "bad_request");
});

type LogLine = Record<string, unknown>;

/** A logger that keeps its lines as objects. */
function recordingLogger(): EngineLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  return {
    lines,
    info: (event, fields) => lines.push({ level: "info", event, ...fields }),
    warn: (event, fields) => lines.push({ level: "warn", event, ...fields }),
  };
}

Deno.test("refusals: a flood of bad requests logs one line per reason, and the rest as a count", async () => {
  const logger = recordingLogger();
  {
    await using target = startEngine({ logger });
    for (let i = 0; i < 20; i++) {
      assert.equal((await request(target.url({ sid: `gone-${i}` }))).status, 400);
    }
    assert.equal((await request(target.url({ EIO: "3" }))).status, 400);
    assert.deepEqual(logger.lines, [
      {
        level: "info",
        event: "request.refused",
        reason: "unknown_sid",
        status: 400,
        code: ERROR_CODES.UNKNOWN_SID,
        message: "Session ID unknown",
        address: "127.0.0.1",
      },
      {
        level: "info",
        event: "request.refused",
        reason: "unsupported_protocol_version",
        status: 400,
        code: ERROR_CODES.UNSUPPORTED_PROTOCOL_VERSION,
        message: "Unsupported protocol version",
        address: "127.0.0.1",
        protocol: "3",
      },
    ]);
  }
  // Closing reports what the open windows held back.
  assert.deepEqual(logger.lines.slice(2), [
    { level: "warn", event: "request.refused.suppressed", reason: "unknown_sid", suppressed: 19 },
  ]);
});

Deno.test("refusals: the refusal log counts a reason's window, reports it at its end and starts afresh", async () => {
  const windowMs = 50;
  const logger = recordingLogger();
  using log = closing(new RefusalLog(logger, windowMs));
  const describe = () => ({ address: "192.0.2.1" });
  const events = () =>
    logger.lines.map(({ event, reason, suppressed }) => [event, reason, suppressed]);
  for (let i = 0; i < 5; i++) log.record("unknown_sid", describe);
  log.record("cors", describe);
  assert.deepEqual(events(), [
    ["request.refused", "unknown_sid", undefined],
    ["request.refused", "cors", undefined],
  ]);
  await until(() => logger.lines.length === 3, 2_000, "the first window's count");
  assert.deepEqual(events()[2], ["request.refused.suppressed", "unknown_sid", 4]);
  // The count opened another window: a refusal now is counted, not logged.
  log.record("unknown_sid", describe);
  await until(() => logger.lines.length === 4, 2_000, "the second window's count");
  assert.deepEqual(events()[3], ["request.refused.suppressed", "unknown_sid", 1]);
  // A window with nothing counted ends quietly; the next refusal is logged again.
  await sleep(windowMs * 3);
  assert.equal(logger.lines.length, 4);
  log.record("unknown_sid", describe);
  assert.deepEqual(logger.lines[4], {
    level: "info",
    event: "request.refused",
    reason: "unknown_sid",
    address: "192.0.2.1",
  });
});
