/**
 * Every environment variable the server reads, declared once in {@link SETTINGS} (the auth ones in
 * `auth_config.ts`), parsed and validated in one place; the table in docs/configuration.md is
 * generated from the same declarations.
 *
 * @example
 * ```ts
 * const config = loadConfig(Deno.env.toObject());
 * console.log(config.port); // 3000 unless PORT is set
 * ```
 * @module
 */
import {
  AUTH_SETTINGS,
  type AuthConfig,
  MIN_SECRET_BYTES,
  readAuthConfig,
} from "./auth/settings.ts";
import { parseAddressRange } from "./http/client_address.ts";
import { parseDuration } from "./duration.ts";
import { LOG_LEVELS } from "./ops/log.ts";
import { EVENT_TYPES, type EventType, PUBLISH_HOOK_FAILURES } from "./hooks/mod.ts";
import {
  boolean,
  ConfigError,
  custom,
  duration,
  type Env,
  integer,
  oneOf,
  readSettings,
  type Setting,
  settingDefaults,
  settingText,
  type SettingValues,
  splitList,
  text,
  url,
} from "./settings.ts";

export { ConfigError } from "./settings.ts";

/** Every setting but the auth ones, by its key in {@link Config}, in the order docs/configuration.md lists them. */
export const SETTINGS = {
  port: integer("PORT", {
    default: 3000,
    min: 0,
    max: 65_535,
    doc: "TCP port; `0` picks a free one.",
  }),
  hostname: text("HOST", {
    default: "0.0.0.0",
    allowed: "address or host name",
    doc: "Interface to listen on. `HOSTNAME` is not read: shells and containers set it to the " +
      "machine's name.",
  }),
  tlsCertFile: text("TLS_CERT_FILE", {
    allowed: "file path",
    defaultDoc: "unset",
    doc: "PEM certificate chain; with `TLS_KEY_FILE` (both or neither) the server speaks HTTPS " +
      "and WSS.",
  }),
  tlsKeyFile: text("TLS_KEY_FILE", {
    allowed: "file path",
    defaultDoc: "unset",
    doc: "PEM private key of `TLS_CERT_FILE`.",
  }),
  corsOrigin: custom("CORS_ORIGIN", parseCorsOrigins, {
    allowed: "`*` or origins, comma-separated",
    defaultDoc: "unset (no CORS headers)",
    doc: "Origins (`https://chat.example,http://localhost:5173`) allowed to connect from " +
      "browsers on other origins. Listed origins are echoed back with credentials allowed; `*` " +
      "is sent as a literal `*`, without credentials.",
  }),
  trustedProxies: custom("TRUSTED_PROXIES", parseTrustedProxies, {
    default: [],
    allowed: "addresses and CIDRs, comma-separated",
    defaultDoc: "unset (none)",
    doc: "Your reverse proxies (`10.0.0.0/8,::1`). Only from them is the client read from " +
      "`X-Forwarded-For` (right-most entry not a proxy); else it is ignored. The handshake limit " +
      "and logs use that address.",
  }),
  kvPath: text("KV_PATH", {
    default: "./data/chat.kv",
    allowed: "file path or `:memory:`",
    doc: "Deno KV file; its directory is created if missing. `:memory:` keeps nothing.",
  }),
  kvUrl: url("KV_URL", {
    protocols: ["http:", "https:"],
    defaultDoc: "unset",
    doc: "A KV Connect URL (self-hosted `denokv`, Deno Deploy KV) instead of `KV_PATH` (not " +
      "both), with `DENO_KV_ACCESS_TOKEN`, so instances on several hosts share one history.",
  }),
  kvLeaseMs: duration("KV_LEASE", {
    default: 15_000,
    min: 1000,
    max: 600_000,
    doc: "`KV_URL` without `REDIS_URL`: one instance holds a lease in the KV, and a second exits " +
      "1. A killed instance's lease runs out this long after its last renewal (every third of it); " +
      "a restart before then is refused. (A `KV_PATH` file has a lock instead.)",
  }),
  databaseUrl: custom("DATABASE_URL", parseDatabaseUrl, {
    allowed: "`postgres://` or `postgresql://` URL",
    defaultDoc: "unset (the KV store)",
    doc:
      "PostgreSQL holds the history, memberships, read markers and bans instead of Deno KV (not " +
      "with `KV_PATH` or `KV_URL`), so instances on several hosts share one history " +
      "(`postgres://chat:secret@db.internal:5432/chat?sslmode=verify-full`). TLS as `sslmode` " +
      "says: `disable` (the default), `prefer`, `require` (unverified), `verify-full`. Tables are " +
      "created and migrated at start. See [scaling.md](scaling.md).",
  }),
  databasePoolSize: integer("DATABASE_POOL_SIZE", {
    default: 10,
    min: 1,
    max: 1000,
    doc: "Most connections one instance opens to `DATABASE_URL`.",
  }),
  databaseStatementTimeoutMs: duration("DATABASE_STATEMENT_TIMEOUT", {
    default: 10_000,
    max: 3_600_000,
    doc: "A `DATABASE_URL` statement running longer is cancelled and its request fails; `0`: no " +
      "limit.",
  }),
  redisUrl: url("REDIS_URL", {
    protocols: ["redis:", "rediss:"],
    defaultDoc: "unset (one instance)",
    doc: "Several instances share fan-out, sessions and presence through Redis " +
      "(`redis://host:6379`). See [scaling.md](scaling.md).",
  }),
  instanceId: text("INSTANCE_ID", {
    pattern: /^[A-Za-z0-9_.-]{1,64}$/,
    allowed: "1–64 letters, digits, `.`, `_`, `-`",
    expected: "1 to 64 letters, digits, '.', '_' or '-'",
    defaultDoc: "random",
    doc: "This instance's name in logs and message ids.",
  }),
  editWindowMs: duration("EDIT_WINDOW", {
    default: 15 * 60_000,
    max: 365 * 86_400_000,
    doc: "How long authors may edit or delete their own messages; tokens with the " +
      "`chat:moderate` scope may at any time. `0`: authors never may.",
  }),
  commitGather: custom("COMMIT_GATHER", parseGather, {
    default: "auto" as number | "auto",
    allowed: "`auto`, or a duration of at most 100ms",
    defaultDoc: "`auto`",
    doc: "Under load (while commits carry several messages), how long to gather messages into " +
      "the next commit: fewer commits, and several messages of a room in one frame per " +
      "recipient. `auto` gathers about as long as the store's commits take (at most 10 ms), " +
      "counted from the oldest waiting message, so a message waits at most about one commit " +
      "more; a duration fixes the wait; `0` turns it off. A quiet chat never waits.",
  }),
  historyLimit: integer("HISTORY_LIMIT", {
    default: 50,
    min: 0,
    max: 1000,
    doc: "Messages sent in `load` on connect.",
  }),
  catchupLimit: integer("CATCHUP_LIMIT", {
    default: 1000,
    min: 1,
    max: 10_000,
    doc: "Most messages in the catch-up `load` of a client that connects with `auth.lastId`.",
  }),
  maxMessageLength: integer("MAX_MESSAGE_LENGTH", {
    default: 2000,
    min: 1,
    // A Deno KV value holds at most 64 KiB: 10,000 characters fit even at 4 bytes each.
    max: 10_000,
    doc: "Longest message, in characters (Unicode code points) after trimming. Times " +
      "`HISTORY_LIMIT` or `CATCHUP_LIMIT`, it must keep one history under 64 MiB.",
  }),
  historyMaxAgeMs: duration("HISTORY_MAX_AGE", {
    min: 60_000,
    defaultDoc: "unset (keep)",
    doc: "Messages older than this (`12h`, `30d`, …) are no longer served and are deleted.",
  }),
  historyMaxCount: integer("HISTORY_MAX_COUNT", {
    min: 1,
    max: 10_000_000,
    allowed: "`HISTORY_LIMIT` (at least 1)–10000000",
    defaultDoc: "unset (keep all)",
    doc: "Keep only the newest this many messages.",
  }),
  membershipMaxAgeMs: duration("MEMBERSHIP_MAX_AGE", {
    default: 90 * 86_400_000,
    min: 60_000,
    defaultDoc: "`HISTORY_MAX_AGE` when set, else `90d`",
    doc: "A user's read marker and room-list membership (a joined room, a DM) of a room they " +
      "have not sent to, read or joined for this long are deleted: the room leaves their " +
      "`rooms` list and its unread count starts from the oldest message kept.",
  }),
  pingInterval: integer("PING_INTERVAL", {
    default: 25_000,
    min: 100,
    max: 3_600_000,
    doc: "Milliseconds between server heartbeats.",
  }),
  pingTimeout: integer("PING_TIMEOUT", {
    default: 20_000,
    min: 100,
    max: 3_600_000,
    doc: "Milliseconds a client has to answer a heartbeat before it is dropped.",
  }),
  maxHttpBufferSize: integer("MAX_HTTP_BUFFER_SIZE", {
    default: 1_000_000,
    min: 1024,
    max: 100_000_000,
    doc: "Largest accepted Engine.IO packet or polling body, in bytes; larger ones close the " +
      "session.",
  }),
  connectionRecoveryMs: duration("CONNECTION_RECOVERY", {
    default: 0,
    defaultDoc: "`0` (off)",
    doc: "How long socket.io keeps a dropped session for recovery (`90s`, `2m`, …). When on, " +
      "socket.io appends an offset argument to every broadcast, which clients other than the " +
      "JavaScript one see as an extra argument (see short drops in " +
      "[events.md](events.md#delivery-guarantees)).",
  }),
  vectoredWrites: boolean("DENO_USE_WRITEV", {
    default: true,
    doc: "Deno's own switch for vectored WebSocket writes, on by default here (`0` turns it " +
      "off): large frames (history, presence) are sent without a copy that would otherwise keep " +
      "a write buffer of that size per connection (about 20 KB less memory per client).",
  }),
  rateLimitPerMinute: integer("RATE_LIMIT_PER_MIN", {
    default: 60,
    min: 1,
    max: 1_000_000,
    doc: "Messages per user per minute (a token bucket shared by the user's connections).",
  }),
  rateLimitBurst: integer("RATE_LIMIT_BURST", {
    default: 20,
    min: 1,
    max: 1_000_000,
    doc: "Messages a user may send at once before the per-minute rate applies.",
  }),
  typingLimitPerMinute: integer("RATE_LIMIT_TYPING_PER_MIN", {
    default: 120,
    min: 1,
    max: 1_000_000,
    doc: "`typing` events per user per minute, a sixth of it at once; over it they are dropped.",
  }),
  historyLimitPerMinute: integer("RATE_LIMIT_HISTORY_PER_MIN", {
    default: 60,
    min: 1,
    max: 1_000_000,
    doc: "`history` requests per user per minute, a sixth of it at once; over it `rate_limited`.",
  }),
  refreshLimitPerMinute: integer("RATE_LIMIT_REFRESH_PER_MIN", {
    default: 10,
    min: 1,
    max: 1_000_000,
    doc: "`auth:refresh` requests per user per minute, a sixth of it at once; over it " +
      "`rate_limited`.",
  }),
  maxPacketsPerSecond: integer("MAX_PACKETS_PER_SECOND", {
    default: 50,
    min: 0,
    max: 1_000_000,
    doc: "Packets one connection may send per second (ten seconds' worth at once); more closes " +
      "the connection before anything is parsed. `0` turns it off.",
  }),
  defaultRoom: custom("DEFAULT_ROOM", parseRoomId, {
    default: "general",
    allowed: "a room id: 1-64 of `a-z 0-9 _ - .`",
    doc: "The room every connection is in; `message`, `history` and `typing` without a `room` " +
      "go there. Must be one of `PUBLIC_ROOMS`.",
  }),
  publicRooms: custom("PUBLIC_ROOMS", parseRoomPatterns, {
    default: ["general"],
    allowed: "room ids and `prefix-*` patterns, comma-separated",
    defaultDoc: "`general`",
    doc: "Rooms anyone may join. A token's `rooms` claim adds rooms for its user; a DM room " +
      "`dm:<a>:<b>` is open to its two users only.",
  }),
  maxRoomsPerSocket: integer("MAX_ROOMS_PER_SOCKET", {
    default: 100,
    min: 1,
    max: 10_000,
    doc: "Rooms one connection may be in at once; one more `join` gets `too_many_rooms`.",
  }),
  maxListedUsers: integer("MAX_LISTED_USERS", {
    default: 1000,
    min: 1,
    max: 100_000,
    doc: "Most users a `presence` snapshot or a `join` ack's `online` lists. With more online, " +
      "`user:joined` and `user:left` stop and each batch sends one `presence:count` " +
      "`{ online, listed: false }` instead; they resume (after `presence:count` with " +
      "`listed: true` and a fresh `presence`) once at most 90 % of it are online, 5 s after " +
      "the counting began at the soonest. Bounds what " +
      "each connect costs when many are online: a snapshot and a small frame per batch.",
  }),
  readReceipts: boolean("READ_RECEIPTS", {
    default: true,
    doc: "Read receipts: `read` markers are announced to the room (`room:read`) and a `join` " +
      "ack lists the members' read positions. `0` keeps them private (`reads` is then empty); " +
      "markers still count unread.",
  }),
  joinLimitPerMinute: integer("RATE_LIMIT_JOIN_PER_MIN", {
    default: 60,
    min: 1,
    max: 1_000_000,
    doc: "`join` and `leave` events per user per minute each, a sixth of it at once; over it " +
      "`rate_limited`.",
  }),
  readLimitPerMinute: integer("RATE_LIMIT_READ_PER_MIN", {
    default: 120,
    min: 1,
    max: 1_000_000,
    doc: "`read` markers per user per minute, a sixth of it at once; over it `rate_limited`.",
  }),
  roomsLimitPerMinute: integer("RATE_LIMIT_ROOMS_PER_MIN", {
    default: 12,
    min: 1,
    max: 1_000_000,
    doc: "`rooms` lists per user per minute, a sixth of it at once; over it `rate_limited`.",
  }),
  reactLimitPerMinute: integer("RATE_LIMIT_REACT_PER_MIN", {
    default: 60,
    min: 1,
    max: 1_000_000,
    doc: "`react` events per user per minute, a sixth of it at once; over it `rate_limited`.",
  }),
  errorEventsPerSecond: integer("MAX_ERROR_EVENTS_PER_SECOND", {
    default: 10,
    min: 1,
    max: 1_000_000,
    doc: "`error` events one connection receives per second at most; acks still carry every " +
      "refusal.",
  }),
  maxSocketsPerUser: integer("MAX_SOCKETS_PER_USER", {
    default: 10,
    min: 1,
    max: 10_000,
    doc: "Simultaneous connections per user; one more gets `connect_error` " +
      "`too_many_connections`.",
  }),
  handshakeLimitPerMinute: integer("HANDSHAKE_LIMIT_PER_MIN", {
    default: 120,
    min: 0,
    max: 1_000_000,
    doc: "New connections per client IP address per minute (bursts of a quarter of it); `0` " +
      "turns it off.",
  }),
  logLevel: oneOf("LOG_LEVEL", LOG_LEVELS, {
    default: "info",
    doc: "Lowest level written. Logs are one JSON object per line on stdout.",
  }),
  apiKey: text("API_KEY", {
    allowed: "a secret, at least 16 characters",
    pattern: /^\S{16,}$/,
    expected: "at least 16 characters without spaces",
    defaultDoc: "unset (no server API)",
    doc: "Turns on the server API under `/api/v1/`; requests carry `Authorization: Bearer " +
      "<API_KEY>`.",
  }),
  apiAuthFailuresPerMinute: integer("API_AUTH_FAILURES_PER_MIN", {
    default: 30,
    min: 1,
    max: 1_000_000,
    doc: "Wrong `API_KEY`s one client address may present per minute (all at once, at most); " +
      "past that every API request from the address answers 429 `rate_limited` with " +
      "`Retry-After` until the budget refills. Other addresses are not affected.",
  }),
  webhookUrls: custom("WEBHOOK_URL", parseWebhookUrls, {
    default: [],
    allowed: "`http://` or `https://` URLs, comma-separated, at most 8",
    defaultDoc: "unset (no webhooks)",
    doc: "Your backend's endpoints: each event is POSTed to each, signed per Standard Webhooks " +
      "with `WEBHOOK_SECRET`, at least once and in order per room (see " +
      "[webhooks.md](webhooks.md)). Unset, nothing is written to the outbox.",
  }),
  webhookSecret: custom("WEBHOOK_SECRET", parseWebhookSecret, {
    allowed: "`whsec_` and the base64 of 24–64 random bytes",
    defaultDoc: "unset",
    doc: "The key webhooks are signed with (`whsec_$(openssl rand -base64 32)`); needed with " +
      "`WEBHOOK_URL`. Receivers verify with the `standardwebhooks` library.",
  }),
  webhookEvents: custom("WEBHOOK_EVENTS", parseEventTypes, {
    default: [...EVENT_TYPES],
    allowed: "event types, comma-separated",
    defaultDoc: "all",
    doc: `Which events are sent: ${EVENT_TYPES.map((type) => `\`${type}\``).join(", ")}.`,
  }),
  webhookTimeoutMs: duration("WEBHOOK_TIMEOUT", {
    default: 10_000,
    min: 100,
    max: 600_000,
    doc: "How long a receiver has to answer; no answer counts as a failure and is retried.",
  }),
  webhookMaxAgeMs: duration("WEBHOOK_MAX_AGE", {
    default: 86_400_000,
    min: 1000,
    max: 30 * 86_400_000,
    doc: "An event still unsent this long after it happened is dropped and counted " +
      '(`chat_webhooks_dropped_total{reason="expired"}`); until then failures are retried, ' +
      "1 s, 2 s, 4 s, … up to a minute apart.",
  }),
  webhookOutboxMax: integer("WEBHOOK_OUTBOX_MAX", {
    default: 100_000,
    min: 1,
    max: 10_000_000,
    doc: "Most events the outbox keeps while receivers are down; past it the oldest are dropped " +
      'and counted (`reason="full"`): the chat itself never waits for a receiver.',
  }),
  webhookDebounceMs: duration("WEBHOOK_DEBOUNCE", {
    default: 5000,
    max: 600_000,
    doc: "How long `user.offline` and `room.member_left` wait for the user to come back (a page " +
      "reload) before they are sent; back in time, neither that event nor the next " +
      "`user.online`/`room.member_joined` is sent.",
  }),
  missedAfterMs: duration("MISSED_AFTER", {
    default: 30_000,
    max: 7 * 86_400_000,
    doc: "A DM or a mention left unread this long by a user with no connection anywhere gives " +
      "one `message.missed` webhook (and Web Push), with every such message of that user " +
      "gathered meanwhile.",
  }),
  publishHookUrl: url("PUBLISH_HOOK_URL", {
    protocols: ["http:", "https:"],
    defaultDoc: "unset (no publish hook)",
    doc: "Your backend's endpoint asked, in a POST signed with `WEBHOOK_SECRET`, about each " +
      "message before it is stored: it allows, denies or modifies it (see " +
      "[webhooks.md](webhooks.md#the-publish-hook)). Server API publishes ask too unless they " +
      "say `skipPublishHook`.",
  }),
  publishHookTimeoutMs: duration("PUBLISH_HOOK_TIMEOUT", {
    default: 2000,
    min: 50,
    max: 60_000,
    doc: "How long the publish hook has to answer; later is a failure (`PUBLISH_HOOK_FAILURE`). " +
      "The sender waits this long at most.",
  }),
  publishHookFailure: oneOf("PUBLISH_HOOK_FAILURE", PUBLISH_HOOK_FAILURES, {
    default: "deny",
    doc: "What a publish hook that fails (no answer in time, a non-2xx, a malformed answer) " +
      "means: `deny` refuses the message (`rejected`), so nothing unchecked is shown; `allow` " +
      "stores it, so the chat works while the backend is down.",
  }),
  vapidPublicKey: text("VAPID_PUBLIC_KEY", {
    allowed: "base64url of an uncompressed P-256 public key (87 characters)",
    pattern: /^B[A-Za-z0-9_-]{86}$/,
    expected: "the base64url of 65 bytes (`npx web-push generate-vapid-keys`)",
    defaultDoc: "unset (no Web Push)",
    doc: "With `VAPID_PRIVATE_KEY` and `VAPID_SUBJECT`, turns on Web Push: the page offers " +
      '"Notify me", and a missed DM or mention is pushed to the user\'s browsers (see ' +
      "[push.md](push.md)).",
  }),
  vapidPrivateKey: text("VAPID_PRIVATE_KEY", {
    allowed: "base64url of a P-256 private key (43 characters)",
    pattern: /^[A-Za-z0-9_-]{43}$/,
    expected: "the base64url of 32 bytes",
    defaultDoc: "unset",
    doc: "The private half of the VAPID key pair; needed with `VAPID_PUBLIC_KEY`.",
  }),
  vapidSubject: text("VAPID_SUBJECT", {
    allowed: "a `mailto:` or `https:` URL",
    pattern: /^(mailto:\S+@\S+|https:\/\/\S+)$/,
    expected: "a mailto: or https:// URL",
    defaultDoc: "unset",
    doc: "How push services reach the operator (`mailto:ops@example.com`); needed with " +
      "`VAPID_PUBLIC_KEY`.",
  }),
  pushPrivateEndpoints: boolean("PUSH_PRIVATE_ENDPOINTS", {
    default: false,
    doc: "Push to endpoints whose names resolve to loopback, private or link-local addresses " +
      "(a push service inside your network). Off, the server resolves each endpoint's name " +
      "before sending and removes a subscription that leads inside unsent (see push.md).",
  }),
  metricsToken: text("METRICS_TOKEN", {
    allowed: "text",
    defaultDoc: "unset (open)",
    doc: "When set, `/metrics` needs `Authorization: Bearer <METRICS_TOKEN>`.",
  }),
  shutdownTimeoutMs: duration("SHUTDOWN_TIMEOUT", {
    default: 10_000,
    min: 100,
    doc: "Longest a graceful shutdown may take before the process exits anyway (exit code 1).",
  }),
  devLogin: boolean("DEV_LOGIN", {
    default: false,
    doc: "`1` serves `POST /dev/token` so the demo page can log in without an identity " +
      "provider; needs `JWT_SECRET`. Development only: anyone can mint a token, though only for " +
      "`dev-` user ids (any other requested `id` gets 400).",
  }),
};

/** Every setting the server reads, auth first: the rows of docs/configuration.md's table. */
export const ALL_SETTINGS: readonly Setting<unknown>[] = [
  ...Object.values(AUTH_SETTINGS),
  ...Object.values(SETTINGS),
];

/** The defaults used when a variable is unset. */
export const DEFAULTS = settingDefaults(SETTINGS);

/** Settings read from several variables at once, or with a default that is not a constant. */
type ComposedSettings = "kvUrl" | "tlsCertFile" | "tlsKeyFile" | "instanceId";

/** Server configuration: each setting by its key in {@link SETTINGS}, and those composed here. */
export interface Config extends Omit<SettingValues<typeof SETTINGS>, ComposedSettings> {
  /** How client tokens are verified (`JWT_*`, `REQUIRE_WRITE_SCOPE`); see {@link AuthConfig}. */
  auth: AuthConfig;
  /** Deno KV location: `KV_URL` when set, else `KV_PATH`. */
  kvPath: string;
  /** This instance's name (`INSTANCE_ID`, else random). */
  instanceId: string;
  /** PEM certificate and key files, both set → HTTPS/WSS (`TLS_CERT_FILE`, `TLS_KEY_FILE`). */
  tls?: { certFile: string; keyFile: string };
}

/** Parses and validates the whole configuration; throws {@link ConfigError} on the first bad value. */
export function loadConfig(env: Env): Config {
  const auth = readAuthConfig(env);
  const { kvUrl, tlsCertFile, tlsKeyFile, instanceId, ...settings } = readSettings(SETTINGS, env);
  if (kvUrl !== undefined && settingText(SETTINGS.kvPath, env) !== undefined) {
    throw new ConfigError("KV_URL", "set KV_PATH or KV_URL, not both");
  }
  const kvSet = kvUrl !== undefined || settingText(SETTINGS.kvPath, env) !== undefined;
  if (settings.databaseUrl !== undefined && kvSet) {
    throw new ConfigError(
      "DATABASE_URL",
      "set DATABASE_URL or KV_PATH/KV_URL, not both (the history is in one store)",
    );
  }
  const config: Config = {
    ...settings,
    auth,
    kvPath: kvUrl ?? settings.kvPath,
    instanceId: instanceId ?? crypto.randomUUID().slice(0, 8),
  };
  const tls = composeTls(tlsCertFile, tlsKeyFile);
  if (tls !== undefined) config.tls = tls;
  // Markers and memberships need not outlive the history they point into.
  if (settingText(SETTINGS.membershipMaxAgeMs, env) === undefined) {
    config.membershipMaxAgeMs = config.historyMaxAgeMs ?? config.membershipMaxAgeMs;
  }
  checkHistoryMaxCount(config, env);
  checkDefaultRoom(config);
  if (config.devLogin && auth.key.kind !== "secret") {
    throw new ConfigError("DEV_LOGIN", "needs JWT_SECRET: dev tokens are signed with it");
  }
  if (config.devLogin && !auth.algorithms.includes("HS256")) {
    throw new ConfigError(
      "DEV_LOGIN",
      `dev tokens are signed HS256, which JWT_ALGORITHMS (${auth.algorithms.join(",")}) refuses`,
    );
  }
  checkDeliverable(config);
  if (config.webhookUrls.length > 0 && config.webhookSecret === undefined) {
    throw new ConfigError("WEBHOOK_SECRET", "is required with WEBHOOK_URL: webhooks are signed");
  }
  checkVapid(config);
  if (config.publishHookUrl !== undefined && config.webhookSecret === undefined) {
    throw new ConfigError(
      "WEBHOOK_SECRET",
      "is required with PUBLISH_HOOK_URL: the hook's requests are signed",
    );
  }
  return config;
}

/** Web Push needs all three VAPID settings, or none. */
function checkVapid(config: Config): void {
  const given = [config.vapidPublicKey, config.vapidPrivateKey, config.vapidSubject];
  if (given.every((value) => value === undefined) || given.every((value) => value !== undefined)) {
    return;
  }
  const missing = (["VAPID_PUBLIC_KEY", "VAPID_PRIVATE_KEY", "VAPID_SUBJECT"] as const)
    .filter((_, index) => given[index] === undefined);
  throw new ConfigError(
    missing[0],
    "is required with the other VAPID_ settings: Web Push needs all three",
  );
}

/** The writer's gather: `auto`, or a duration of at most 100 ms. */
function parseGather(text: string, refuse: (detail: string) => never): number | "auto" {
  if (text.toLowerCase() === "auto") return "auto";
  const ms = parseDuration(text);
  if (ms !== undefined && ms >= 0 && ms <= 100) return ms;
  return refuse(`expected auto or a duration of at most 100ms, got "${text}"`);
}

/**
 * Most webhook URLs: each event is written once per URL in the commit of its change, so with KV
 * eight copies of an event (each under 48 KB) and the message itself stay within one commit.
 */
export const MAX_WEBHOOK_URLS = 8;

function parseWebhookUrls(text: string, refuse: (detail: string) => never): string[] {
  const urls = splitList(text);
  if (urls.length > MAX_WEBHOOK_URLS) {
    refuse(`at most ${MAX_WEBHOOK_URLS} URLs, got ${urls.length} (fan out in your backend)`);
  }
  for (const url of urls) {
    if (!URL.canParse(url) || !["http:", "https:"].includes(new URL(url).protocol)) {
      refuse(`"${url}" is not an http:// or https:// URL`);
    }
  }
  return urls;
}

