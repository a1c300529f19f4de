import { resolveMessage, type OutgoingMessage, type ResolvedMessage } from "../domain/message.ts";
import { TidingsError, type TidingsErrorCode } from "../errors.ts";
import type {
  AttemptInfo,
  BatchAnswer,
  BatchOutcomes,
  CheckAfter,
  CheckInfo,
  CommitResult,
  DeliveryTarget,
  FeedPage,
  FeedQuery,
  ListMessagesQuery,
  MessageInfo,
  MessageLookup,
  MessagePage,
} from "./apiTypes.ts";
import { feedQueryValues } from "./feed.ts";
import { RawJson, type ResolvedHttpOptions } from "./http.ts";
import { find, operation } from "./operation.ts";
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
function preparedJson(message: ResolvedMessage, checkAfter: CheckAfter | undefined, checkContext: string | undefined): string {
  const after =
    checkAfter === undefined ? "" : `,"checkAfter":${JSON.stringify(typeof checkAfter === "number" ? `${Math.max(0, Math.round(checkAfter))}ms` : checkAfter)}`;
  const context = checkContext === undefined ? "" : `,"checkContext":${JSON.stringify(checkContext)}`;
  return wireJson(message, `,"prepare":true${after}${context}`);
}

/** A batch request's body around messages already written as JSON. */
const batchJson = (messages: readonly string[], extra = "") => new RawJson(`{"messages":[${messages.join(",")}]${extra}}`);

/** The status the single commit would have answered with each code. */
const REFUSAL_STATUS: Record<string, number> = { not_found: 404, forbidden: 403, conflict: 409 };

/** The messages part of the HTTP API: send, and the reconciliation queries. */
export class MessagesApi {
  constructor(private readonly o: ResolvedHttpOptions) {}

  /** Sends one message; idempotent by id (generated when absent), so network errors are retried. */
  async send(message: OutgoingMessage): Promise<MessageInfo> {
    const resolved = resolveMessage(message);
    const headers = await traced([resolved]);
    return operation(this.o, "post", "/v1/messages", { body: new RawJson(wireJson(resolved)) }, { idempotent: true, headers });
  }

  /**
   * Stores a prepared (half) message: invisible to subscribers until `commit(id)`; the service
   * checks back with the app's check URL if it is still prepared `checkAfter` later. Idempotent
   * by id (generated when absent), so network errors are retried. `checkContext` (1 to 200
   * characters) is sent back as `context` in each check-back. `tidings.transaction()` is the one
   * call most producers need instead.
   */
  async prepare(message: OutgoingMessage, options: { checkAfter?: CheckAfter; checkContext?: string } = {}): Promise<MessageInfo> {
    const resolved = resolveMessage(message);
    await traced([resolved]);
    return this.prepareResolved(resolved, options.checkAfter, options.checkContext);
  }

  /** `prepare` of a message already resolved. */
  prepareResolved(message: ResolvedMessage, checkAfter?: CheckAfter, checkContext?: string): Promise<MessageInfo> {
    return operation(this.o, "post", "/v1/messages", { body: new RawJson(preparedJson(message, checkAfter, checkContext)) }, { idempotent: true });
  }

  /**
   * Prepares several messages in one request (the batch API, each message on its own): what
   * `prepare` would have answered for each, the stored message or a `conflict` error. A
   * request the service refuses as a whole (a bad message, too large) throws.
   */
  async prepareMany(
    items: ReadonlyArray<{ message: ResolvedMessage; checkAfter?: CheckAfter; checkContext?: string }>,
  ): Promise<Array<{ value: MessageInfo } | { error: TidingsError }>> {
    const body = batchJson(
      items.map((i) => preparedJson(i.message, i.checkAfter, i.checkContext)),
      `,"atomic":false`,
    );
    const answer = await operation(this.o, "post", "/v1/messages/batch", { body }, { idempotent: true });
    const errors = answer.errors ?? [];
    return answer.outcomes.map((outcome, i) => {
      if (outcome === "conflict") {
        return { error: new TidingsError("conflict", `message ${items[i]!.message.id} was stored before with other content`, { status: 409 }) };
      }
      if (outcome === "invalid") {
        const e = errors.find((x) => x.index === i);
        return { error: new TidingsError("invalid_message", e?.message ?? `message ${items[i]!.message.id} was refused`, { status: 400, field: e?.field }) };
      }
      const stored = answer.items?.[i];
      if (!stored) return { error: new TidingsError("server_error", `the service's answer to a batch has no message ${items[i]!.message.id}`) };
      return { value: stored };
    });
  }

  /** Commits a prepared message (delivered at once). Idempotent; a TidingsError `conflict` (state in `details`) after a rollback. */
  commit(id: string): Promise<MessageInfo> {
    return operation(this.o, "post", "/v1/messages/{id}/commit", { params: { id } }, { idempotent: true });
  }

  /** Rolls a prepared message back (never delivered). Idempotent; a TidingsError `conflict` after a commit. */
  rollback(id: string): Promise<MessageInfo> {
    return operation(this.o, "post", "/v1/messages/{id}/rollback", { params: { id } }, { idempotent: true });
  }

