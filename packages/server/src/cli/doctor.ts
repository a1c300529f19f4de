import { CommandError } from "./client.ts";
import { type Api, printJson } from "./context.ts";
import { targetOf } from "./subscriptionViews.ts";
import { duration } from "./values.ts";

/**
 * `tidings doctor`: what a person checks first when messages do not arrive — the service
 * answering and its version, its database reachable and migrated, the key accepted, each
 * subscription's endpoint reachable (from here, and as the service's circuit breaker sees it),
 * and the clock of this machine against the service's. One line per check: ok, warn or fail;
 * exit 1 on any fail.
 */

type Status = "ok" | "warn" | "fail";
interface Check {
  check: string;
  status: Status;
  detail: string;
}

/** A clock this far from the service's is worth a warning (the Date header counts whole seconds). */
const SKEW_WARN_MS = 2_000;
/** Beyond this, signatures' timestamps fall outside receivers' tolerance (Standard Webhooks: 5 minutes). */
const SKEW_FAIL_MS = 300_000;
/** Endpoints asked at once. */
const PARALLEL = 8;

interface Timed {
  response: Response;
  text: string;
  ms: number;
  /** This machine's clock halfway through the request. */
  midpoint: number;
}

async function timed(url: string, init: RequestInit, timeoutMs: number): Promise<Timed> {
  const started = Date.now();
  const response = await fetch(url, { ...init, redirect: "manual", signal: AbortSignal.timeout(timeoutMs) });
  const text = await response.text();
  const ended = Date.now();
  return { response, text, ms: ended - started, midpoint: (started + ended) / 2 };
}

const reason = (error: unknown): string => {
  const e = error as Error & { cause?: { code?: string; message?: string } };
  if (e.name === "TimeoutError") return "no answer in time";
  return e.cause?.code ?? e.cause?.message ?? e.message;
};

/** The service: answering, its version, and the clock skew from its Date header. */
async function serviceChecks(api: Api, timeoutMs: number): Promise<Check[]> {
  let health: Timed;
  try {
    health = await timed(new URL("/healthz", api.url).href, {}, timeoutMs);
  } catch (error) {
    return [{ check: "service", status: "fail", detail: `${api.url} cannot be reached: ${reason(error)}` }];
  }
  if (!health.response.ok) return [{ check: "service", status: "fail", detail: `${api.url}/healthz answered ${health.response.status}` }];
  let version = "unknown";
  try {
    const document = await fetch(new URL("/openapi.json", api.url), { signal: AbortSignal.timeout(timeoutMs) });
    version = ((await document.json()) as { info?: { version?: string } }).info?.version ?? version;
  } catch {
    // The version is a detail: the service answered.
  }
  const checks: Check[] = [{ check: "service", status: "ok", detail: `${api.url} answers, version ${version} (${health.ms} ms)` }];
  const date = health.response.headers.get("date");
  if (date === null) checks.push({ check: "clock", status: "warn", detail: "the service sent no Date header to compare clocks with" });
  else {
    // The header counts whole seconds: the service's time is within [date, date + 1 s).
    const skew = Date.parse(date) + 500 - health.midpoint;
    const off = Math.abs(skew);
    const status: Status = off > SKEW_FAIL_MS ? "fail" : off > SKEW_WARN_MS ? "warn" : "ok";
    const side = skew > 0 ? "behind" : "ahead of";
    checks.push({
      check: "clock",
      status,
      detail:
        status === "ok"
          ? `this machine and the service agree within ${SKEW_WARN_MS / 1000} s`
          : `this machine is ${Math.round(off / 1000)} s ${side} the service`,
    });
  }
  return checks;
}

