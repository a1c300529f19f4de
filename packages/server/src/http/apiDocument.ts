import pino from "pino";
import type { RouteServices } from "./routeServices.ts";
import { buildServer } from "./server.ts";

/**
 * Services that refuse every use: registering the routes reads only the HTTP settings, so a
 * document built with these needs no database, and a route that starts to reach for a service
 * while being registered fails here loudly rather than quietly describing something else.
 */
function unusable(name: string): never {
  return new Proxy(
    {},
    {
      get(_target, property) {
        throw new Error(`the API document is built without services: ${name}.${String(property)} was used`);
      },
    },
  ) as never;
}

/** Settings as the defaults have them; only the document's text is kept. */
const SETTINGS: RouteServices["config"] = {
  bodyLimitBytes: 1_048_576,
  requestTimeoutMs: 30_000,
  trustProxy: false,
  listBytes: 4_194_304,
  checkAfterMs: 10_000,
  relayStaleAfterMs: 60_000,
  completedTopic: null,
  dbStatementTimeoutMs: 30_000,
};

/**
 * The service's OpenAPI document, as `GET /openapi.json` serves it, built from the routes'
 * schemas without a database or a listening socket (the SDK's API types are generated from it).
 */
export async function buildApiDocument(): Promise<Record<string, unknown>> {
  const app = await buildServer({
    config: SETTINGS,
    db: unusable("db"),
    readDb: unusable("readDb"),
    log: pino({ level: "silent" }),
    auth: unusable("auth"),
    publisher: unusable("publisher"),
    dispatcher: unusable("dispatcher"),
    subscriptions: unusable("subscriptions"),
    metrics: unusable("metrics"),
    resendJobs: unusable("resendJobs"),
    notifier: unusable("notifier"),
    checkEndpointUrl: unusable("checkEndpointUrl"),
    ready: async () => false,
  });
  try {
    await app.ready();
    return structuredClone(app.swagger()) as Record<string, unknown>;
  } finally {
    await app.close();
  }
}
