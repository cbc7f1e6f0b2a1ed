/**
 * The reference: the same chat contract on Node.js + the npm `socket.io` server (default `ws`
 * transport), history in memory. Started by `bench/run.ts` with PORT, HOSTNAME and JWT_SECRET.
 *
 * - auth: HS256 JWT in `auth.token`, verified with `jose`; the user is `{ id: sub, name }`;
 * - on connect: `load` of the last 50 messages;
 * - `message {message}` → stored in memory → `load [message]` to everyone → ack `{ok, message}`.
 * @module
 */
import { createServer } from "node:http";
import process from "node:process";
import { jwtVerify } from "jose";
import { Server } from "socket.io";

const HISTORY_LIMIT = 50;
const MAX_MESSAGE_LENGTH = 2000;
const CHAT_ROOM = "chat";

const port = Number(process.env.PORT ?? 3000);
const hostname = process.env.HOSTNAME ?? "127.0.0.1";
const secret = new TextEncoder().encode(process.env.JWT_SECRET ?? "");
const redisUrl = process.env.REDIS_URL;

/** The newest messages, oldest first; never longer than HISTORY_LIMIT. */
const history = [];
let nextId = 0;

const httpServer = createServer();
const io = new Server(httpServer, { serveClient: false });
/** The Redis client when REDIS_URL is set; configured as our server's `src/cluster.ts` does. */
let redis;
if (redisUrl) {
  const [{ createClient }, { createAdapter }] = await Promise.all([
    import("redis"),
    import("@socket.io/redis-streams-adapter"),
  ]);
  redis = createClient({ url: redisUrl });
  redis.on("error", (error) => console.error(`redis: ${error.message}`));
  await redis.connect();
  io.adapter(createAdapter(redis, { blockTimeInMs: 1_000 }));
}

io.use(async (socket, next) => {
  try {
    const token = socket.handshake.auth?.token ?? "";
    const { payload } = await jwtVerify(token, secret, { algorithms: ["HS256"] });
    if (typeof payload.sub !== "string") throw new Error("no sub");
    socket.data.user = { id: payload.sub, name: payload.name ?? payload.sub };
    next();
  } catch {
    next(Object.assign(new Error("invalid_token"), { data: { code: "invalid_token" } }));
  }
});

io.on("connection", (socket) => {
  socket.emit("load", history.slice(-HISTORY_LIMIT));
  socket.join(CHAT_ROOM);
  socket.on("message", (payload, ack) => {
    const text = typeof payload?.message === "string" ? payload.message.trim() : "";
    if (text.length === 0 || text.length > MAX_MESSAGE_LENGTH) {
      const error = { code: "invalid_payload" };
      socket.emit("error", error);
      if (typeof ack === "function") ack({ ok: false, error });
      return;
    }
    const message = {
      id: String(++nextId).padStart(12, "0"),
      user: socket.data.user,
      message: text,
      createdAt: new Date().toISOString(),
    };
    history.push(message);
    if (history.length > HISTORY_LIMIT) history.shift();
    io.to(CHAT_ROOM).emit("load", [message]);
    if (typeof ack === "function") ack({ ok: true, message });
  });
});

httpServer.listen(port, hostname, () => {
  console.log(`reference listening on http://${hostname}:${port}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    io.close();
    redis?.destroy();
    process.exit(0);
  });
}