  /** The check-back log of a (once) prepared message. */
  async checks(id: string): Promise<CheckInfo[]> {
    return (await operation(this.o, "get", "/v1/messages/{id}/checks", { params: { id } }, { idempotent: true })).items;
  }

  /** The delivery log of a message. */
  async attempts(id: string): Promise<AttemptInfo[]> {
    return (await operation(this.o, "get", "/v1/messages/{id}/attempts", { params: { id } }, { idempotent: true })).items;
  }

  /** Sends up to 1000 messages, all or nothing. */
  async sendBatch(messages: readonly OutgoingMessage[]): Promise<MessageInfo[]> {
    const resolved = messages.map((m, i) => resolveMessage(m, Date.now(), `messages[${i}].`));
    return this.sendResolved(resolved, { headers: await traced(resolved) });
  }

  /** Sends messages already resolved, all or nothing; resolves to the stored messages. */
  async sendResolved(messages: readonly ResolvedMessage[], options: { retry?: boolean; headers?: Record<string, string> } = {}): Promise<MessageInfo[]> {
    const body = batchJson(messages.map((m) => wireJson(m)));
    const answer = await operation(this.o, "post", "/v1/messages/batch", { body }, { idempotent: options.retry ?? true, headers: options.headers });
    return (answer.items ?? []).filter((m): m is MessageInfo => m !== null);
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
    const answer: BatchAnswer = await operation(
      this.o,
      "post",
      "/v1/messages/batch",
      { body },
      { idempotent: options.retry ?? true, headers: { prefer: "return=minimal" } },
    );
    return { ids: answer.ids ?? [], outcomes: answer.outcomes, ...(answer.errors ? { errors: answer.errors } : {}) };
  }

  /**
   * Commits several prepared messages in one request (`POST /v1/messages/commit`): for each id,
   * what `commit` would have answered, the service's `{ id, state: "committed" }` or the error
   * it would have thrown (`not_found`, `forbidden`, `conflict` with the state in `details`).
   * Idempotent, so network errors are retried.
   */
  async commitMany(ids: readonly string[]): Promise<Array<{ value: CommitResult } | { error: TidingsError }>> {
    const answer = await operation(this.o, "post", "/v1/messages/commit", { body: { ids: [...ids] } }, { idempotent: true });
    return ids.map((id, i) => {
      const result = answer.results[i];
      if (result?.id === id && result.state === "committed") return { value: result };
      if (result?.id === id && result.error) {
        const { code, message, ...details } = result.error;
        return { error: new TidingsError(code as TidingsErrorCode, message, { status: REFUSAL_STATUS[code], serviceCode: code, details }) };
      }
      return { error: new TidingsError("server_error", `the service's answer to a combined commit has no result for message ${id}`) };
    });
  }

  /** A message and its deliveries, or null when there is none with this id (reconciliation by id). */
  get(id: string): Promise<MessageInfo | null> {
    return find(this.o, "get", "/v1/messages/{id}", { params: { id } });
  }

  /**
   * Which of up to 1000 ids (the key's own, or full ids `<app>/<id>`) the service has, and their
   * state, in one request (`POST /v1/messages/lookup`): what `get` would find for each, without
   * the messages. A message the key may not read is `missing`, as with `get`.
   */
  lookup(ids: readonly string[]): Promise<MessageLookup> {
    return operation(this.o, "post", "/v1/messages/lookup", { body: { ids: [...ids] } }, { idempotent: true });
  }

  /**
   * Messages newest first, one page: by id, business key, topic, tag, app, creation time, state,
   * or a subscription's delivery state (reconciliation by key; the dead letters of a topic).
   */
  list(query: ListMessagesQuery = {}): Promise<MessagePage> {
    return operation(this.o, "get", "/v1/messages", { query }, { idempotent: true });
  }

  /** One page of the forward feed (`GET /v1/feed`); `client.feed()` reads them all. */
  feedPage(query: FeedQuery): Promise<FeedPage> {
    return operation(this.o, "get", "/v1/feed", { query: feedQueryValues(query) }, { idempotent: true });
  }

  /**
   * Delivers a committed message again, to one subscription or all, each on a fresh retry
   * cycle; resolves to the deliveries re-sent. Not retried after a network error (a second call
   * delivers again).
   */
  async resend(id: string, target: DeliveryTarget = {}): Promise<number> {
    return (await operation(this.o, "post", "/v1/messages/{id}/resend", { params: { id }, body: target })).resent;
  }

  /** Stops delivering a message (to one subscription, or all): its pending deliveries become dead. Resolves to how many. */
  async markDead(id: string, target: DeliveryTarget = {}): Promise<number> {
    return (await operation(this.o, "post", "/v1/messages/{id}/dead", { params: { id }, body: target }, { idempotent: true })).dead;
  }

  /** Deletes a message, its deliveries and their log (the next message of its key can go). */
  async delete(id: string): Promise<void> {
    await operation(this.o, "delete", "/v1/messages/{id}", { params: { id } }, { idempotent: true });
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
