import type { Static } from "@sinclair/typebox";
import type { Subscription as SubscriptionSchema } from "../http/schemas.ts";
import type { Stats as StatsSchema } from "../http/routes/stats.ts";
import { aboutSubscription, type Call, subscriptionPath } from "./client.ts";
import { printJson } from "./context.ts";
import { cut, fields, orNone, table } from "./format.ts";

/**
 * `tidings subscriptions` and `tidings subscription <name>`: the delivery policies of each
 * subscription (ordering, limits, circuit breaker) and its endpoint's health, as the API answers them.
 */

type Subscription = Static<typeof SubscriptionSchema>;
type Stats = Static<typeof StatsSchema>;

/** A target longer than this is cut (the table stays readable on a terminal). */
const TARGET_WIDTH = 48;

const hostOf = (url: string): string => {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
};

/** Where a subscription delivers: its URL, or a broker's host and the destination there. */
export function targetOf(endpoint: Subscription["endpoint"]): string {
  switch (endpoint.type) {
    case "http":
      return endpoint.url;
    case "rabbitmq":
      return `rabbitmq ${hostOf(endpoint.url)} ${endpoint.exchange || "(default exchange)"} → ${endpoint.routingKey ?? "{topic}"}`;
    case "nats":
      return `nats ${hostOf(endpoint.url)} ${endpoint.subject}`;
    case "redis":
      return `redis ${hostOf(endpoint.url)} ${endpoint.stream}`;
    default:
      return `${endpoint.type} ${hostOf(endpoint.url)}`;
  }
}

const orderingOf = (s: Subscription): string => (s.ordering === "key" ? `key, ${s.onDead}` : "none");

const limitsOf = (s: Subscription): string => {
  const limits = [s.rateLimit === null ? null : `${s.rateLimit}/s`, s.maxInFlight === null ? null : `${s.maxInFlight} in flight`].filter(Boolean);
  return limits.length ? limits.join(", ") : "-";
};

/** A capped count as the API means it: at the cap, at least that many. */
const countOf = (stats: Stats, counts: Record<string, number> | undefined, state: string): string => {
  const n = counts?.[state];
  if (n === undefined) return "-";
  return n >= stats.countCap ? `${n}+` : String(n);
};

export async function showSubscriptions(call: Call, options: { topic?: string; json: boolean }): Promise<number> {
  const list = (await call("GET", "/v1/subscriptions")).body as unknown as { items: Subscription[] };
  const items = options.topic === undefined ? list.items : list.items.filter((s) => s.topic === options.topic);
  if (options.json) {
    printJson({ ...list, items });
    return 0;
  }
  if (items.length === 0) {
    console.log(options.topic === undefined ? "no subscriptions" : `no subscriptions to topic ${options.topic}`);
    return 0;
  }
  const stats = (await call("GET", "/v1/stats")).body as unknown as Stats;
  const counts = new Map(stats.subscriptions.map((s) => [s.subscription, s.counts]));
  const circuits = items.map((s) => (s.circuit === null ? "off" : (s.circuitState ?? "closed")));
  const rows = [["NAME", "TOPIC", "TARGET", "STATE", "ORDERING", "LIMITS", "CIRCUIT", "PENDING", "DEAD"]];
  items.forEach((s, i) => {
    const c = counts.get(s.name);
    rows.push([
      s.name,
      s.topic,
      cut(targetOf(s.endpoint), TARGET_WIDTH),
      s.enabled ? "enabled" : "paused",
      orderingOf(s),
      limitsOf(s),
      circuits[i]!,
      countOf(stats, c, "pending"),
      countOf(stats, c, "dead"),
    ]);
  });
  console.log(table(rows));
  return 0;
}

export async function showSubscription(call: Call, name: string, options: { json: boolean }): Promise<number> {
  const s = (await aboutSubscription(name, () => call("GET", subscriptionPath(name)))).body as unknown as Subscription;
  if (options.json) {
    printJson(s);
    return 0;
  }
  const stats = (await call("GET", "/v1/stats")).body as unknown as Stats;
  const counts = stats.subscriptions.find((c) => c.subscription === s.name)?.counts;
  const retry = s.retry;
  const policy: Array<[string, string]> = [
    ["topic", s.topic],
    ["tags", s.tags === null ? "every tag" : s.tags.join(", ")],
    [
      "target",
      s.endpoint.type === "http"
        ? `http ${s.endpoint.url}${s.endpoint.headers ? ` (headers: ${Object.keys(s.endpoint.headers).join(", ")})` : ""}`
        : targetOf(s.endpoint),
    ],
    ["state", s.enabled ? "enabled" : "paused"],
    [
      "ordering",
      s.ordering === "key"
        ? `key: messages sharing a key go one at a time, in order; onDead ${s.onDead} (${s.onDead === "block" ? "a dead delivery holds its key" : "the next goes at once"})`
        : `none (any order; onDead ${s.onDead} applies only with ordering key)`,
    ],
    [
      "retry",
      `${retry.schedule.length ? retry.schedule.join(", ") : "no retries"}; at most ${retry.maxAttempts} attempts${retry.window === null ? "" : `; within ${retry.window}`}`,
    ],
    ["maxInFlight", s.maxInFlight === null ? "- (the service's share per process)" : `${s.maxInFlight}, across all processes`],
    ["rateLimit", s.rateLimit === null ? "- (none)" : `${s.rateLimit} attempts/s, across all processes`],
    [
      "pendingAgeAlert",
      s.pendingAgeAlert === null
        ? "- (the service's default, TIDINGS_ALERT_PENDING_AGE)"
        : s.pendingAgeAlert === false
          ? "off (no pending_too_old alert)"
          : `a pending_too_old alert when the oldest pending delivery has waited over ${s.pendingAgeAlert}`,
    ],
    [
      "circuit",
      s.circuit === null
        ? "off (no breaker)"
        : `opens ${opensWhen(s.circuit)}; probes every ${s.circuit.probeEvery}; ${
            s.circuit.pauseAfter === null ? "never pauses" : `pauses the subscription after ${s.circuit.pauseAfter} open`
          }`,
    ],
    ["deliveries", `pending ${countOf(stats, counts, "pending")}, delivered ${countOf(stats, counts, "delivered")}, dead ${countOf(stats, counts, "dead")}`],
  ];
  const h = s.health;
  const lines = [`subscription ${s.name}`, fields(policy)];
  if (h) {
    lines.push(
      "health",
      fields([
        ["circuit state", s.circuit === null ? `${h.state} (breaker off)` : h.state],
        ["consecutive failures", String(h.consecutiveFailures)],
        ["opened at", orNone(h.openedAt)],
        ["next probe", orNone(h.nextProbeAt)],
        ["closed at", orNone(h.closedAt)],
        ["throttled until", orNone(h.throttledUntil)],
        ["opens", String(h.opens)],
      ]),
      "history (newest first)",
      h.history.length ? h.history.map((e) => `  ${e.at}  ${e.event.padEnd(11)}  ${e.detail}`).join("\n") : "  (no transitions)",
    );
  }
  console.log(lines.join("\n"));
  return 0;
}

/** What opens a circuit: failures in a row, a failure ratio in a window, or either. */
function opensWhen(c: NonNullable<Subscription["circuit"]>): string {
  const inARow = c.failures === null ? null : `after ${c.failures} failed attempts in a row`;
  const ratio =
    c.failureRatio === null
      ? null
      : `when ${Math.round(c.failureRatio * 1000) / 10}% or more of the attempts in ${c.window} fail (once ${c.minAttempts} counted)`;
  return [inARow, ratio].filter((x) => x !== null).join(" or ");
}