/** Standard Webhooks secrets: `whsec_` and base64 of 24 to 64 bytes. */
function parseWebhookSecret(text: string, refuse: (detail: string) => never): string {
  const base64 = text.startsWith("whsec_") ? text.slice("whsec_".length) : undefined;
  let bytes = 0;
  try {
    bytes = base64 === undefined ? 0 : atob(base64).length;
  } catch {
    // Not base64: refused below.
  }
  if (bytes < 24 || bytes > 64) {
    refuse("expected whsec_ followed by the base64 of 24 to 64 random bytes");
  }
  return text;
}

function parseEventTypes(text: string, refuse: (detail: string) => never): EventType[] {
  const types = splitList(text);
  for (const type of types) {
    if (!(EVENT_TYPES as readonly string[]).includes(type)) {
      refuse(`"${type}" is not one of ${EVENT_TYPES.join(", ")}`);
    }
  }
  return types as EventType[];
}

/** A named room: 1–64 of `a-z 0-9 _ - .`, starting with a letter or digit. */
const ROOM_ID = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

function parseRoomId(text: string, refuse: (detail: string) => never): string {
  return ROOM_ID.test(text)
    ? text
    : refuse(`expected 1-64 of a-z 0-9 _ - . starting with a letter or digit, got "${text}"`);
}

