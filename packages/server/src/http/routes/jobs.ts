import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Type, type Static } from "@sinclair/typebox";
import { TidingsError, notFound } from "../../domain/errors.ts";
import { getJob, listJobs, type JobRecord } from "../../store/resendJobs.ts";
import { getSubscription } from "../../store/subscriptions.ts";
import { subscriptionNamed } from "./subscriptions.ts";
import type { RouteServices } from "../routeServices.ts";
import { preference } from "../prefer.ts";
import { handAction } from "../../domain/audit.ts";
import { ErrorBody, NameParams, ResendDead } from "../schemas.ts";

export const Job = Type.Object(
  {
    id: Type.String(),
    kind: Type.String({ description: "resend_dead, or recover" }),
    subscription: Type.String(),
    state: Type.Union([Type.Literal("running"), Type.Literal("succeeded"), Type.Literal("failed")]),
    total: Type.Integer({ description: "how many it will re-send" }),
    done: Type.Integer({ description: "how many it has re-sent: it moves with each committed batch" }),
    batches: Type.Integer(),
    batchSize: Type.Integer(),
    error: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String({ format: "date-time" }),
    finishedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
    since: Type.Union([Type.String({ format: "date-time" }), Type.Null()], { description: "a recovery's window: messages created from this time" }),
    until: Type.Union([Type.String({ format: "date-time" }), Type.Null()], {
      description: "a recovery's window: messages created before this time (null: open)",
    }),
  },
  { $id: "Job" },
);
const JobParams = Type.Object({ id: Type.String({ maxLength: 100 }) });
type JobParams = Static<typeof JobParams>;
const ListJobsQuery = Type.Object({ subscription: Type.Optional(Type.String({ maxLength: 100 })) }, { additionalProperties: false });
type ListJobsQuery = Static<typeof ListJobsQuery>;

const ResendDeadDone = Type.Object({
  resent: Type.Integer({ description: "dead deliveries re-sent" }),
  batches: Type.Integer({ description: "batches (transactions) it took" }),
});
const ResendDeadRunning = Type.Object({
  resent: Type.Integer({ description: "dead deliveries re-sent so far" }),
  batches: Type.Integer({ description: "batches so far" }),
  job: Type.String({ description: "the job going on in the background: GET /v1/jobs/{id}" }),
});

/**
 * How long `POST …/resend-dead` waits for its job by default: under the 30 s after which many
 * HTTP clients and proxies give up on an answer. At the job's pace (300k dead deliveries
 * re-sent in 20 s in batches of 500, on 2 cores) most backlogs are done within it.
 */
export const RESEND_WAIT_MS = 25_000;
/** The longest `Prefer: wait` honoured, in seconds. */
export const MAX_PREFERRED_WAIT_S = 60;

/** RFC 7240 `Prefer: wait=<seconds>`, capped; null without one. */
function preferredWait(prefer: string | string[] | undefined): number | null {
  const seconds = /^\d+/.exec(preference(prefer, "wait") ?? "");
  return seconds ? Math.min(Number(seconds[0]), MAX_PREFERRED_WAIT_S) : null;
}

/**
 * Waits for a job this node runs, as `POST …/resend-dead` and `…/recover` do: `RESEND_WAIT_MS`,
 * or the request's `Prefer: wait=<seconds>` (confirmed by `Preference-Applied`). Answers the job
 * as it then stands; a job that failed is an `unavailable` error naming it and what it did.
 */
export async function awaitJob(s: RouteServices, started: JobRecord, request: FastifyRequest, reply: FastifyReply): Promise<JobRecord> {
  const preferred = preferredWait(request.headers.prefer);
  if (preferred !== null) void reply.header("preference-applied", `wait=${preferred}`);
  if (started.state === "running") await s.resendJobs.settled(started.id, preferred === null ? RESEND_WAIT_MS : preferred * 1000);
  const job = started.state === "running" ? ((await getJob(s.db, started.id)) ?? started) : started;
  if (job.state === "failed") {
    const message = `the re-send job ${job.id} failed after re-sending ${job.done}: ${job.error ?? "unknown error"}`;
    throw new TidingsError("unavailable", message, undefined, { details: { retryAfterSeconds: 1, job: job.id, resent: job.done } });
  }
  return job;
}

