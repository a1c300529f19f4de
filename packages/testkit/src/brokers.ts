/** The test brokers' addresses: the standard local ports, or what scripts/with-services.sh started instead. */
export const TEST_AMQP_URL = process.env.TIDINGS_TEST_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
export const TEST_NATS_URL = process.env.TIDINGS_TEST_NATS_URL ?? "nats://127.0.0.1:4222";
export const TEST_REDIS_URL = process.env.TIDINGS_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
