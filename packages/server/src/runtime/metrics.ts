import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface Metrics {
  readonly registry: Registry;
  readonly accepted: Counter;
  readonly delivered: Counter;
  readonly failed: Counter;
  readonly dead: Counter;
  readonly pending: Gauge;
  readonly deliveryLatency: Histogram;
}

export function createMetrics(countPending: () => Promise<number>): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "tidings_" });
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
    deliveryLatency: new Histogram({
      name: "tidings_delivery_attempt_seconds",
      help: "Time an endpoint took to answer a delivery attempt",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
  };
}
