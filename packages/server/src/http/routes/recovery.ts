import type { FastifyInstance } from "fastify";
import { invalid } from "../../domain/errors.ts";
import type { SubscriptionRow } from "../../domain/subscription.ts";
import { retryPendingNow } from "../../store/operatorActions.ts";
import { subscriptionNamed } from "./subscriptions.ts";
import type { RouteServices } from "../routeServices.ts";
import { handAction } from "../../domain/audit.ts";
import { ErrorBody, NameParams, Recover, RetriedPending } from "../schemas.ts";
import { awaitJob, Job, MAX_PREFERRED_WAIT_S, RESEND_WAIT_MS } from "./jobs.ts";

/** Message creation times a window may name: from the epoch to the end of year 9999. */
const EARLIEST = Date.UTC(1970, 0, 1);
const LATEST = Date.UTC(10000, 0, 1);

/** An instant from a date-time field, refused (naming the field) when it is no real instant or out of range. */
function instant(field: string, text: string): Date {
  const at = new Date(text);
  if (Number.isNaN(at.getTime())) throw invalid(field, `${field} is not a valid time: ${text}`);
  if (at.getTime() < EARLIEST || at.getTime() >= LATEST) throw invalid(field, `${field} must be between 1970-01-01 and 9999-12-31`);
  return at;
}

/**
 * After an outage: a subscription's waiting retries due now, and a window of its dead and failed
 * deliveries sent again. Subscriptions are the admin's (apps cannot own one), so both routes
 * are the admin's alone, like every subscription route.
 */
export function recoveryRoutes(app: FastifyInstance, s: RouteServices): void {
  const tags = ["subscriptions"];
  // Hand actions on a subscription's deliveries: operators.
  const config = { auth: "operator" } as const;
  const subscription = (name: string): Promise<SubscriptionRow> => subscriptionNamed(s, name);

  app.post<{ Params: NameParams }>(
    "/v1/subscriptions/:name/retry-pending",
    {
      config: { ...config, audit: handAction("subscription.retry_pending") },
      schema: {
        tags,
        summary: "Make every pending delivery waiting for a retry due now",
        description:
          "The subscription's pending deliveries due later (waiting for their next retry) are due now and go out at once, " +
          "within the subscription's limits (a paused one's when it is resumed). Not touched: a delivery whose attempt is in " +
          "flight, and one whose message is not due yet (`delay`/`deliverAt`). The retry schedule goes on from its current step.",
        params: NameParams,
        response: { 200: RetriedPending, "4xx": ErrorBody },
      },
    },
    async (request) => {
      const row = await subscription(request.params.name);
      const retried = await retryPendingNow(s.db, row.id);
      if (retried > 0) s.dispatcher.wake();
      return { retried };
    },
  );

  app.post<{ Params: NameParams; Body: Recover }>(
    "/v1/subscriptions/:name/recover",
    {
      config: { ...config, audit: handAction("subscription.recover") },
      schema: {
        tags,
        summary: "Re-send the dead and failed deliveries of the messages created in a window, as a job with progress",
        description:
          "Re-sends, in batches, the subscription's deliveries of messages created in [`since`, `until`) that are dead, or " +
          "failed (pending after a failed attempt, waiting for a retry), when asked; each on a fresh retry cycle, its dead-letter " +
          `alert resolved. Waited for like \`…/resend-dead\`: 200 with the job once finished; still running after ${RESEND_WAIT_MS / 1000} s ` +
          `(\`Prefer: wait=<seconds>\`, at most ${MAX_PREFERRED_WAIT_S}), 202 with the job and its progress so far and ` +
          "`Location: /v1/jobs/{id}`; a failed job, 503 with `job` and `resent`. Asked again for the same window while its job " +
          "runs or after it succeeded, the answer is that job (`Idempotent-Replayed: true`) and nothing is re-sent twice; to " +
          "recover again, ask for another window.",
        params: NameParams,
        body: Recover,
        response: { 200: Job, 202: Job, "4xx": ErrorBody, 503: ErrorBody },
      },
    },
    async (request, reply) => {
      const { since, until, batchSize } = request.body;
      const start = instant("since", since);
      if (until !== undefined && instant("until", until) <= start) throw invalid("until", "until must be later than since");
      const row = await subscription(request.params.name);
      const made = await s.resendJobs.recover(row.id, { since, until: until ?? null }, batchSize ?? 500);
      if (!made.created) void reply.header("idempotent-replayed", "true");
      const job = await awaitJob(s, made.job, request, reply);
      if (job.state === "succeeded") return job;
      return reply.status(202).header("location", `/v1/jobs/${job.id}`).send(job);
    },
  );
}
