import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Type } from "@sinclair/typebox";
import { conflict, forbidden, notFound, TidingsError } from "../../domain/errors.ts";
import { RawJson, stringifyExact } from "../../domain/rawJson.ts";
import { bodyLength, inspectBody, useJsonBody } from "../jsonBody.ts";
import { uuidv7 } from "../../domain/ids.ts";
import type { NewMessage as StoredMessage } from "../../domain/newMessage.ts";
import { messageToStore, type PublishContext } from "../../domain/publishRequest.ts";
import type { InsertOutcome } from "../../store/insertMessages.ts";
import type { BatchOutcome } from "../../publish/publisher.ts";
import { getAttempts, getDeliveries, getMessage, listMessages, lookupMessages } from "../../store/messageQueries.ts";
import { deleteMessage, markDead, resendMessage } from "../../store/operatorActions.ts";
import type { MessageRecord } from "../../domain/message.ts";
import { getSubscription } from "../../store/subscriptions.ts";
import { getChecks, type ResolveOutcome } from "../../store/preparedMessages.ts";
import { fullId, localId, refToFullId } from "../../domain/messageIds.ts";
import { appOf, type Principal } from "../auth.ts";
import type { RouteServices } from "../routeServices.ts";
import {
  Attempt,
  Check,
  CommitMany,
  CommitResult,
  ErrorBody,
  ListMessagesQuery,
  LookupMessages,
  Message,
  MessageBatch,
  MessageIdParams,
  MessageLookup,
  NewMessage,
  SubscriptionTarget,
} from "../schemas.ts";
import { preference } from "../prefer.ts";
import { noteAudit } from "../audit.ts";
import { handAction, targetOfMany } from "../../domain/audit.ts";
import { pageLimit } from "../paging.ts";
import { tracedPublish, type TraceOf } from "../publishTrace.ts";

/** RFC 7240 `Prefer: return=minimal`. */
const prefersMinimal = (prefer: string | string[] | undefined): boolean => preference(prefer, "return")?.toLowerCase() === "minimal";

/** A message as answered: its id as its producer knows it (the app is beside it). */
export function showMessage(m: MessageRecord, extra: Record<string, unknown> = {}) {
  const { seq: _seq, trace: _trace, ...shown } = m;
  return { ...shown, id: localId(m.id), ...extra };
}

/**
 * Whether the caller may see a message: people (the admin key, operators) see all, an app its
 * own and those of its read topics (a viewer's changes are refused before this, by its role). Anything else is answered exactly as a message that does not exist, so that another
 * app's ids are neither shown nor confirmed.
 */
const canRead = (p: Principal, m: MessageRecord): boolean => p.kind !== "app" || m.app === p.app || p.readTopics.includes(m.topic);
/** Changing (commit, roll back, re-send, mark dead, delete) is for the message's own app and people. */
const canChange = (p: Principal, m: MessageRecord): boolean => p.kind !== "app" || m.app === p.app;

/** The message behind `ref` if the caller may act on it: 404 when it may not see it, 403 when it may only read it. */
function allowed(principal: Principal, message: MessageRecord | null, ref: string, change: boolean): MessageRecord {
  if (!message || !canRead(principal, message)) throw notFound(`message ${ref}`);
  if (change && !canChange(principal, message)) throw forbidden(`message ${ref} belongs to another app: it may be read, not changed`);
  return message;
}

/**
 * A payload kept as its exact text (a number a double cannot hold) is written as such: the
 * schema's serializer would write the parsed, rounded value.
 */
function keepExact(reply: FastifyReply, message: MessageRecord): void {
  if (message.payload instanceof RawJson) void reply.serializer(stringifyExact);
}

/** The answer to commit/rollback: the message once in the wanted state, 409 with the state otherwise. */
function showResolved(outcome: ResolveOutcome, wanted: "committed" | "rolled_back", ref: string, principal: Principal, reply?: FastifyReply) {
  const message = allowed(principal, outcome.message, ref, true);
  if (reply) keepExact(reply, message);
  if (message.state !== wanted) {
    throw conflict(`message ${ref} is ${message.state}`, { state: message.state });
  }
  return showMessage(message);
}

