import { Gauge, type Registry } from "prom-client";

/** A relay as its gauges show it. */
export interface RelayGauges {
  app: string;
  relay: string;
  heartbeatAgeSeconds: number;
  pending: number;
  failed: number;
  oldestPendingSeconds: number;
}

/** What the monitoring gauges read on each scrape (the store's cheap queries). */
export interface MonitoringSources {
  openAlerts(): Promise<ReadonlyArray<{ condition: string; count: number }>>;
  inDoubt(): Promise<number>;
  oldestPending(): Promise<ReadonlyArray<{ subscription: string; seconds: number }>>;
  /** The relays that did not stop on purpose. */
  relays(): Promise<ReadonlyArray<RelayGauges>>;
  /** Days past the retention this node's last retention pass kept for a message not finished. */
  heldPartitions?(): number;
}

/**
 * Gauges of what needs a person, read from the database when Prometheus scrapes (every node
 * answers the same: the numbers are the database's, not this process's).
 */
export function registerMonitoringGauges(registry: Registry, sources: MonitoringSources): void {
  // The relays' gauges share one read: a scrape starts every collect() at once, so they all find
  // the read in flight; the next scrape reads again.
  let relayRead: Promise<ReadonlyArray<RelayGauges>> | null = null;
  const relays = () => {
    relayRead ??= sources.relays().finally(() => {
      relayRead = null;
    });
    return relayRead;
  };
  const relayGauge = (name: string, help: string, value: (r: RelayGauges) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["app", "relay"],
      registers: [registry],
      async collect() {
        const rows = await relays();
        this.reset();
        for (const r of rows) this.set({ app: r.app, relay: r.relay }, value(r));
      },
    });

  new Gauge({
    name: "tidings_alerts_open",
    help: "Open (unresolved) alerts per condition, e.g. delivery_dead, message_in_doubt, circuit_open (capped at 100000)",
    labelNames: ["condition"],
    registers: [registry],
    async collect() {
      const rows = await sources.openAlerts();
      this.reset();
      for (const r of rows) this.set({ condition: r.condition }, r.count);
    },
  });
  new Gauge({
    name: "tidings_messages_in_doubt",
    help: "Prepared messages whose check-backs ran out: a person must commit or roll each back (capped at 100000)",
    registers: [registry],
    async collect() {
      this.set(await sources.inDoubt());
    },
  });
  new Gauge({
    name: "tidings_oldest_pending_seconds",
    help: "Per subscription, how long its oldest pending delivery has waited since it was created (0 when none waits)",
    labelNames: ["subscription"],
    registers: [registry],
    async collect() {
      const rows = await sources.oldestPending();
      this.reset();
      for (const r of rows) this.set({ subscription: r.subscription }, r.seconds);
    },
  });
  if (sources.heldPartitions) {
    const held = sources.heldPartitions;
    new Gauge({
      name: "tidings_retention_held_partitions",
      help: "Days past the retention kept because a message of them is not finished (prepared, or a delivery pending or dead)",
      registers: [registry],
      collect() {
        this.set(held());
      },
    });
  }
  relayGauge(
    "tidings_relay_heartbeat_age_seconds",
    "Seconds since an outbox relay's last heartbeat (relays that stopped on purpose left out)",
    (r) => r.heartbeatAgeSeconds,
  );
  relayGauge("tidings_relay_failed_rows", "Outbox rows a relay could not ship and gave up on, as its last heartbeat said", (r) => r.failed);
  relayGauge("tidings_relay_pending_rows", "Outbox rows waiting to be shipped, as a relay's last heartbeat said", (r) => r.pending);
  relayGauge(
    "tidings_relay_oldest_pending_seconds",
    "How long the oldest waiting outbox row had waited at a relay's last heartbeat (0 when none waits)",
    (r) => r.oldestPendingSeconds,
  );
}
