import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import type { SubscriptionRow } from "../domain/subscription.ts";
import type { Logger } from "pino";
import { ConfigError, type Config } from "./config.ts";
import { resolveAdminKey } from "./adminKey.ts";
import { startEmbeddedDb, type EmbeddedDb } from "./embeddedDb.ts";
import { Dispatcher } from "../delivery/dispatcher.ts";
import { HttpTransport } from "../transports/httpTransport.ts";
import { CheckBackScheduler, callCheckUrl } from "../checkBack/checkBackScheduler.ts";
import { compileNetworkPolicy } from "../domain/networkPolicy.ts";
import { sendVia, type Transports } from "../transports/transport.ts";
import { createBrokerTransports } from "../transports/brokerTransports.ts";
import { ResendDeadJobs } from "../workers/resendDeadJobs.ts";
import { RetentionSweeper } from "../workers/retentionSweeper.ts";
import { Notifier } from "../workers/notifier.ts";
import { ChannelSenders } from "../transports/channelSenders.ts";
import { claimChannels, eventsAfter, recentSends, recordSend, releaseChannel } from "../store/notifierClaims.ts";
import { AlertWatch } from "../workers/alertWatch.ts";
import { checkPendingAge, resolveClearedAlerts } from "../store/alerts.ts";
import { checkUrlAnswered, checkUrlFailed } from "../store/checkUrlHealth.ts";
import { createDayPartitions, dropFinishedDays } from "../store/retention.ts";
import { DayRetention } from "../workers/dayRetention.ts";
import { sweepAudit } from "../store/auditLog.ts";
import { checkUnresolved, claimDueChecks, countCheck, logCheck, releaseCheck } from "../store/preparedMessages.ts";
import { ResultWriter } from "../delivery/resultWriter.ts";
import { SubscriptionCache } from "../delivery/subscriptionCache.ts";
import { Authenticator } from "../http/auth.ts";
import { compileEndpointCheck } from "../http/endpointPolicy.ts";
import { buildServer, routesOf } from "../http/server.ts";
import type { RouteEntry } from "../http/access.ts";
import { createMetrics } from "./metrics.ts";
import { describeCircuit } from "../domain/circuitBreaker.ts";
import { showPendingAgeAlert } from "../domain/alerts.ts";
import { Publisher } from "../publish/publisher.ts";
import { appByKeyHash } from "../store/apps.ts";
import { operatorByKeyHash } from "../store/operators.ts";
import { createPool, statementTimeoutMs, type Db } from "../store/db.ts";
import { claimDueDeliveries, recordAttempts, releaseDeliveries } from "../store/deliveryAttempts.ts";
import { claimOrderedDeliveries } from "../store/orderedClaim.ts";
import { claimWithinLimits } from "../store/subscriptionLimits.ts";
import type { ClaimBatch, LeasedDelivery } from "../domain/delivery.ts";
import { migrate } from "../store/migrate.ts";
import { countPending } from "../store/operatorActions.ts";
import { countInDoubt, countOpenAlertsByCondition, oldestPendingBySubscription } from "../store/monitoring.ts";
import { listRelays, checkRelays } from "../store/relays.ts";
import { HealthMonitor } from "../delivery/healthMonitor.ts";
import { giveBackProbe, HEALTH_CHANNEL, loadHealth, pauseIfOpenTooLong, recordHealth, takeProbe } from "../store/subscriptionHealth.ts";

/** Waits for `work`, but not longer than `ms`. */
function within(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work.then(
      () => undefined,
      () => undefined,
    ),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))),
  ]).finally(() => clearTimeout(timer));
}

/**
 * A start that failed because DATABASE_URL leads to a transaction-mode pooler the service was
 * not told about: PgBouncer refuses statement_timeout at connection start. Said plainly, with
 * the settings that fix it, instead of the pooler's words (or a hang on session state later).
 */
function poolerRefusal(error: unknown, config: Config): unknown {
  const message = error instanceof Error ? error.message : "";
  if (config.dbPooling !== "none" || !/unsupported startup parameter/i.test(message)) return error;
  return new ConfigError(
    `DATABASE_URL refused a connection's startup parameters (${message}): it looks like a connection pooler such as PgBouncer. ` +
      "Behind a transaction-mode pooler set TIDINGS_DB_POOLING=transaction and DATABASE_LISTEN_URL (a direct connection for LISTEN); see docs/operations.md, Behind a pooler",
  );
}

