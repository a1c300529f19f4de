import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface Metrics {
  readonly registry: Registry;
  readonly accepted: Counter;
  readonly delivered: Counter;
  readonly failed: Counter;
  readonly dead: Counter;
  readonly pending: Gauge;
  readonly circuitOpen: Gauge<"subscription">;
  readonly deliveryLatency: Histogram;
  readonly circuitOpens: Counter<"subscription">;
}

/** Each subscription's circuit, as this node sees the shared state: 1 open (or probing), 0 closed. */
export type CircuitStates = () => ReadonlyArray<{ subscription: string; open: boolean }>;

export function createMetrics(countPending: () => Promise<number>, circuits: CircuitStates = () => []): Metrics {
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
    circuitOpen: new Gauge({
      name: "tidings_circuit_open",
      help: "Whether a subscription's circuit is open (1) or closed (0), shared by all nodes",
      labelNames: ["subscription"],
      registers: [registry],
      collect() {
        this.reset();
        for (const c of circuits()) this.set({ subscription: c.subscription }, c.open ? 1 : 0);
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
