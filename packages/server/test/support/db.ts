import { randomBytes } from "node:crypto";
import pg from "pg";

/** The PostgreSQL the tests use; `scripts/with-services.sh` starts one when none runs. */
export const TEST_PG_URL = process.env.TIDINGS_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A fresh database with a unique name on the test server; servers are shared, names never are. */
export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const name = `tidings_test_${label.replace(/[^a-z0-9]/g, "_")}_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: TEST_PG_URL });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  return {
    url: withDatabase(TEST_PG_URL, name),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: TEST_PG_URL });
      await c.connect();
      try {
        // A pool's end() resolves once its clients are told to end, before their connections are
        // gone; one terminated by the forced drop while closing emits an error where nobody
        // listens any more. So wait (up to 5 s) for the database's sessions to go, then force.
        const deadline = Date.now() + 5000;
        while (Date.now() < deadline) {
          const { rows } = await c.query("select count(*)::int as n from pg_stat_activity where datname = $1", [name]);
          if (rows[0].n === 0) break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}