/** The database, as `/readyz` reports it: reachable, and its migrations against the service's. */
async function databaseChecks(api: Api, timeoutMs: number): Promise<Check[]> {
  let ready: Timed;
  try {
    ready = await timed(new URL("/readyz", api.url).href, {}, timeoutMs);
  } catch (error) {
    return [{ check: "database", status: "fail", detail: `/readyz: ${reason(error)}` }];
  }
  let body: { migrations?: { latest: number; applied: number | null } } = {};
  try {
    body = JSON.parse(ready.text);
  } catch {
    // Reported as not known below.
  }
  if (ready.response.status !== 200)
    return [{ check: "database", status: "fail", detail: `the service cannot reach its database (/readyz ${ready.response.status})` }];
  const m = body.migrations;
  const migrations: Check =
    m === undefined
      ? { check: "migrations", status: "warn", detail: "the service does not report its migrations" }
      : m.applied === m.latest
        ? { check: "migrations", status: "ok", detail: `up to date (${m.latest})` }
        : m.applied !== null && m.applied > m.latest
          ? { check: "migrations", status: "warn", detail: `the database has ${m.applied}, newer than this service's ${m.latest}: upgrade it` }
          : { check: "migrations", status: "fail", detail: `the database has ${m.applied ?? "none"} of ${m.latest}: run tidings migrate` };
  return [{ check: "database", status: "ok", detail: "reachable" }, migrations];
}

interface Listed {
  name: string;
  enabled: boolean;
  circuit: object | null;
  circuitState?: string;
  endpoint: Parameters<typeof targetOf>[0];
}

/** One subscription's endpoint: asked from here (HTTP ones), and the circuit the service keeps for it. */
async function endpointCheck(s: Listed, timeoutMs: number): Promise<Check> {
  const check = `endpoint ${s.name}`;
  const circuit = s.circuit === null ? "no breaker" : `circuit ${s.circuitState ?? "closed"}`;
  const open = s.circuitState === "open" || s.circuitState === "half_open";
  const paused = s.enabled ? "" : "; paused";
  if (s.endpoint.type !== "http") {
    return { check, status: open ? "fail" : s.enabled ? "ok" : "warn", detail: `${targetOf(s.endpoint)}: ${circuit}${paused}` };
  }
  let here: string;
  let reached = false;
  try {
    const answer = await timed(s.endpoint.url, { method: "HEAD" }, timeoutMs);
    reached = true;
    here = `answers HEAD ${answer.response.status} (${answer.ms} ms)`;
  } catch (error) {
    here = `not reachable from here: ${reason(error)}`;
  }
  const status: Status = open ? "fail" : !reached || !s.enabled ? "warn" : "ok";
  return { check, status, detail: `${s.endpoint.url} ${here}; ${circuit}${paused}` };
}

/** Runs `work` on each item, `limit` at a time, answers in the items' order. */
async function inBatches<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += limit) results.push(...(await Promise.all(items.slice(i, i + limit).map(work))));
  return results;
}

async function subscriptionChecks(api: Api, timeoutMs: number): Promise<Check[]> {
  let items: Listed[];
  try {
    items = (await api.call("GET", "/v1/subscriptions")).body.items as Listed[];
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    if (error.status === 403)
      return [{ check: "key", status: "warn", detail: "accepted, but it may not read subscriptions (an app's key): endpoints not checked" }];
    return [{ check: "key", status: "fail", detail: error.message }];
  }
  const key: Check = { check: "key", status: "ok", detail: "accepted" };
  if (items.length === 0) return [key, { check: "endpoints", status: "warn", detail: "no subscriptions: messages go nowhere" }];
  return [key, ...(await inBatches(items, PARALLEL, (s) => endpointCheck(s, timeoutMs)))];
}

export async function doctor(api: Api, options: { timeout: string }): Promise<number> {
  const timeoutMs = duration("--timeout", options.timeout);
  const checks = await serviceChecks(api, timeoutMs);
  if (checks[0]!.status !== "fail") {
    const [database, subscriptions] = await Promise.all([databaseChecks(api, timeoutMs), subscriptionChecks(api, timeoutMs)]);
    checks.push(...database, ...subscriptions);
  }
  const failed = checks.some((c) => c.status === "fail");
  if (api.json) printJson({ ok: !failed, checks });
  else {
    const width = Math.max(...checks.map((c) => c.check.length));
    for (const c of checks) console.log(`${c.status.padEnd(4)}  ${c.check.padEnd(width)}  ${c.detail}`);
  }
  return failed ? 1 : 0;
}
