import type { FastifyInstance } from "fastify";
import { Type } from "@sinclair/typebox";
import { COUNT_CAP, countDeliveriesBySubscription, countMessagesByState, countOpenAlerts, oldestPending, throughputPerMinute } from "../../store/stats.ts";
import type { RouteServices } from "../routeServices.ts";
import { ErrorBody } from "../schemas.ts";

const Counts = Type.Record(Type.String(), Type.Integer(), { description: "count by state; a count equal to countCap means at least that many" });
export const Stats = Type.Object({
  generatedAt: Type.String({ format: "date-time" }),
  countCap: Type.Integer(),
  messages: Type.Record(Type.String(), Type.Integer(), {
    description: "count by state, and in_doubt: the prepared messages whose check-backs ran out (counted in prepared too)",
  }),
  openAlerts: Type.Integer({ description: "alerts not yet marked handled" }),
  deliveries: Type.Object({ total: Counts }),
  subscriptions: Type.Array(Type.Object({ subscription: Type.String(), enabled: Type.Boolean(), counts: Counts })),
  oldestPending: Type.Union([
    Type.Object({
      messageId: Type.String(),
      subscription: Type.String(),
      createdAt: Type.String({ format: "date-time" }),
      ageSeconds: Type.Integer(),
    }),
    Type.Null(),
  ]),
  throughput: Type.Array(
    Type.Object({
      minute: Type.String({ format: "date-time" }),
      accepted: Type.Integer(),
      delivered: Type.Integer(),
      failed: Type.Integer({ description: "failed attempts that will be retried" }),
      dead: Type.Integer(),
    }),
    { description: "per minute over the last hour, oldest first; the last minute is the current one" },
  ),
});

export function statsRoutes(app: FastifyInstance, s: RouteServices): void {
  // Consoles asking at the same moment share one computation (they refresh every few seconds).
  let inFlight: Promise<unknown> | null = null;

  async function compute() {
    const [messages, openAlerts, subscriptions, oldest, throughput] = await Promise.all([
      countMessagesByState(s.readDb),
      countOpenAlerts(s.readDb),
      countDeliveriesBySubscription(s.readDb),
      oldestPending(s.readDb),
      throughputPerMinute(s.readDb, 60),
    ]);
    const total: Record<string, number> = {};
    for (const sub of subscriptions) {
      for (const [state, n] of Object.entries(sub.counts)) total[state] = Math.min(COUNT_CAP, (total[state] ?? 0) + n);
    }
    return {
      generatedAt: new Date().toISOString(),
      countCap: COUNT_CAP,
      messages,
      openAlerts,
      deliveries: { total },
      subscriptions,
      oldestPending: oldest,
      throughput,
    };
  }

  app.get(
    "/v1/stats",
    {
      config: { auth: "viewer" },
      schema: {
        tags: ["console"],
        summary: "Counts by state, the oldest pending delivery, and throughput per minute over the last hour",
        response: { 200: Stats, "4xx": ErrorBody },
      },
    },
    async () => {
      inFlight ??= compute().finally(() => {
        inFlight = null;
      });
      return inFlight;
    },
  );
}
