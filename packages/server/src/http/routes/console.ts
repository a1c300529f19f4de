import type { FastifyInstance } from "fastify";

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tidings console</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#1d2433}code{background:#eef1f6;padding:.1rem .3rem;border-radius:3px}</style>
</head><body>
<h1>Tidings</h1>
<p>The service is running. The console for operators comes here; until then use the HTTP API
(<a href="/openapi.json"><code>/openapi.json</code></a>) with the admin key.</p>
</body></html>`;

/** A placeholder page until the console lands. */
export function consoleRoutes(app: FastifyInstance): void {
  app.get("/console", { schema: { hide: true } }, async (_request, reply) => reply.type("text/html; charset=utf-8").send(PAGE));
  app.get("/", { schema: { hide: true } }, async (_request, reply) => reply.redirect("/console"));
}
