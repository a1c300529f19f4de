import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import swagger from "@fastify/swagger";
import type { Services } from "./context.ts";
import { errorHandler } from "./errors.ts";
import { forbidden } from "../domain/errors.ts";
import { appRoutes } from "./routes/apps.ts";
import { messageRoutes } from "./routes/messages.ts";
import { alertRoutes } from "./routes/alerts.ts";
import { subscriptionRoutes } from "./routes/subscriptions.ts";
import { consoleRoutes } from "./routes/console.ts";
import { ConsoleSessions } from "../console/sessions.ts";
import { deliveryRoutes } from "./routes/deliveries.ts";
import { jobRoutes } from "./routes/jobs.ts";
import { sessionRoutes } from "./routes/session.ts";
import { statsRoutes } from "./routes/stats.ts";

declare module "fastify" {
  interface FastifyContextConfig {
    /** The route needs the admin key. */
    admin?: boolean;
  }
}

export async function buildServer(s: Services): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: s.log as unknown as FastifyBaseLogger,
    // A log line per request would cost more than the request at the rates we aim for.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: s.config.bodyLimitBytes,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    return503OnClosing: true,
  });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({ error: { code: "not_found", message: `no route ${request.method} ${request.url.split("?")[0]}` } });
  });
  await app.register(swagger, {
    openapi: {
      info: { title: "Tidings", version: "0.1.0", description: "Reliable messaging between services that each own their database." },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
  });

  app.decorateRequest("principal", null as never);
  const sessions = new ConsoleSessions(s.db, s.auth);
  app.addHook("onRequest", async (request) => {
    if (!request.url.startsWith("/v1/") || request.routeOptions.config.public) return;
    // A Bearer key, or the console's session cookie (+ CSRF token on changes).
    request.principal = (await sessions.authenticate(request)) ?? (await s.auth.authenticate(request));
    if (request.routeOptions.config.admin && request.principal.kind !== "admin") {
      throw forbidden("this needs the admin key");
    }
  });

  // A POST without a body (resend, mark dead) means "no options": validate it as {}.
  app.addHook("preValidation", async (request) => {
    if (request.body === undefined && request.method === "POST") request.body = {};
  });

  app.get("/healthz", { schema: { hide: true } }, async () => ({ ok: true }));
  app.get("/readyz", { schema: { hide: true } }, async (_request, reply) => {
    const ready = await s.ready();
    return reply.status(ready ? 200 : 503).send({ ready });
  });
  app.get("/metrics", { schema: { hide: true } }, async (_request, reply) => {
    const text = await s.metrics.registry.metrics();
    return reply.type(s.metrics.registry.contentType).send(text);
  });
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());

  appRoutes(app, s);
  subscriptionRoutes(app, s);
  messageRoutes(app, s);
  alertRoutes(app, s);
  consoleRoutes(app);
  sessionRoutes(app, sessions);
  statsRoutes(app, s);
  deliveryRoutes(app, s);
  jobRoutes(app, s);
  return app;
}