function parseRoomPatterns(text: string, refuse: (detail: string) => never): string[] {
  const patterns = splitList(text);
  for (const pattern of patterns) {
    const prefix = pattern.endsWith("*") ? pattern.slice(0, -1) : undefined;
    const valid = prefix === undefined ? ROOM_ID.test(pattern) : /^[a-z0-9_.-]{0,63}$/.test(prefix);
    if (!valid) refuse(`"${pattern}" is neither a room id nor a pattern like team-*`);
  }
  return patterns;
}

/** Every connection is put in the default room: everyone must be allowed in it. */
function checkDefaultRoom(config: Config): void {
  const { defaultRoom, publicRooms } = config;
  const covers = (pattern: string) =>
    pattern.endsWith("*") ? defaultRoom.startsWith(pattern.slice(0, -1)) : pattern === defaultRoom;
  if (!publicRooms.some(covers)) {
    throw new ConfigError(
      "PUBLIC_ROOMS",
      `must include DEFAULT_ROOM "${defaultRoom}" (every connection is in it)`,
    );
  }
}

function composeTls(certFile?: string, keyFile?: string): Config["tls"] {
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined) {
    throw new ConfigError("TLS_CERT_FILE", "is required with TLS_KEY_FILE");
  }
  if (keyFile === undefined) {
    throw new ConfigError("TLS_KEY_FILE", "is required with TLS_CERT_FILE");
  }
  return { certFile, keyFile };
}

