import type { Static } from "@sinclair/typebox";
import type { Job as JobSchema } from "../http/routes/jobs.ts";
import { aboutSubscription, type Call, CommandError, subscriptionPath, withQuery } from "./client.ts";
import { type Api, printJson, UsageError } from "./context.ts";
import { orNone, table } from "./format.ts";
import { defined, when, wholeNumber } from "./values.ts";

/**
 * The bulk jobs on a subscription's deliveries — `resend-dead`, `recover` — followed to their
 * end with their progress (a bar on a terminal, a line per change otherwise), `retry-pending`,
 * and `jobs` to list and show them.
 */

/** A job as the API answers it (a type-only import: nothing of the service is loaded). */
type Job = Static<typeof JobSchema>;

/** How often a followed job's progress is read. */
const POLL_MS = 200;
/** The bar's width in characters. */
const BAR = 30;

const percent = (job: Job): number => (job.total === 0 ? 100 : Math.floor((job.done / job.total) * 100));

/** A job's progress in words: what a log or a pipe gets, one line per change. */
export const progressLine = (job: Job): string => `${job.done}/${job.total} re-sent (${percent(job)}%), ${job.batches} batches, ${job.state}`;

/** The same behind a bar, redrawn in place on a terminal. */
function progressBar(job: Job): string {
  const filled = Math.round((percent(job) / 100) * BAR);
  return `  [${"#".repeat(filled)}${"-".repeat(BAR - filled)}] ${progressLine(job)}`;
}

/** Follows a job until it ends, printing its progress; 1 if it failed. */
export async function followJob(call: Call, started: Job, options: { json: boolean }, out: NodeJS.WriteStream = process.stdout): Promise<number> {
  let job = started;
  let shown = "";
  const tty = out.isTTY === true && !options.json;
  for (;;) {
    const line = options.json ? JSON.stringify(job) : tty ? progressBar(job) : `  ${progressLine(job)}`;
    if (line !== shown) {
      if (tty) out.write(`\r${line}\x1b[K${job.state === "running" ? "" : "\n"}`);
      else out.write(`${line}\n`);
    }
    shown = line;
    if (job.state !== "running") break;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    job = (await call("GET", `/v1/jobs/${encodeURIComponent(job.id)}`)).body as unknown as Job;
  }
  if (job.state === "failed") throw new CommandError(`the job ${job.id} failed after re-sending ${job.done}: ${job.error}`);
  return 0;
}

interface JobOptions {
  batchSize?: string;
  wait: boolean;
}

/** The job started: its id alone with --no-wait, else followed to its end. */
async function started(api: Api, job: Job, heading: string, options: JobOptions): Promise<number> {
  if (!options.wait) {
    if (api.json) printJson(job);
    else console.log(job.id);
    return 0;
  }
  if (!api.json) console.log(heading);
  return followJob(api.call, job, { json: api.json });
}

export async function resendDead(api: Api, name: string, options: JobOptions & { limit?: string }): Promise<number> {
  const body = defined({ limit: wholeNumber("--limit", options.limit), batchSize: wholeNumber("--batch-size", options.batchSize) });
  const job = (await aboutSubscription(name, () => api.call("POST", `${subscriptionPath(name)}/resend-dead-jobs`, body))).body as unknown as Job;
  return started(api, job, `${name}: re-send job ${job.id}`, options);
}

export async function recover(api: Api, name: string, options: JobOptions & { since?: string; until?: string }): Promise<number> {
  if (!options.since) throw new UsageError("--since is required");
  const body = defined({ since: when(options.since), until: when(options.until), batchSize: wholeNumber("--batch-size", options.batchSize) });
  // Answered at once (wait=0): the progress is printed here, as the job goes.
  const answer = await aboutSubscription(name, () => api.call("POST", `${subscriptionPath(name)}/recover`, body, { prefer: "wait=0" }));
  const job = answer.body as unknown as Job;
  const replayed = answer.headers.get("idempotent-replayed") === "true" ? " (asked before: the same job)" : "";
  return started(api, job, `${name}: recovery job ${job.id}${replayed}`, options);
}

export async function retryPending({ call, json }: Api, name: string): Promise<void> {
  const { body } = await aboutSubscription(name, () => call("POST", `${subscriptionPath(name)}/retry-pending`));
  if (json) printJson(body);
  else console.log(`${name}: ${body.retried} pending deliveries due now`);
}

export async function listJobs({ call, json }: Api, options: { subscription?: string }): Promise<void> {
  const { body } = await call("GET", withQuery("/v1/jobs", { subscription: options.subscription }));
  const items = body.items as Job[];
  if (json) printJson(body);
  else if (items.length === 0) console.log("no jobs");
  else {
    const rows = items.map((j) => [j.id, j.kind, j.subscription, j.state, `${j.done}/${j.total}`, j.createdAt, orNone(j.finishedAt)]);
    console.log(table([["ID", "KIND", "SUBSCRIPTION", "STATE", "DONE", "CREATED", "FINISHED"], ...rows]));
  }
}

export async function showJob(api: Api, id: string, options: { follow?: boolean }): Promise<number> {
  const job = (await api.call("GET", `/v1/jobs/${encodeURIComponent(id)}`)).body as unknown as Job;
  if (options.follow) return followJob(api.call, job, { json: api.json });
  if (api.json) printJson(job);
  else console.log(`${job.kind} job ${job.id} of ${job.subscription}: ${progressLine(job)}${job.error ? `; ${job.error}` : ""}`);
  return 0;
}
