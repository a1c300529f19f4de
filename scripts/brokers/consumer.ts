// A broker consumer as its own process, for tests that SIGKILL it and for benchmarks:
//   node --import tsx scripts/brokers/consumer.ts '<ConsumerSpec JSON>'
// Applies every message through the SDK inbox into its PostgreSQL database (table broker_effects,
// one row per application, no unique key: a message applied twice would show as two rows).
// stdout: "ready" once consuming, then per message "applied|duplicate|failed <redelivered 0|1> <id>"
// (or "stats <json>" every second with perMessageLines off); pipes are synchronous on Linux, so a
// line is out before the next message is acked.
import pg from "pg";
import { Inbox, consume, fromPg, migrate, type Consumer, type ConsumeOptions } from "../../packages/sdk/src/index.ts";
import type { ConsumerSpec } from "./consumerSpec.ts";

const spec = JSON.parse(process.argv[2] ?? "{}") as ConsumerSpec;
const pool = new pg.Pool({ connectionString: spec.pgUrl, max: spec.concurrency + 2 });
pool.on("error", () => undefined);
const db = fromPg(pool);
await migrate(db);
await db.query("create table if not exists broker_effects (message_id text not null, applied_at timestamptz not null default now())");

const out = (line: string) => process.stdout.write(`${line}\n`);
const common: ConsumeOptions = {
  db,
  inbox: new Inbox({ consumer: spec.name }),
  concurrency: spec.concurrency,
  handle: async (message, tx) => {
    await tx.query("insert into broker_effects (message_id) values ($1)", [message.id]);
  },
  onEvent: (event) => {
    if (!spec.perMessageLines) return;
    if (event.type === "applied" || event.type === "duplicate" || event.type === "failed") {
      out(`${event.type} ${event.delivery.redelivered ? 1 : 0} ${event.message.id}`);
    } else if (event.type === "disconnected" || event.type === "connected") {
      out(`${event.type}`);
    }
  },
};

let consumer: Consumer;
switch (spec.broker) {
  case "rabbitmq":
    consumer = await consume.rabbitmq({
      ...common,
      url: spec.url,
      queue: spec.name,
      exchange: spec.name,
      retry: { schedule: ["200ms"], maxAttempts: 5 },
      reconnectDelayMs: 250,
    });
    break;
  case "nats":
    consumer = await consume.nats({
      ...common,
      url: spec.url,
      stream: spec.name,
      subjects: [`${spec.name}.>`],
      durable: spec.name,
      ackWaitMs: spec.redeliverAfterMs,
      retry: { schedule: ["200ms"], maxAttempts: 5 },
    });
    break;
  case "redis":
    consumer = await consume.redis({
      ...common,
      url: spec.url,
      stream: spec.name,
      group: spec.name,
      // a killed consumer's entries are taken over once idle for the first step
      retry: { schedule: [`${spec.redeliverAfterMs}ms`], maxAttempts: 5 },
      blockMs: 1000,
    });
    break;
}
out("ready");
if (!spec.perMessageLines) setInterval(() => out(`stats ${JSON.stringify(consumer.stats)}`), 1000).unref();

const stop = async () => {
  await consumer.close();
  out(`stats ${JSON.stringify(consumer.stats)}`);
  await pool.end();
  process.exit(0);
};
process.once("SIGTERM", () => void stop());
process.once("SIGINT", () => void stop());
