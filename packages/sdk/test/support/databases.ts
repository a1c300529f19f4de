import { createTestDatabase } from "@tidings/testkit/db";
import { connect, migrate, type Executor } from "../../src/index.ts";
import { createMysqlTestDatabase } from "./mysqlDb.ts";

export type Dialect = "postgres" | "mysql";
export const DIALECTS: readonly Dialect[] = ["postgres", "mysql"];
export const DIALECT_NAME: Record<Dialect, string> = { postgres: "PostgreSQL", mysql: "MariaDB" };

/** A fresh, migrated database of the given kind, with a pool on it (pg or mysql2). */
export interface OpenDatabase {
  readonly url: string;
  readonly db: Executor;
  close(): Promise<void>;
}

export async function openDatabase(dialect: Dialect, label: string): Promise<OpenDatabase> {
  const database = dialect === "postgres" ? await createTestDatabase(label, { empty: true }) : await createMysqlTestDatabase(label);
  const connection = await connect(database.url, 6);
  await migrate(connection.db);
  return {
    url: database.url,
    db: connection.db,
    async close() {
      await connection.close();
      await database.drop();
    },
  };
}
