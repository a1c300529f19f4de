import type { Transport } from "../transport.ts";
import type { NatsEndpoint, RabbitmqEndpoint, RedisEndpoint } from "../../store/subscriptions.ts";
import { NatsTransport } from "./natsTransport.ts";
import { RabbitmqTransport } from "./rabbitmqTransport.ts";
import { RedisTransport } from "./redisTransport.ts";

export interface BrokerTransports {
  rabbitmq: Transport<RabbitmqEndpoint>;
  nats: Transport<NatsEndpoint>;
  redis: Transport<RedisEndpoint>;
}

/** The broker transports; each opens connections only when a subscription first sends through it. */
export function createBrokerTransports(timeoutMs: number): BrokerTransports {
  return { rabbitmq: new RabbitmqTransport(timeoutMs), nats: new NatsTransport(timeoutMs), redis: new RedisTransport(timeoutMs) };
}
