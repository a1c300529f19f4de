import type { FastifyInstance } from "fastify";
import { Type, type Static } from "@sinclair/typebox";
import { invalid, notFound } from "../../domain/errors.ts";
import { storableText } from "../../domain/storableText.ts";
import { getReconciliation, insertReconciliation, listReconciliations } from "../../store/reconciliations.ts";
import type { RouteServices } from "../routeServices.ts";
import { ErrorBody, Name } from "../schemas.ts";
import { pageLimit } from "../paging.ts";

const Topic = Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$" });
const Time = Type.String({ format: "date-time", maxLength: 40 });
/** Counts a run makes; bounded so that a wrong one cannot overflow a sum. */
const Count = Type.Integer({ minimum: 0, maximum: 1e12 });
const MAX_DIFFERENCES = 1000;
const MAX_ERROR = 2000;
/** A reporter's clock may be off; a time further ahead than this is no real time. */
const FUTURE_SLACK_MS = 86_400_000;

const Problem = Type.Union([Type.Literal("missing"), Type.Literal("failed"), Type.Literal("unknown_to_service"), Type.Literal("not_sent")], {
  description:
    "missing: committed at the service, not in the consumer's inbox; failed: the consumer's handling failed; unknown_to_service: an outbox row marked sent that the service does not have; not_sent: an outbox row the relay gave up on",
});
const Action = Type.Union([Type.Literal("applied"), Type.Literal("resent"), Type.Literal("none"), Type.Literal("failed")], {
  description: "applied through the inbox, resent to the service, none (listed only), or the repair failed",
});
const Difference = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 300, pattern: "^[^\\u0000-\\u001f]+$", description: "the message's full id, or an outbox row's message id" }),
    problem: Problem,
    action: Action,
    error: Type.Optional(Type.Union([Type.String({ maxLength: MAX_ERROR }), Type.Null()])),
  },
  { additionalProperties: false },
);

const Report = Type.Object(
  {
    kind: Type.Union([Type.Literal("consumer"), Type.Literal("producer")]),
    subscription: Type.Optional(Type.Union([Name, Type.Null()])),
    topic: Type.Optional(Type.Union([Topic, Type.Null()])),
    reporter: Type.String({
      pattern: "^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$",
      description: "who ran it (host:pid, a job's name): letters, digits, `_ . : @ -`, up to 128",
    }),
    since: { ...Time, description: "the window looked at: from" },
    until: { ...Time, description: "the window looked at: to" },
    startedAt: Time,
    finishedAt: Time,
    counts: Type.Object({ checked: Count, missing: Count, repaired: Count, failed: Count }, { additionalProperties: false }),
    differences: Type.Array(Difference, { maxItems: MAX_DIFFERENCES }),
    differencesOmitted: Type.Optional(Count),
  },
  { additionalProperties: false },
);
type Report = Static<typeof Report>;

const Run = Type.Object(
  {
    id: Type.Integer(),
    app: Type.Union([Type.String(), Type.Null()], { description: "the app whose key reported it; null: a person" }),
    kind: Type.String(),
    subscription: Type.Union([Type.String(), Type.Null()]),
    topic: Type.Union([Type.String(), Type.Null()]),
    reporter: Type.String(),
    since: Type.String({ format: "date-time" }),
    until: Type.String({ format: "date-time" }),
    startedAt: Type.String({ format: "date-time" }),
    finishedAt: Type.String({ format: "date-time" }),
    counts: Type.Object({ checked: Type.Integer(), missing: Type.Integer(), repaired: Type.Integer(), failed: Type.Integer() }),
    differences: Type.Optional(
      Type.Array(Type.Object({ id: Type.String(), problem: Type.String(), action: Type.String(), error: Type.Union([Type.String(), Type.Null()]) })),
    ),
    differencesOmitted: Type.Integer(),
    receivedAt: Type.String({ format: "date-time" }),
  },
  { $id: "ReconciliationRun" },
);

const ListQuery = Type.Object(
  {
    kind: Type.Optional(Type.Union([Type.Literal("consumer"), Type.Literal("producer")])),
    subscription: Type.Optional(Type.String({ maxLength: 63 })),
    topic: Type.Optional(Type.String({ maxLength: 200 })),
    app: Type.Optional(Type.String({ maxLength: 63 })),
    reporter: Type.Optional(Type.String({ maxLength: 128 })),
    since: Type.Optional({ ...Time, description: "runs started at or after this" }),
    until: Type.Optional({ ...Time, description: "runs started before this" }),
    differences: Type.Optional(Type.Literal("true", { description: "only runs that found differences (missing or failed)" })),
    limit: Type.Optional(Type.String({ pattern: "^[0-9]{1,3}$" })),
    cursor: Type.Optional(Type.String({ pattern: "^[0-9]{1,18}$" })),
  },
  { additionalProperties: false },
);

