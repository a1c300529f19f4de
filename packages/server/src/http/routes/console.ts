import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { extname, join, relative, sep } from "node:path";
import type { FastifyInstance, FastifyReply } from "fastify";
import { serverFile } from "../../paths.ts";

const ASSETS_DIR = serverFile("web/console/");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

/**
 * The page may load nothing but its own files and talk to nothing but this service: no CDN,
 * no inline script, and it cannot be framed (clickjacking of the actions).
 */
const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** Reads the console's files once at start: a handful of small files, served from memory. */
function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const type = TYPES[extname(path)];
    if (!type) continue;
    const body = readFileSync(path);
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 16)}"`;
    assets.set(relative(dir, path).split(sep).join("/"), { body, type, etag });
  }
  return assets;
}

/** The web console: plain HTML, CSS and JavaScript files; it talks to the service through /v1 alone. */
export function consoleRoutes(app: FastifyInstance): void {
  const assets = loadAssets(ASSETS_DIR);
  // The page and its files are public; everything it shows comes from /v1, which is not.
  const config = { auth: "public" } as const;

  function send(reply: FastifyReply, asset: Asset, ifNoneMatch: string | undefined) {
    void reply.headers(SECURITY_HEADERS).header("cache-control", "no-cache").header("etag", asset.etag);
    if (ifNoneMatch === asset.etag) return reply.status(304).send();
    return reply.type(asset.type).send(asset.body);
  }

  app.get("/console", { config, schema: { hide: true } }, async (request, reply) => send(reply, assets.get("index.html")!, request.headers["if-none-match"]));
  app.get<{ Params: { "*": string } }>("/console/*", { config, schema: { hide: true } }, async (request, reply) => {
    const asset = assets.get(request.params["*"] || "index.html");
    if (!asset) return reply.status(404).send({ error: { code: "not_found", message: `no console file ${request.params["*"]}` } });
    return send(reply, asset, request.headers["if-none-match"]);
  });
  app.get("/", { config, schema: { hide: true } }, async (_request, reply) => reply.redirect("/console"));
}
