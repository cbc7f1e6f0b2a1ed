/**
 * The browser face of the chat: the demo page (`public/`), the stock Socket.IO browser client, and
 * an optional dev login that mints tokens for whoever asks, as Hono routes.
 *
 * @example
 * ```ts
 * import { DEFAULTS } from "../config.ts";
 * import { createHttpHandler } from "./mod.ts";
 * import { pageRoutes } from "./page.ts";
 *
 * // The server passes them to createApp(config, store, { routes }), with its own config.
 * const routes = pageRoutes({
 *   config: DEFAULTS,
 *   devLogin: { secret: "a-development-secret-of-32-bytes!" },
 * });
 * const readiness = () => Promise.resolve({ ready: true, checks: {} });
 * const handle = createHttpHandler({ readiness, routes });
 * await handle(new Request("http://localhost/")); // 200, the page
 * ```
 * @module
 */
import { Hono } from "hono";
import { decodeJwt } from "jose";
import { cleanDisplayName, signToken } from "../auth/token.ts";
import { type Config, DEFAULTS } from "../config.ts";
import { readBody } from "./body.ts";
import { HttpError, json } from "./errors.ts";

/** The settings the page follows, as the chat enforces them. */
export type PageSettings =
  & Pick<Config, "maxMessageLength" | "defaultRoom">
  & Partial<Pick<Config, "vapidPublicKey" | "vapidPrivateKey" | "vapidSubject">>;

/** What {@link pageRoutes} serves. */
export interface PageOptions {
  /** The chat's settings the page adapts to (default: the server's defaults). */
  config?: PageSettings;
  /** When set, `POST /dev/token` signs a token for any name, as a `dev-` user: development only. */
  devLogin?: {
    /** The server's `JWT_SECRET`; dev tokens are signed with it, as HS256. */
    secret: string;
    /** Lifetime of minted tokens (default 3600). */
    ttlSeconds?: number;
  };
}

/** Defaults of {@link PageOptions}. */
export const PAGE_DEFAULTS = { devLoginTtlSeconds: 3600 } as const;

/** Largest accepted `POST /dev/token` body, in bytes. */
export const MAX_DEV_LOGIN_BODY = 4096;
/** Longest dev login name, in characters, after trimming. */
export const MAX_DEV_NAME_LENGTH = 40;

const MAX_DEV_ID_LENGTH = 64;
/** Dev login mints only these ids, so a dev token can never name a real user. */
const DEV_ID_PREFIX = "dev-";
const DEV_ID_PATTERN = /^dev-[A-Za-z0-9._-]+$/;
const CONTROL_CHARACTERS = /\p{Cc}/u;

/** The page may load scripts, styles and sockets from this server only. */
// 'self' covers same-origin ws: and wss: too (CSP Level 3): the page talks to no other host.
const CONTENT_SECURITY_POLICY = "default-src 'self'; connect-src 'self'; " +
  "img-src 'self' data:; style-src 'self'; script-src 'self'; base-uri 'none'; " +
  "frame-ancestors 'none'";

// nosniff, like every response's, comes from the app's security headers middleware.
const SECURITY_HEADERS = {
  "Content-Security-Policy": CONTENT_SECURITY_POLICY,
  "Referrer-Policy": "no-referrer",
};

const HTML = "text/html; charset=utf-8";
const CSS = "text/css; charset=utf-8";
const JAVASCRIPT = "text/javascript; charset=utf-8";

/** Where the stock Socket.IO browser bundle is served (the engine answers `/socket.io/` only). */
export const CLIENT_SCRIPT_PATH = "/socket.io/socket.io.min.js";

/** The socket.io-client package's browser bundle, found in Deno's npm cache (or the binary). */
async function clientBundleUrl(): Promise<URL> {
  // The literal import() puts the package in the module graph, so `deno run` downloads it and
  // `deno compile` embeds it; until then `import.meta.resolve` cannot find its files.
  await import("socket.io-client");
  return new URL("dist/socket.io.min.js", import.meta.resolve("socket.io-client/package.json"));
}

interface StaticFile {
  contentType: string;
  /** Headers of its own. */
  headers?: Record<string, string>;
  location: () => URL | Promise<URL>;
}

function publicFile(name: string, contentType: string): StaticFile {
  return { contentType, location: () => new URL(`../../public/${name}`, import.meta.url) };
}

/** The page's own scripts: `app.js` and the modules it imports. */
export const PAGE_SCRIPTS = [
  "app.js",
  "format.js",
  "outbox.js",
  "push.js",
  "rooms.js",
  "session.js",
] as const;

/** The service worker: at the root, so its scope is the whole page. */
export const SERVICE_WORKER_PATH = "/sw.js";

const STATIC_FILES = new Map<string, StaticFile>([
  ["/", publicFile("index.html", HTML)],
  ["/index.html", publicFile("index.html", HTML)],
  ["/style.css", publicFile("style.css", CSS)],
  ...PAGE_SCRIPTS.map((name): [string, StaticFile] => [`/${name}`, publicFile(name, JAVASCRIPT)]),
  [CLIENT_SCRIPT_PATH, { contentType: JAVASCRIPT, location: clientBundleUrl }],
  [SERVICE_WORKER_PATH, {
    ...publicFile("sw.js", JAVASCRIPT),
    headers: { "Service-Worker-Allowed": "/" },
  }],
]);

