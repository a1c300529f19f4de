import { PrismaMariaDb } from "@prisma/adapter-mariadb";
import { PrismaPg } from "@prisma/adapter-pg";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { access, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import type { PrismaLike } from "../../src/index.ts";

// Prisma's client is generated from a schema: the tests generate one per database at run time
// into test/.generated (git-ignored), keyed by the schema and Prisma's version so that a run
// reuses what an earlier run made and a change of either makes it anew.

const require = createRequire(import.meta.url);
const PRISMA_CLI = require.resolve("prisma/build/index.js");
const PRISMA_VERSION = (require("prisma/package.json") as { version: string }).version;
const GENERATED = fileURLToPath(new URL("../.generated/prisma/", import.meta.url));

export type PrismaProvider = "postgresql" | "mysql";

/** The generated client's model of the `items` table, as the tests use it. */
export interface TestPrismaModels extends PrismaLike {
  item: { create(args: { data: { id: string; n: number } }): Promise<unknown> };
}

/** A generated PrismaClient, as the tests use it. */
export interface TestPrismaClient extends TestPrismaModels {
  $connect(): Promise<void>;
  $transaction<R>(fn: (tx: TestPrismaModels) => Promise<R>, options?: { timeout?: number }): Promise<R>;
  $disconnect(): Promise<void>;
}

export interface GeneratedPrisma {
  /** The folder of the generated client (client.ts is its entry). */
  readonly dir: string;
  readonly PrismaClient: new (options: { adapter: unknown }) => TestPrismaClient;
}

/** The schema: the engine-free client, and the table the conformance tests write to. */
export const prismaSchema = (provider: PrismaProvider) => `generator client {
  provider   = "prisma-client"
  engineType = "client"
  output     = "./client"
}

datasource db {
  provider = "${provider}"
}

model Item {
  id String @id @db.VarChar(100)
  n  Int

  @@map("items")
}
`;

/**
 * `prisma generate` needs no schema engine, but without one to point at it downloads it first;
 * any executable will do, as it is never run. No update check, no telemetry.
 */
const GENERATE_ENV = {
  ...process.env,
  PRISMA_SCHEMA_ENGINE_BINARY: process.execPath,
  PRISMA_HIDE_UPDATE_MESSAGE: "1",
  CHECKPOINT_DISABLE: "1",
};

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

async function generate(provider: PrismaProvider): Promise<string> {
  const schema = prismaSchema(provider);
  const key = createHash("sha256").update(`${PRISMA_VERSION}\n${schema}`).digest("hex").slice(0, 16);
  const dir = path.join(GENERATED, `${provider}-${key}`);
  if (await exists(path.join(dir, "client", "client.ts"))) return dir;
  // Generated aside, then renamed into place: test files running side by side may both generate.
  const scratch = `${dir}.${process.pid}.tmp`;
  await rm(scratch, { recursive: true, force: true });
  await mkdir(scratch, { recursive: true });
  await writeFile(path.join(scratch, "schema.prisma"), schema);
  await promisify(execFile)(process.execPath, [PRISMA_CLI, "generate", "--schema", path.join(scratch, "schema.prisma")], {
    env: GENERATE_ENV,
    cwd: scratch,
    timeout: 120_000,
  });
  try {
    await rename(scratch, dir);
  } catch (error) {
    await rm(scratch, { recursive: true, force: true });
    if (!(await exists(path.join(dir, "client", "client.ts")))) throw error;
  }
  return dir;
}

const generated = new Map<PrismaProvider, Promise<GeneratedPrisma>>();

/** The PrismaClient generated for `provider` (once per process, and only when no earlier run left it). */
export function generatedPrisma(provider: PrismaProvider): Promise<GeneratedPrisma> {
  let client = generated.get(provider);
  if (!client) {
    client = generate(provider).then(async (dir) => {
      const module = (await import(pathToFileURL(path.join(dir, "client", "client.ts")).href)) as Pick<GeneratedPrisma, "PrismaClient">;
      return { dir, PrismaClient: module.PrismaClient };
    });
    generated.set(provider, client);
  }
  return client;
}

/** A generated PrismaClient on the test database at `url`, through Prisma's pg or MariaDB driver adapter. */
export async function openPrisma(dialect: "postgres" | "mysql", url: string): Promise<TestPrismaClient> {
  if (dialect === "postgres") {
    const { PrismaClient } = await generatedPrisma("postgresql");
    return new PrismaClient({ adapter: new PrismaPg({ connectionString: url, max: 4 }) });
  }
  const { PrismaClient } = await generatedPrisma("mysql");
  const u = new URL(url);
  u.protocol = "mariadb:";
  u.searchParams.set("connectionLimit", "4");
  return new PrismaClient({ adapter: new PrismaMariaDb(u.toString()) });
}