/**
 * The role's statement_timeout as the pooler's server connections get it, against
 * TIDINGS_DB_STATEMENT_TIMEOUT: behind a transaction-mode pooler the setting cannot travel with
 * each connection, so a difference is reported once at start with the statement that aligns it.
 */
async function checkRoleStatementTimeout(db: Db, config: Config, log: Logger): Promise<void> {
  const roleMs = await statementTimeoutMs(db);
  if (roleMs === config.dbStatementTimeoutMs) return;
  log.warn(
    { roleStatementTimeoutMs: roleMs, wantedStatementTimeoutMs: config.dbStatementTimeoutMs },
    `behind a transaction-mode pooler statement_timeout is the database role's setting, not TIDINGS_DB_STATEMENT_TIMEOUT: ALTER ROLE <the pooler's server user> SET statement_timeout = '${config.dbStatementTimeoutMs}ms'`,
  );
}

export interface RunningService {
  readonly url: string;
  readonly adminKey: string;
  readonly adminKeyGenerated: boolean;
  readonly nodeId: string;
  /** Every route the API registered, with who may call it. */
  readonly routes: readonly RouteEntry[];
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
  const limits = { connectTimeoutMs: config.dbConnectTimeoutMs, statementTimeoutMs: config.dbStatementTimeoutMs };
  const db = createPool(databaseUrl, config.poolSize, limits, config.dbPooling);
  // LISTEN holds one session for the process's life: directly to PostgreSQL when asked.
  const listenDb = config.databaseListenUrl ? createPool(config.databaseListenUrl, 1, limits) : db;
  // Lists, search and stats (the console's refreshes): half as many connections as the primary's.
  const readDb = config.databaseReadUrl ? createPool(config.databaseReadUrl, Math.max(2, Math.ceil(config.poolSize / 2)), limits, config.dbPooling) : db;
  const endPools = async () => {
    await Promise.all([db.end(), listenDb !== db && listenDb.end(), readDb !== db && readDb.end()]);
  };
  let applied: number[];
  try {
    applied = await migrate(db);
    if (config.dbPooling === "transaction") await checkRoleStatementTimeout(db, config, log);
  } catch (error) {
    await endPools().catch(() => {});
    await embedded?.stop();
    throw poolerRefusal(error, config);
  }
  if (applied.length > 0) log.info({ applied }, "migrations applied");
  // Today's partitions and the days ahead, before anything is published. A busy table may
  // refuse the lock for now: the days made ahead before, and each retention pass, cover it.
  await createDayPartitions(db).catch((error: unknown) => log.warn({ err: error }, "retention: could not create day partitions yet"));

