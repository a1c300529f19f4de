import { resolveMessage, type OutgoingMessage, type ResolvedMessage } from "../domain/message.ts";
import { TidingsError, type TidingsErrorCode } from "../errors.ts";
import { call, RawJson, resolveHttpOptions, type HttpOptions, type ResolvedHttpOptions } from "./http.ts";
import type { Executor } from "../executor/executor.ts";
import {
  runTransaction,
  type TransactionCallback,
  type TransactionDefaults,
  type TransactionCallOptions,
  type TransactionMessages,
} from "../transaction/transaction.ts";
import { CallCombiner } from "./callCombiner.ts";
import type {
  AlertInfo,
  AppInfo,
  AttemptInfo,
  BatchOutcomes,
  CheckAfter,
  CheckInfo,
  FeedPage,
  FeedQuery,
  ListMessagesQuery,
  MessageInfo,
  MessagePage,
  RelayInfo,
  ReconciliationInfo,
  ReconciliationReport,
  RelayReport,
} from "./apiTypes.ts";
import { FeedReader, feedQueryString } from "./feed.ts";
import { cleanupBarriers } from "../transaction/barrier.ts";
import { createCheckBackHandler, type CheckBackHandler, type CheckBackHandlerOptions } from "../checkBack/checkBackHandler.ts";
import { activeTrace, traceHeaders } from "../tracing/otel.ts";

/**
 * A message as the send API takes it, as JSON text built around the payload's and headers' own
 * text (a resolved message carries them as text): nothing is parsed and written again. `extra`
 * are more fields, already JSON (`,"prepare":true`).
 */
function wireJson(m: ResolvedMessage, extra = ""): string {
  const deliverAt = m.deliverAt ? `,"deliverAt":${JSON.stringify(m.deliverAt.toISOString())}` : "";
  const trace = m.trace
    ? `,"traceparent":${JSON.stringify(m.trace.traceparent)}${m.trace.tracestate ? `,"tracestate":${JSON.stringify(m.trace.tracestate)}` : ""}`
    : "";
  return `{"id":${JSON.stringify(m.id)},"topic":${JSON.stringify(m.topic)},"tag":${JSON.stringify(m.tag)},"key":${JSON.stringify(m.key)},"payload":${m.payloadJson},"headers":${m.headersJson}${deliverAt}${trace}${extra}}`;
}

/**
 * Gives messages the caller's active trace context (each keeps one it has: an outbox row's), and
 * answers it for the request's headers: the service's publish span, and the messages'
 * deliveries, continue the caller's trace.
 */
async function traced(messages: readonly ResolvedMessage[]): Promise<Record<string, string>> {
  const trace = await activeTrace();
  if (trace) for (const m of messages) m.trace ??= trace;
  return traceHeaders(trace);
}

/** A prepared message as the send API takes it. */
function preparedJson(message: ResolvedMessage, checkAfter: CheckAfter | undefined): string {
  const after =
    checkAfter === undefined ? "" : `,"checkAfter":${JSON.stringify(typeof checkAfter === "number" ? `${Math.max(0, Math.round(checkAfter))}ms` : checkAfter)}`;
  return wireJson(message, `,"prepare":true${after}`);
}

/** A batch request's body around messages already written as JSON. */
const batchJson = (messages: readonly string[], extra = "") => new RawJson(`{"messages":[${messages.join(",")}]${extra}}`);

/** What the service answers for one id of `commitMany`. */
interface CommitResult {
  id: string;
  state?: "committed" | string;
  error?: { code: string; message: string; state?: string; [detail: string]: unknown };
}

/** The status the single commit would have answered with each code. */
const REFUSAL_STATUS: Record<string, number> = { not_found: 404, forbidden: 403, conflict: 409 };

/** The messages part of the HTTP API: send, and the reconciliation queries. */
export class MessagesApi {
  constructor(private readonly o: ResolvedHttpOptions) {}

  /** Sends one message; idempotent by id (generated when absent), so network errors are retried. */
  async send(message: OutgoingMessage): Promise<MessageInfo> {
    const resolved = resolveMessage(message);
    const headers = await traced([resolved]);
    return call<MessageInfo>(this.o, "POST", "/v1/messages", new RawJson(wireJson(resolved)), { idempotent: true, headers });
  }

