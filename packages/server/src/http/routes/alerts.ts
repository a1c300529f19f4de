import type { FastifyInstance } from "fastify";
import { Type, type Static } from "@sinclair/typebox";
import { ALERT_NOTE_MAX } from "../../domain/alerts.ts";
import { conflict, notFound } from "../../domain/errors.ts";
import { acknowledgeAlert, getAlert, listAlerts, resolveAlertByHand, type AlertChange, type AlertRecord } from "../../store/alerts.ts";
import { actorOf } from "../auth.ts";
import type { RouteServices } from "../routeServices.ts";
import { handAction } from "../../domain/audit.ts";
import { ErrorBody } from "../schemas.ts";

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const Time = Type.String({ format: "date-time" });

const Alert = Type.Object(
  {
    id: Type.Integer(),
    condition: Type.String({
      description:
        "delivery_dead, key_blocked, message_in_doubt, circuit_open, subscription_auto_paused, pending_too_old, check_url_failing (or one raised from outside, e.g. a relay's)",
    }),
    subject: Type.String({ description: 'what it is about, and its group: "subscription orders", "app shop", "admin"' }),
    subscription: Nullable(Type.String()),
    app: Nullable(Type.String()),
    state: Type.String({ description: "open, acknowledged or resolved" }),
    count: Type.Integer({ description: "occurrences counted into it (for pending_too_old and check_url_failing: checks that found it, failures in a row)" }),
    firstAt: Time,
    lastAt: Time,
    detail: Type.String({ description: "the latest occurrence" }),
    examples: Type.Array(
      Type.Object({
        messageId: Type.Optional(Type.String()),
        deliveryId: Type.Optional(Type.Integer()),
        detail: Type.Optional(Type.String()),
        at: Type.Optional(Type.String()),
      }),
      { description: "the latest occurrences, newest first, at most 10" },
    ),
    link: Nullable(Type.String({ description: "the console page to act on it (a hash path)" })),
    nextStep: Nullable(Type.String()),
    acknowledgedAt: Nullable(Time),
    acknowledgedBy: Nullable(Type.String()),
    acknowledgeNote: Nullable(Type.String()),
    resolvedAt: Nullable(Time),
    resolvedBy: Nullable(Type.String({ description: '"tidings" when its condition cleared' })),
    resolveNote: Nullable(Type.String()),
  },
  { $id: "Alert" },
);
const AlertQuery = Type.Object(
  {
    state: Type.Optional(
      Type.Union([Type.Literal("open"), Type.Literal("acknowledged"), Type.Literal("resolved"), Type.Literal("unresolved"), Type.Literal("all")], {
        description: "unresolved (default: open and acknowledged), open, acknowledged, resolved or all",
      }),
    ),
    open: Type.Optional(Type.Union([Type.Literal("true"), Type.Literal("false")], { description: "open=false: every state (as state=all)" })),
    condition: Type.Optional(Type.String({ pattern: "^[a-z][a-z0-9_]{0,62}$" })),
    subscription: Type.Optional(Type.String({ maxLength: 100 })),
    app: Type.Optional(Type.String({ maxLength: 100 })),
    limit: Type.Optional(Type.String({ pattern: "^[0-9]{1,4}$" })),
    cursor: Type.Optional(Type.String({ pattern: "^[0-9]{1,18}$" })),
  },
  { additionalProperties: false },
);
const AlertParams = Type.Object({ id: Type.String({ pattern: "^[0-9]{1,18}$" }) });
const NoteBody = Type.Object({ note: Type.Optional(Type.String({ maxLength: ALERT_NOTE_MAX })) }, { additionalProperties: false });

const answer = (change: AlertChange, id: string): AlertRecord => {
  if (change.kind === "not_found") throw notFound(`alert ${id}`);
  if (change.kind === "resolved") throw conflict(`alert ${id} is resolved: it cannot be acknowledged`, { state: "resolved" });
  return change.alert;
};

/** Alerts for people, grouped by condition and subject, and their lifecycle (admin). */
export function alertRoutes(app: FastifyInstance, s: RouteServices): void {
  const tags = ["alerts"];
  // Reading alerts is for every person; acknowledging and resolving them for operators.
  const read = { auth: "viewer" } as const;
  app.get<{ Querystring: Static<typeof AlertQuery> }>(
    "/v1/alerts",
    {
      config: read,
      schema: {
        tags,
        summary: "Alerts, newest first: unresolved ones unless state says otherwise; filters by condition, subscription and app; keyset paging by cursor",
        querystring: AlertQuery,
        response: { 200: Type.Object({ items: Type.Array(Alert), nextCursor: Nullable(Type.String()) }), "4xx": ErrorBody },
      },
    },
    async (request) => {
      const q = request.query;
      const limit = Math.min(1000, Math.max(1, Number(q.limit ?? 100)));
      const state = q.state === "all" || (q.state === undefined && q.open === "false") ? null : (q.state ?? "unresolved");
      const items = await listAlerts(s.readDb, {
        state,
        condition: q.condition,
        subscription: q.subscription,
        app: q.app,
        limit,
        beforeId: q.cursor === undefined ? undefined : Number(q.cursor),
      });
      return { items, nextCursor: items.length === limit ? String(items.at(-1)!.id) : null };
    },
  );
  app.get<{ Params: Static<typeof AlertParams> }>(
    "/v1/alerts/:id",
    { config: read, schema: { tags, summary: "One alert", params: AlertParams, response: { 200: Alert, "4xx": ErrorBody } } },
    async (request) => {
      const alert = await getAlert(s.db, Number(request.params.id));
      if (!alert) throw notFound(`alert ${request.params.id}`);
      return alert;
    },
  );
  app.post<{ Params: Static<typeof AlertParams>; Body: Static<typeof NoteBody> | undefined }>(
    "/v1/alerts/:id/acknowledge",
    {
      config: { auth: "operator", audit: handAction("alert.acknowledge") },
      schema: {
        tags,
        summary: "Acknowledge an open alert (who: the caller; with a note): it stays unresolved and keeps counting. Idempotent; 409 when resolved",
        params: AlertParams,
        body: NoteBody,
        response: { 200: Alert, "4xx": ErrorBody },
      },
    },
    async (request) =>
      answer(await acknowledgeAlert(s.db, Number(request.params.id), actorOf(request.principal), request.body?.note ?? null), request.params.id),
  );
  app.post<{ Params: Static<typeof AlertParams>; Body: Static<typeof NoteBody> | undefined }>(
    "/v1/alerts/:id/resolve",
    {
      config: { auth: "operator", audit: handAction("alert.resolve") },
      schema: {
        tags,
        summary: "Resolve an alert by hand (who: the caller; with a note). Idempotent. If its condition still holds, its next occurrence opens a new alert",
        params: AlertParams,
        body: NoteBody,
        response: { 200: Alert, "4xx": ErrorBody },
      },
    },
    async (request) =>
      answer(await resolveAlertByHand(s.db, Number(request.params.id), actorOf(request.principal), request.body?.note ?? null), request.params.id),
  );
}