  const admin = await resolveAdminKey(config.adminKey, config.dataDir);
  const nodeId = `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  const metrics = createMetrics(
    () => countPending(db),
    () =>
      [...subscriptions.all()].map((sub) => {
        const pendingAgeMs = sub.pendingAgeAlertMs ?? config.alertPendingAgeMs;
        return {
          subscription: sub.name,
          enabled: sub.enabled,
          open: health.health(sub.id).state !== "closed",
          throttled: (health.health(sub.id).throttledUntil ?? 0) > Date.now(),
          ordering: sub.ordering,
          onDead: sub.onDead,
          rateLimit: sub.rateLimit,
          maxInFlight: sub.maxInFlight,
          circuit: describeCircuit(sub.circuit),
          pendingAgeAlert: showPendingAgeAlert(pendingAgeMs) || "off",
          pendingAgeAlertSeconds: pendingAgeMs > 0 ? pendingAgeMs / 1000 : null,
        };
      }),
    {
      openAlerts: () => countOpenAlertsByCondition(db),
      inDoubt: () => countInDoubt(db),
      oldestPending: () => oldestPendingBySubscription(db),
      heldPartitions: () => retention.held,
      relays: async () =>
        (await listRelays(db, config.relayStaleAfterMs))
          .filter((r) => r.stoppedAt === null)
          .map((r) => ({
            app: r.app ?? "",
            relay: r.name,
            heartbeatAgeSeconds: r.heartbeatAgeSeconds,
            pending: r.pending,
            failed: r.failed,
            oldestPendingSeconds: r.oldestPendingSeconds ?? 0,
          })),
    },
  );
  // Started with the dispatcher; until then it ignores announcements of changes.
  const health: HealthMonitor = new HealthMonitor(
    {
      load: () => loadHealth(db),
      record: (tallies) => recordHealth(db, tallies),
      takeProbe: (id, probeEveryMs) => takeProbe(db, id, probeEveryMs),
      giveBackProbe: (id) => giveBackProbe(db, id),
      claimOne: (id) => claim(1, [id]),
      pause: (id, pauseAfterMs) => pauseIfOpenTooLong(db, id, pauseAfterMs),
      subscription: (id) => subscriptions.get(id),
      enabledIds: () => subscriptions.enabledIds(),
      push: (deliveries) => dispatcher.push(deliveries),
      wake: () => dispatcher.wake(),
      wakeAt: (time) => dispatcher.wakeAt(time),
      opened: (sub) => metrics.circuitOpens.inc({ subscription: sub.name }),
    },
    config.pollIntervalMs,
    log,
  );
  // Changes arrive by LISTEN/NOTIFY; the reload every 10 s (or every poll, when that is rarer) is
  // the safety net for a notification lost with a connection, like the poll is for deliveries.
  const subscriptions = new SubscriptionCache(db, log, Math.max(10_000, config.pollIntervalMs), { [HEALTH_CHANNEL]: () => health.changed() }, listenDb);
  await subscriptions.start();
  /** What claims take: the enabled subscriptions, less those `skip` names and those the circuits or a Retry-After hold. */
  const claimable = (skip: ReadonlySet<number>): number[] => subscriptions.enabledIds().filter((id) => !skip.has(id) && !health.holds(id));
  const claim = (limit: number, ids: readonly number[]) =>
    subscriptions.anyOrdered() ? claimOrderedDeliveries(db, nodeId, config.leaseMs, limit, ids) : claimDueDeliveries(db, nodeId, config.leaseMs, limit, ids);
  /** A subscription with a rate limit or maxInFlight: its deliveries go only by claims within its limits. */
  const isLimited = (sub: SubscriptionRow): boolean => sub.rateLimit !== null || sub.maxInFlight !== null;
  const limited = (id: number): boolean => {
    const sub = subscriptions.get(id);
    return !!sub && isLimited(sub);
  };
  /**
   * A claim: first each limited subscription's own, within its limits across all nodes (a bucket
   * that ran dry sets the next poll for its next token), then the rest together. A node takes of
   * the limited ones no more than it can start at once (`idle`): one it held in memory would
   * count against maxInFlight while sending nothing, and keep the other nodes from their share.
   */
  /** Until when a limited subscription's bucket is known to be empty: no claim asks for it before. */
  const dryUntil = new Map<number, number>();
  const claimAll = async (limit: number, skip: ReadonlySet<number>, idle: number): Promise<ClaimBatch> => {
    const ids = claimable(skip);
    const taken: LeasedDelivery[] = [];
    let left = limit;
    let startable = Math.min(idle, limit);
    const now = Date.now();
    for (const id of ids) {
      const sub = subscriptions.get(id);
      if (!sub || !limited(id) || startable <= 0 || (dryUntil.get(id) ?? 0) > now) continue;
      const { batch, waitMs } = await claimWithinLimits(db, id, sub, startable, (n) => claim(n, [id]));
      taken.push(...batch);
      left -= batch.length;
      startable -= batch.length;
      if (waitMs === null) dryUntil.delete(id);
      else {
        dryUntil.set(id, now + waitMs);
        dispatcher.wakeAt(now + waitMs);
      }
    }
    const rest = ids.filter((id) => !limited(id));
    const batch: ClaimBatch = left > 0 && rest.length > 0 ? await claim(left, rest) : [];
    const all: ClaimBatch = taken.length === 0 ? batch : [...taken, ...batch];
    all.more = batch.more === true || (left > 0 && rest.length > 0 && batch.length === left);
    return all;
  };
  // The endpoint network policy, judged on the address each connection goes to.
  const judge = compileNetworkPolicy({ allow: config.endpointAllow, deny: config.endpointDeny });
  const transport = new HttpTransport(config.deliveryTimeoutMs, config.deliveryConcurrency, judge);
  const transports: Transports = { http: transport, ...createBrokerTransports(config.deliveryTimeoutMs, judge) };
  const results = new ResultWriter(
    (batch) => recordAttempts(db, batch),
    (counts, batch) => {
      metrics.delivered.inc(counts.delivered);
      metrics.failed.inc(counts.failed);
      metrics.dead.inc(counts.dead);
      let soonest = Infinity;
      health.onResults(batch);
      let keyMoved = false;
      for (const r of batch) {
        metrics.deliveryLatency.observe(r.latencyMs / 1000);
        if (r.nextAttemptAt && r.nextAttemptAt.getTime() < soonest) soonest = r.nextAttemptAt.getTime();
        const sub = subscriptions.get(r.subscriptionId);
        if (r.outcome !== "failed" && sub?.ordering === "key") keyMoved = true;
        // A slot of a subscription limited across nodes came free (claims take of those only what can start at once): the next claim may take more of it.
        if (sub && isLimited(sub)) keyMoved = true;
      }
      // A key's delivery finished: the next one of its key is for the next claim, at once.
      if (keyMoved) dispatcher.wake();
      else if (soonest < Infinity) dispatcher.wakeAt(soonest);
    },
    log,
  );
  const dispatcher = new Dispatcher(
    {
      nodeId,
      claim: claimAll,
      claimsOnly: isLimited,
      admit: (subscription, delivery) => health.admits(subscription, delivery),
      release: (leases) => releaseDeliveries(db, leases),
      subscription: (id) => subscriptions.get(id),
      send: (subscription, delivery, body, signal, trace) =>
        sendVia(transports, subscription.endpoint, { delivery, body, secret: subscription.secret, signal, subscription: subscription.name, trace }),
    },
    results,
    {
      concurrency: config.deliveryConcurrency,
      pollIntervalMs: config.pollIntervalMs,
      maxQueued: config.deliveryConcurrency * 20,
      maxInFlightPerSubscription: config.subscriptionMaxInFlight,
      leaseMs: config.leaseMs,
      attemptMs: config.deliveryTimeoutMs,
    },
    log,
  );
  const publisher = new Publisher({
    db,
    nodeId,
    leaseMs: config.leaseMs,
    log,
    canDispatch: () => !dispatcher.saturated,
    dispatch: (deliveries) => dispatcher.push(deliveries),
    // Deliveries left unleased (ordered by key, or the dispatcher backed up) go by a claim.
    unleased: () => {
      if (subscriptions.anyOrdered()) dispatcher.wake();
    },
    accepted: (n) => metrics.accepted.inc(n),
    maxWaiting: config.publishQueue,
    maxWaitingBytes: config.publishQueueBytes,
  });
  const checkBack = new CheckBackScheduler(
    {
      claim: (limit) => claimDueChecks(db, nodeId, config.leaseMs, limit),
      call: (due, checkNo, signal, trace) => callCheckUrl(transport, due, checkNo, signal, trace),
      release: (due) => releaseCheck(db, due.message.id, due.lease),
      commit: async (id) => void (await publisher.commit(id)),
      rollback: async (id) => void (await publisher.rollback(id)),
      unresolved: (due) => checkUnresolved(db, due.message.id, due.lease, config.checkIntervalMs, config.checkLimit),
      counted: (id) => countCheck(db, id),
      log: (entry) => logCheck(db, entry),
      checkUrl: async (due, call) => {
        // A message the admin sent has no app, hence no check URL of its own to judge.
        if (due.message.app === null) return;
        if (call.answer !== null) await checkUrlAnswered(db, due.message.app);
        else await checkUrlFailed(db, due.message.app, call.error ?? "no answer", due.message.id, config.alertCheckFailures);
      },
    },
    { pollIntervalMs: config.pollIntervalMs, concurrency: 32 },
    log,
  );
  const resendJobs = new ResendDeadJobs(db, nodeId, () => dispatcher.wake(), log);
  // Notifications go through a transport of their own: their deadline, and connections that a
  // hanging channel cannot take from the deliveries.
  const notifyTransport = new HttpTransport(config.notifyTimeoutMs, 4, judge);
  const senders = new ChannelSenders(notifyTransport, judge, config.notifyTimeoutMs);
  // The console's address is known once the server listens (its port may be chosen then).
  let publicUrl = config.publicUrl ?? "";
  const notifier = new Notifier(
    {
      claim: (lease, leaseMs, limit) => claimChannels(db, lease, leaseMs, limit),
      eventsAfter: (cursorTx, cursor, limit) => eventsAfter(db, cursorTx, cursor, limit),
      recentSends: (id) => recentSends(db, id),
      record: (id, lease, outcome) => recordSend(db, id, lease, outcome),
      release: (id, lease, last, waitMs) => releaseChannel(db, id, lease, last, waitMs),
      send: (channel, notification, signal) => senders.send(channel, notification, signal),
    },
    {
      pollIntervalMs: config.pollIntervalMs,
      // A send ends within its deadline: a lease of several deadlines is never outlived by a live node.
      leaseMs: Math.max(config.leaseMs, 3 * config.notifyTimeoutMs),
      concurrency: 16,
      publicUrl: () => publicUrl,
    },
    log,
  );
  const alertWatch = new AlertWatch(
    {
      resolveCleared: () => resolveClearedAlerts(db),
      checkPendingAge: () => checkPendingAge(db, config.alertPendingAgeMs),
      checkRelays: () => checkRelays(db, config.relayStaleAfterMs),
    },
    config.alertIntervalMs,
    log,
  );
  const auth = new Authenticator(admin.key, { app: (hash) => appByKeyHash(db, hash), operator: (hash) => operatorByKeyHash(db, hash) });
  const server = await buildServer({
    config,
    db,
    readDb,
    log,
    auth,
    publisher,
    dispatcher,
    subscriptions,
    metrics,
    resendJobs,
    notifier,
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
  const retention = new DayRetention(
    { createAhead: () => createDayPartitions(db), pass: () => dropFinishedDays(db, config.retentionMs) },
    { intervalMs: config.retentionIntervalMs },
    log,
  );
  const auditRetention = new RetentionSweeper(
    (batchSize) => sweepAudit(db, config.auditRetentionMs, batchSize),
    { intervalMs: config.retentionIntervalMs, batchSize: 1000, what: "audit entries" },
    log,
  );
  await health.start();
  dispatcher.start();
  checkBack.start();
  retention.start();
  auditRetention.start();
  resendJobs.start();
  alertWatch.start();
  const address = server.server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
  publicUrl ||= `${url}/console/`;
  notifier.start();
  log.info({ url, nodeId }, "tidings is listening");

  let closing: Promise<void> | null = null;
  return {
    url,
    adminKey: admin.key,
    adminKeyGenerated: admin.generated,
    nodeId,
    routes: routesOf(server),
    // Bounded: API requests get a few seconds, attempts and check-backs in flight 2 s before
    // they are aborted (their leases given back), a re-send job 2 s to end its batch (unfinished
    // jobs are handed back for another node), results 3 s to be written; then connections
    // are cut. A receiver that never finishes its answer cannot hold the process.
    close: () =>
      (closing ??= (async () => {
        await within(server.close(), 3000);
        retention.stop();
        auditRetention.stop();
        health.stop();
        await Promise.all([checkBack.stop(2000), dispatcher.stop(2000), within(resendJobs.stop(), 2000), notifier.stop(2000)]);
        await within(alertWatch.stop(), 2000);
        await Promise.all([checkBack.stop(2000), dispatcher.stop(2000), within(resendJobs.stop(), 2000)]);
        await results.drain(3000);
        await subscriptions.stop();
        await within(
          Promise.all([
            transport.close(true),
            notifyTransport.close(true),
            ...Object.values(transports)
              .filter((t) => t !== transport)
              .map((t) => t.close()),
          ]),
          2000,
        );
        await endPools();
        await embedded?.stop();
      })()),
  };
}
