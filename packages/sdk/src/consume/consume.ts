import { consumeNats } from "./nats.ts";
import { consumeRabbitmq } from "./rabbitmq.ts";
import { consumeRedis } from "./redis.ts";

/**
 * Broker consumers for Tidings subscriptions that deliver into a broker: `consume.rabbitmq`,
 * `consume.nats` (JetStream), `consume.redis` (streams). Each applies messages through the
 * inbox and acks only after the business transaction committed. The broker client library
 * (`amqplib`, `@nats-io/transport-node` + `@nats-io/jetstream`, `ioredis`) is loaded when the
 * consumer starts, so only the one you use needs to be installed.
 */
export const consume = { rabbitmq: consumeRabbitmq, nats: consumeNats, redis: consumeRedis } as const;
