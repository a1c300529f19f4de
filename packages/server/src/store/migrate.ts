import type { Db } from "./db.ts";
import { inTransaction } from "./db.ts";
import { sqlFiles } from "./migrationFiles.ts";

/** Arbitrary constant naming Tidings' migration lock among other advisory locks. */
const MIGRATION_LOCK = 7_400_001;

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export async function loadMigrations(): Promise<Migration[]> {
  return sqlFiles()
    .filter(({ file }) => /^\d{4}_[a-z0-9_]+\.sql$/.test(file))
    .map(({ file, text }) => ({ version: Number(file.slice(0, 4)), name: file, sql: text }));
}

/**
 * Applies pending migrations in one transaction under an advisory lock. The ledger row is
 * inserted before each migration's SQL, so two processes racing collide on the ledger's key
 * rather than half-applying a file. Returns the versions applied.
 */
export async function migrate(db: Db, options: { upTo?: number } = {}): Promise<number[]> {
  // upTo: stop after that version (tests of a migration over data written by the ones before).
  const migrations = (await loadMigrations()).filter((m) => options.upTo === undefined || m.version <= options.upTo);
  return inTransaction(db, async (tx) => {
    // A migration (or the wait for another node's) may take longer than statements may.
    await tx.query("set local statement_timeout = 0");
    await tx.query("select pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    await tx.query(`create table if not exists tidings_migrations (
      version integer primary key, name text not null, applied_at timestamptz not null default now())`);
    const { rows } = await tx.query<{ version: number }>("select version from tidings_migrations");
    const done = new Set(rows.map((r) => r.version));
    const applied: number[] = [];
    for (const migration of migrations) {
      if (done.has(migration.version)) continue;
      await tx.query("insert into tidings_migrations (version, name) values ($1, $2)", [migration.version, migration.name]);
      await tx.query(migration.sql);
      applied.push(migration.version);
    }
    return applied;
  });
}

let latestKnown: number | undefined;

/**
 * The newest migration this version of the service has and the newest the database has
 * applied (null: none): `/readyz` reports both, so that `tidings doctor` can tell a database
 * behind the service, or ahead of it (another node upgraded first).
 */
export async function migrationState(db: Db): Promise<{ latest: number; applied: number | null }> {
  latestKnown ??= Math.max(0, ...(await loadMigrations()).map((m) => m.version));
  // Parameters: none. The ledger exists once the service has started on this database.
  const { rows } = await db.query<{ version: number | null }>("select max(version) as version from tidings_migrations");
  return { latest: latestKnown, applied: rows[0]?.version ?? null };
}
