import type { FastifyInstance } from "fastify";
import { Type, type Static } from "@sinclair/typebox";
import { TidingsError, notFound } from "../../domain/errors.ts";
import { getJob, listJobs } from "../../store/resendJobs.ts";
import { getSubscription } from "../../store/subscriptions.ts";
import type { RouteServices } from "../routeServices.ts";
import { ErrorBody, NameParams, ResendDead } from "../schemas.ts";

export const Job = Type.Object({
  id: Type.String(),
  kind: Type.String({ description: "resend_dead" }),
  subscription: Type.String(),
  state: Type.Union([Type.Literal("running"), Type.Literal("succeeded"), Type.Literal("failed")]),
  total: Type.Integer({ description: "how many it will re-send" }),
  done: Type.Integer({ description: "how many it has re-sent: it moves with each committed batch" }),
  batches: Type.Integer(),
  batchSize: Type.Integer(),
  error: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ format: "date-time" }),
  finishedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
});
const JobParams = Type.Object({ id: Type.String({ maxLength: 100 }) });
type JobParams = Static<typeof JobParams>;
const ListJobsQuery = Type.Object({ subscription: Type.Optional(Type.String({ maxLength: 100 })) }, { additionalProperties: false });
type ListJobsQuery = Static<typeof ListJobsQuery>;

/** Re-sending dead deliveries as a background job whose progress can be followed. */
export function jobRoutes(app: FastifyInstance, s: RouteServices): void {
  const tags = ["console"];
  const config = { auth: "admin" } as const;
  app.post<{ Params: NameParams; Body: ResendDead | undefined }>(
    "/v1/subscriptions/:name/resend-dead-jobs",
    {
      config,
      schema: {
        tags: ["subscriptions"],
        summary: "Start re-sending a subscription's dead deliveries in batches, in the background; follow it at /v1/jobs/:id",
        params: NameParams,
        body: Type.Optional(ResendDead),
        response: { 202: Job, "4xx": ErrorBody },
      },
    },
    async (request, reply) => {
      const row = await getSubscription(s.db, request.params.name);
      if (!row) throw notFound(`subscription ${request.params.name}`);
      const job = await s.resendJobs.create(row.id, request.body?.limit ?? Number.MAX_SAFE_INTEGER, request.body?.batchSize ?? 500);
      return reply.status(202).header("location", `/v1/jobs/${job.id}`).send(job);
    },
  );

  app.get<{ Params: JobParams }>(
    "/v1/jobs/:id",
    { config, schema: { tags, summary: "A background job and its progress", params: JobParams, response: { 200: Job, "4xx": ErrorBody } } },
    async (request) => {
      const job = await getJob(s.db, request.params.id);
      if (!job) throw notFound(`job ${request.params.id}`);
      return job;
    },
  );

  app.get<{ Querystring: ListJobsQuery }>(
    "/v1/jobs",
    { config, schema: { tags, summary: "The 20 newest jobs (of one subscription)", querystring: ListJobsQuery, response: { 200: Type.Object({ items: Type.Array(Job) }), "4xx": ErrorBody } } },
    async (request) => {
      let subscriptionId: number | null = null;
      if (request.query.subscription !== undefined) {
        const row = await getSubscription(s.db, request.query.subscription);
        if (!row) throw new TidingsError("not_found", `subscription ${request.query.subscription} not found`, "query.subscription");
        subscriptionId = row.id;
      }
      return { items: await listJobs(s.db, subscriptionId, 20) };
    },
  );
}
