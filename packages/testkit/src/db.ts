import { createHash, randomBytes } from "node:crypto";
import pg from "pg";

/** The PostgreSQL the tests use; `scripts/with-services.sh` starts one when none runs. */
export const TEST_PG_URL = process.env.TIDINGS_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** Names the template builders' lock among other advisory locks of the `postgres` database. */
const TEMPLATE_LOCK = 7_400_101;

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

export interface TestDatabaseOptions {
  /**
   * A database without the service's schema (a plain `create database`): for tests of the
   * migrations themselves or of a first start, and for a producer's or consumer's own database,
   * where the SDK applies its schema.
   */
  empty?: boolean;
}

export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function withAdmin<T>(fn: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: TEST_PG_URL });
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.end();
  }
}

const exists = async (admin: pg.Client, name: string) => ((await admin.query("select 1 from pg_database where datname = $1", [name])).rowCount ?? 0) > 0;

/**
 * Waits (up to 5 s) until no session is connected to `name`. A pool's end() resolves once its
 * clients are told to end, before their connections are gone, and a database cannot be renamed,
 * cloned or dropped cleanly while one remains.
 */
async function untilNoSessions(admin: pg.Client, name: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const { rows } = await admin.query("select count(*)::int as n from pg_stat_activity where datname = $1", [name]);
    if (rows[0].n === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

let template: Promise<string> | null = null;

/** The migrated template of this process's migrations, built on first use. */
function migratedTemplate(): Promise<string> {
  template ??= buildTemplate().catch((error: unknown) => {
    template = null;
    throw error;
  });
  return template;
}

/**
 * `tidings_template_<hash of the migration files' names and contents>`, made once per server for
 * each set of migrations: every test database is then a copy of it (`create database ... template`,
 * about as quick as an empty one) instead of a run of every migration at each service start,
 * which took 0.6-1.3 s a database on the 2-core test machine. Builders in concurrent test
 * processes take turns under an advisory lock; each migrates a database of its own under a
 * temporary name and renames it only when done, so a template that exists is complete (one left
 * half-made by a killed process is dropped by the next builder). The template refuses connections:
 * a copy fails while anyone is connected to its source.
 */
async function buildTemplate(): Promise<string> {
  const { loadMigrations, migrate } = await import("../../server/src/store/migrate.ts");
  const hash = createHash("sha256");
  for (const m of await loadMigrations()) hash.update(`${m.name}\0${m.sql}\0`);
  const name = `tidings_template_${hash.digest("hex").slice(0, 16)}`;
  return withAdmin(async (admin) => {
    if (await exists(admin, name)) return name;
    await admin.query("select pg_advisory_lock($1)", [TEMPLATE_LOCK]);
    try {
      if (await exists(admin, name)) return name; // another process built it while this one waited
      const building = `${name}_wip`;
      await admin.query(`drop database if exists ${building} with (force)`);
      await admin.query(`create database ${building}`);
      const pool = new pg.Pool({ connectionString: withDatabase(TEST_PG_URL, building), max: 1 });
      pool.on("error", () => {});
      try {
        await migrate(pool);
      } finally {
        await pool.end();
      }
      await untilNoSessions(admin, building);
      await admin.query(`alter database ${building} allow_connections false`);
      await admin.query(`alter database ${building} rename to ${name}`);
      return name;
    } finally {
      await admin.query("select pg_advisory_unlock($1)", [TEMPLATE_LOCK]);
    }
  });
}

/**
 * A fresh database with a unique name on the test server (servers are shared, names never are),
 * with the service's migrations applied unless `empty`.
 */
export async function createTestDatabase(label: string, options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  // PostgreSQL cuts names at 63 bytes: the label gives way, the random part must stay.
  const name = `tidings_test_${label.replace(/[^a-z0-9]/g, "_").slice(0, 40)}_${randomBytes(4).toString("hex")}`;
  const create = async () => {
    const source = options.empty ? null : await migratedTemplate();
    await withAdmin((admin) => admin.query(`create database ${name}${source ? ` template ${source}` : ""}`));
  };
  await create().catch(async (error: { code?: string }) => {
    // The template this process knew was dropped meanwhile (by hand): build it again, once.
    if (error.code !== "3D000" || options.empty) throw error;
    template = null;
    await create();
  });
  return {
    url: withDatabase(TEST_PG_URL, name),
    name,
    drop: () =>
      withAdmin(async (admin) => {
        // A session terminated by the forced drop while its pool closes emits an error where
        // nobody listens any more: let them go first, then force.
        await untilNoSessions(admin, name);
        await admin.query(`drop database if exists ${name} with (force)`);
      }),
  };
}
