import type { FastifyInstance } from "fastify";
import { Type } from "@sinclair/typebox";
import { conflict, invalid, notFound } from "../../domain/errors.ts";
import { formatDuration } from "../../domain/duration.ts";
import { pendingAgeAlertMs, showPendingAgeAlert } from "../../domain/alerts.ts";
import { CircuitPolicyError, compileCircuitPolicy, type CircuitPolicy } from "../../domain/circuitBreaker.ts";
import { compileRetryPolicy, RetryPolicyError, type RetryPolicy } from "../../domain/retrySchedule.ts";
import type { Endpoint, SubscriptionRow } from "../../domain/subscription.ts";
import { newSigningSecret } from "../../transports/signature.ts";
import { maskUrl, parseBrokerUrl } from "../../transports/brokerUrl.ts";
import { createSubscription, deleteSubscription, getSubscription, listSubscriptions, updateSubscription } from "../../store/subscriptions.ts";
import { circuitStates, healthOf, resetHealth, type HealthRecord } from "../../store/subscriptionHealth.ts";
import type { RouteServices } from "../routeServices.ts";
import { noteAudit } from "../audit.ts";
import { configChange } from "../../domain/audit.ts";
import { type CircuitOptions, CreateSubscription, ErrorBody, NameParams, PatchSubscription, Subscription, type RetryOptions } from "../schemas.ts";

function retryPolicy(options: RetryOptions | undefined): RetryPolicy {
  try {
    return compileRetryPolicy(options);
  } catch (error) {
    if (error instanceof RetryPolicyError) throw invalid(error.field, error.message);
    throw error;
  }
}

function circuitPolicy(options: CircuitOptions | undefined): CircuitPolicy | null {
  try {
    return compileCircuitPolicy(options);
  } catch (error) {
    if (error instanceof CircuitPolicyError) throw invalid(error.field, error.message);
    throw error;
  }
}

/** What the API shows in place of a secret: sent back unchanged in a PATCH, it keeps the stored value. */
const MASK = "***";

/** An endpoint as the API shows it: the URL's password and every header value masked. */
function showEndpoint(endpoint: Endpoint): Endpoint {
  if (endpoint.type !== "http") return { ...endpoint, url: maskUrl(endpoint.url) };
  // Spelled as stored unless it carries a password (masking re-spells a URL in its normal form).
  const masked = maskUrl(endpoint.url);
  const shown: Endpoint = { ...endpoint, url: masked.includes(MASK) ? masked : endpoint.url };
  if (endpoint.headers) shown.headers = Object.fromEntries(Object.keys(endpoint.headers).map((name) => [name, MASK]));
  return shown;
}

/**
 * An endpoint given in a PATCH, with what the API showed (a masked URL, masked header values)
 * standing for the stored values.
 */
function unmaskEndpoint(given: Endpoint, current: Endpoint | undefined): Endpoint {
  if (!current || current.type !== given.type) return given;
  const url = given.url.includes(MASK) && maskUrl(current.url) === given.url ? current.url : given.url;
  if (given.type !== "http" || current.type !== "http" || !given.headers) return { ...given, url };
  const stored = current.headers ?? {};
  const headers = Object.fromEntries(
    Object.entries(given.headers).map(([name, value]) => [name, value === MASK && Object.hasOwn(stored, name) ? stored[name]! : value]),
  );
  return { ...given, url, headers };
}

/** RFC 9110 field names; values without CR, LF or NUL (each attempt would fail on them). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const BAD_HEADER_VALUE = /[\r\n\0]/;

function checkHeaders(headers: Record<string, string> | undefined): void {
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (!HEADER_NAME.test(name)) throw invalid(`endpoint.headers.${name}`, `endpoint.headers: "${name}" is not a valid header name`);
    if (BAD_HEADER_VALUE.test(value)) throw invalid(`endpoint.headers.${name}`, `endpoint.headers.${name} may not contain CR, LF or NUL`);
  }
}

/** What the API shows of a subscription: durations spelled back, the secret never (but once). */
export function showSubscription(row: SubscriptionRow, secret?: string, health?: HealthRecord) {
  return {
    name: row.name,
    topic: row.topic,
    tags: row.tags,
    endpoint: showEndpoint(row.endpoint),
    retry: {
      schedule: row.retry.schedule.map(formatDuration),
      maxAttempts: row.retry.maxAttempts,
      window: row.retry.windowMs === null ? null : formatDuration(row.retry.windowMs),
    },
    enabled: row.enabled,
    maxInFlight: row.maxInFlight,
    rateLimit: row.rateLimit,
    ordering: row.ordering,
    onDead: row.onDead,
    pendingAgeAlert: showPendingAgeAlert(row.pendingAgeAlertMs),
    circuit:
      row.circuit === null
        ? null
        : {
            failures: row.circuit.failures,
            failureRatio: row.circuit.ratio?.failureRatio ?? null,
            window: row.circuit.ratio ? formatDuration(row.circuit.ratio.windowMs) : null,
            minAttempts: row.circuit.ratio?.minAttempts ?? null,
            probeEvery: formatDuration(row.circuit.probeEveryMs),
            pauseAfter: row.circuit.pauseAfterMs === null ? null : formatDuration(row.circuit.pauseAfterMs),
          },
    ...(health ? { health } : {}),
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    ...(secret ? { secret } : {}),
  };
}

/** The subscription of a route's `:name`, or a 404 naming it. */
export async function subscriptionNamed(s: RouteServices, name: string): Promise<SubscriptionRow> {
  const row = await getSubscription(s.db, name);
  if (!row) throw notFound(`subscription ${name}`);
  return row;
}

