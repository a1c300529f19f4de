import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { registerMonitoringGauges, type MonitoringSources } from "./monitoringGauges.ts";

export interface Metrics {
  readonly registry: Registry;
  readonly accepted: Counter;
  readonly delivered: Counter;
  readonly failed: Counter;
  readonly dead: Counter;
  readonly pending: Gauge;
  readonly circuitOpen: Gauge<"subscription">;
  readonly throttled: Gauge<"subscription">;
  readonly policies: Gauge<"subscription" | "ordering" | "on_dead" | "rate_limit" | "max_in_flight" | "circuit" | "pending_age_alert" | "enabled">;
  readonly pendingAgeThreshold: Gauge<"subscription">;
  readonly deliveryLatency: Histogram;
  readonly circuitOpens: Counter<"subscription">;
}

/** Each subscription as this node sees it: its delivery policies and the shared state of its endpoint's health. */
export interface SubscriptionState {
  subscription: string;
  enabled: boolean;
  /** Its circuit is open (or probing). */
  open: boolean;
  /** A receiver's 429 Retry-After holds it back now. */
  throttled: boolean;
  ordering: string;
  onDead: string;
  rateLimit: number | null;
  maxInFlight: number | null;
  /** The breaker's policy in a word: "off", "20 in a row", "50% of 20+ in 60s", or both. */
  circuit: string;
  /** The pending-age alert's threshold that applies (its own or the service's default), or "off". */
  pendingAgeAlert: string;
  /** The same threshold in seconds; null when off. */
  pendingAgeAlertSeconds: number | null;
}
export type SubscriptionStates = () => ReadonlyArray<SubscriptionState>;

export function createMetrics(countPending: () => Promise<number>, subscriptions: SubscriptionStates = () => [], monitoring?: MonitoringSources): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "tidings_" });
  if (monitoring) registerMonitoringGauges(registry, monitoring);
  return {
    registry,
    accepted: new Counter({ name: "tidings_messages_accepted_total", help: "Messages accepted (stored) by this process", registers: [registry] }),
    delivered: new Counter({ name: "tidings_deliveries_delivered_total", help: "Deliveries acknowledged by their endpoint", registers: [registry] }),
    failed: new Counter({ name: "tidings_delivery_attempts_failed_total", help: "Failed delivery attempts that will be retried", registers: [registry] }),
    dead: new Counter({ name: "tidings_deliveries_dead_total", help: "Deliveries that gave up (dead letters)", registers: [registry] }),
    pending: new Gauge({
      name: "tidings_deliveries_pending",
      help: "Deliveries not yet delivered nor dead (all nodes)",
      registers: [registry],
      async collect() {
        this.set(await countPending());
      },
    }),
    circuitOpen: new Gauge({
      name: "tidings_circuit_open",
      help: "Whether a subscription's circuit is open (1) or closed (0), shared by all nodes",
      labelNames: ["subscription"],
      registers: [registry],
      collect() {
        this.reset();
        for (const c of subscriptions()) this.set({ subscription: c.subscription }, c.open ? 1 : 0);
      },
    }),
    throttled: new Gauge({
      name: "tidings_subscription_throttled",
      help: "Whether a receiver's 429 Retry-After holds a subscription back now (1), shared by all nodes",
      labelNames: ["subscription"],
      registers: [registry],
      collect() {
        this.reset();
        for (const c of subscriptions()) this.set({ subscription: c.subscription }, c.throttled ? 1 : 0);
      },
    }),
    policies: new Gauge({
      name: "tidings_subscription_info",
      help: "Each subscription's delivery policies as labels (value 1); rate_limit and max_in_flight empty when none; pending_age_alert the threshold that applies, or off",
      labelNames: ["subscription", "ordering", "on_dead", "rate_limit", "max_in_flight", "circuit", "pending_age_alert", "enabled"],
      registers: [registry],
      collect() {
        this.reset();
        for (const c of subscriptions())
          this.set(
            {
              subscription: c.subscription,
              ordering: c.ordering,
              on_dead: c.onDead,
              rate_limit: c.rateLimit === null ? "" : String(c.rateLimit),
              max_in_flight: c.maxInFlight === null ? "" : String(c.maxInFlight),
              circuit: c.circuit,
              pending_age_alert: c.pendingAgeAlert,
              enabled: String(c.enabled),
            },
            1,
          );
      },
    }),
    pendingAgeThreshold: new Gauge({
      name: "tidings_subscription_pending_age_alert_seconds",
      help: "Per subscription, the pending-age alert's threshold that applies (its own or the service's default); absent when the alert is off",
      labelNames: ["subscription"],
      registers: [registry],
      collect() {
        this.reset();
        for (const c of subscriptions()) if (c.pendingAgeAlertSeconds !== null) this.set({ subscription: c.subscription }, c.pendingAgeAlertSeconds);
      },
    }),
    deliveryLatency: new Histogram({
      name: "tidings_delivery_attempt_seconds",
      help: "Time an endpoint took to answer a delivery attempt",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    circuitOpens: new Counter({
      name: "tidings_circuit_opens_total",
      help: "Times a subscription's circuit opened (counted by the process whose results opened it)",
      labelNames: ["subscription"],
      registers: [registry],
    }),
  };
}
