import type { FastifyInstance } from "fastify";
import { Type, type Static } from "@sinclair/typebox";
import { lastPerDelivery, MAX_OUTCOMES_PER_CALL, OUTCOME_ERROR_CHARS, type OutcomeReport } from "../../domain/outcome.ts";
import { reportOutcomes } from "../../store/consumerOutcomes.ts";
import type { RouteServices } from "../routeServices.ts";
import { ErrorBody, Name } from "../schemas.ts";

const Report = Type.Object(
  {
    subscription: { ...Name, description: "the subscription the message was delivered through (the `tidings-subscription` header of a delivery)" },
    messageId: Type.String({ minLength: 1, maxLength: 300, description: "the message's full id, as delivered (`webhook-id`, the envelope's id)" }),
    outcome: Type.Union([Type.Literal("applied"), Type.Literal("duplicate"), Type.Literal("failed")]),
    // Longer errors are cut, not refused: a report is not worth losing over the length of a stack trace.
    error: Type.Optional(
      Type.Union([Type.String({ maxLength: 8000 }), Type.Null()], {
        description: `a failed outcome's error (the first ${OUTCOME_ERROR_CHARS} characters are kept)`,
      }),
    ),
    gaveUp: Type.Optional(Type.Boolean({ description: "a broker consumer gave up on the message (its dead letter): the delivery becomes dead" })),
  },
  { additionalProperties: false },
);
const OutcomesBody = Type.Object({ outcomes: Type.Array(Report, { minItems: 1, maxItems: MAX_OUTCOMES_PER_CALL }) }, { additionalProperties: false });
type OutcomesBody = Static<typeof OutcomesBody>;

/**
 * Consumer outcomes: the SDK's receiver and broker consumers report, in batches, what they did
 * with each delivery. An app key reports on deliveries of the messages it may read (its own, and
 * those of its read topics: the topics it consumes); a report naming any other delivery is
 * ignored, as is one naming a delivery that does not exist (deleted since, a typo): the consumer
 * could do nothing about it.
 */
export function outcomeRoutes(app: FastifyInstance, s: RouteServices): void {
  app.post<{ Body: OutcomesBody }>(
    "/v1/outcomes",
    {
      config: { auth: "app" },
      schema: {
        tags: ["messages"],
        summary: "Report consumers' outcomes (applied, duplicate, failed) of deliveries, by subscription and message id",
        body: OutcomesBody,
        response: {
          200: Type.Object({
            recorded: Type.Integer({ description: "deliveries reported on (of several reports on one delivery in a call, the last counts)" }),
            ignored: Type.Integer({ description: "reports naming no such delivery, or one of a message this key may not read" }),
            gaveUp: Type.Integer({ description: "deliveries that became dead because their consumer gave up" }),
            completed: Type.Array(Type.String(), { description: "messages these reports completed (every delivery applied or duplicate)" }),
          }),
          "4xx": ErrorBody,
        },
      },
    },
    async (request) => {
      const principal = request.principal;
      const reporter = principal.kind === "app" ? { app: principal.app, readTopics: principal.readTopics } : null;
      const reports: OutcomeReport[] = lastPerDelivery(
        request.body.outcomes.map((r) => ({
          subscription: r.subscription,
          messageId: r.messageId,
          outcome: r.outcome,
          error: r.outcome === "failed" ? (r.error ?? null) : null,
          gaveUp: r.outcome === "failed" && r.gaveUp === true,
        })),
      );
      const recorded = await reportOutcomes(s.db, reporter, reports, s.config.completedTopic);
      if (recorded.announced > 0) s.dispatcher.wake(); // their deliveries were left to a claim
      return {
        recorded: recorded.matched,
        ignored: reports.length - recorded.matched,
        gaveUp: recorded.gaveUp,
        completed: recorded.completed.map((m) => m.id),
      };
    },
  );
}
