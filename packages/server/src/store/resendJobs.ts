import type { Db } from "./db.ts";
import { resendStatement } from "./operatorActions.ts";

export type JobState = "running" | "succeeded" | "failed";

export interface JobRecord {
  id: string;
  kind: "resend_dead";
  subscription: string;
  state: JobState;
  total: number;
  done: number;
  batches: number;
  batchSize: number;
  error: string | null;
  createdAt: string;
  finishedAt: string | null;
}

const JOB_COLUMNS = `j.id, j.kind, s.name as subscription, j.state, j.total, j.done, j.batches, j.batch_size, j.error, j.created_at, j.finished_at`;

const toJob = (r: Record<string, unknown>): JobRecord => ({
  id: r.id as string,
  kind: r.kind as "resend_dead",
  subscription: r.subscription as string,
  state: r.state as JobState,
  total: r.total as number,
  done: r.done as number,
  batches: r.batches as number,
  batchSize: r.batch_size as number,
  error: r.error as string | null,
  createdAt: (r.created_at as Date).toISOString(),
  finishedAt: r.finished_at ? (r.finished_at as Date).toISOString() : null,
});

// $1 job id; $2 subscription id; $3 at most this many; $4 batch size; $5 owner node.
// Creates a re-send job sized to the dead deliveries there are now (capped by $3, counted on
// the deliveries_dead index). With nothing to do it is born finished.
export async function createResendDeadJob(db: Db, id: string, subscriptionId: number, limit: number, batchSize: number, owner: string): Promise<JobRecord> {
  const { rows } = await db.query(
    `with n as (
       select count(*)::int as total from (select 1 from deliveries
         where subscription_id = $2 and state = 'dead' limit $3) capped
     ), j as (
       insert into jobs (id, kind, subscription_id, total, batch_size, owner, state, finished_at)
       select $1, 'resend_dead', $2, n.total, $4, $5,
              case when n.total = 0 then 'succeeded' else 'running' end::job_state,
              case when n.total = 0 then now() end
         from n
       returning *
     )
     select ${JOB_COLUMNS} from j join subscriptions s on s.id = j.subscription_id`,
    [id, subscriptionId, Math.min(limit, 2_147_483_647), batchSize, owner],
  );
  return toJob(rows[0]);
}

export async function getJob(db: Db, id: string): Promise<JobRecord | null> {
  const { rows } = await db.query(`select ${JOB_COLUMNS} from jobs j join subscriptions s on s.id = j.subscription_id where j.id = $1`, [id]);
  return rows[0] ? toJob(rows[0]) : null;
}

// $1 subscription id or null; $2 how many. The newest jobs first.
export async function listJobs(db: Db, subscriptionId: number | null, limit: number): Promise<JobRecord[]> {
  const { rows } = await db.query(
    `select ${JOB_COLUMNS} from jobs j join subscriptions s on s.id = j.subscription_id
      where $1::bigint is null or j.subscription_id = $1 order by j.created_at desc, j.id desc limit $2`,
    [subscriptionId, limit],
  );
  return rows.map(toJob);
}

export interface BatchOutcome {
  state: JobState;
  done: number;
  total: number;
  /** Deliveries this batch re-sent. */
  resent: number;
}

// $1 job id; $2 owner node; the batch size is the job's own.
// One batch of a re-send job, in one statement: re-sends up to a batch of the subscription's
// dead deliveries (oldest first, skipping rows another transaction holds), resolving their
// alerts as every re-send does, and adds them to the job's progress, so the progress shown is
// exactly the work done. Only the job's owner advances it; null when this node no longer owns
// it (another adopted it). A batch that finds nothing left, or reaches the total, finishes the
// job; if fewer dead deliveries remained than were counted at the start (someone re-sent some
// meanwhile), the total shrinks to what was done.
const BATCH_SQL = resendStatement({
  with: `job as (
  select id, subscription_id, least(batch_size, total - done) as take
    from jobs where id = $1 and owner = $2 and state = 'running'
   for update
)`,
  picked: `select d.id from deliveries d, job
   where d.subscription_id = job.subscription_id and d.state = 'dead'
   order by d.id limit (select take from job)
   for update of d skip locked`,
  answer: `update jobs j
   set done = j.done + counted.n,
       batches = j.batches + (counted.n > 0)::int,
       heartbeat_at = now(),
       total = case when counted.n = 0 then j.done else j.total end,
       state = case when counted.n = 0 or j.done + counted.n >= j.total then 'succeeded' else 'running' end::job_state,
       finished_at = case when counted.n = 0 or j.done + counted.n >= j.total then now() end
  from job, counted
 where j.id = job.id
returning j.state, j.done, j.total, counted.n as resent`,
});

export async function runResendDeadBatch(db: Db, jobId: string, owner: string): Promise<BatchOutcome | null> {
  const { rows } = await db.query({ name: "resend_dead_job_batch", text: BATCH_SQL, values: [jobId, owner] });
  const r = rows[0];
  return r ? { state: r.state, done: r.done, total: r.total, resent: r.resent } : null;
}

// $1 new owner; $2 stale after ms; $3 how many. Takes over running jobs whose owner has
// not moved them for a while (it died), skipping jobs another node is adopting right now.
export async function adoptStaleJobs(db: Db, owner: string, staleMs: number, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `update jobs set owner = $1, heartbeat_at = now()
      where id in (select id from jobs where state = 'running'
                     and heartbeat_at < now() - make_interval(secs => $2::float8 / 1000)
                   order by heartbeat_at limit $3 for update skip locked)
      returning id`,
    [owner, staleMs, limit],
  );
  return rows.map((r) => r.id);
}

// $1 owner; $2 job ids. Gives jobs up at shutdown so that another node adopts them at once.
export async function releaseJobs(db: Db, owner: string, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await db.query(`update jobs set owner = null, heartbeat_at = '-infinity' where id = any ($2::text[]) and owner = $1 and state = 'running'`, [owner, ids]);
}

// $1 job id; $2 owner; $3 error text. A job that cannot go on (it keeps failing) is failed.
export async function failJob(db: Db, jobId: string, owner: string, error: string): Promise<void> {
  await db.query(`update jobs set state = 'failed', error = $3, finished_at = now() where id = $1 and owner = $2 and state = 'running'`, [jobId, owner, error]);
}