/**
 * Re-sending a subscription's dead deliveries: always a background job, whose progress can be
 * followed and which another node adopts if this one dies. `POST …/resend-dead` is the same
 * job, waited for.
 */
export function jobRoutes(app: FastifyInstance, s: RouteServices): void {
  const tags = ["console"];
  // Re-sending is a hand action (operator); following the jobs is reading (viewer).
  const config = { auth: "operator" } as const;
  const read = { auth: "viewer" } as const;
  const jobs = s.resendJobs;
  const start = async (subscription: string, body: ResendDead | undefined): Promise<JobRecord> => {
    const row = await subscriptionNamed(s, subscription);
    return jobs.create(row.id, body?.limit ?? Number.MAX_SAFE_INTEGER, body?.batchSize ?? 500);
  };

  app.post<{ Params: NameParams; Body: ResendDead | undefined }>(
    "/v1/subscriptions/:name/resend-dead-jobs",
    {
      config: { ...config, audit: handAction("subscription.resend_dead") },
      schema: {
        tags: ["subscriptions"],
        summary: "Start re-sending a subscription's dead deliveries in batches, in the background; follow it at /v1/jobs/:id",
        params: NameParams,
        body: Type.Optional(ResendDead),
        response: { 202: Job, "4xx": ErrorBody },
      },
    },
    async (request, reply) => {
      const job = await start(request.params.name, request.body);
      return reply.status(202).header("location", `/v1/jobs/${job.id}`).send(job);
    },
  );

  app.post<{ Params: NameParams; Body: ResendDead }>(
    "/v1/subscriptions/:name/resend-dead",
    {
      config: { ...config, audit: handAction("subscription.resend_dead") },
      schema: {
        tags: ["subscriptions"],
        summary: "Re-send a subscription's dead deliveries, in batches, and wait for it",
        description:
          "Starts a re-send job, as `POST /v1/subscriptions/{name}/resend-dead-jobs` does, and waits for it: 200 " +
          `\`{resent, batches}\` once it has finished. Still running after ${RESEND_WAIT_MS / 1000} s (or after the request's \`Prefer: wait=<seconds>\`, ` +
          `RFC 7240, at most ${MAX_PREFERRED_WAIT_S}, confirmed by \`Preference-Applied\`), it goes on in the background and the ` +
          "answer is 202 with what it has done so far and `job`, its id (`Location: /v1/jobs/{id}`). A job that failed answers " +
          "503 `unavailable` with `job` and `resent`; calling again re-sends what is still dead.",
        params: NameParams,
        body: ResendDead,
        response: { 200: ResendDeadDone, 202: ResendDeadRunning, "4xx": ErrorBody, 503: ErrorBody },
      },
    },
    async (request, reply) => {
      const job = await awaitJob(s, await start(request.params.name, request.body), request, reply);
      if (job.state === "succeeded") return { resent: job.done, batches: job.batches };
      return reply.status(202).header("location", `/v1/jobs/${job.id}`).send({ resent: job.done, batches: job.batches, job: job.id });
    },
  );

  app.get<{ Params: JobParams }>(
    "/v1/jobs/:id",
    { config: read, schema: { tags, summary: "A background job and its progress", params: JobParams, response: { 200: Job, "4xx": ErrorBody } } },
    async (request) => {
      const job = await getJob(s.db, request.params.id);
      if (!job) throw notFound(`job ${request.params.id}`);
      return job;
    },
  );

  app.get<{ Querystring: ListJobsQuery }>(
    "/v1/jobs",
    {
      config: read,
      schema: {
        tags,
        summary: "The 20 newest jobs (of one subscription)",
        querystring: ListJobsQuery,
        response: { 200: Type.Object({ items: Type.Array(Job) }), "4xx": ErrorBody },
      },
    },
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
