import { resolve } from "node:path";
import { parseDuration } from "../domain/duration.ts";
import { parseCidrs } from "../domain/networkPolicy.ts";

/** Configuration, validated once at start; only this resolved form travels inward. */
export interface Config {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  /** null: run the embedded PostgreSQL in dataDir. */
  readonly databaseUrl: string | null;
  /**
   * "transaction": DATABASE_URL leads to a transaction-mode pooler (PgBouncer): no named
   * prepared statements, no statement_timeout at connection start, LISTEN on databaseListenUrl.
   */
  readonly dbPooling: "none" | "transaction";
  /** A direct connection for LISTEN (required behind a transaction-mode pooler); null: DATABASE_URL. */
  readonly databaseListenUrl: string | null;
  /** A read-only connection (a replica, which may lag) for lists, search and stats; null: DATABASE_URL. */
  readonly databaseReadUrl: string | null;
  readonly adminKey: string | null;
  readonly logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** Safety-net poll for due deliveries (retries, crashed nodes' leases). */
  readonly pollIntervalMs: number;
  /** How long a node owns a delivery it took; after that another node may take it. */
  readonly leaseMs: number;
  readonly deliveryTimeoutMs: number;
  /** In-flight HTTP deliveries per process. */
  readonly deliveryConcurrency: number;
  /** Each subscription's fair share of the delivery slots (a subscription's own maxInFlight is a hard limit instead). */
  readonly subscriptionMaxInFlight: number;
  readonly bodyLimitBytes: number;
  readonly poolSize: number;
  /** How long a query waits for a free database connection before the API answers 503. */
  readonly dbConnectTimeoutMs: number;
  /** PostgreSQL statement_timeout of every statement (0: none). */
  readonly dbStatementTimeoutMs: number;
  /** Single messages waiting to be combined into the next statement, at most (more: 503). */
  readonly publishQueue: number;
  /** Request bytes of those waiting messages, at most (more: 503). */
  readonly publishQueueBytes: number;
  /** Payload and header bytes per page of a message list (a page ends early past it). */
  readonly listBytes: number;
  /** Prepared messages: the default wait before the first check-back. */
  readonly checkAfterMs: number;
  /** Between check-backs answered unknown (or not answered). */
  readonly checkIntervalMs: number;
  /** Check-backs before a prepared message goes in doubt. */
  readonly checkLimit: number;
  /** Finished messages (all delivered, or rolled back) are deleted this long after. */
  readonly retentionMs: number;
  readonly retentionIntervalMs: number;
  /** Audit log entries are deleted this long after they were written. */
  readonly auditRetentionMs: number;
  /** CIDRs endpoint URLs must be in (empty: any not denied). */
  readonly endpointAllow: readonly string[];
  /** CIDRs endpoint URLs may not be in; cloud metadata addresses are always refused unless allowed. */
  readonly endpointDeny: readonly string[];
  /**
   * Whose X-Forwarded-For / -Proto to believe: false (nobody), true (any sender), a number of
   * proxy hops, or the proxies' addresses and CIDR ranges.
   */
  readonly trustProxy: boolean | number | readonly string[];
  /** A request (headers and body) must arrive within this; a slower client is cut off (408). */
  readonly requestTimeoutMs: number;
  /** An outbox relay whose last heartbeat is older than this has stopped reporting (stale). */
  readonly relayStaleAfterMs: number;
  /** The console's address as people reach it, for the links in notifications (null: the service's own address + /console/). */
  readonly publicUrl: string | null;
  /** Overall deadline of one notification to a channel (webhook, Slack, SMTP). */
  readonly notifyTimeoutMs: number;
  /** Between rounds of the alert conditions that are states (cleared alerts, pending age). */
  readonly alertIntervalMs: number;
  /** A subscription whose oldest pending delivery is older than this gets a pending_too_old alert (0: never). */
  readonly alertPendingAgeMs: number;
  /** Failed check-backs in a row to an app's check URL that raise its check_url_failing alert. */
  readonly alertCheckFailures: number;
  /** The topic the service announces completed messages on (`message.completed`); null: not announced. */
  readonly completedTopic: string | null;
}

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function duration(env: Env, name: string, fallback: string): number {
  const raw = env[name] || fallback;
  const ms = parseDuration(raw);
  if (ms === undefined) throw new ConfigError(`${name} must be a duration such as 500ms, 30s or 5m, got "${raw}"`);
  return ms;
}

function cidrs(env: Env, name: string): string[] {
  try {
    return parseCidrs(env[name], name);
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
}

function trustProxy(env: Env): Config["trustProxy"] {
  const raw = (env.TIDINGS_TRUST_PROXY ?? "").trim();
  if (raw === "" || raw === "false" || raw === "off") return false;
  if (raw === "true") return true;
  if (/^\d+$/.test(raw)) return integer(env, "TIDINGS_TRUST_PROXY", 0, 1, 100);
  // Addresses and CIDR ranges, or the named ranges loopback, linklocal and uniquelocal.
  const entries = raw
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  const named = new Set(["loopback", "linklocal", "uniquelocal"]);
  const addresses = entries.filter((entry) => !named.has(entry));
  cidrs({ TIDINGS_TRUST_PROXY: addresses.join(",") }, "TIDINGS_TRUST_PROXY");
  return entries;
}

function requestTimeout(env: Env): number {
  const ms = duration(env, "TIDINGS_REQUEST_TIMEOUT", "30s");
  if (ms < 100 || ms > 3_600_000) throw new ConfigError(`TIDINGS_REQUEST_TIMEOUT must be from 100ms to 1h, got "${env.TIDINGS_REQUEST_TIMEOUT}"`);
  return ms;
}

/** A topic as the publish API takes it; unset or empty: completed messages are not announced. */
function completedTopic(env: Env): string | null {
  const raw = env.TIDINGS_COMPLETED_TOPIC;
  if (raw === undefined || raw === "") return null;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$/.test(raw))
    throw new ConfigError(`TIDINGS_COMPLETED_TOPIC must be a topic (letters, digits, _ . : / -), got "${raw}"`);
  return raw;
}

function publicUrl(env: Env): string | null {
  const raw = (env.TIDINGS_PUBLIC_URL ?? "").trim();
  if (raw === "") return null;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`TIDINGS_PUBLIC_URL must be an absolute http(s) URL, got "${raw}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new ConfigError(`TIDINGS_PUBLIC_URL must be an absolute http(s) URL, got "${raw}"`);
  url.hash = "";
  return url.toString();
}

/** An optional second PostgreSQL URL, which only makes sense beside DATABASE_URL. */
function secondUrl(env: Env, name: string, databaseUrl: string | null): string | null {
  const raw = env[name] || null;
  if (raw === null) return null;
  if (!/^postgres(ql)?:\/\//.test(raw)) throw new ConfigError(`${name} must be a postgres:// or postgresql:// URL`);
  if (databaseUrl === null) throw new ConfigError(`${name} needs DATABASE_URL (the embedded database has no replica or pooler)`);
  return raw;
}

/** TIDINGS_DB_POOLING: "transaction" behind a transaction-mode pooler, which needs a direct URL for LISTEN. */
function dbPooling(env: Env, databaseUrl: string | null): Config["dbPooling"] {
  const raw = env.TIDINGS_DB_POOLING || "none";
  if (raw !== "none" && raw !== "transaction") throw new ConfigError(`TIDINGS_DB_POOLING must be none or transaction, got "${raw}"`);
  if (raw === "transaction" && databaseUrl === null) throw new ConfigError("TIDINGS_DB_POOLING=transaction needs DATABASE_URL (the pooler's address)");
  if (raw === "transaction" && !env.DATABASE_LISTEN_URL)
    throw new ConfigError(
      "TIDINGS_DB_POOLING=transaction needs DATABASE_LISTEN_URL: a direct connection to PostgreSQL (not through the pooler) for LISTEN, which a transaction-mode pooler cannot carry",
    );
  return raw;
}

const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export function loadConfig(env: Env = process.env): Config {
  const logLevel = (env.TIDINGS_LOG_LEVEL || "info") as Config["logLevel"];
  if (!LEVELS.includes(logLevel)) {
    throw new ConfigError(`TIDINGS_LOG_LEVEL must be one of ${LEVELS.join(", ")}, got "${env.TIDINGS_LOG_LEVEL}"`);
  }
  const databaseUrl = env.DATABASE_URL || null;
  if (databaseUrl !== null && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError("DATABASE_URL must be a postgres:// or postgresql:// URL");
  }
  const adminKey = env.TIDINGS_ADMIN_KEY || null;
  if (adminKey !== null && adminKey.length < 16) {
    throw new ConfigError("TIDINGS_ADMIN_KEY must be at least 16 characters long");
  }
  const deliveryConcurrency = integer(env, "TIDINGS_DELIVERY_CONCURRENCY", 128, 1, 10_000);
  return {
    port: integer(env, "TIDINGS_PORT", 7400, 0, 65535),
    host: env.TIDINGS_HOST || "127.0.0.1",
    dataDir: resolve(env.TIDINGS_DATA_DIR || "./.tidings"),
    databaseUrl,
    dbPooling: dbPooling(env, databaseUrl),
    databaseListenUrl: secondUrl(env, "DATABASE_LISTEN_URL", databaseUrl),
    databaseReadUrl: secondUrl(env, "DATABASE_READ_URL", databaseUrl),
    adminKey,
    logLevel,
    pollIntervalMs: duration(env, "TIDINGS_POLL_INTERVAL", "1s"),
    leaseMs: duration(env, "TIDINGS_LEASE", "30s"),
    deliveryTimeoutMs: duration(env, "TIDINGS_DELIVERY_TIMEOUT", "10s"),
    deliveryConcurrency,
    subscriptionMaxInFlight: integer(env, "TIDINGS_SUBSCRIPTION_MAX_IN_FLIGHT", Math.max(1, Math.floor(deliveryConcurrency / 4)), 1, 10_000),
    bodyLimitBytes: integer(env, "TIDINGS_BODY_LIMIT", 1_048_576, 1024, 64 * 1_048_576),
    poolSize: integer(env, "TIDINGS_DB_POOL", 16, 2, 200),
    dbConnectTimeoutMs: duration(env, "TIDINGS_DB_CONNECT_TIMEOUT", "10s"),
    dbStatementTimeoutMs: duration(env, "TIDINGS_DB_STATEMENT_TIMEOUT", "30s"),
    publishQueue: integer(env, "TIDINGS_PUBLISH_QUEUE", 10_000, 1, 1_000_000),
    publishQueueBytes: integer(env, "TIDINGS_PUBLISH_QUEUE_BYTES", 32 * 1_048_576, 1024, 1024 * 1_048_576),
    listBytes: integer(env, "TIDINGS_LIST_BYTES", 4 * 1_048_576, 1024, 1024 * 1_048_576),
    checkAfterMs: duration(env, "TIDINGS_CHECK_AFTER", "10s"),
    checkIntervalMs: duration(env, "TIDINGS_CHECK_INTERVAL", "30s"),
    checkLimit: integer(env, "TIDINGS_CHECK_LIMIT", 15, 1, 1000),
    retentionMs: duration(env, "TIDINGS_RETENTION", "7d"),
    retentionIntervalMs: duration(env, "TIDINGS_RETENTION_INTERVAL", "1m"),
    auditRetentionMs: duration(env, "TIDINGS_AUDIT_RETENTION", "90d"),
    endpointAllow: cidrs(env, "TIDINGS_ENDPOINT_ALLOW"),
    endpointDeny: cidrs(env, "TIDINGS_ENDPOINT_DENY"),
    trustProxy: trustProxy(env),
    requestTimeoutMs: requestTimeout(env),
    relayStaleAfterMs: duration(env, "TIDINGS_RELAY_STALE_AFTER", "1m"),
    publicUrl: publicUrl(env),
    notifyTimeoutMs: duration(env, "TIDINGS_NOTIFY_TIMEOUT", "10s"),
    alertIntervalMs: duration(env, "TIDINGS_ALERT_INTERVAL", "10s"),
    alertPendingAgeMs: env.TIDINGS_ALERT_PENDING_AGE === "0" || env.TIDINGS_ALERT_PENDING_AGE === "off" ? 0 : duration(env, "TIDINGS_ALERT_PENDING_AGE", "15m"),
    alertCheckFailures: integer(env, "TIDINGS_ALERT_CHECK_FAILURES", 5, 1, 1000),
    completedTopic: completedTopic(env),
  };
}
