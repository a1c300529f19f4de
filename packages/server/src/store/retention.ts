import type { Db } from "./db.ts";

// $1 retention in ms; $2 batch size. Deletes (with their deliveries, attempts and checks) the
// oldest messages that are finished and older than the retention: committed with every delivery
// delivered, or rolled back. Messages with a pending or dead delivery stay until people act.
const SWEEP_SQL = `
with doomed as (
  select m.id from messages m
   where ((m.state = 'committed' and m.committed_at < now() - make_interval(secs => $1::float8 / 1000))
       or (m.state = 'rolled_back' and m.rolled_back_at < now() - make_interval(secs => $1::float8 / 1000)))
     and not exists (select 1 from deliveries d where d.message_id = m.id and d.state <> 'delivered')
   order by m.seq
   limit $2
   for update skip locked
)
delete from messages m using doomed where m.id = doomed.id`;

export async function deleteFinishedMessages(db: Db, retentionMs: number, batchSize: number): Promise<number> {
  const { rowCount } = await db.query({ name: "retention_sweep", text: SWEEP_SQL, values: [retentionMs, batchSize] });
  return rowCount ?? 0;
}
