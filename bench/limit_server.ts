/**
 * The runtime's ceiling: `Deno.serve` + `Deno.upgradeWebSocket` speaking just enough Engine.IO v4 /
 * Socket.IO v5 for the load generator and a stock client — no storage, no auth check, no JSON
 * parsing. Each `42["message",{…}]` frame is rewritten as text into `42["load",[{…}]]` and sent
 * to every socket; an ack id is answered with `43<id>[{"ok":true,"message":{…}}]`.
 *
 * Run: `PORT=3001 deno run -A bench/limit_server.ts`
 * @module
 */

const PING_INTERVAL_MS = 25_000;
const PING_TIMEOUT_MS = 20_000;
/** What follows `42` (and an ack id) in a `message` event frame. */
const MESSAGE_EVENT = '["message",';

const port = Number(Deno.env.get("PORT") ?? 3001);
const hostname = Deno.env.get("HOSTNAME") ?? "127.0.0.1";
const sockets = new Set<WebSocket>();
let nextSid = 0;

/** The text of an event frame's first argument, and its ack id ("" when none). */
function splitEvent(frame: string): { ackId: string; argument: string } | undefined {
  let end = 2;
  while (end < frame.length && frame.charCodeAt(end) >= 48 && frame.charCodeAt(end) <= 57) end++;
  if (!frame.startsWith(MESSAGE_EVENT, end)) return undefined;
  return { ackId: frame.slice(2, end), argument: frame.slice(end + MESSAGE_EVENT.length, -1) };
}

function onFrame(socket: WebSocket, frame: string): void {
  if (frame === "2") return socket.send("3");
  if (frame.startsWith("40")) {
    socket.send(`40{"sid":"s${nextSid++}"}`);
    socket.send('42["load",[]]');
    sockets.add(socket);
    return;
  }
  if (!frame.startsWith("42")) return;
  const event = splitEvent(frame);
  if (!event) return;
  const broadcast = `42["load",[${event.argument}]]`;
  for (const peer of sockets) peer.send(broadcast);
  if (event.ackId) socket.send(`43${event.ackId}[{"ok":true,"message":${event.argument}}]`);
}

setInterval(() => {
  for (const socket of sockets) socket.send("2");
}, PING_INTERVAL_MS);

Deno.serve({ port, hostname, onListen: () => console.log(`limit listening on ${port}`) }, (req) => {
  if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("WebSocket only", { status: 400 });
  }
  const { socket, response } = Deno.upgradeWebSocket(req, { idleTimeout: 0 });
  socket.onopen = () => {
    const open = {
      sid: `e${nextSid++}`,
      upgrades: [],
      pingInterval: PING_INTERVAL_MS,
      pingTimeout: PING_TIMEOUT_MS,
      maxPayload: 1_000_000,
    };
    socket.send(`0${JSON.stringify(open)}`);
  };
  socket.onmessage = (event) => onFrame(socket, event.data);
  socket.onclose = () => sockets.delete(socket);
  socket.onerror = () => sockets.delete(socket);
  return response;
});
