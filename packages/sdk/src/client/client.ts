import type { OutgoingMessage, ResolvedMessage } from "../domain/message.ts";
import { TidingsError } from "../errors.ts";
import { resolveHttpOptions, type HttpOptions, type ResolvedHttpOptions } from "./http.ts";
import type { Executor } from "../executor/executor.ts";
import {
  runTransaction,
  type TransactionCallback,
  type TransactionDefaults,
  type TransactionCallOptions,
  type TransactionMessages,
} from "../transaction/transaction.ts";
import { CallCombiner } from "./callCombiner.ts";
import type { ApiBody, CheckAfter, FeedQuery, MessageInfo, OutcomesRecorded, ReconciliationInfo, ReconciliationReport, Stats } from "./apiTypes.ts";
import { FeedReader } from "./feed.ts";
import { MessagesApi } from "./messagesApi.ts";
import { AlertsApi, AppsApi, ReconciliationsApi, RelaysApi } from "./adminApis.ts";
import { DeliveriesApi, JobsApi, SubscriptionsApi } from "./subscriptionsApi.ts";
import { operation } from "./operation.ts";
import { cleanupBarriers } from "../transaction/barrier.ts";
import { createCheckBackHandler, type CheckBackHandler, type CheckBackHandlerOptions } from "../checkBack/checkBackHandler.ts";

/** The largest batch the service takes, and a request size well under its default body limit (1 MB). */
const COMBINE_LIMITS = { maxBatch: 1000, maxBytes: 512 * 1024 };
/** Request errors that one message of a combined prepare can cause alone: those are sent again one by one. */
const ONE_MESSAGE_ERRORS = new Set(["invalid_request", "invalid_message", "payload_too_large"]);

/**
 * The calls `transaction()` makes. Combined (the default), the prepares and the commits of
 * concurrent transactions go together (see CallCombiner); a combined prepare the service refuses
 * as a whole (one bad message) is sent again one message at a time, so that each caller gets
 * its own answer.
 */
function transactionCalls(messages: MessagesApi, combine: boolean): TransactionMessages {
  const alone: TransactionMessages = {
    prepare: (message, checkAfter, checkContext) => messages.prepareResolved(message, checkAfter, checkContext),
    commit: (id) => messages.commit(id),
    rollback: (id) => messages.rollback(id),
  };
  if (!combine) return alone;
  type Prepare = { message: ResolvedMessage; checkAfter: CheckAfter | undefined; checkContext: string };
  const sendAlone = (p: Prepare) => alone.prepare(p.message, p.checkAfter, p.checkContext);
  const prepares = new CallCombiner<Prepare, MessageInfo>(
    sendAlone,
    async (items) => {
      try {
        return await messages.prepareMany(items);
      } catch (error) {
        if (!(error instanceof TidingsError) || !ONE_MESSAGE_ERRORS.has(error.code)) throw error;
        return Promise.all(
          items.map((p) =>
            sendAlone(p).then(
              (value) => ({ value }),
              (e: unknown) => ({ error: e }),
            ),
          ),
        );
      }
    },
    { ...COMBINE_LIMITS, bytesOf: (p) => 300 + p.checkContext.length + p.message.payloadJson.length + p.message.headersJson.length },
  );
  const commits = new CallCombiner<string, unknown>(alone.commit, (ids) => messages.commitMany(ids), { ...COMBINE_LIMITS, bytesOf: (id) => id.length + 3 });
  return {
    prepare: (message, checkAfter, checkContext) => prepares.push({ message, checkAfter, checkContext }),
    commit: (id) => commits.push(id),
    rollback: alone.rollback,
  };
}

/** The client's options: the service and key, plus what transactional messages need. */
export interface TidingsClientOptions extends HttpOptions {
  /** The app's check-back signing secret (`whsec_...`, from `apps.create`), for `checkBackHandler`. */
  secret?: string | readonly string[];
  /** Defaults of every `transaction()` call: `checkAfter`, `lockTimeoutMs`, `onEvent`. */
  transactions?: TransactionDefaults;
}

/** A consumer's reports on the deliveries it handled (`POST /v1/outcomes`). */
export type OutcomeReports = ApiBody<"post", "/v1/outcomes">["outcomes"];

/**
 * A client of the Tidings service: what an app's key calls (messages, the feed, outcomes,
 * reconciliation reports, relay heartbeats), and what people's keys call (subscriptions,
 * deliveries, jobs, alerts, apps, stats). Every answer is typed from the service's API document.
 */
export class TidingsClient {
  readonly messages: MessagesApi;
  readonly subscriptions: SubscriptionsApi;
  readonly deliveries: DeliveriesApi;
  readonly jobs: JobsApi;
  readonly alerts: AlertsApi;
  readonly apps: AppsApi;
  readonly relays: RelaysApi;
  readonly reconciliations: ReconciliationsApi;
  private readonly options: ResolvedHttpOptions;
  private readonly secret: string | readonly string[] | undefined;
  private readonly transactionDefaults: TransactionDefaults;
  /** What `transaction()` calls: the message API, concurrent calls combined unless `combineCalls: false`. */
  private readonly transactionCalls: TransactionMessages;

