import type { FastifyInstance, FastifyRequest, RouteOptions } from "fastify";
import { TidingsError, forbidden, tooManyRequests } from "../domain/errors.ts";
import { SignInLimiter } from "./console/signInLimiter.ts";
import { ACCESS_LEVELS, roleNeeded, type Access } from "../domain/roles.ts";
import type { Authenticator, Principal } from "./auth.ts";
import type { ConsoleSessions } from "./console/sessions.ts";

export type { Access } from "../domain/roles.ts";
/**
 * Who may call a route (see `Access`): `public` anyone; `app` an app key, for its own data, or a
 * person (viewer to read, operator to change); `viewer`, `operator`, `admin` a person with at
 * least that role (the admin key, an operator's key, or a console session). Every route declares
 * one in `config.auth`.
 */
const ACCESS: ReadonlySet<unknown> = new Set<Access>(ACCESS_LEVELS);

declare module "fastify" {
  interface FastifyContextConfig {
    auth?: Access;
    /** A POST that only reads (a query too large for a URL): people need a viewer's role for it, as for a GET. */
    reads?: boolean;
  }
}

/** Failed keys per client address before it is refused for the rest of the window. */
const KEY_FAILURES = 20;
const KEY_FAILURE_WINDOW_MS = 60_000;

export interface RouteEntry {
  method: string;
  url: string;
  auth: Access;
  /** Its `config.reads`: a POST that only reads. */
  reads: boolean;
}

/**
 * Refuses to register a route that does not say who may call it, so that no route can ship
 * without a decision; returns the table of routes with their access, as registered.
 */
export function requireDeclaredAccess(app: FastifyInstance): RouteEntry[] {
  const routes: RouteEntry[] = [];
  app.addHook("onRoute", (route: RouteOptions) => {
    const auth = route.config?.auth;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (!ACCESS.has(auth)) {
      throw new Error(`route ${methods.join(",")} ${route.url} declares no access: add config: { auth: ${ACCESS_LEVELS.map((a) => `"${a}"`).join(" | ")} }`);
    }
    for (const method of methods) routes.push({ method, url: route.url, auth: auth as Access, reads: route.config?.reads === true });
  });
  return routes;
}

/**
 * The authorization hook. The decision is made from the route the router matched (its
 * `config.auth`), never from the URL as written: the router decodes escapes, accepts the
 * absolute form and so on, and a check on the raw URL can be walked around.
 */
export function authorizeRoutes(app: FastifyInstance, auth: Authenticator, sessions: ConsoleSessions): void {
  // Failed keys per client address (successes do not clear it: a valid key in one hand must not
  // let its holder reset the count while guessing another, such as the admin's).
  const keyFailures = new SignInLimiter(KEY_FAILURES, KEY_FAILURE_WINDOW_MS);

  async function authenticate(request: FastifyRequest): Promise<Principal> {
    // The console's session cookie (+ CSRF token on changes), or else a Bearer key.
    const session = await sessions.authenticate(request);
    if (session) return session;
    const waitMs = keyFailures.retryAfterMs(request.ip);
    if (waitMs > 0) {
      const seconds = Math.ceil(waitMs / 1000);
      throw tooManyRequests(`too many failed keys from this address: try again in ${seconds} s`, seconds);
    }
    try {
      return await auth.authenticate(request);
    } catch (error) {
      // A key that was sent and is wrong counts; no key at all is not a guess.
      if (error instanceof TidingsError && error.code === "unauthorized" && request.headers.authorization !== undefined) {
        keyFailures.failed(request.ip);
      }
      throw error;
    }
  }

  app.addHook("onRequest", async (request) => {
    const access = request.routeOptions.config.auth;
    if (access === "public") return;
    if (access === undefined) {
      // No route matched: only the not-found handler runs, and it needs no principal.
      if (request.is404) return;
      throw forbidden("this route declares no access");
    }
    const principal = await authenticate(request);
    const needed = roleNeeded(access, request.routeOptions.config.reads ? "GET" : request.method, principal);
    if (needed !== null) {
      throw forbidden(principal.kind === "app" ? `this needs an operator's key with the ${needed} role, not an app's` : `this needs the ${needed} role`);
    }
    request.principal = principal;
  });

  // Default deny, checked again just before the handler: whatever path a request took through
  // the hooks, the handler of a route that is not public never runs without a principal.
  app.addHook("preHandler", (request, _reply, done) => {
    if (!request.principal && request.routeOptions.config.auth !== "public" && !request.is404) {
      done(new TidingsError("unauthorized", "send Authorization: Bearer <key>"));
      return;
    }
    done();
  });
}
