import type { Db } from "./db.ts";
import { resendStatement } from "./operatorActions.ts";

export type JobState = "running" | "succeeded" | "failed";
/** `resend_dead`: a subscription's dead deliveries; `recover`: its dead and failed deliveries of a window of messages. */
export type JobKind = "resend_dead" | "recover";

export interface JobRecord {
  id: string;
  kind: JobKind;
  subscription: string;
  state: JobState;
  total: number;
  done: number;
  batches: number;
  batchSize: number;
  error: string | null;
  createdAt: string;
  finishedAt: string | null;
  /** A recovery's window of message creation times, [since, until); null for other kinds (until: open). */
  since: string | null;
  until: string | null;
}

const JOB_COLUMNS = `j.id, j.kind, s.name as subscription, j.state, j.total, j.done, j.batches, j.batch_size, j.error, j.created_at, j.finished_at,
  j.window_start, j.window_end`;
const iso = (t: unknown): string | null => (t ? (t as Date).toISOString() : null);

const toJob = (r: Record<string, unknown>): JobRecord => ({
  id: r.id as string,
  kind: r.kind as JobKind,
  subscription: r.subscription as string,
  state: r.state as JobState,
  total: r.total as number,
  done: r.done as number,
  batches: r.batches as number,
  batchSize: r.batch_size as number,
  error: r.error as string | null,
  createdAt: (r.created_at as Date).toISOString(),
  finishedAt: iso(r.finished_at),
  since: iso(r.window_start),
  until: iso(r.window_end),
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

/**
 * A batch's answer, the same for every kind: adds what it re-sent to the job's progress, so the
 * progress shown is exactly the work done. A batch that finds nothing left, or reaches the
 * total, finishes the job; if fewer deliveries remained than were counted at the start (someone
 * re-sent some meanwhile), the total shrinks to what was done.
 */
const batchAnswer = (alsoSet = "") => `update jobs j
   set ${alsoSet}done = j.done + counted.n,
       batches = j.batches + (counted.n > 0)::int,
       heartbeat_at = now(),
       total = case when counted.n = 0 then j.done else j.total end,
       state = case when counted.n = 0 or j.done + counted.n >= j.total then 'succeeded' else 'running' end::job_state,
       finished_at = case when counted.n = 0 or j.done + counted.n >= j.total then now() end
  from job, counted
 where j.id = job.id
returning j.state, j.done, j.total, counted.n as resent`;

/** The job a batch advances, locked: only its owner advances it (null answer: another node adopted it). */
const BATCH_JOB = `job as (
  select id, subscription_id, window_start, window_end, created_at, after_id, least(batch_size, total - done) as take
    from jobs where id = $1 and owner = $2 and state = 'running'
   for update
)`;

// $1 job id; $2 owner node; the batch size is the job's own.
// One batch of a re-send-dead job, in one statement: re-sends up to a batch of the
// subscription's dead deliveries (oldest first, skipping rows another transaction holds),
// as every re-send does, and records the progress.
const RESEND_DEAD_BATCH_SQL = resendStatement({
  with: BATCH_JOB,
  picked: `select d.id, d.message_day from deliveries d, job
   where d.subscription_id = job.subscription_id and d.state = 'dead'
   order by d.id limit (select take from job)
   for update of d skip locked`,
  answer: batchAnswer(),
});

/**
 * What a recovery re-sends, as of `$at` (the job's creation): the subscription's deliveries of
 * the messages created in [since, until) that were, at that moment,
 * - dead (dead_at <= $at), or
 * - failed: pending after at least one failed attempt in their current retry cycle
 *   (attempts > retry_base), waiting for their next retry (last attempt <= $at).
 * A delivery this job re-sent starts a fresh cycle (retry_base = attempts) and, should it fail or
 * die again, does so after $at, so the count made at the start is a true total.
 * Placeholders: `$sub`, `$since`, `$until` (null: up to $at), `$at`.
 */
const RECOVERABLE = `d.subscription_id = $sub
     and m.created_at >= $since and m.created_at < coalesce($until, $at)
     and ((d.state = 'dead' and d.dead_at <= $at)
          or (d.state = 'pending' and d.attempts > d.retry_base and d.last_attempt_at <= $at))`;
const recoverable = (sub: string, since: string, until: string, at: string) =>
  RECOVERABLE.replaceAll("$sub", sub).replaceAll("$since", since).replaceAll("$until", until).replaceAll("$at", at);

// $1 job id; $2 owner node. One batch of a recovery, like a re-send-dead batch, going forward by
// delivery id from where the last batch stopped (after_id): a delivery is never taken twice,
// even should an attempt's time (the node's clock) and the job's (the database's) disagree. A
// row another transaction holds at that moment (an attempt result being written, a claim taking
// it for its retry) is skipped: it is being acted on already.
const RECOVER_BATCH_SQL = resendStatement({
  with: BATCH_JOB,
  picked: `select d.id, d.message_day from deliveries d join messages m on m.id = d.message_id and m.day = d.message_day, job
   where d.id > job.after_id and ${recoverable("job.subscription_id", "job.window_start", "job.window_end", "job.created_at")}
   order by d.id limit (select take from job)
   for update of d skip locked`,
  answer: batchAnswer("after_id = coalesce((select max(id) from picked), j.after_id), "),
});

export async function runJobBatch(db: Db, jobId: string, kind: JobKind, owner: string): Promise<BatchOutcome | null> {
  const text = kind === "recover" ? RECOVER_BATCH_SQL : RESEND_DEAD_BATCH_SQL;
  const { rows } = await db.query({ name: `${kind}_job_batch`, text, values: [jobId, owner] });
  const r = rows[0];
  return r ? { state: r.state, done: r.done, total: r.total, resent: r.resent } : null;
}

/** A recovery's window of message creation times: [since, until), until null for "up to now". */
export interface RecoverWindow {
  since: string;
  until: string | null;
}

// $1 job id; $2 subscription id; $3 batch size; $4 owner node; $5 since; $6 until or null.
// Creates a recovery job sized to what it will re-send, unless one for the same subscription and
// window is running or succeeded (the unique index jobs_recover_window): then nothing.
const CREATE_RECOVER_SQL = `
with n as (
  select count(*)::int as total from deliveries d join messages m on m.id = d.message_id and m.day = d.message_day
   where ${recoverable("$2", "$5::timestamptz", "$6::timestamptz", "now()")}
), j as (
  insert into jobs (id, kind, subscription_id, total, batch_size, owner, state, finished_at, window_start, window_end)
  select $1, 'recover', $2, n.total, $3, $4,
         case when n.total = 0 then 'succeeded' else 'running' end::job_state,
         case when n.total = 0 then now() end, $5, $6
    from n
  on conflict (subscription_id, window_start, coalesce(window_end, 'infinity')) where kind = 'recover' and state <> 'failed' do nothing
  returning *
)
select ${JOB_COLUMNS} from j join subscriptions s on s.id = j.subscription_id`;

// $1 subscription id; $2 since; $3 until or null. The job that holds that window.
const SAME_WINDOW_SQL = `select ${JOB_COLUMNS} from jobs j join subscriptions s on s.id = j.subscription_id
  where j.subscription_id = $1 and j.kind = 'recover' and j.state <> 'failed'
    and j.window_start = $2 and coalesce(j.window_end, 'infinity') = coalesce($3::timestamptz, 'infinity')`;

/**
 * A recovery job for a subscription's window: a new one (`created`), or the one already asked
 * for the same window, running or succeeded. With nothing to re-send a new job is born finished.
 */
export async function createRecoverJob(
  db: Db,
  id: string,
  subscriptionId: number,
  window: RecoverWindow,
  batchSize: number,
  owner: string,
): Promise<{ job: JobRecord; created: boolean }> {
  // A job found by the insert's conflict may fail before it is read: then the insert goes ahead.
  for (let tries = 0; ; tries++) {
    const inserted = await db.query(CREATE_RECOVER_SQL, [id, subscriptionId, batchSize, owner, window.since, window.until]);
    if (inserted.rows[0]) return { job: toJob(inserted.rows[0]), created: true };
    const existing = await db.query(SAME_WINDOW_SQL, [subscriptionId, window.since, window.until]);
    if (existing.rows[0]) return { job: toJob(existing.rows[0]), created: false };
    if (tries >= 3) throw new Error(`no recovery job for subscription ${subscriptionId} from ${window.since} could be made or found`);
  }
}

// $1 new owner; $2 stale after ms; $3 how many. Takes over running jobs whose owner has
// not moved them for a while (it died), skipping jobs another node is adopting right now.
export async function adoptStaleJobs(db: Db, owner: string, staleMs: number, limit: number): Promise<Array<{ id: string; kind: JobKind }>> {
  const { rows } = await db.query<{ id: string; kind: JobKind }>(
    `update jobs set owner = $1, heartbeat_at = now()
      where id in (select id from jobs where state = 'running'
                     and heartbeat_at < now() - make_interval(secs => $2::float8 / 1000)
                   order by heartbeat_at limit $3 for update skip locked)
      returning id, kind`,
    [owner, staleMs, limit],
  );
  return rows;
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