  /**
   * Stores a prepared (half) message: invisible to subscribers until `commit(id)`; the service
   * checks back with the app's check URL if it is still prepared `checkAfter` later. Idempotent
   * by id (generated when absent), so network errors are retried. `tidings.transaction()` is
   * the one call most producers need instead.
   */
  async prepare(message: OutgoingMessage, options: { checkAfter?: CheckAfter } = {}): Promise<MessageInfo> {
    const resolved = resolveMessage(message);
    await traced([resolved]);
    return this.prepareResolved(resolved, options.checkAfter);
  }

  /** `prepare` of a message already resolved. */
  prepareResolved(message: ResolvedMessage, checkAfter?: CheckAfter): Promise<MessageInfo> {
    return call<MessageInfo>(this.o, "POST", "/v1/messages", new RawJson(preparedJson(message, checkAfter)), { idempotent: true });
  }

  /**
   * Prepares several messages in one request (the batch API, each message on its own): what
   * `prepare` would have answered for each, the stored message or a `conflict` error. A
   * request the service refuses as a whole (a bad message, too large) throws.
   */
  async prepareMany(
    items: ReadonlyArray<{ message: ResolvedMessage; checkAfter?: CheckAfter }>,
  ): Promise<Array<{ value: MessageInfo } | { error: TidingsError }>> {
    const body = batchJson(
      items.map((i) => preparedJson(i.message, i.checkAfter)),
      `,"atomic":false`,
    );
    const answer = await call<{ items: MessageInfo[]; outcomes: string[]; errors?: BatchOutcomes["errors"] }>(this.o, "POST", "/v1/messages/batch", body, {
      idempotent: true,
    });
    const errors = answer.errors ?? [];
    return answer.outcomes.map((outcome, i) => {
      if (outcome === "conflict") {
        return { error: new TidingsError("conflict", `message ${items[i]!.message.id} was stored before with other content`, { status: 409 }) };
      }
      if (outcome === "invalid") {
        const e = errors.find((x) => x.index === i);
        return { error: new TidingsError("invalid_message", e?.message ?? `message ${items[i]!.message.id} was refused`, { status: 400, field: e?.field }) };
      }
      return { value: answer.items[i]! };
    });
  }

  /** Commits a prepared message (delivered at once). Idempotent; a TidingsError `conflict` (state in `details`) after a rollback. */
  commit(id: string): Promise<MessageInfo> {
    return call<MessageInfo>(this.o, "POST", `/v1/messages/${encodeURIComponent(id)}/commit`, undefined, { idempotent: true });
  }

  /** Rolls a prepared message back (never delivered). Idempotent; a TidingsError `conflict` after a commit. */
  rollback(id: string): Promise<MessageInfo> {
    return call<MessageInfo>(this.o, "POST", `/v1/messages/${encodeURIComponent(id)}/rollback`, undefined, { idempotent: true });
  }

  /** The check-back log of a (once) prepared message. */
  async checks(id: string): Promise<CheckInfo[]> {
    return (await call<{ items: CheckInfo[] }>(this.o, "GET", `/v1/messages/${encodeURIComponent(id)}/checks`, undefined, { idempotent: true })).items;
  }

  /** The delivery log of a message. */
  async attempts(id: string): Promise<AttemptInfo[]> {
    return (await call<{ items: AttemptInfo[] }>(this.o, "GET", `/v1/messages/${encodeURIComponent(id)}/attempts`, undefined, { idempotent: true })).items;
  }

  /** Sends up to 1000 messages, all or nothing. */
  async sendBatch(messages: readonly OutgoingMessage[]): Promise<MessageInfo[]> {
    const resolved = messages.map((m, i) => resolveMessage(m, Date.now(), `messages[${i}].`));
    return this.sendResolved(resolved, { headers: await traced(resolved) });
  }

  /** Sends messages already resolved, all or nothing; resolves to the stored messages. */
  async sendResolved(messages: readonly ResolvedMessage[], options: { retry?: boolean; headers?: Record<string, string> } = {}): Promise<MessageInfo[]> {
    const body = batchJson(messages.map((m) => wireJson(m)));
    const answer = await call<{ items: MessageInfo[] }>(this.o, "POST", "/v1/messages/batch", body, {
      idempotent: options.retry ?? true,
      headers: options.headers,
    });
    return answer.items;
  }

