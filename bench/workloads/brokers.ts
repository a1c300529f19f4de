import { existsSync } from "node:fs";
import pg from "pg";
import { withDatabase, withTidings, type BenchContext } from "../lib/context.ts";
import { until } from "../lib/load.ts";
import { TOPIC } from "../lib/payload.ts";
import { UsageSampler, watchPostgres, watchProcess } from "../lib/procStats.ts";
import { atLeast, atMost, fmt, type SystemResult, type TargetCheck, type WorkloadResult } from "../lib/report.ts";
import { privateBroker, type BrokerKind } from "../../scripts/brokers/privateBrokers.ts";
import { brokerName, endpointFor, type ConsumerSpec } from "../../scripts/brokers/consumerSpec.ts";
import { newTally, spawnConsumer } from "../../scripts/brokers/consumerProcess.ts";
import { seedMessages } from "./common.ts";
import { NotAvailable } from "./notAvailable.ts";

const BROKERS: { kind: BrokerKind; binary: string; system: string; config: string }[] = [
  {
    kind: "rabbitmq",
    binary: "/usr/lib/rabbitmq/bin/rabbitmq-server",
    system: "rabbitmq",
    config: "durable quorum queue bound to a topic exchange; persistent messages, publisher confirms, mandatory",
  },
  {
    kind: "nats",
    binary: "/usr/sbin/nats-server",
    system: "nats jetstream",
    config: "file-storage stream; Nats-Msg-Id = message id, each publish waits for its PubAck",
  },
  { kind: "redis", binary: "/usr/bin/redis-server", system: "redis streams", config: "XADD to one stream; appendonly yes, appendfsync always" },
];

/**
 * Workload "brokers": deliveries per second from the service into each real broker (a private
 * instance started here on its own port, data in a temporary folder), counted when the broker
 * confirmed them durably; then, as a second figure, how fast the SDK consumer (its own process,
 * the inbox on PostgreSQL, 16 at a time) applies the same messages from the broker.
 * Like "deliver": a backlog committed while the subscription is paused, then enabled and timed.
 */
export async function brokers(ctx: BenchContext): Promise<Omit<WorkloadResult, "name" | "startedAt" | "seconds" | "status">> {
  const total = ctx.smoke ? 200 : 20_000;
  const installed = BROKERS.filter((b) => existsSync(b.binary));
  if (installed.length === 0) throw new NotAvailable("no broker installed (rabbitmq-server, nats-server, redis-server)");
  const notes: string[] = BROKERS.filter((b) => !installed.includes(b)).map((b) => `${b.system}: not installed, skipped`);
  // The smoke run keeps the suite from rotting: the path is the same for every broker, and
  // RabbitMQ's boot alone (5-30 s here) would dominate it. packages/server/test/brokers.test.ts covers RabbitMQ.
  const run = ctx.smoke ? installed.filter((b) => b.kind !== "rabbitmq") : installed;
  if (run.length < installed.length) notes.push("rabbitmq: skipped in the smoke run (its boot takes 5-30 s)");
  const systems: SystemResult[] = [];
  const targets: TargetCheck[] = [];
  for (const b of run) {
    ctx.log(`  ${b.system} ...`);
    const { system, effects } = await oneBroker(ctx, b, total, notes);
    systems.push(system);
    targets.push(
      atLeast(`${b.system}: every message applied by the SDK consumer`, effects.ids, total, "messages"),
      atMost(`${b.system}: none applied twice`, effects.rows - effects.ids, 0, "messages", 0),
    );
  }
  return {
    title: `deliver a backlog of ${fmt(total)} messages into each broker, and consume it with the SDK`,
    systems,
    ratios: [],
    targets,
    notes: [...notes, "Kafka is not measured: Tidings does not deliver to Kafka yet."],
  };
}

interface BrokerRun {
  system: SystemResult;
  /** Rows of broker_effects and distinct message ids among them. */
  effects: { rows: number; ids: number };
}

async function oneBroker(ctx: BenchContext, b: (typeof BROKERS)[number], total: number, notes: string[]): Promise<BrokerRun> {
  const broker = privateBroker(b.kind);
  try {
    const bootMs = await broker.start();
    return await withDatabase(ctx, `brokers_${b.kind}_consumer`, (consumerDb) =>
      withTidings(ctx, `brokers_${b.kind}`, async (service) => {
        const spec: ConsumerSpec = {
          broker: b.kind,
          url: broker.url,
          pgUrl: consumerDb.url,
          name: brokerName(`bench_${b.kind}`),
          concurrency: 16,
          redeliverAfterMs: 30_000,
          perMessageLines: false,
        };
        // The consumer declares the queue / stream / group; stopped again so the delivery phase runs alone.
        const tally = newTally();
        await (await spawnConsumer(spec, tally)).kill("SIGTERM");
        const apiKey = await service.createApp("bench");
        await service.call("POST", "/v1/subscriptions", { name: "broker", topic: TOPIC, endpoint: endpointFor(spec), enabled: false });
        await seedMessages(ctx, service, apiKey, total);

        const watched = [watchProcess("service", service.pid), watchProcess("broker", broker.pid!), watchProcess("runner", "self")];
        if (ctx.pg.postmasterPid !== null) watched.push(watchPostgres(ctx.pg.postmasterPid));
        const sampler = new UsageSampler(watched);
        const started = performance.now();
        await service.setSubscriptionEnabled("broker", true);
        await until("deliveries recorded", async () => (await service.metric("tidings_deliveries_delivered_total")) >= total, ctx.sizes.phaseTimeoutMs, 25);
        const seconds = (performance.now() - started) / 1000;
        const processes = sampler.stop(total);
        const failed = await service.metric("tidings_deliveries_failed_total");
        if (failed > 0) notes.push(`${b.system}: ${fmt(failed)} failed attempts during the run`);

        // the consumer drains what the broker holds
        const counter = new pg.Pool({ connectionString: consumerDb.url, max: 1 });
        try {
          const applied = async () => Number((await counter.query("select count(*)::int as n from tidings_inbox where status = 'applied'")).rows[0].n);
          const consumer = await spawnConsumer(spec, tally);
          // timed from "ready" (node and tsx take a second to start): what was applied before is not counted
          const consumeStarted = performance.now();
          const before = await applied();
          await until("the consumer to apply every message", async () => (await applied()) >= total, ctx.sizes.phaseTimeoutMs, 50);
          const consumeSeconds = (performance.now() - consumeStarted) / 1000;
          await consumer.kill("SIGTERM");
          const effects = (await counter.query("select count(*)::int as rows, count(distinct message_id)::int as ids from broker_effects"))
            .rows[0] as BrokerRun["effects"];
          const consumerRate = Math.round((total - before) / consumeSeconds);
          ctx.log(`  ${b.system}: ${fmt(total / seconds)} deliveries/s; consumer ${fmt(consumerRate)} applied/s`);
          const system: SystemResult = {
            system: b.system,
            role: "tidings",
            figure: Math.round(total / seconds),
            unit: "deliveries/s",
            messages: total,
            seconds: Math.round(seconds * 100) / 100,
            processes,
            config: `${b.config}; broker ${broker.url.replace(/\/\/[^@]*@/, "//")} booted in ${fmt(bootMs / 1000, 1)} s; service defaults`,
            extra: {
              consumerAppliedPerSecond: consumerRate,
              consumerSeconds: Math.round(consumeSeconds * 100) / 100,
              consumerConcurrency: spec.concurrency,
            },
          };
          return { system, effects };
        } finally {
          await counter.end();
        }
      }),
    );
  } finally {
    await broker.destroy();
  }
}
