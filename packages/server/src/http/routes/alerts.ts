import type { FastifyInstance } from "fastify";
import { Type, type Static } from "@sinclair/typebox";
import { notFound } from "../../domain/errors.ts";
import { listAlerts, resolveAlert } from "../../store/alerts.ts";
import type { RouteServices } from "../routeServices.ts";
import { ErrorBody } from "../schemas.ts";
import { handAction } from "../../domain/audit.ts";

const Alert = Type.Object({
  id: Type.Integer(),
  kind: Type.String({
    description: "delivery_dead, message_in_doubt, key_blocked, circuit_open, circuit_closed or subscription_auto_paused",
  }),
  messageId: Type.Union([Type.String(), Type.Null()], { description: "null for an alert about a subscription (its circuit)" }),
  subscription: Type.Union([Type.String(), Type.Null()]),
  detail: Type.String(),
  createdAt: Type.String({ format: "date-time" }),
  resolvedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
});
const AlertQuery = Type.Object(
  {
    open: Type.Optional(Type.Union([Type.Literal("true"), Type.Literal("false")])),
    limit: Type.Optional(Type.String({ pattern: "^[0-9]{1,4}$" })),
    cursor: Type.Optional(Type.String({ pattern: "^[0-9]{1,18}$" })),
  },
  { additionalProperties: false },
);
const AlertParams = Type.Object({ id: Type.String({ pattern: "^[0-9]{1,18}$" }) });

/** Alerts for people: dead deliveries and messages in doubt (admin). */
export function alertRoutes(app: FastifyInstance, s: RouteServices): void {
  const tags = ["alerts"];
  // Reading alerts is for every person; marking them handled for operators.
  const config = { auth: "operator" } as const;
  const read = { auth: "viewer" } as const;
  app.get<{ Querystring: Static<typeof AlertQuery> }>(
    "/v1/alerts",
    {
      config: read,
      schema: {
        tags,
        summary: "Alerts, newest first (open ones only unless open=false)",
        querystring: AlertQuery,
        response: { 200: Type.Object({ items: Type.Array(Alert) }), "4xx": ErrorBody },
      },
    },
    async (request) => {
      const limit = Math.min(1000, Math.max(1, Number(request.query.limit ?? 100)));
      const cursor = request.query.cursor === undefined ? undefined : Number(request.query.cursor);
      return { items: await listAlerts(s.db, request.query.open !== "false", limit, cursor) };
    },
  );
  app.post<{ Params: Static<typeof AlertParams> }>(
    "/v1/alerts/:id/resolve",
    {
      config: { ...config, audit: handAction("alert.resolve") },
      schema: { tags, summary: "Mark an alert handled", params: AlertParams, response: { 204: Type.Null(), "4xx": ErrorBody } },
    },
    async (request, reply) => {
      if (!(await resolveAlert(s.db, Number(request.params.id)))) throw notFound(`alert ${request.params.id}`);
      return reply.status(204).send();
    },
  );
}
