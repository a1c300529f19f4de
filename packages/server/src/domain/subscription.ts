import type { CircuitPolicy } from "./circuitBreaker.ts";
import type { RetryPolicy } from "./retrySchedule.ts";

/** POSTs the envelope, signed (Standard Webhooks), with the endpoint's own headers. */
export interface HttpEndpoint {
  type: "http";
  url: string;
  headers?: Record<string, string>;
}
/** Publishes to an exchange with a confirm channel; persistent messages, `mandatory` (unroutable = failed). */
export interface RabbitmqEndpoint {
  type: "rabbitmq";
  /** amqp(s)://user:pass@host:port/vhost */
  url: string;
  /** "" is the default exchange (the routing key is then a queue name). */
  exchange: string;
  /** Template with {topic}, {tag}, {key}; default "{topic}". */
  routingKey?: string;
}
/** Publishes to a JetStream subject with `Nats-Msg-Id` = message id, done on the PubAck. */
export interface NatsEndpoint {
  type: "nats";
  /** nats://[user:pass@ | token@]host:port */
  url: string;
  /** Template with {topic}, {tag}, {key}. */
  subject: string;
}
/** XADDs to a stream, done on the reply; `maxLen` trims approximately (`MAXLEN ~`). */
export interface RedisEndpoint {
  type: "redis";
  /** redis(s)://[user:pass@]host:port[/db] */
  url: string;
  stream: string;
  maxLen?: number;
}
export type BrokerEndpoint = RabbitmqEndpoint | NatsEndpoint | RedisEndpoint;
export type Endpoint = HttpEndpoint | BrokerEndpoint;

export type Ordering = "none" | "key";
export type OnDead = "block" | "skip";

/** A subscription as stored: what it matches (topic, tags), where it delivers, how it retries. */
export interface SubscriptionRow {
  id: number;
  name: string;
  topic: string;
  tags: string[] | null;
  endpoint: Endpoint;
  secret: string;
  retry: RetryPolicy;
  enabled: boolean;
  /** Deliveries in flight at once across all service processes; null: the service's fair share per process. */
  maxInFlight: number | null;
  /** Attempts per second across all service processes; null: no limit. */
  rateLimit: number | null;
  /** "key": deliveries of messages sharing a key go one at a time, in order; "none": any order. */
  ordering: Ordering;
  /** With ordering "key": whether a dead delivery holds its key ("block") or lets the next go ("skip"). */
  onDead: OnDead;
  /** The circuit breaker's policy; null: no breaker. */
  circuit: CircuitPolicy | null;
  /**
   * The age its oldest pending delivery may reach before its pending_too_old alert is raised, in
   * milliseconds; null: the service's default (TIDINGS_ALERT_PENDING_AGE); 0: no such alert.
   */
  pendingAgeAlertMs: number | null;
  createdAt: string;
  updatedAt: string;
}
