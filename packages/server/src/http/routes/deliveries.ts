import type { FastifyInstance } from "fastify";
import { Type, type Static, type TSchema } from "@sinclair/typebox";
import { TidingsError, conflict, notFound } from "../../domain/errors.ts";
import { listDeliveries } from "../../store/deliveryList.ts";
import { getSubscription } from "../../store/subscriptions.ts";
import { skipDelivery } from "../../store/skipDelivery.ts";
import type { RouteServices } from "../routeServices.ts";
import { ErrorBody } from "../schemas.ts";
import { handAction } from "../../domain/audit.ts";
import { pageLimit } from "../paging.ts";

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
const Timestamp = Type.String({ format: "date-time" });

const ListDeliveriesQuery = Type.Object(
  {
    state: Type.Optional(Type.Union([Type.Literal("pending"), Type.Literal("delivered"), Type.Literal("dead")])),
    subscription: Type.Optional(Type.String({ maxLength: 100 })),
    limit: Type.Optional(Type.String({ pattern: "^[0-9]{1,4}$" })),
    cursor: Type.Optional(Type.String({ pattern: "^[0-9]{1,18}$" })),
  },
  { additionalProperties: false },
);
type ListDeliveriesQuery = Static<typeof ListDeliveriesQuery>;

const ListedDelivery = Type.Object(
  {
    id: Type.Integer(),
    messageId: Type.String(),
    topic: Type.String(),
    tag: Nullable(Type.String()),
    key: Nullable(Type.String()),
    subscription: Type.String(),
    state: Type.String(),
    attempts: Type.Integer(),
    nextAttemptAt: Nullable(Timestamp),
    lastAttemptAt: Nullable(Timestamp),
    lastStatus: Nullable(Type.Integer()),
    lastError: Nullable(Type.String()),
    deliveredAt: Nullable(Timestamp),
    deadAt: Nullable(Timestamp),
    deadReason: Nullable(Type.String()),
    outcome: Nullable(Type.String({ description: "what the consumer reported: applied, duplicate or failed; null when it reported nothing" })),
    outcomeAt: Nullable(Timestamp),
    outcomeError: Nullable(Type.String()),
    createdAt: Timestamp,
  },
  { $id: "ListedDelivery" },
);

const DeliveryIdParams = Type.Object({ id: Type.String({ pattern: "^[0-9]{1,18}$", description: "the delivery's id" }) }, { additionalProperties: false });

/** Deliveries across messages: the dead-letter list an operator works through. */
export function deliveryRoutes(app: FastifyInstance, s: RouteServices): void {
  app.get<{ Querystring: ListDeliveriesQuery }>(
    "/v1/deliveries",
    {
      config: { auth: "viewer" },
      schema: {
        tags: ["console"],
        summary: "List deliveries newest first (e.g. state=dead: the dead letters), with keyset paging",
        querystring: ListDeliveriesQuery,
        response: { 200: Type.Object({ items: Type.Array(ListedDelivery), nextCursor: Nullable(Type.String()) }), "4xx": ErrorBody },
      },
    },
    async (request) => {
      const q = request.query;
      const limit = pageLimit(q.limit, 50, 1000);
      let subscriptionId: number | undefined;
      if (q.subscription !== undefined) {
        const row = await getSubscription(s.db, q.subscription);
        if (!row) throw new TidingsError("not_found", `subscription ${q.subscription} not found`, "query.subscription");
        subscriptionId = row.id;
      }
      return listDeliveries(s.readDb, {
        state: q.state,
        subscriptionId,
        beforeId: q.cursor === undefined ? undefined : Number(q.cursor),
        limit,
      });
    },
  );

  app.post<{ Params: Static<typeof DeliveryIdParams> }>(
    "/v1/deliveries/:id/skip",
    {
      config: { auth: "operator", audit: handAction("delivery.skip") },
      schema: {
        tags: ["console"],
        summary:
          "Skip a dead delivery: on a subscription ordered by key with onDead block, its key goes on with the next message; its alerts are resolved. Idempotent; 409 when the delivery is not dead",
        params: DeliveryIdParams,
        response: { 200: Type.Object({ id: Type.Integer(), skipped: Type.Boolean() }), "4xx": ErrorBody },
      },
    },
    async (request) => {
      const id = Number(request.params.id);
      const outcome = await skipDelivery(s.db, id);
      if (outcome === "not_found") throw notFound(`delivery ${id}`);
      if (outcome === "not_dead") throw conflict(`delivery ${id} is not dead: only a dead delivery can be skipped`);
      s.dispatcher.wake();
      return { id, skipped: true };
    },
  );
}
