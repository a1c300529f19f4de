import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { Config } from "./config.ts";
import { resolveAdminKey } from "./adminKey.ts";
import { startEmbeddedDb, type EmbeddedDb } from "./embeddedDb.ts";
import { Dispatcher } from "./dispatch/dispatcher.ts";
import { HttpTransport, errorText } from "./dispatch/httpTransport.ts";
import { CheckBackScheduler, parseCheckAnswer } from "./dispatch/checkBack.ts";
import { sendVia, type Transports } from "./dispatch/transport.ts";
import { createBrokerTransports } from "./dispatch/transports/brokerTransports.ts";
import { RetentionSweeper } from "./maintenance/retention.ts";
import { deleteFinishedMessages } from "./store/retention.ts";
import { checkUnresolved, claimDueChecks, countCheck, logCheck } from "./store/transactional.ts";
import { ResultWriter } from "./dispatch/resultWriter.ts";
import { SubscriptionCache } from "./dispatch/subscriptionCache.ts";
import { Authenticator } from "./http/auth.ts";
import { compileEndpointCheck } from "./http/endpointPolicy.ts";
import { buildServer } from "./http/server.ts";
import { createMetrics } from "./metrics.ts";
import { Publisher } from "./publish/publisher.ts";
import { appByKeyHash } from "./store/apps.ts";
import { createPool } from "./store/db.ts";
import { claimDueDeliveries, recordAttempts, releaseDeliveries } from "./store/deliveryOps.ts";
import { migrate } from "./store/migrate.ts";
import { countPending } from "./store/operatorOps.ts";

export interface RunningService {
  readonly url: string;
  readonly adminKey: string;
  readonly adminKeyGenerated: boolean;
  readonly nodeId: string;
  close(): Promise<void>;
}

/** Connects (or starts the embedded database), migrates, and runs the API and the dispatcher. */
export async function startService(config: Config, log: Logger): Promise<RunningService> {
  let embedded: EmbeddedDb | null = null;
  let databaseUrl = config.databaseUrl;
  if (databaseUrl === null) {
    embedded = await startEmbeddedDb(config.dataDir, log);
    databaseUrl = embedded.url;
  }
  const db = createPool(databaseUrl, config.poolSize, { connectTimeoutMs: config.dbConnectTimeoutMs, statementTimeoutMs: config.dbStatementTimeoutMs });
  const applied = await migrate(db);
  if (applied.length > 0) log.info({ applied }, "migrations applied");

  const admin = await resolveAdminKey(config.adminKey, config.dataDir);
  const nodeId = `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  const metrics = createMetrics(() => countPending(db));
  const subscriptions = new SubscriptionCache(db, log);
  await subscriptions.start();
  const transport = new HttpTransport(config.deliveryTimeoutMs, config.deliveryConcurrency);
  const transports: Transports = { http: transport, ...createBrokerTransports(config.deliveryTimeoutMs) };
  const results = new ResultWriter(
    (batch) => recordAttempts(db, nodeId, batch),
    (counts, batch) => {
      metrics.delivered.inc(counts.delivered);
      metrics.failed.inc(counts.failed);
      metrics.dead.inc(counts.dead);
      let soonest = Infinity;
      for (const r of batch) {
        metrics.deliveryLatency.observe(r.latencyMs / 1000);
        if (r.nextAttemptAt && r.nextAttemptAt.getTime() < soonest) soonest = r.nextAttemptAt.getTime();
      }
      if (soonest < Infinity) dispatcher.wakeAt(soonest);
    },
    log,
  );
  const dispatcher = new Dispatcher(
    {
      claim: (limit) => claimDueDeliveries(db, nodeId, config.leaseMs, limit, subscriptions.enabledIds()),
      release: (ids) => releaseDeliveries(db, nodeId, ids),
      subscription: (id) => subscriptions.get(id),
      send: (subscription, delivery, body) => sendVia(transports, subscription.endpoint, { delivery, body, secret: subscription.secret }),
    },
    results,
    { concurrency: config.deliveryConcurrency, pollIntervalMs: config.pollIntervalMs, maxQueued: config.deliveryConcurrency * 20 },
    log,
  );
  const publisher = new Publisher({
    db,
    nodeId,
    leaseMs: config.leaseMs,
    log,
    canDispatch: () => !dispatcher.saturated,
    dispatch: (deliveries) => dispatcher.push(deliveries),
    accepted: (n) => metrics.accepted.inc(n),
    maxWaiting: config.publishQueue,
    maxWaitingBytes: config.publishQueueBytes,
  });
  const checkBack = new CheckBackScheduler(
    {
      claim: (limit) => claimDueChecks(db, nodeId, config.leaseMs, limit),
      call: async (due, checkNo) => {
        if (!due.checkUrl || !due.secret) return { statusCode: null, answer: null, error: "the app has no check URL" };
        const m = due.message;
        const body = JSON.stringify({ id: m.id, topic: m.topic, tag: m.tag, key: m.key, payload: m.payload, checks: checkNo });
        try {
          const response = await transport.post(due.checkUrl, due.secret, m.id, body, { "tidings-check": String(checkNo) });
          const text = await response.body.text();
          const answer = response.statusCode >= 200 && response.statusCode < 300 ? parseCheckAnswer(text) : null;
          const error = answer ? null : `HTTP ${response.statusCode}: ${text.slice(0, 300)}`;
          return { statusCode: response.statusCode, answer, error };
        } catch (error) {
          return { statusCode: null, answer: null, error: errorText(error) };
        }
      },
      commit: async (id) => void (await publisher.commit(id)),
      rollback: async (id) => void (await publisher.rollback(id)),
      unresolved: (id) => checkUnresolved(db, id, nodeId, config.checkIntervalMs, config.checkLimit),
      counted: (id) => countCheck(db, id),
      log: (entry) => logCheck(db, entry),
    },
    { pollIntervalMs: config.pollIntervalMs, concurrency: 32 },
    log,
  );
  const auth = new Authenticator(admin.key, (hash) => appByKeyHash(db, hash));
  const server = await buildServer({
    config,
    db,
    log,
    auth,
    publisher,
    dispatcher,
    subscriptions,
    metrics,
    checkEndpointUrl: compileEndpointCheck({ allow: config.endpointAllow, deny: config.endpointDeny }),
    ready: async () => {
      try {
        await db.query("select 1");
        return true;
      } catch {
        return false;
      }
    },
  });
  await server.listen({ port: config.port, host: config.host });
  const retention = new RetentionSweeper(
    (batchSize) => deleteFinishedMessages(db, config.retentionMs, batchSize),
    { intervalMs: config.retentionIntervalMs, batchSize: 1000 },
    log,
  );
  dispatcher.start();
  checkBack.start();
  retention.start();
  const address = server.server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
  log.info({ url, nodeId }, "tidings is listening");

  let closing: Promise<void> | null = null;
  return {
    url,
    adminKey: admin.key,
    adminKeyGenerated: admin.generated,
    nodeId,
    close: () =>
      (closing ??= (async () => {
        await server.close();
        await checkBack.stop();
        retention.stop();
        await dispatcher.stop();
        await results.drain();
        await subscriptions.stop();
        await Promise.all(Object.values(transports).map((t) => t.close()));
        await db.end();
        await embedded?.stop();
      })()),
  };
}