  /**
   * Sends messages already resolved (the outbox relay's rows), all or nothing (or, `atomic:
   * false`, each on its own), and asks only for their ids and outcomes (`Prefer:
   * return=minimal`): no payload comes back.
   */
  async sendResolvedMinimal(messages: readonly ResolvedMessage[], options: { retry?: boolean; atomic?: boolean } = {}): Promise<BatchOutcomes> {
    const body = batchJson(
      messages.map((m) => wireJson(m)),
      options.atomic === false ? `,"atomic":false` : "",
    );
    return call<BatchOutcomes>(this.o, "POST", "/v1/messages/batch", body, { idempotent: options.retry ?? true, headers: { prefer: "return=minimal" } });
  }

  /**
   * Commits several prepared messages in one request (`POST /v1/messages/commit`): for each id,
   * what `commit` would have answered, the service's `{ id, state: "committed" }` or the error
   * it would have thrown (`not_found`, `forbidden`, `conflict` with the state in `details`).
   * Idempotent, so network errors are retried.
   */
  async commitMany(ids: readonly string[]): Promise<Array<{ value: CommitResult } | { error: TidingsError }>> {
    const answer = await call<{ results: CommitResult[] }>(this.o, "POST", "/v1/messages/commit", { ids }, { idempotent: true });
    return ids.map((id, i) => {
      const result = answer.results[i];
      if (result?.id === id && result.state === "committed") return { value: result };
      if (result?.id === id && result.error) {
        const { code, message, ...details } = result.error;
        return { error: new TidingsError(code as TidingsErrorCode, message, { status: REFUSAL_STATUS[code], details }) };
      }
      return { error: new TidingsError("server_error", `the service's answer to a combined commit has no result for message ${id}`) };
    });
  }

  /** A message and its deliveries, or null when there is none with this id (reconciliation by id). */
  get(id: string): Promise<MessageInfo | null> {
    return call<MessageInfo | null>(this.o, "GET", `/v1/messages/${encodeURIComponent(id)}`, undefined, { idempotent: true, notFoundIsNull: true });
  }

  /** Messages by business key and/or topic, newest first, one page (reconciliation by key). */
  list(query: ListMessagesQuery = {}): Promise<MessagePage> {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) if (value !== undefined) params.set(name, String(value));
    const qs = params.toString();
    return call<MessagePage>(this.o, "GET", `/v1/messages${qs ? `?${qs}` : ""}`, undefined, { idempotent: true });
  }

  /** One page of the forward feed (`GET /v1/feed`); `client.feed()` reads them all. */
  feedPage(query: FeedQuery): Promise<FeedPage> {
    return call<FeedPage>(this.o, "GET", `/v1/feed?${feedQueryString(query)}`, undefined, { idempotent: true });
  }

  /** Every page of `list`, as an async iterator. */
  async *listAll(query: Omit<ListMessagesQuery, "cursor"> = {}): AsyncGenerator<MessageInfo> {
    let cursor: string | undefined;
    do {
      const page = await this.list({ ...query, cursor });
      yield* page.items;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }
}

/** Alerts (admin key), grouped by condition and subject, with their lifecycle. */
export class AlertsApi {
  constructor(private readonly o: ResolvedHttpOptions) {}

  /** Alerts newest first: unresolved ones (open and acknowledged) unless `state` says otherwise. */
  async list(
    query: {
      state?: "open" | "acknowledged" | "resolved" | "unresolved" | "all";
      condition?: string;
      subscription?: string;
      app?: string;
      limit?: number;
      cursor?: number;
    } = {},
  ): Promise<AlertInfo[]> {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) if (value !== undefined) params.set(name, String(value));
    const qs = params.toString();
    return (await call<{ items: AlertInfo[] }>(this.o, "GET", `/v1/alerts${qs ? `?${qs}` : ""}`, undefined, { idempotent: true })).items;
  }

  /** One alert, or null. */
  get(id: number): Promise<AlertInfo | null> {
    return call<AlertInfo | null>(this.o, "GET", `/v1/alerts/${id}`, undefined, { idempotent: true, notFoundIsNull: true });
  }

  /** Acknowledges an open alert (idempotent); the caller is who, with an optional note. */
  async acknowledge(id: number, note?: string): Promise<AlertInfo> {
    return await call<AlertInfo>(this.o, "POST", `/v1/alerts/${id}/acknowledge`, note === undefined ? {} : { note }, { idempotent: true });
  }

  /** Resolves an alert by hand (idempotent), with an optional note. */
  async resolve(id: number, note?: string): Promise<AlertInfo> {
    return await call<AlertInfo>(this.o, "POST", `/v1/alerts/${id}/resolve`, note === undefined ? {} : { note }, { idempotent: true });
  }
}

