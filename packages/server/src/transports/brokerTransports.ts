import type { AddressJudge } from "../domain/networkPolicy.ts";
import type { Transport } from "./transport.ts";
import type { NatsEndpoint, RabbitmqEndpoint, RedisEndpoint } from "../domain/subscription.ts";
import { NatsTransport } from "./natsTransport.ts";
import { RabbitmqTransport } from "./rabbitmqTransport.ts";
import { RedisTransport } from "./redisTransport.ts";

export interface BrokerTransports {
  rabbitmq: Transport<RabbitmqEndpoint>;
  nats: Transport<NatsEndpoint>;
  redis: Transport<RedisEndpoint>;
}

/**
 * The broker transports; each opens connections only when a subscription first sends through
 * it, to the broker host's address as resolved and judged by the endpoint network policy.
 */
export function createBrokerTransports(timeoutMs: number, judge: AddressJudge): BrokerTransports {
  return { rabbitmq: new RabbitmqTransport(timeoutMs, judge), nats: new NatsTransport(timeoutMs, judge), redis: new RedisTransport(timeoutMs, judge) };
}