/** A store keeping fewer messages than `HISTORY_LIMIT` could not fill a connecting client's `load`. */
function checkHistoryMaxCount(config: Config, env: Env): void {
  const { historyMaxCount, historyLimit } = config;
  if (historyMaxCount === undefined || historyMaxCount >= historyLimit) return;
  const { variable, max } = SETTINGS.historyMaxCount;
  throw new ConfigError(
    variable,
    `expected a whole number from ${historyLimit} (HISTORY_LIMIT) to ${max}, ` +
      `got "${settingText(SETTINGS.historyMaxCount, env)}"`,
  );
}

const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

/** A PostgreSQL URL; refusals never repeat it, as it may hold a password. */
function parseDatabaseUrl(text: string, refuse: (detail: string) => never): string {
  if (!URL.canParse(text) || !["postgres:", "postgresql:"].includes(new URL(text).protocol)) {
    refuse("expected a URL starting with postgres:// or postgresql://");
  }
  const sslmode = new URL(text).searchParams.get("sslmode");
  if (sslmode !== null && !SSL_MODES.includes(sslmode)) {
    refuse(`sslmode must be one of ${SSL_MODES.join(", ")}, got "${sslmode}"`);
  }
  return text;
}

/** `url` with its password left out, for logs and error lines. */
export function redactUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password !== "") parsed.password = "***";
  return parsed.href;
}

