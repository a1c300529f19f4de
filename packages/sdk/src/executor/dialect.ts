import { questionToDollar } from "./placeholders.ts";
import { ownStatement } from "./statements.ts";

export type DialectName = "postgres" | "mysql";

/**
 * Every SQL difference between PostgreSQL and MySQL/MariaDB the SDK cares about, in one place.
 * The SDK's own statements are written with `?` placeholders and passed through `sql()`.
 */
export interface Dialect {
  readonly name: DialectName;
  /** `?` placeholders → the native ones; the result is one of the SDK's own statements (statements.ts). */
  sql(text: string): string;
  /** The current time, with microseconds. */
  readonly now: string;
  /** now() plus `?` milliseconds (the parameter is a number). */
  readonly nowPlusMs: string;
  /** now() minus `?` milliseconds. */
  readonly nowMinusMs: string;
  /** A JSON parameter (text) as the column type wants it. */
  readonly jsonParam: string;
  /** A JSON column read back as text, so every driver returns the same thing. */
  jsonText(column: string): string;
  /** Suffix making an INSERT skip rows whose unique key already exists (waits for an in-flight one). */
  insertIgnore(conflictColumns: string): string;
  /** Whether `INSERT ... RETURNING` exists (PostgreSQL; MySQL has none). */
  readonly returning: boolean;
  readonly skipLocked: string;
  /** Deletes at most `?` rows matching `where` (its own `?`s come first), oldest `orderBy` first. */
  deleteLimited(table: string, where: string, orderBy: string): string;
  /** A SELECT (without FROM) that wakes LISTENers on commit, or null where there is no such thing. */
  notify(channel: string): string | null;
  /** Creates the SDK's migration ledger if missing. */
  readonly ledgerDdl: string;
  /** Takes the migration lock for the current transaction/session, and the statement that frees it. */
  readonly migrationLock: string;
  readonly migrationUnlock: string | null;
  /** Whether DDL takes part in transactions (PostgreSQL) or commits by itself (MySQL). */
  readonly transactionalDdl: boolean;
}

// Functions returning void are read as text: Prisma refuses to read a void column.
const postgres: Dialect = {
  name: "postgres",
  sql: (text) => ownStatement(text, questionToDollar),
  now: "now()",
  nowPlusMs: "now() + (? * interval '1 millisecond')",
  nowMinusMs: "now() - (? * interval '1 millisecond')",
  // Through text: postgres.js would otherwise JSON-encode a string parameter typed jsonb a second time.
  jsonParam: "?::text::jsonb",
  jsonText: (column) => `${column}::text`,
  insertIgnore: (columns) => `ON CONFLICT (${columns}) DO NOTHING`,
  returning: true,
  skipLocked: "FOR UPDATE SKIP LOCKED",
  deleteLimited: (table, where, orderBy) =>
    `DELETE FROM ${table} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ${table} WHERE ${where} ORDER BY ${orderBy} LIMIT ? FOR UPDATE SKIP LOCKED))`,
  notify: (channel) => `SELECT pg_notify('${channel}', '')::text`,
  ledgerDdl: `CREATE TABLE IF NOT EXISTS tidings_sdk_migrations (
    version integer PRIMARY KEY, name varchar(200) NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
  migrationLock: "SELECT pg_advisory_xact_lock(7400, 1)::text",
  migrationUnlock: null,
  transactionalDdl: true,
};

const mysql: Dialect = {
  name: "mysql",
  sql: (text) => text,
  now: "CURRENT_TIMESTAMP(6)",
  nowPlusMs: "(CURRENT_TIMESTAMP(6) + INTERVAL (? * 1000) MICROSECOND)",
  nowMinusMs: "(CURRENT_TIMESTAMP(6) - INTERVAL (? * 1000) MICROSECOND)",
  jsonParam: "?",
  jsonText: (column) => column,
  // ON DUPLICATE KEY UPDATE, not INSERT IGNORE: IGNORE would also turn real errors into warnings.
  insertIgnore: (columns) => `ON DUPLICATE KEY UPDATE ${columns.split(",")[0]!.trim()} = ${columns.split(",")[0]!.trim()}`,
  returning: false,
  skipLocked: "FOR UPDATE SKIP LOCKED",
  deleteLimited: (table, where, orderBy) => `DELETE FROM ${table} WHERE ${where} ORDER BY ${orderBy} LIMIT ?`,
  notify: () => null,
  ledgerDdl: `CREATE TABLE IF NOT EXISTS tidings_sdk_migrations (
    version int NOT NULL PRIMARY KEY, name varchar(200) NOT NULL,
    applied_at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB`,
  migrationLock: "SELECT GET_LOCK('tidings_sdk_migrate', 60) AS locked",
  migrationUnlock: "SELECT RELEASE_LOCK('tidings_sdk_migrate') AS released",
  transactionalDdl: false,
};

export function dialectOf(name: DialectName): Dialect {
  return name === "postgres" ? postgres : mysql;
}

/** Whether a database error (or one it wraps, as ORMs do) is a unique-key violation. */
export function isUniqueViolation(error: unknown): boolean {
  for (let e = error as { code?: unknown; errno?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; depth++) {
    if (e.code === "23505" || e.code === "ER_DUP_ENTRY" || e.errno === 1062) return true;
    e = e.cause as typeof e;
  }
  return false;
}