  constructor(options: TidingsClientOptions) {
    this.options = resolveHttpOptions(options);
    this.messages = new MessagesApi(this.options);
    this.subscriptions = new SubscriptionsApi(this.options);
    this.deliveries = new DeliveriesApi(this.options, this.messages);
    this.jobs = new JobsApi(this.options);
    this.alerts = new AlertsApi(this.options);
    this.apps = new AppsApi(this.options);
    this.relays = new RelaysApi(this.options);
    this.reconciliations = new ReconciliationsApi(this.options);
    this.secret = options.secret;
    this.transactionDefaults = options.transactions ?? {};
    this.transactionCalls = transactionCalls(this.messages, this.transactionDefaults.combineCalls !== false);
  }

  /**
   * A transactional message in one call: prepares `message`, runs `fn` in a local transaction of
   * `db` that also inserts the message's barrier row, commits it, then commits the message. If
   * `fn` throws, the local transaction and the message are rolled back and the error rethrown.
   * Resolves to what `fn` resolved to. `db` must be a pool or connection, not a transaction.
   * A crash anywhere is settled by the check-back (`checkBackHandler(db)` at the app's check URL).
   */
  transaction<T>(db: Executor, message: OutgoingMessage, fn: TransactionCallback<T>, options: TransactionCallOptions = {}): Promise<T> {
    this.cleanupBarriersNowAndThen(db);
    return runTransaction(this.transactionCalls, db, message, fn, { ...this.transactionDefaults, ...options });
  }

  private lastBarrierCleanup = 0;

  /**
   * Deletes old intent and barrier rows of `db` in the background, at most once per
   * `transactions.cleanupIntervalMs` (default 1 hour; 0: never, call `cleanupBarriers(db)`).
   * Never throws, never waits: a failed cleanup is tried again at the next interval.
   */
  private cleanupBarriersNowAndThen(db: Executor): void {
    const every = this.transactionDefaults.cleanupIntervalMs ?? 3_600_000;
    const now = Date.now();
    if (every <= 0 || now - this.lastBarrierCleanup < every) return;
    this.lastBarrierCleanup = now;
    cleanupBarriers(db, { olderThanMs: this.transactionDefaults.barrierRetentionMs }).catch(() => undefined);
  }

  /**
   * The check-back endpoint for messages sent with `transaction()` on `db`: verifies the
   * service's signature (the app's `secret`), and answers from the barrier table. Mount it with
   * `.node` (Node http, Express), `.fastify(path)`, `.hono`, or `.fetch`.
   */
  checkBackHandler(db: Executor, options: Partial<CheckBackHandlerOptions> = {}): CheckBackHandler {
    const secret = options.secret ?? this.secret;
    if (!secret)
      throw new TidingsError(
        "config",
        "checkBackHandler needs the app's secret: new TidingsClient({ url, apiKey, secret }) or checkBackHandler(db, { secret })",
      );
    return createCheckBackHandler(db, {
      ...options,
      secret,
      lockTimeoutMs: options.lockTimeoutMs ?? this.transactionDefaults.lockTimeoutMs,
    });
  }

  /**
   * The committed messages of a topic or subscription in the order they committed, oldest
   * first, as an async iterator that ends once it has read everything committed so far. Keep
   * `reader.cursor` and pass it as `after` to go on from there: a message that commits late (a
   * prepared one) is never skipped.
   *
   *     const reader = client.feed({ subscription: "inventory", after: saved });
   *     for await (const m of reader) await apply(m);
   *     saved = reader.cursor;
   */
  feed(query: FeedQuery): FeedReader {
    if ((query.topic === undefined) === (query.subscription === undefined)) {
      throw new TidingsError("config", "feed() needs either topic or subscription (one of them)");
    }
    return new FeedReader((q) => this.messages.feedPage(q), query);
  }

  /** Sends a reconciliation run's report to the service (`POST /v1/reconciliations`), shown in the console. */
  reportReconciliation(report: ReconciliationReport, options: { timeoutMs?: number } = {}): Promise<ReconciliationInfo> {
    return this.reconciliations.report(report, options);
  }

  /**
   * Reports what consumers made of deliveries (applied, duplicate, failed), up to 1000 in one
   * call, once. `OutcomeReporter` batches them off the hot path; this is the single call.
   */
  reportOutcomes(outcomes: OutcomeReports): Promise<OutcomesRecorded> {
    return operation(this.options, "post", "/v1/outcomes", { body: { outcomes } });
  }

  /** The console's overview (a person's key): counts by state, the oldest pending delivery, throughput per minute. */
  stats(): Promise<Stats> {
    return operation(this.options, "get", "/v1/stats", {}, { idempotent: true });
  }

  /** The service's base URL. */
  get url(): string {
    return this.options.baseUrl;
  }
}
