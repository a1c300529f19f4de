import type { FastifyInstance } from "fastify";
import { Type, type Static } from "@sinclair/typebox";
import { listAudit } from "../../store/auditLog.ts";
import type { RouteServices } from "../routeServices.ts";
import { ErrorBody } from "../schemas.ts";
import { pageLimit } from "../paging.ts";

const Timestamp = Type.String({ format: "date-time" });
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);

const AuditQuery = Type.Object(
  {
    actor: Type.Optional(Type.String({ maxLength: 100, description: "an operator's or app's name, or `admin key`" })),
    action: Type.Optional(Type.String({ maxLength: 100, description: "an action (`subscription.update`), or an object's every action (`subscription`)" })),
    target: Type.Optional(Type.String({ maxLength: 400, description: "e.g. `subscription/billing`, `message/shop/order-1`" })),
    since: Type.Optional({ ...Timestamp, description: "entries at or after this time" }),
    until: Type.Optional({ ...Timestamp, description: "entries before this time" }),
    limit: Type.Optional(Type.String({ pattern: "^[0-9]{1,4}$" })),
    cursor: Type.Optional(Type.String({ pattern: "^[0-9]{1,18}$" })),
  },
  { additionalProperties: false },
);

const AuditEntry = Type.Object(
  {
    id: Type.Integer(),
    at: Timestamp,
    actorKind: Type.Union([Type.Literal("admin"), Type.Literal("operator"), Type.Literal("app")]),
    actor: Type.String(),
    address: Nullable(Type.String()),
    action: Type.String(),
    target: Nullable(Type.String()),
    before: Type.Unknown({ description: "a configuration object before the change, as the API shows it, secrets left out" }),
    after: Type.Unknown({ description: "the object after the change (null after a deletion)" }),
    detail: Type.Unknown({ description: "the request's options and a hand action's result" }),
  },
  { $id: "AuditEntry" },
);

/** The audit log: who changed what, newest first (every person may read it). */
export function auditRoutes(app: FastifyInstance, s: RouteServices): void {
  app.get<{ Querystring: Static<typeof AuditQuery> }>(
    "/v1/audit",
    {
      config: { auth: "viewer" },
      schema: {
        tags: ["audit"],
        summary: "The audit log, newest first, with filters and keyset paging",
        querystring: AuditQuery,
        response: { 200: Type.Object({ items: Type.Array(AuditEntry), nextCursor: Nullable(Type.String()) }), "4xx": ErrorBody },
      },
    },
    async (request) => {
      const q = request.query;
      const limit = pageLimit(q.limit, 100, 1000);
      return listAudit(s.readDb, {
        actor: q.actor,
        action: q.action,
        target: q.target,
        since: q.since,
        until: q.until,
        beforeId: q.cursor === undefined ? undefined : Number(q.cursor),
        limit,
      });
    },
  );
}