/** A stable user id for a display name: `dev-<slug>`, or a hash when the name has no ASCII. */
async function devUserId(name: string): Promise<string> {
  const slug = name.normalize("NFKD").toLowerCase().replace(/[\u0300-\u036f]/g, "")
    .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40).replace(/-+$/, "");
  if (slug !== "") return `${DEV_ID_PREFIX}${slug}`;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(name));
  const hex = Array.from(new Uint8Array(digest).slice(0, 6), (byte) => byte.toString(16))
    .map((pair) => pair.padStart(2, "0")).join("");
  return `${DEV_ID_PREFIX}${hex}`;
}

type DevLoginRequest = { id?: string; name: string } | { error: string };

function readDevLogin(body: unknown): DevLoginRequest {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return { error: 'expected a JSON object like {"name": "Ada"}' };
  }
  const { name, id } = body as Record<string, unknown>;
  if (typeof name !== "string") return { error: "`name` must be a string" };
  if (CONTROL_CHARACTERS.test(name)) return { error: "`name` has control characters" };
  // The name the server will show: the token carries it already cleaned.
  const shown = cleanDisplayName(name);
  const length = [...shown].length;
  if (length === 0 || length > MAX_DEV_NAME_LENGTH) {
    return {
      error: `\`name\` must be 1–${MAX_DEV_NAME_LENGTH} visible characters after trimming`,
    };
  }
  if (id === undefined) return { name: shown };
  if (typeof id !== "string" || id.length > MAX_DEV_ID_LENGTH || !DEV_ID_PATTERN.test(id)) {
    return {
      error: `\`id\` must be "${DEV_ID_PREFIX}" and then letters, digits, '.', '_' or '-' ` +
        `(at most ${MAX_DEV_ID_LENGTH} characters): dev login mints only ${DEV_ID_PREFIX} users`,
    };
  }
  return { id, name: shown };
}

/** `POST /dev/token` `{ name }` or `{ id: "dev-…", name }` → `{ token, user, expiresAt }`. */
async function mintDevToken(
  raw: ArrayBuffer,
  devLogin: NonNullable<PageOptions["devLogin"]>,
): Promise<Response> {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw));
  } catch {
    throw new HttpError("invalid_payload", "the body must be JSON");
  }
  const login = readDevLogin(body);
  if ("error" in login) throw new HttpError("invalid_payload", login.error);
  const user = { id: login.id ?? await devUserId(login.name), name: login.name };
  const token = await signToken(devLogin.secret, {
    sub: user.id,
    name: user.name,
    ttlSeconds: devLogin.ttlSeconds ?? PAGE_DEFAULTS.devLoginTtlSeconds,
  });
  return json({ token, user, expiresAt: decodeJwt(token).exp! * 1000 });
}

/** What `GET /page-config.json` answers: the limits the page checks before the server does. */
export interface PageConfig extends PageSettings {
  /** Whether `POST /dev/token` mints tokens. */
  devLogin: boolean;
  /** With Web Push on (all three `VAPID_*`): the key the browser subscribes with. */
  vapidPublicKey?: string;
}

/**
 * Routes of the demo page: `GET /` (index.html), `/style.css`, the page's scripts
 * ({@link PAGE_SCRIPTS}), the service worker `/sw.js`, `/socket.io/socket.io.min.js`, `GET /page-config.json` →
 * {@link PageConfig}, `GET /dev/login-enabled` → `{ enabled }`, and `POST /dev/token` (404 unless
 * `devLogin` is set). Each static file is read once, on first request. `HEAD` is answered as `GET`
 * without the body.
 */
export function pageRoutes(options: PageOptions): Hono {
  const cache = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();
  const load = (path: string, file: StaticFile): Promise<Uint8Array<ArrayBuffer>> => {
    let bytes = cache.get(path);
    if (bytes === undefined) {
      bytes = Promise.resolve(file.location()).then((url) => Deno.readFile(url));
      // A failed read (a missing file) is retried on the next request rather than remembered.
      bytes.catch(() => cache.delete(path));
      cache.set(path, bytes);
    }
    return bytes;
  };
  const { devLogin } = options;
  const { maxMessageLength, defaultRoom, vapidPublicKey, vapidPrivateKey, vapidSubject } =
    (options.config ?? DEFAULTS) as PageSettings;
  const pageConfig: PageConfig = {
    maxMessageLength,
    defaultRoom,
    devLogin: devLogin !== undefined,
    ...(vapidPublicKey && vapidPrivateKey && vapidSubject ? { vapidPublicKey } : {}),
  };
  const app = new Hono();
  for (const [path, file] of STATIC_FILES) {
    app.get(path, async () => {
      const body = await load(path, file);
      return new Response(body, {
        headers: {
          "Content-Type": file.contentType,
          "Content-Length": String(body.byteLength),
          "Cache-Control": "no-cache",
          ...SECURITY_HEADERS,
          ...file.headers,
        },
      });
    });
  }
  app.get("/page-config.json", () => json(pageConfig));
  app.get("/dev/login-enabled", () => json({ enabled: devLogin !== undefined }));
  if (devLogin === undefined) {
    app.post("/dev/token", () => {
      throw new HttpError("not_found", "dev login is off (set DEV_LOGIN=1)");
    });
  } else {
    app.post(
      "/dev/token",
      readBody({ maxBytes: MAX_DEV_LOGIN_BODY }),
      async (c) => mintDevToken(await c.req.arrayBuffer(), devLogin),
    );
  }
  return app;
}