export function subscriptionRoutes(app: FastifyInstance, s: RouteServices): void {
  const tags = ["subscriptions"];
  // Reading subscriptions is for every person; changing them for admins.
  const config = { auth: "admin" } as const;
  const read = { auth: "viewer" } as const;
  const endpoint = (given: Endpoint, current?: Endpoint): Endpoint => {
    // What the API showed (a masked password or header value) means "keep the stored one".
    const e = unmaskEndpoint(given, current);
    if (e.type === "http") {
      checkHeaders(e.headers);
      return { ...e, url: s.checkEndpointUrl(e.url, "endpoint.url") };
    }
    const url = e.url;
    const address = parseBrokerUrl(e.type, url);
    if ("error" in address) throw invalid("endpoint.url", `endpoint.url ${address.error}`);
    // The network policy applies to the broker's host as to an HTTP endpoint's.
    const host = address.host.includes(":") ? `[${address.host}]` : address.host;
    s.checkEndpointUrl(`http://${host}:${address.port}/`, "endpoint.url");
    return { ...e, url };
  };

  app.post<{ Body: CreateSubscription }>(
    "/v1/subscriptions",
    {
      config: { ...config, audit: configChange("subscription.create") },
      schema: {
        tags,
        summary: "Subscribe an endpoint to a topic; the signing secret is shown once",
        body: CreateSubscription,
        response: { 201: Subscription, "4xx": ErrorBody },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const secret = newSigningSecret();
      const created = await createSubscription(s.db, {
        name: body.name,
        topic: body.topic,
        tags: body.tags ?? null,
        endpoint: endpoint(body.endpoint),
        secret,
        retry: retryPolicy(body.retry),
        enabled: body.enabled ?? true,
        maxInFlight: body.maxInFlight ?? null,
        ordering: body.ordering ?? "none",
        onDead: body.onDead ?? "block",
        circuit: circuitPolicy(body.circuit),
        rateLimit: body.rateLimit ?? null,
        pendingAgeAlertMs: pendingAgeAlertMs(body.pendingAgeAlert) ?? null,
      });
      if (!created) throw conflict(`a subscription named ${body.name} exists`);
      await s.subscriptions.reload();
      return reply.status(201).send(showSubscription(created, secret));
    },
  );

  app.get(
    "/v1/subscriptions",
    { config: read, schema: { tags, summary: "List subscriptions", response: { 200: Type.Object({ items: Type.Array(Subscription) }) } } },
    async () => {
      const [rows, states] = await Promise.all([listSubscriptions(s.db), circuitStates(s.db)]);
      return { items: rows.map((row) => ({ ...showSubscription(row), circuitState: states.get(row.id) ?? "closed" })) };
    },
  );

  app.get<{ Params: NameParams }>(
    "/v1/subscriptions/:name",
    {
      config: read,
      schema: {
        tags,
        summary: "Get a subscription, with its circuit's state and history",
        params: NameParams,
        response: { 200: Subscription, "4xx": ErrorBody },
      },
    },
    async (request) => {
      const row = await subscriptionNamed(s, request.params.name);
      return showSubscription(row, undefined, await healthOf(s.db, row.id));
    },
  );

  app.patch<{ Params: NameParams; Body: PatchSubscription }>(
    "/v1/subscriptions/:name",
    {
      config: { ...config, audit: configChange("subscription.update") },
      schema: {
        tags,
        summary: "Change a subscription; `enabled: false` pauses it, `true` resumes",
        params: NameParams,
        body: PatchSubscription,
        response: { 200: Subscription, "4xx": ErrorBody },
      },
    },
    async (request) => {
      const body = request.body;
      const secret = body.rotateSecret ? newSigningSecret() : undefined;
      const circuit = body.circuit === undefined ? undefined : circuitPolicy(body.circuit);
      const retry = body.retry && retryPolicy(body.retry);
      const pendingAge = pendingAgeAlertMs(body.pendingAgeAlert);
      const closing = body.enabled === true || circuit === null;
      const current = await getSubscription(s.db, request.params.name);
      if (current) noteAudit(request, { before: showSubscription(current) });
      const given = body.endpoint && endpoint(body.endpoint, current?.endpoint);
      // Resuming (or turning the breaker off) closes the circuit, before the subscription is
      // enabled: what waited is due now, and its old open circuit cannot pause it again meanwhile.
      if (current && closing) await resetHealth(s.db, current.id, body.enabled === true ? "resumed" : "circuit breaker turned off");
      const row = await updateSubscription(s.db, request.params.name, {
        topic: body.topic,
        tags: body.tags,
        endpoint: given,
        retry,
        enabled: body.enabled,
        maxInFlight: body.maxInFlight,
        ordering: body.ordering,
        onDead: body.onDead,
        circuit,
        rateLimit: body.rateLimit,
        pendingAgeAlertMs: pendingAge,
        secret,
      });
      if (!row) throw notFound(`subscription ${request.params.name}`);
      await s.subscriptions.reload();
      if (row.enabled) s.dispatcher.wake();
      return showSubscription(row, secret);
    },
  );

  app.delete<{ Params: NameParams }>(
    "/v1/subscriptions/:name",
    {
      config: { ...config, audit: configChange("subscription.delete") },
      schema: { tags, summary: "Delete a subscription and its deliveries", params: NameParams },
    },
    async (request, reply) => {
      const current = await getSubscription(s.db, request.params.name);
      if (current) noteAudit(request, { before: showSubscription(current) });
      if (!(await deleteSubscription(s.db, request.params.name))) throw notFound(`subscription ${request.params.name}`);
      await s.subscriptions.reload();
      return reply.status(204).send();
    },
  );
}
