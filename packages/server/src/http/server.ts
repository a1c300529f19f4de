import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import swagger from "@fastify/swagger";
import type { HttpSettings, RouteServices } from "./routeServices.ts";
import { clientErrorHandler, errorHandler } from "./errors.ts";
import { authorizeRoutes, requireDeclaredAccess, type RouteEntry } from "./access.ts";
import { recordAudit } from "./audit.ts";
import { finishOpenApi } from "./openapiDocument.ts";
import { nulField } from "./nul.ts";
import { invalid } from "../domain/errors.ts";
import { migrationState } from "../store/migrate.ts";
import { appRoutes } from "./routes/apps.ts";
import { channelRoutes } from "./routes/channels.ts";
import { messageRoutes } from "./routes/messages.ts";
import { alertRoutes } from "./routes/alerts.ts";
import { subscriptionRoutes } from "./routes/subscriptions.ts";
import { consoleRoutes } from "./routes/console.ts";
import { ConsoleSessions } from "./console/sessions.ts";
import { deliveryRoutes } from "./routes/deliveries.ts";
import { jobRoutes } from "./routes/jobs.ts";
import { recoveryRoutes } from "./routes/recovery.ts";
import { sessionRoutes } from "./routes/session.ts";
import { statsRoutes } from "./routes/stats.ts";
import { relayRoutes } from "./routes/relays.ts";
import { operatorRoutes } from "./routes/operators.ts";
import { auditRoutes } from "./routes/audit.ts";
import { outcomeRoutes } from "./routes/outcomes.ts";
import { feedRoutes } from "./routes/feed.ts";
import { reconciliationRoutes } from "./routes/reconciliations.ts";

/** The routes a built server registered, with who may call each (for tests and tools). */
const routeTables = new WeakMap<FastifyInstance, readonly RouteEntry[]>();
export const routesOf = (app: FastifyInstance): readonly RouteEntry[] => routeTables.get(app) ?? [];

/** Node checks for requests over the timeout this often: a fraction of it, at most a second. */
const checkingIntervalMs = (timeoutMs: number) => Math.max(50, Math.min(1000, Math.floor(timeoutMs / 10)));

/**
 * TIDINGS_TRUST_PROXY as Fastify takes it. A hop count trusts what the nearest `hops` senders
 * say, whoever they are (fit only where the service cannot be reached but through them).
 */
function trustProxyOption(trust: HttpSettings["trustProxy"]): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (typeof trust === "number") return (_address, hop) => hop < trust;
  return typeof trust === "boolean" ? trust : [...trust];
}

export async function buildServer(s: RouteServices): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: s.log as unknown as FastifyBaseLogger,
    // A log line per request would cost more than the request at the rates we aim for.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: s.config.bodyLimitBytes,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    return503OnClosing: true,
    // The client address (key failures are counted per address) and the protocol (the session
    // cookie is Secure over https) from X-Forwarded-* only when the proxy that sent it is trusted.
    trustProxy: trustProxyOption(s.config.trustProxy),
    // A client that sends its headers and then drips its body is cut off.
    requestTimeout: s.config.requestTimeoutMs,
    http: {
      requestTimeout: s.config.requestTimeoutMs,
      headersTimeout: Math.min(60_000, s.config.requestTimeoutMs),
      connectionsCheckingInterval: checkingIntervalMs(s.config.requestTimeoutMs),
    },
    // Errors raised before a route runs (a bad escape in the URL, malformed HTTP) in our shape too.
    frameworkErrors: (error, request, reply) => errorHandler(error, request as FastifyRequest, reply as FastifyReply),
    clientErrorHandler,
  });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({ error: { code: "not_found", message: `no route ${request.method} ${request.url.split("?")[0]}` } });
  });
  // JSON only: a text/plain body is refused (415) rather than handed to a schema as a string.
  app.removeContentTypeParser("text/plain");
  const routes = requireDeclaredAccess(app);
  routeTables.set(app, routes);
  await app.register(swagger, {
    openapi: {
      // 3.1: its schemas are JSON Schema, as the routes' (conditional endpoint fields, exclusive minimums, nullable types).
      openapi: "3.1.0",
      info: {
        title: "Tidings",
        version: "0.1.0",
        description: "Reliable messaging between services that each own their database.",
        license: { name: "MIT", identifier: "MIT" },
      },
      servers: [{ url: "/", description: "this service" }],
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
    // A schema with an `$id` (Message, Delivery, Error, …) inside an answer is a component of that
    // name, so that types generated from the document read as the API's nouns, not `def-0`.
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === "string" ? json.$id : `def-${i}`) },
    transformObject: (document) =>
      "openapiObject" in document
        ? (finishOpenApi(document.openapiObject as Record<string, unknown>) as typeof document.openapiObject)
        : document.swaggerObject,
  });

  app.decorateRequest("principal", null as never);
  const sessions = new ConsoleSessions(s.db, s.auth);
  authorizeRoutes(app, s.auth, sessions);
  recordAudit(app, s.db, s.log);

  app.addHook("preValidation", (request, _reply, done) => {
    // PostgreSQL cannot store a NUL in text: refuse it in the path or query, naming the field.
    if (request.url.includes("%00")) {
      done(invalid(nulField(request), "a NUL character (%00) is not allowed here"));
      return;
    }
    // A POST without a body (resend, mark dead) means "no options": validate it as {}.
    if (request.body === undefined && request.method === "POST") request.body = {};
    done();
  });

  const config = { auth: "public" } as const;
  app.get("/healthz", { config, schema: { hide: true } }, async () => ({ ok: true }));
  app.get("/readyz", { config, schema: { hide: true } }, async (_request, reply) => {
    const ready = await s.ready();
    // The migrations, for `tidings doctor`: those of the database against those this version has.
    const migrations = ready ? await migrationState(s.db).catch(() => null) : null;
    return reply.status(ready ? 200 : 503).send({ ready, ...(migrations ? { migrations } : {}) });
  });
  app.get("/metrics", { config, schema: { hide: true } }, async (_request, reply) => {
    const text = await s.metrics.registry.metrics();
    return reply.type(s.metrics.registry.contentType).send(text);
  });
  app.get("/openapi.json", { config, schema: { hide: true } }, async () => app.swagger());

  appRoutes(app, s);
  subscriptionRoutes(app, s);
  messageRoutes(app, s);
  alertRoutes(app, s);
  consoleRoutes(app);
  sessionRoutes(app, sessions);
  statsRoutes(app, s);
  deliveryRoutes(app, s);
  jobRoutes(app, s);
  recoveryRoutes(app, s);
  relayRoutes(app, s);
  channelRoutes(app, s);
  operatorRoutes(app, s);
  auditRoutes(app, s);
  outcomeRoutes(app, s);
  feedRoutes(app, s);
  reconciliationRoutes(app, s);
  return app;
}
