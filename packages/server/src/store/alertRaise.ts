import { ALERT_EXAMPLES, ALERT_SYSTEM_ACTOR, NEXT_STEPS, type AlertCondition } from "../domain/alerts.ts";

/** Our own constant text as an SQL literal. */
export const sqlText = (text: string): string => `'${text.replaceAll("'", "''")}'`;

/** The next step of a condition, as an SQL literal. */
export const nextStepSql = (condition: AlertCondition): string => sqlText(NEXT_STEPS[condition]);

/** The latest examples first, at most ALERT_EXAMPLES, of two arrays (new before old). */
const MERGED_EXAMPLES = `(select coalesce(jsonb_agg(x.e order by x.i), '[]'::jsonb)
   from (select e, i from jsonb_array_elements(excluded.examples || alerts.examples) with ordinality as t(e, i) order by i limit ${ALERT_EXAMPLES}) x)`;

/**
 * An insert that raises alerts, for use as a CTE (`raised as (${raiseAlertsSql(…)})`) or alone.
 * `source` is a query answering, per alert, `condition, subject, subscription_id, app, n, detail,
 * examples, link, next_step`. A new alert opens (its 'opened' event is the trigger's); one already
 * open (or acknowledged) of that condition and subject counts `n` more occurrences ("add") or
 * takes `n` as its count ("set": a count that is a state, such as failures in a row), and keeps
 * the latest examples. The source must hold one row per condition and subject.
 */
export function raiseAlertsSql(source: string, mode: "add" | "set" = "add"): string {
  return `insert into alerts (condition, subject, subscription_id, app, count, detail, examples, link, next_step)
  select src.condition, src.subject, src.subscription_id, src.app, src.n, src.detail, src.examples, src.link, src.next_step from (${source}) src
  on conflict (condition, subject) where resolved_at is null do update
     set count = ${mode === "add" ? "alerts.count + excluded.count" : "excluded.count"}, last_at = now(), detail = excluded.detail,
         examples = ${MERGED_EXAMPLES}
  returning alerts.id`;
}

/** The SET list resolving an alert whose condition cleared; `note` is an SQL expression saying how. */
export const resolvedBySystem = (note: string): string =>
  `state = 'resolved', resolved_at = now(), resolved_by = ${sqlText(ALERT_SYSTEM_ACTOR)}, resolve_note = ${note}`;