/** A time of the report as stored: a real instant, not far in the future. */
function reportTime(field: string, text: string): string {
  const at = new Date(text);
  if (Number.isNaN(at.getTime()) || at.getTime() < 0 || at.getTime() > Date.now() + FUTURE_SLACK_MS) {
    throw invalid(field, `${field} must be a real time, not in the future: ${text}`);
  }
  return at.toISOString();
}

/** Reconciliation runs' reports: sent by the SDK's reconciler, read in the console. */
export function reconciliationRoutes(app: FastifyInstance, s: RouteServices): void {
  const tags = ["reconciliation"];

  app.post<{ Body: Report }>(
    "/v1/reconciliations",
    {
      config: { auth: "app" },
      schema: {
        tags,
        summary: "Report a reconciliation run: what it compared, the differences it found and what it did about them",
        description: `An app's key reports its own runs (the report carries its app); people with the operator role may report too. Up to ${MAX_DIFFERENCES} differences; count the rest in differencesOmitted. Kept 90 days.`,
        body: Report,
        response: { 201: Run, "4xx": ErrorBody },
      },
    },
    async (request, reply) => {
      const b = request.body;
      if (b.subscription == null && b.topic == null) throw invalid("subscription", "give the subscription or the topic that was reconciled");
      const since = reportTime("since", b.since);
      const until = reportTime("until", b.until);
      if (since > until) throw invalid("until", "until must not be before since");
      const startedAt = reportTime("startedAt", b.startedAt);
      const finishedAt = reportTime("finishedAt", b.finishedAt);
      if (startedAt > finishedAt) throw invalid("finishedAt", "finishedAt must not be before startedAt");
      const differences = b.differences.map((d, i) => {
        // An id is shown and searched as sent: one the database cannot store is refused, not changed.
        if (storableText(d.id, 300) !== d.id) throw invalid(`differences[${i}].id`, "the id holds an unpaired surrogate");
        return { id: d.id, problem: d.problem, action: d.action, error: d.error == null ? null : storableText(d.error, MAX_ERROR) };
      });
      const p = request.principal;
      const stored = await insertReconciliation(s.db, {
        app: p.kind === "app" ? p.app : null,
        kind: b.kind,
        subscription: b.subscription ?? null,
        topic: b.topic ?? null,
        reporter: b.reporter,
        since,
        until,
        startedAt,
        finishedAt,
        counts: b.counts,
        differences,
        differencesOmitted: b.differencesOmitted ?? 0,
      });
      return reply.status(201).send(stored);
    },
  );

  app.get<{ Querystring: Static<typeof ListQuery> }>(
    "/v1/reconciliations",
    {
      config: { auth: "viewer" },
      schema: {
        tags,
        summary: "Reconciliation runs, newest first, with filters and keyset paging (without their differences: GET one run for those)",
        querystring: ListQuery,
        response: { 200: Type.Object({ items: Type.Array(Run), nextCursor: Type.Union([Type.String(), Type.Null()]) }), "4xx": ErrorBody },
      },
    },
    async (request) => {
      const q = request.query;
      const limit = pageLimit(q.limit, 50, 500);
      return listReconciliations(s.readDb, {
        kind: q.kind,
        subscription: q.subscription,
        topic: q.topic,
        app: q.app,
        reporter: q.reporter,
        since: q.since,
        until: q.until,
        withDifferences: q.differences === "true",
        beforeId: q.cursor === undefined ? undefined : Number(q.cursor),
        limit,
      });
    },
  );

  app.get<{ Params: { id: string } }>(
    "/v1/reconciliations/:id",
    {
      config: { auth: "viewer" },
      schema: {
        tags,
        summary: "One reconciliation run with its differences",
        params: Type.Object({ id: Type.String({ pattern: "^[0-9]{1,18}$" }) }),
        response: { 200: Run, "4xx": ErrorBody },
      },
    },
    async (request) => {
      const run = await getReconciliation(s.db, Number(request.params.id));
      if (!run) throw notFound(`reconciliation ${request.params.id}`);
      return run;
    },
  );
}