function parseCorsOrigins(text: string, refuse: (detail: string) => never): string[] | "*" {
  if (text === "*") return "*";
  const origins = splitList(text);
  for (const origin of origins) {
    if (!URL.canParse(origin)) refuse(`"${origin}" is not an origin like https://chat.example`);
    const { origin: parsed } = new URL(origin);
    if (parsed !== origin) refuse(`"${origin}" is not an origin (try "${parsed}")`);
  }
  return origins;
}

function parseTrustedProxies(
  text: string,
  refuse: (detail: string) => never,
): readonly string[] | undefined {
  const entries = splitList(text);
  for (const entry of entries) {
    if (parseAddressRange(entry) === undefined) {
      refuse(`"${entry}" is not an IPv4/IPv6 address or CIDR (like 10.0.0.0/8 or fd00::/8)`);
    }
  }
  return entries.length === 0 ? undefined : entries;
}

/**
 * The most bytes one character of message text takes in a frame: a control character or a lone
 * surrogate is escaped by JSON as `\uXXXX`.
 */
const MAX_BYTES_PER_CHARACTER = 6;
/** A message's id, author, time and JSON punctuation, at most (ids and names are bounded). */
const MESSAGE_OVERHEAD_BYTES = 512;
/** The largest history (on connect or as a catch-up) the server agrees to deliver: 64 MiB. */
export const MAX_HISTORY_BYTES = 64 * 2 ** 20;

