import { dialectOf, type DialectName } from "../executor/dialect.ts";
import type { Executor } from "../executor/executor.ts";
import { sqlFiles } from "./sqlFiles.ts";

export interface SqlMigration {
  readonly version: number;
  readonly name: string;
  readonly statements: readonly string[];
}

/** Splits a migration file into statements: `;` at the end of a line ends one; `--` lines are comments. */
export function splitStatements(text: string): string[] {
  const body = text
    .split("\n")
    .filter((line) => !line.trimStart().startsWith("--"))
    .join("\n");
  return body
    .split(/;\s*$/m)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The SDK's numbered SQL files for a dialect (`sql/<dialect>/0001_name.sql`), in order. */
export function sqlMigrations(dialect: DialectName): SqlMigration[] {
  return sqlFiles(dialect)
    .filter(({ file }) => /^\d{4}_[a-z0-9_]+\.sql$/.test(file))
    .map(({ file, text }) => ({
      version: Number(file.slice(0, 4)),
      name: file.slice(5, -4),
      statements: splitStatements(text),
    }));
}

/**
 * Creates or updates the SDK's tables in the user's database (outbox, inbox, the transactional
 * messages' identity, intent and barrier tables): applies the
 * missing numbered SQL files under a lock, recording each in `tidings_sdk_migrations` first,
 * so processes racing to migrate wait for each other. Returns the versions it applied.
 * (On MySQL each DDL statement commits by itself: there IF NOT EXISTS makes a rerun safe.)
 */
export async function migrate(db: Executor): Promise<number[]> {
  const d = dialectOf(db.dialect);
  await db.query(d.ledgerDdl);
  return db.transaction(async (tx) => {
    await tx.query(d.migrationLock);
    try {
      const done = new Set((await tx.query<{ version: number }>("SELECT version FROM tidings_sdk_migrations")).map((r) => Number(r.version)));
      const applied: number[] = [];
      for (const m of sqlMigrations(db.dialect)) {
        if (done.has(m.version)) continue;
        const record = () => tx.query(d.sql("INSERT INTO tidings_sdk_migrations (version, name) VALUES (?, ?)"), [m.version, m.name]);
        // Ledger row first where DDL is transactional (all or nothing); last where each DDL
        // statement commits by itself, so a crash midway leaves the version to be run again.
        if (d.transactionalDdl) await record();
        for (const statement of m.statements) await tx.query(statement);
        if (!d.transactionalDdl) await record();
        applied.push(m.version);
      }
      return applied;
    } finally {
      if (d.migrationUnlock) await tx.query(d.migrationUnlock);
    }
  });
}
