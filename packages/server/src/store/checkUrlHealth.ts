import { ALERT_CONDITIONS } from "../domain/alerts.ts";
import { nextStepSql, raiseAlertsSql, resolvedBySystem } from "./alertRaise.ts";
import type { Db } from "./db.ts";

// $1 app; $2 the failure (the check's error); $3 message id; $4 failures in a row that raise the
// alert. Counts one more failure of the app's check URL in a row; from the threshold on, its
// check_url_failing alert is raised with the count (or brought up to it).
const FAILED_SQL = `
with h as (
  insert into app_check_health as h (app, consecutive_failures, last_error) values ($1, 1, $2)
  on conflict (app) do update set consecutive_failures = h.consecutive_failures + 1, last_error = $2, updated_at = now()
  returning consecutive_failures
), raised as (
  ${raiseAlertsSql(
    `select '${ALERT_CONDITIONS.checkUrlFailing}' as condition, 'app ' || $1::text as subject, null::bigint as subscription_id, $1::text as app,
            h.consecutive_failures as n, h.consecutive_failures || ' check-backs in a row failed; the last: ' || $2::text as detail,
            jsonb_build_array(jsonb_build_object('messageId', $3::text, 'detail', $2::text, 'at', now())) as examples,
            '#/apps' as link, ${nextStepSql(ALERT_CONDITIONS.checkUrlFailing)} as next_step
       from h where h.consecutive_failures >= $4`,
    "set",
  )}
)
select consecutive_failures as n from h`;

// $1 app. The app's check URL answered: its count of failures starts again and its alert, if
// any, is resolved. Writes nothing when there was no failure.
const ANSWERED_SQL = `
with reset as (
  update app_check_health set consecutive_failures = 0, last_error = null, updated_at = now()
   where app = $1 and consecutive_failures > 0
  returning app
)
update alerts a set ${resolvedBySystem("'the check URL answered again'")}
  from reset
 where a.condition = '${ALERT_CONDITIONS.checkUrlFailing}' and a.subject = 'app ' || reset.app and a.resolved_at is null`;

/** A check-back to the app's check URL failed (no answer, an error, or an answer that is not one). */
export async function checkUrlFailed(db: Db, app: string, error: string, messageId: string, threshold: number): Promise<number> {
  const { rows } = await db.query(FAILED_SQL, [app, error, messageId, threshold]);
  return rows[0].n;
}

/** A check-back got an answer from the app's check URL. */
export async function checkUrlAnswered(db: Db, app: string): Promise<void> {
  await db.query(ANSWERED_SQL, [app]);
}