/** The most bytes one connection's history can take, however its messages are written. */
export function largestHistoryBytes(
  config: Pick<Config, "historyLimit" | "catchupLimit" | "maxMessageLength">,
): number {
  const messages = Math.max(config.historyLimit, config.catchupLimit);
  return messages * (config.maxMessageLength * MAX_BYTES_PER_CHARACTER + MESSAGE_OVERHEAD_BYTES);
}

/** Refuses history settings whose largest history could never be delivered to one client. */
function checkDeliverable(config: Config): void {
  const bytes = largestHistoryBytes(config);
  if (bytes <= MAX_HISTORY_BYTES) return;
  const variable = config.catchupLimit >= config.historyLimit ? "CATCHUP_LIMIT" : "HISTORY_LIMIT";
  const megabytes = (bytes / 2 ** 20).toFixed(0);
  throw new ConfigError(
    variable,
    `${variable} × MAX_MESSAGE_LENGTH allows a history of up to ${megabytes} MiB, over the ` +
      `${MAX_HISTORY_BYTES / 2 ** 20} MiB one connection may be sent; lower one of them`,
  );
}

/**
 * Settings that are accepted but weaken the server, one sentence each for the operator: a
 * `JWT_SECRET` shorter than {@link MIN_SECRET_BYTES}.
 */
export function configWarnings(config: Config): string[] {
  const warnings: string[] = [];
  const { key } = config.auth;
  if (key.kind === "secret") {
    const bytes = new TextEncoder().encode(key.secret).length;
    if (bytes < MIN_SECRET_BYTES) {
      warnings.push(
        `JWT_SECRET is ${bytes} bytes; HS256 secrets should be at least ${MIN_SECRET_BYTES} bytes ` +
          "(RFC 7518 §3.2), or tokens can be forged by guessing it: use `openssl rand -base64 48`",
      );
    }
  }
  return warnings;
}
