import { TidingsError } from "../errors.ts";
import type { DialectName } from "./dialect.ts";
import type { Executor, Row, TransactionOptions } from "./executor.ts";
import { inSavepoint } from "./savepoints.ts";

/** The part of a PrismaClient, or of the `tx` of `prisma.$transaction(async (tx) => ...)`, the adapter uses. */
export interface PrismaLike {
  $queryRawUnsafe(query: string, ...values: unknown[]): PromiseLike<unknown>;
}

/** Prisma's options of an interactive transaction. */
export interface PrismaTransactionOptions {
  isolationLevel?: "ReadCommitted" | "RepeatableRead" | "Serializable";
  maxWait?: number;
  timeout?: number;
}

/** The part of a PrismaClient (not a transaction) the adapter uses to begin a transaction. */
export interface PrismaClientLike extends PrismaLike {
  $connect(): PromiseLike<void>;
  $transaction<R>(fn: (tx: never) => Promise<R>, options?: PrismaTransactionOptions): PromiseLike<R>;
}

export interface PrismaAdapterOptions {
  /**
   * Limits of the transactions the SDK begins itself on a PrismaClient (the relay's, the inbox's,
   * `transaction()`'s). Prisma ends an interactive transaction after 5 s by default, and the relay
   * keeps its rows locked while it sends them (up to 10 s a request), so the default here is 60 s.
   */
  timeout?: number;
  /** How long to wait for a connection to begin such a transaction; Prisma's default (2 s) when absent. */
  maxWait?: number;
}

const ISOLATION = {
  "read committed": "ReadCommitted",
  "repeatable read": "RepeatableRead",
  serializable: "Serializable",
} as const;

const DEFAULT_TIMEOUT_MS = 60_000;

// A PrismaClient can begin a transaction; the `tx` of an interactive transaction cannot connect.
function isClient(prisma: PrismaLike): prisma is PrismaClientLike {
  const client = prisma as Partial<PrismaClientLike>;
  return typeof client.$connect === "function" && typeof client.$transaction === "function";
}

/**
 * Prisma wraps a failed raw query (P2010) around the database's own error: it is passed on with
 * the database's code (`code`: SQLSTATE on PostgreSQL; `errno` on MySQL) as the other drivers
 * give it, so the SDK tells a duplicate key or a lock timeout apart; Prisma's error is the `cause`.
 */
function databaseError(error: unknown, dialect: DialectName): unknown {
  const cause = (error as { meta?: { driverAdapterError?: { cause?: { originalCode?: unknown; originalMessage?: unknown } } } } | null)?.meta
    ?.driverAdapterError?.cause;
  if (typeof cause?.originalCode !== "string") return error;
  const message = typeof cause.originalMessage === "string" ? cause.originalMessage : (error as Error).message;
  const code = dialect === "postgres" ? { code: cause.originalCode } : { errno: Number(cause.originalCode) };
  return Object.assign(new Error(message, { cause: error }), code);
}

/**
 * Prisma sends a Date as UTC wall-clock time without a zone, which a `timestamptz` column would
 * read in the session's time zone; an ISO string says the instant.
 */
const postgresParam = (value: unknown) => (value instanceof Date ? value.toISOString() : value);

/** The Prisma client or transaction client behind each executor `fromPrisma` made. */
const behind = new WeakMap<Executor, PrismaLike>();

/**
 * An executor over Prisma (7, the driver-adapter client): `fromPrisma(prisma, "postgres")`, and inside
 * `prisma.$transaction(async (tx) => ...)`, `fromPrisma(tx, "postgres")`. Statements run through
 * `$queryRawUnsafe` with the database's native placeholders (`$1` on PostgreSQL, `?` on MySQL);
 * `transaction()` on a client is an interactive transaction, on a `tx` a savepoint.
 */
export function fromPrisma(prisma: PrismaLike, dialect: DialectName, options: PrismaAdapterOptions = {}): Executor {
  const self: Executor = {
    dialect,
    async query<R extends Row>(sql: string, params: readonly unknown[] = []) {
      const values = dialect === "postgres" ? params.map(postgresParam) : params;
      try {
        return (await prisma.$queryRawUnsafe(sql, ...values)) as R[];
      } catch (error) {
        throw databaseError(error, dialect);
      }
    },
    async transaction<T>(fn: (tx: Executor) => Promise<T>, txOptions?: TransactionOptions): Promise<T> {
      if (!isClient(prisma)) return inSavepoint(self, fn);
      return prisma.$transaction((tx: PrismaLike) => fn(fromPrisma(tx, dialect, options)), {
        timeout: options.timeout ?? DEFAULT_TIMEOUT_MS,
        ...(options.maxWait === undefined ? {} : { maxWait: options.maxWait }),
        ...(txOptions?.isolation ? { isolationLevel: ISOLATION[txOptions.isolation] } : {}),
      });
    },
  };
  behind.set(self, prisma);
  return self;
}

/**
 * The Prisma transaction client behind `tx`, the executor of a transaction `fromPrisma` began
 * (the `tx` that the inbox, the receiver and `transaction()` hand to your function), to use your
 * models in that transaction: `prismaOf<Prisma.TransactionClient>(tx).order.update(...)`.
 */
export function prismaOf<T = PrismaLike>(tx: Executor): T {
  const prisma = behind.get(tx);
  if (!prisma) throw new TidingsError("config", "prismaOf(tx): this executor was not made by fromPrisma");
  return prisma as T;
}
