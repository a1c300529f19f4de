// What a broker consumer child process (scripts/brokers/consumer.ts) is told, and the matching
// subscription endpoint: one place for the names both sides must agree on.
import type { BrokerKind } from "./privateBrokers.ts";

export interface ConsumerSpec {
  broker: BrokerKind;
  /** Broker URL. */
  url: string;
  /** The consumer's own PostgreSQL database. */
  pgUrl: string;
  /** Names: RabbitMQ exchange + queue, NATS stream + durable, Redis stream + group. */
  name: string;
  concurrency: number;
  /** NATS ack wait / Redis claim idle time: how soon a killed consumer's messages come back. */
  redeliverAfterMs: number;
  /** Print one line per message (tests) or only a summary every second (benchmarks). */
  perMessageLines: boolean;
}

/** The subscription endpoint that feeds the consumer described by `spec`. */
export function endpointFor(spec: Pick<ConsumerSpec, "broker" | "url" | "name">): Record<string, unknown> {
  switch (spec.broker) {
    case "rabbitmq":
      return { type: "rabbitmq", url: spec.url, exchange: spec.name, routingKey: "{topic}" };
    case "nats":
      return { type: "nats", url: spec.url, subject: `${spec.name}.{topic}` };
    case "redis":
      return { type: "redis", url: spec.url, stream: spec.name };
  }
}

/** A name that is valid for all three brokers (NATS stream names allow no dots). */
export const brokerName = (label: string) => label.replace(/[^A-Za-z0-9_-]/g, "_");