/** Outbox relays: their heartbeats, and (admin key) the list of them. */
export class RelaysApi {
  constructor(private readonly o: ResolvedHttpOptions) {}

  /** Reports a relay's counts, once, within `timeoutMs` (default: the client's), never retried. */
  async heartbeat(report: RelayReport, options: { timeoutMs?: number } = {}): Promise<void> {
    await call<null>(this.o, "POST", "/v1/relays/heartbeat", report, { idempotent: false, timeoutMs: options.timeoutMs });
  }

  /** Every relay with its last heartbeat and whether it is `stale`. */
  async list(): Promise<{ staleAfterMs: number; items: RelayInfo[] }> {
    return call(this.o, "GET", "/v1/relays", undefined, { idempotent: true });
  }
}

/** Producer apps (admin key): each has an API key, a check-back signing secret and a check URL. */
export class AppsApi {
  constructor(private readonly o: ResolvedHttpOptions) {}

  /** Creates an app; the answer carries its `apiKey` and `secret`, shown this once. */
  create(app: { name: string; checkUrl?: string | null; readTopics?: string[] }): Promise<AppInfo & { apiKey: string; secret: string }> {
    return call(this.o, "POST", "/v1/apps", app);
  }

  async list(): Promise<AppInfo[]> {
    return (await call<{ items: AppInfo[] }>(this.o, "GET", "/v1/apps", undefined, { idempotent: true })).items;
  }

  /** An app, or null when there is none with this name. */
  get(name: string): Promise<AppInfo | null> {
    return call<AppInfo | null>(this.o, "GET", `/v1/apps/${encodeURIComponent(name)}`, undefined, { idempotent: true, notFoundIsNull: true });
  }

  /**
   * Changes an app (its check URL, read topics), or rotates its API key or check-back secret:
   * the new one is in the answer, shown this once. A rotation is not retried after a network
   * error (a second try would rotate again); other changes are.
   */
  update(
    name: string,
    changes: { checkUrl?: string | null; readTopics?: string[]; rotateKey?: boolean; rotateSecret?: boolean },
  ): Promise<AppInfo & { apiKey?: string; secret?: string }> {
    const rotates = changes.rotateKey === true || changes.rotateSecret === true;
    return call(this.o, "PATCH", `/v1/apps/${encodeURIComponent(name)}`, changes, { idempotent: !rotates });
  }

  async delete(name: string): Promise<void> {
    await call<null>(this.o, "DELETE", `/v1/apps/${encodeURIComponent(name)}`, undefined, { idempotent: true });
  }
}

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
    prepare: (message, checkAfter) => messages.prepareResolved(message, checkAfter),
    commit: (id) => messages.commit(id),
    rollback: (id) => messages.rollback(id),
  };
  if (!combine) return alone;
  type Prepare = { message: ResolvedMessage; checkAfter: CheckAfter | undefined };
  const sendAlone = (p: Prepare) => alone.prepare(p.message, p.checkAfter);
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
    { ...COMBINE_LIMITS, bytesOf: (p) => 300 + p.message.payloadJson.length + p.message.headersJson.length },
  );
  const commits = new CallCombiner<string, unknown>(alone.commit, (ids) => messages.commitMany(ids), { ...COMBINE_LIMITS, bytesOf: (id) => id.length + 3 });
  return {
    prepare: (message, checkAfter) => prepares.push({ message, checkAfter }),
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

/** A client of the Tidings service. */
export class TidingsClient {
  readonly messages: MessagesApi;
  readonly alerts: AlertsApi;
  readonly apps: AppsApi;
  readonly relays: RelaysApi;
  private readonly options: ResolvedHttpOptions;
  private readonly secret: string | readonly string[] | undefined;
  private readonly transactionDefaults: TransactionDefaults;
  /** What `transaction()` calls: the message API, concurrent calls combined unless `combineCalls: false`. */
  private readonly transactionCalls: TransactionMessages;

  constructor(options: TidingsClientOptions) {
    this.options = resolveHttpOptions(options);
    this.messages = new MessagesApi(this.options);
    this.alerts = new AlertsApi(this.options);
    this.apps = new AppsApi(this.options);
    this.relays = new RelaysApi(this.options);
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
    return call<ReconciliationInfo>(this.options, "POST", "/v1/reconciliations", report, { idempotent: false, timeoutMs: options.timeoutMs });
  }

  /** The service's base URL. */
  get url(): string {
    return this.options.baseUrl;
  }
}