function conflictOf(outcome: InsertOutcome): TidingsError {
  const id = localId(outcome.message.id);
  return conflict(`message ${id} was stored before with other content`, { id });
}

export function messageRoutes(app: FastifyInstance, s: RouteServices): void {
  // JSON bodies keep their text, for the checks and exact payloads of the message routes.
  useJsonBody(app);
  const tags = ["messages"];

  /** `ref`: a bare id in the caller's own namespace, or a full id `<app>/<id>`. */
  async function owned(principal: Principal, ref: string): Promise<MessageRecord> {
    return allowed(principal, await getMessage(s.db, refToFullId(appOf(principal), ref)), ref, true);
  }

  /** The message a hand action is about, named by its full id in the audit log. */
  async function acted(request: FastifyRequest<{ Params: MessageIdParams }>): Promise<MessageRecord> {
    const message = await owned(request.principal, request.params.id);
    noteAudit(request, { target: `message/${message.id}` });
    return message;
  }

  async function readable(principal: Principal, ref: string): Promise<MessageRecord> {
    return allowed(principal, await getMessage(s.db, refToFullId(appOf(principal), ref)), ref, false);
  }

  /** What a publish request's messages are decided with: the caller's app, the defaults, the body's text, now. */
  const publishContext = (request: FastifyRequest, batch: boolean, trace: TraceOf): PublishContext => ({
    app: appOf(request.principal),
    checkAfterMs: s.config.checkAfterMs,
    inspection: inspectBody(request, batch),
    now: Date.now(),
    newId: uuidv7,
    trace,
  });

  async function subscriptionId(name: string | undefined): Promise<number | null> {
    if (name === undefined) return null;
    const row = await getSubscription(s.db, name);
    if (!row) throw new TidingsError("not_found", `subscription ${name} not found`, "subscription");
    return row.id;
  }

  app.post<{ Body: NewMessage }>(
    "/v1/messages",
    {
      config: { auth: "app" },
      schema: {
        tags,
        summary: "Send a message: stored, then delivered to every matching subscription",
        description: "The same id with the same content again answers 200 with the stored message; with other content, 409.",
        body: NewMessage,
        response: { 200: Message, 201: Message, "4xx": ErrorBody },
      },
    },
    async (request, reply) => {
      const attributes = { "messaging.destination.name": request.body.topic, "messaging.operation.type": "send" };
      return tracedPublish(request, reply, `publish ${request.body.topic}`, attributes, request.body, async (trace) => {
        const message = messageToStore(request.body, publishContext(request, false, trace));
        const outcome = await s.publisher.publish(message, bodyLength(request));
        if (outcome.kind === "conflict") throw conflictOf(outcome);
        keepExact(reply, outcome.message);
        return reply.status(outcome.kind === "created" ? 201 : 200).send(showMessage(outcome.message));
      });
    },
  );

  app.post<{ Body: MessageBatch }>(
    "/v1/messages/batch",
    {
      config: { auth: "app" },
      schema: {
        tags,
        summary: "Send up to 1000 messages: all or nothing, or (atomic: false) each on its own",
        description:
          "`outcomes[i]` tells what became of `messages[i]`: created, exists (same id and content, already stored), conflict (same id, other content; atomic: false only — atomic batches answer 409) or invalid (refused on its own, e.g. a NUL in its payload; atomic: false only — atomic batches answer 400 naming `messages[i]`; `errors` says why, `items[i]` is null). `items[i]` is the stored message. With `Prefer: return=minimal` (RFC 7240) the answer carries `ids[i]` instead of `items` (and `Preference-Applied: return=minimal`): what a relay needs, without echoing every payload.",
        body: MessageBatch,
        response: {
          201: Type.Object({
            items: Type.Optional(Type.Array(Type.Union([Message, Type.Null()]))),
            ids: Type.Optional(Type.Array(Type.Union([Type.String(), Type.Null()]))),
            outcomes: Type.Array(Type.Union([Type.Literal("created"), Type.Literal("exists"), Type.Literal("conflict"), Type.Literal("invalid")])),
            errors: Type.Optional(
              Type.Array(Type.Object({ index: Type.Integer(), code: Type.String(), message: Type.String(), field: Type.Optional(Type.String()) }), {
                description: "atomic: false only: why each invalid message was refused",
              }),
            ),
          }),
          "4xx": ErrorBody,
        },
      },
    },
    async (request, reply) => {
      const attributes = { "messaging.operation.type": "send", "messaging.batch.message_count": request.body.messages.length };
      return tracedPublish(request, reply, "publish batch", attributes, null, (trace) => publishBatch(request, reply, trace));
    },
  );

  async function publishBatch(request: FastifyRequest<{ Body: MessageBatch }>, reply: FastifyReply, trace: TraceOf) {
    const atomic = request.body.atomic ?? true;
    const context = publishContext(request, true, trace);
    // Not atomic: a message refused by the checks fails alone ("invalid"), the others are stored.
    const refusals = new Map<number, TidingsError>();
    const stored: StoredMessage[] = [];
    const prefixes: string[] = [];
    request.body.messages.forEach((m, i) => {
      try {
        stored.push(messageToStore(m, context, `messages[${i}].`, i));
        prefixes.push(`messages[${i}].`);
      } catch (error) {
        if (atomic || !(error instanceof TidingsError)) throw error;
        refusals.set(i, error);
      }
    });
    const storedOutcomes = stored.length > 0 ? await s.publisher.publishBatch(stored, atomic, prefixes) : [];
    let next = 0;
    const outcomes = request.body.messages.map((_, i): BatchOutcome => {
      const error = refusals.get(i);
      return error ? { kind: "invalid", error } : storedOutcomes[next++]!;
    });
    const kinds = outcomes.map((o) => o.kind);
    const errors = outcomes.flatMap((o, index) =>
      o.kind === "invalid" ? [{ index, code: o.error.code, message: o.error.message, ...(o.error.field ? { field: o.error.field } : {}) }] : [],
    );
    const extra = errors.length > 0 ? { errors } : {};
    if (prefersMinimal(request.headers.prefer)) {
      const ids = outcomes.map((o, i) => (o.kind === "invalid" ? (request.body.messages[i]!.id ?? null) : localId(o.message.id)));
      return reply
        .status(201)
        .header("preference-applied", "return=minimal")
        .send({ ids, outcomes: kinds, ...extra });
    }
    // Up to 1,000 messages with their payloads: the native JSON.stringify writes them in half
    // the time of the schema's serializer, as one flat string (whose byte length is cheap);
    // payloads kept as exact text are written as such.
    return reply
      .status(201)
      .serializer(stringifyExact)
      .send({ items: outcomes.map((o) => (o.kind === "invalid" ? null : showMessage(o.message))), outcomes: kinds, ...extra });
  }

  app.get<{ Querystring: ListMessagesQuery }>(
    "/v1/messages",
    {
      config: { auth: "app" },
      schema: {
        tags,
        summary: "Search messages, newest first, with keyset paging",
        description:
          "A page holds up to `limit` messages, and ends early once their payloads and headers pass the page byte budget (TIDINGS_LIST_BYTES, 4 MiB; a page holds at least one message): then `nextCursor` continues.",
        querystring: ListMessagesQuery,
        response: { 200: Type.Object({ items: Type.Array(Message), nextCursor: Type.Union([Type.String(), Type.Null()]) }), "4xx": ErrorBody },
      },
    },
    async (request, reply) => {
      const q = request.query;
      const limit = pageLimit(q.limit, 50, 1000);
      if (q.subscription !== undefined) await subscriptionId(q.subscription);
      const principal = request.principal;
      // A search may be answered by a replica that lags; a look-up of given ids (a producer
      // checking what it just published) by the primary.
      const page = await listMessages(q.id === undefined ? s.readDb : s.db, {
        app: q.app,
        ids: q.id === undefined ? undefined : q.id.includes("/") || principal.kind === "app" ? [refToFullId(appOf(principal), q.id)] : { anyApp: q.id },
        visibleTo: principal.kind === "app" ? { app: principal.app, readTopics: principal.readTopics } : undefined,
        topic: q.topic,
        key: q.key,
        tag: q.tag,
        createdAfter: q.createdAfter,
        createdBefore: q.createdBefore,
        state: q.state,
        subscription: q.subscription,
        deliveryState: q.deliveryState,
        beforeSeq: q.cursor === undefined ? undefined : Number(q.cursor),
        limit,
        maxBytes: s.config.listBytes,
      });
      // The native JSON.stringify (payloads kept as exact text written as such).
      return reply.serializer(stringifyExact).send({ items: page.items.map((m) => showMessage(m)), nextCursor: page.nextCursor });
    },
  );

  app.get<{ Params: MessageIdParams }>(
    "/v1/messages/:id",
    {
      config: { auth: "app" },
      schema: {
        tags,
        summary: "A message and its deliveries: the reconciliation query",
        params: MessageIdParams,
        response: { 200: Message, "4xx": ErrorBody },
      },
    },
    async (request, reply) => {
      const message = await readable(request.principal, request.params.id);
      keepExact(reply, message);
      return showMessage(message, { deliveries: await getDeliveries(s.db, message.id) });
    },
  );

  app.post<{ Body: LookupMessages }>(
    "/v1/messages/lookup",
    {
      // Reads only: a viewer may ask, as for `GET /v1/messages/:id`.
      config: { auth: "app", reads: true },
      schema: {
        tags,
        summary: "Which of up to 1000 messages exist, and their state: the reconciliation query for many ids",
        description:
          "What `GET /v1/messages/:id` would answer for each id, in one request and without the messages: each id asked is in `found` (with the message's `state`) or in `missing` (none, or one the caller may not read: another app's message is never confirmed), as it was asked, in the order asked. The SDK's producer reconciliation checks its outbox this way.",
        body: LookupMessages,
        response: { 200: MessageLookup, "4xx": ErrorBody },
      },
    },
    async (request) => {
      const principal = request.principal;
      const app = appOf(principal);
      const visible = principal.kind === "app" ? { app: principal.app, readTopics: principal.readTopics } : undefined;
      const states = await lookupMessages(s.db, [...new Set(request.body.ids.map((ref) => refToFullId(app, ref)))], visible);
      const found: Array<{ id: string; state: string }> = [];
      const missing: string[] = [];
      for (const id of request.body.ids) {
        const state = states.get(refToFullId(app, id));
        if (state === undefined) missing.push(id);
        else found.push({ id, state });
      }
      return { found, missing };
    },
  );

  app.get<{ Params: MessageIdParams }>(
    "/v1/messages/:id/attempts",
    {
      config: { auth: "app" },
      schema: {
        tags,
        summary: "The delivery log of a message",
        params: MessageIdParams,
        response: { 200: Type.Object({ items: Type.Array(Attempt) }), "4xx": ErrorBody },
      },
    },
    async (request) => {
      const message = await readable(request.principal, request.params.id);
      return { items: await getAttempts(s.db, message.id) };
    },
  );

  app.post<{ Params: MessageIdParams; Body: SubscriptionTarget }>(
    "/v1/messages/:id/resend",
    {
      config: { auth: "app", audit: handAction("message.resend") },
      schema: {
        tags,
        summary: "Deliver a message again (to one subscription, or all), with a fresh retry cycle",
        params: MessageIdParams,
        body: SubscriptionTarget,
        response: { 200: Type.Object({ resent: Type.Integer() }), "4xx": ErrorBody },
      },
    },
    async (request) => {
      const message = await acted(request);
      if (message.state !== "committed") throw conflict(`message ${request.params.id} is ${message.state}, not committed`, { state: message.state });
      const resent = await resendMessage(s.db, message.id, await subscriptionId(request.body.subscription));
      s.dispatcher.wake();
      return { resent };
    },
  );

  app.post<{ Params: MessageIdParams; Body: SubscriptionTarget }>(
    "/v1/messages/:id/dead",
    {
      config: { auth: "app", audit: handAction("message.dead") },
      schema: {
        tags,
        summary: "Stop delivering a message: its pending deliveries become dead",
        params: MessageIdParams,
        body: SubscriptionTarget,
        response: { 200: Type.Object({ dead: Type.Integer() }), "4xx": ErrorBody },
      },
    },
    async (request) => {
      const message = await acted(request);
      const reason = request.body.reason ?? "marked dead by hand";
      return { dead: await markDead(s.db, message.id, await subscriptionId(request.body.subscription), reason) };
    },
  );

  const resolveSchema = (summary: string) => ({
    tags,
    summary,
    params: MessageIdParams,
    response: { 200: Message, "4xx": ErrorBody },
  });

  app.post<{ Params: MessageIdParams }>(
    "/v1/messages/:id/commit",
    {
      config: { auth: "app", audit: handAction("message.commit", { peopleOnly: true }) },
      schema: resolveSchema("Commit a prepared message: it is delivered at once. Idempotent; 409 after a rollback"),
    },
    async (request, reply) => {
      // The owner check is part of the (combined) commit statement: no read before it.
      const app = appOf(request.principal);
      noteAudit(request, { target: `message/${refToFullId(app, request.params.id)}` });
      const outcome = await s.publisher.commit(refToFullId(app, request.params.id), app);
      return showResolved(outcome, "committed", request.params.id, request.principal, reply);
    },
  );

  app.post<{ Body: CommitMany }>(
    "/v1/messages/commit",
    {
      config: { auth: "app", audit: handAction("message.commit", { peopleOnly: true }) },
      schema: {
        tags,
        summary: "Commit several prepared messages: each on its own, with a result per id",
        description:
          "What `POST /v1/messages/:id/commit` does, for up to 1000 ids in one request (the SDK sends its concurrent transactions' commits this way). `results[i]` is `{id, state: \"committed\"}` (also when it was committed before), or `{id, error: {code, message, state?}}` with the code the single call would answer: `not_found` (none in the caller's own ids: another app's use of the same id is not seen) or `conflict` (rolled back; `state` says so).",
        body: CommitMany,
        response: { 200: Type.Object({ results: Type.Array(CommitResult) }), "4xx": ErrorBody },
      },
    },
    async (request) => {
      const app = appOf(request.principal);
      const ids = request.body.ids.map((id) => fullId(app, id));
      noteAudit(request, { target: targetOfMany("message", ids) ?? undefined });
      const outcomes = await Promise.all(ids.map((id) => s.publisher.commit(id, app)));
      const results = outcomes.map((outcome, i) => {
        const id = request.body.ids[i]!;
        try {
          return { id, state: showResolved(outcome, "committed", id, request.principal).state };
        } catch (error) {
          if (!(error instanceof TidingsError)) throw error;
          return { id, error: { code: error.code, message: error.message, ...error.details } };
        }
      });
      return { results };
    },
  );

  app.post<{ Params: MessageIdParams }>(
    "/v1/messages/:id/rollback",
    {
      config: { auth: "app", audit: handAction("message.rollback", { peopleOnly: true }) },
      schema: resolveSchema("Roll a prepared message back: it is never delivered. Idempotent; 409 after a commit"),
    },
    async (request, reply) => {
      const app = appOf(request.principal);
      noteAudit(request, { target: `message/${refToFullId(app, request.params.id)}` });
      const outcome = await s.publisher.rollback(refToFullId(app, request.params.id), app);
      return showResolved(outcome, "rolled_back", request.params.id, request.principal, reply);
    },
  );

  app.get<{ Params: MessageIdParams }>(
    "/v1/messages/:id/checks",
    {
      config: { auth: "app" },
      schema: {
        tags,
        summary: "The check-back log of a (once) prepared message",
        params: MessageIdParams,
        response: { 200: Type.Object({ items: Type.Array(Check) }), "4xx": ErrorBody },
      },
    },
    async (request) => {
      const message = await owned(request.principal, request.params.id);
      return { items: await getChecks(s.db, message.id) };
    },
  );

  app.delete<{ Params: MessageIdParams }>(
    "/v1/messages/:id",
    {
      config: { auth: "app", audit: handAction("message.delete") },
      schema: { tags, summary: "Delete a message, its deliveries and their log", params: MessageIdParams },
    },
    async (request, reply) => {
      const message = await acted(request);
      await deleteMessage(s.db, message.id);
      // The next message of a key its deliveries held can go now.
      s.dispatcher.wake();
      return reply.status(204).send();
    },
  );
}
