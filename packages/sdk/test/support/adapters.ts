import { drizzle as drizzleMysql } from "drizzle-orm/mysql2";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import knexFactory from "knex";
import { Kysely, MysqlDialect, PostgresDialect } from "kysely";
import mysqlCallback from "mysql2";
import mysql from "mysql2/promise";
import pg from "pg";
import postgres from "postgres";
import { fromKnex, fromMysql2, fromPg, fromPostgresJs, fromPrisma, type Executor } from "../../src/index.ts";
import { fromDrizzle } from "../../src/drizzle.ts";
import { fromKysely } from "../../src/kysely.ts";
import { openPrisma } from "./prismaClient.ts";

/** An executor over one client library, and a transaction opened with that library's own API. */
export interface OpenAdapter {
  readonly db: Executor;
  /** Runs `fn` in a transaction begun the library's own way, handing the SDK an executor of it. */
  userTransaction<T>(fn: (tx: Executor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface AdapterCase {
  readonly name: string;
  readonly dialect: "postgres" | "mysql";
  open(url: string): Promise<OpenAdapter>;
}

/** Prisma's generated client on Prisma's own driver adapter for the database (pg, or MariaDB's). */
function prismaCase(name: string, dialect: AdapterCase["dialect"]): AdapterCase {
  return {
    name,
    dialect,
    async open(url) {
      const prisma = await openPrisma(dialect, url);
      return {
        db: fromPrisma(prisma, dialect),
        userTransaction: (fn) => prisma.$transaction((tx) => fn(fromPrisma(tx, dialect))),
        close: () => prisma.$disconnect(),
      };
    },
  };
}

export const ADAPTERS: readonly AdapterCase[] = [
  {
    name: "pg",
    dialect: "postgres",
    async open(url) {
      const pool = new pg.Pool({ connectionString: url, max: 4 });
      return {
        db: fromPg(pool),
        async userTransaction(fn) {
          const client = await pool.connect();
          try {
            await client.query("BEGIN");
            const result = await fn(fromPg(client));
            await client.query("COMMIT");
            return result;
          } catch (error) {
            await client.query("ROLLBACK");
            throw error;
          } finally {
            client.release();
          }
        },
        close: () => pool.end(),
      };
    },
  },
  {
    name: "postgres.js",
    dialect: "postgres",
    async open(url) {
      const sql = postgres(url, { max: 4, onnotice: () => undefined });
      return {
        db: fromPostgresJs(sql),
        userTransaction: async (fn) => (await sql.begin((tx) => fn(fromPostgresJs(tx)))) as never,
        close: () => sql.end(),
      };
    },
  },
  {
    name: "drizzle (node-postgres)",
    dialect: "postgres",
    async open(url) {
      const pool = new pg.Pool({ connectionString: url, max: 4 });
      const db = drizzlePg(pool);
      return {
        db: fromDrizzle(db, "postgres"),
        userTransaction: (fn) => db.transaction((tx) => fn(fromDrizzle(tx, "postgres"))),
        close: () => pool.end(),
      };
    },
  },
  {
    name: "kysely (pg)",
    dialect: "postgres",
    async open(url) {
      const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 4 }) }) });
      return {
        db: fromKysely(db, "postgres"),
        userTransaction: (fn) => db.transaction().execute((trx) => fn(fromKysely(trx, "postgres"))),
        close: () => db.destroy(),
      };
    },
  },
  {
    name: "knex (pg)",
    dialect: "postgres",
    async open(url) {
      const knex = knexFactory({ client: "pg", connection: url, pool: { min: 0, max: 4 } });
      return {
        db: fromKnex(knex, "postgres"),
        userTransaction: (fn) => knex.transaction((trx) => fn(fromKnex(trx, "postgres"))),
        close: () => knex.destroy(),
      };
    },
  },
  prismaCase("prisma (adapter-pg)", "postgres"),
  {
    name: "mysql2",
    dialect: "mysql",
    async open(url) {
      const pool = mysql.createPool({ uri: url, connectionLimit: 4 });
      return {
        db: fromMysql2(pool),
        async userTransaction(fn) {
          const connection = await pool.getConnection();
          try {
            await connection.beginTransaction();
            const result = await fn(fromMysql2(connection));
            await connection.commit();
            return result;
          } catch (error) {
            await connection.rollback();
            throw error;
          } finally {
            connection.release();
          }
        },
        close: () => pool.end(),
      };
    },
  },
  {
    name: "drizzle (mysql2)",
    dialect: "mysql",
    async open(url) {
      const pool = mysql.createPool({ uri: url, connectionLimit: 4 });
      const db = drizzleMysql(pool);
      return {
        db: fromDrizzle(db, "mysql"),
        userTransaction: (fn) => db.transaction((tx) => fn(fromDrizzle(tx, "mysql"))),
        close: () => pool.end(),
      };
    },
  },
  {
    name: "kysely (mysql2)",
    dialect: "mysql",
    async open(url) {
      const db = new Kysely<unknown>({ dialect: new MysqlDialect({ pool: mysqlCallback.createPool({ uri: url, connectionLimit: 4 }) }) });
      return {
        db: fromKysely(db, "mysql"),
        userTransaction: (fn) => db.transaction().execute((trx) => fn(fromKysely(trx, "mysql"))),
        close: () => db.destroy(),
      };
    },
  },
  {
    name: "knex (mysql2)",
    dialect: "mysql",
    async open(url) {
      const knex = knexFactory({ client: "mysql2", connection: url, pool: { min: 0, max: 4 } });
      return {
        db: fromKnex(knex, "mysql"),
        userTransaction: (fn) => knex.transaction((trx) => fn(fromKnex(trx, "mysql"))),
        close: () => knex.destroy(),
      };
    },
  },
  prismaCase("prisma (adapter-mariadb)", "mysql"),
];
