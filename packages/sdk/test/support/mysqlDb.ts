import { randomBytes } from "node:crypto";
import mysql from "mysql2/promise";

/** The MariaDB/MySQL the tests use; `scripts/with-services.sh` starts one when none runs. */
export const TEST_MYSQL_URL = process.env.TIDINGS_TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test";

export interface MysqlTestDatabase {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

/** A fresh database with a unique name on the shared test server. */
export async function createMysqlTestDatabase(label: string): Promise<MysqlTestDatabase> {
  const name = `tidings_test_${label.replace(/[^a-z0-9]/g, "_")}_${randomBytes(4).toString("hex")}`;
  const admin = await mysql.createConnection({ uri: TEST_MYSQL_URL });
  try {
    await admin.query(`CREATE DATABASE \`${name}\``);
  } finally {
    await admin.end();
  }
  const u = new URL(TEST_MYSQL_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    name,
    async drop() {
      const c = await mysql.createConnection({ uri: TEST_MYSQL_URL });
      try {
        await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
      } finally {
        await c.end();
      }
    },
  };
}
