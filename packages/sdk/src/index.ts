// @tidings/sdk: the public surface. Nothing runs at import time.
// ORM adapters that import their ORM live in subpaths: "@tidings/sdk/drizzle", "@tidings/sdk/kysely".

export { SERVICE_ERROR_CODES, TidingsError, type ServiceErrorCode, type TidingsErrorCode } from "./errors.ts";

// the executor port and its adapters
export type { Executor, Listening, Row, TransactionOptions } from "./executor/executor.ts";
export { dialectOf, isUniqueViolation, type Dialect, type DialectName } from "./executor/dialect.ts";
export { fromPg, type PgAdapterOptions, type PgClientLike, type PgPoolLike } from "./executor/pgAdapter.ts";
export { fromPostgresJs, type PostgresJsLike } from "./executor/postgresJsAdapter.ts";
export { fromMysql2, type Mysql2ConnectionLike, type Mysql2PoolLike } from "./executor/mysql2Adapter.ts";
export { fromKnex, type KnexLike } from "./executor/knexAdapter.ts";
export {
  fromPrisma,
  prismaOf,
  type PrismaAdapterOptions,
  type PrismaClientLike,
  type PrismaLike,
  type PrismaTransactionOptions,
} from "./executor/prismaAdapter.ts";
export { connect, type Connection } from "./executor/connect.ts";
export { migrate, sqlMigrations, type SqlMigration } from "./schema/migrate.ts";

// producer side
export type { OutgoingMessage } from "./domain/message.ts";
export { Outbox, type OutboxOptions } from "./outbox/outbox.ts";
export type { OutboxRow, OutboxStatus } from "./outbox/outboxQueries.ts";
export { Relay, type RelayEvent, type RelayOptions } from "./outbox/relay.ts";
export { backoffDelayMs, type BackoffPolicy } from "./domain/backoff.ts";

// transactional (half) messages: tidings.transaction(db, message, fn), tidings.checkBackHandler(db)
export {
  runTransaction,
  type TransactionCallback,
  type TransactionCallOptions,
  type TransactionContext,
  type TransactionDefaults,
  type TransactionEvent,
} from "./transaction/transaction.ts";
export { cleanupBarriers, decide, type BarrierCleanupOptions, type BarrierOutcome, type CheckAnswer } from "./transaction/barrier.ts";
export {
  createCheckBackHandler,
  parseCheckRequest,
  type CheckBackAnswer,
  type CheckBackEvent,
  type CheckBackHandler,
  type CheckBackHandlerOptions,
  type CheckRequest,
} from "./checkBack/checkBackHandler.ts";

// consumer side
export type { Envelope } from "./domain/envelope.ts";
export { fullIdOf, parseEnvelope } from "./domain/envelope.ts";
export { Inbox, type InboxOptions, type InboxOutcome } from "./inbox/inbox.ts";
export type { InboxMessage, InboxRecord, InboxStatus } from "./inbox/inboxQueries.ts";
export { createReceiver, type RawDelivery, type Receiver, type ReceiverAnswer, type ReceiverEvent, type ReceiverOptions } from "./receiver/receiver.ts";
export { fastifyPlugin, honoHandler, nodeHandler } from "./receiver/mounts.ts";
// broker consumers (each loads its client library when started: amqplib, @nats-io/*, ioredis)
export { consume } from "./consume/consume.ts";
export type { BrokerDelivery, ConsumeEvent, ConsumeOptions, Consumer, ConsumerStats } from "./consume/consumeCore.ts";
export { rabbitmqDeadLetter, rabbitmqRetryQueue, type RabbitmqConsumeOptions } from "./consume/rabbitmq.ts";
export { DEFAULT_RETRY_SCHEDULE, type RetryOptions } from "./domain/retrySchedule.ts";
export {
  OutcomeReporter,
  type OutcomeKind,
  type OutcomeReport,
  type OutcomeReporterEvent,
  type OutcomeReporterOptions,
  type OutcomeReporterStats,
} from "./outcomes/outcomeReporter.ts";
export type { NatsConsumeOptions } from "./consume/nats.ts";
export type { RedisConsumeOptions } from "./consume/redis.ts";

// the service's API, typed from its OpenAPI document (client/openapi.ts, `npm run gen:api`)
export { TidingsClient, type OutcomeReports, type TidingsClientOptions } from "./client/client.ts";
export { MessagesApi } from "./client/messagesApi.ts";
export { AlertsApi, AppsApi, ReconciliationsApi, RelaysApi } from "./client/adminApis.ts";
export { DeliveriesApi, JobsApi, SubscriptionsApi, type WaitOptions } from "./client/subscriptionsApi.ts";
export type {
  AlertInfo,
  AlertPage,
  ApiAnswer,
  ApiBody,
  ApiComponents,
  ApiError,
  ApiMethod,
  ApiParams,
  ApiPath,
  ApiPaths,
  ApiQuery,
  ApiSuccess,
  AppChanged,
  AppChanges,
  AppCreated,
  AppInfo,
  AttemptInfo,
  BatchAnswer,
  BatchOutcomes,
  CheckAfter,
  CheckInfo,
  CommitResult,
  DeliveryInfo,
  DeliveryPage,
  DeliveryTarget,
  FeedMessage,
  FeedPage,
  FeedQuery,
  JobInfo,
  ListAlertsQuery,
  ListDeliveriesQuery,
  ListedDelivery,
  ListMessagesQuery,
  ListReconciliationsQuery,
  MessageInfo,
  MessageLookup,
  MessagePage,
  NewApp,
  NewSubscription,
  OutcomesRecorded,
  ReconciliationDifference,
  ReconciliationInfo,
  ReconciliationPage,
  ReconciliationReport,
  RecoverOptions,
  RelayInfo,
  RelayList,
  RelayReport,
  ResendDeadOptions,
  ResendDeadResult,
  Stats,
  SubscriptionChanges,
  SubscriptionHealth,
  SubscriptionInfo,
} from "./client/apiTypes.ts";
export { FeedReader } from "./client/feed.ts";
export type { HttpOptions } from "./client/http.ts";
export { reconcileIds, reconcileQuery, type ReconcileOptions, type ReconcileResult } from "./client/reconcile.ts";

// scheduled reconciliation: reconciler.run({ since, until }), reconciler.start({ every, window })
export { Reconciler, type ReconcilerEvent, type ReconcilerOptions, type RunWindow, type ScheduleOptions } from "./reconcile/reconciler.ts";
export type { ConsumerSide } from "./reconcile/consumerRun.ts";
export type { ProducerSide } from "./reconcile/producerRun.ts";
export type { ReconcileClient } from "./reconcile/reconcileClient.ts";
export { parseDuration } from "./domain/duration.ts";
