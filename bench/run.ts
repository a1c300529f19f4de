import { parseArgs } from "node:util";
import { runBench } from "./suite.ts";

const USAGE = `usage: npm run bench [-- [options] [workload...]]

Runs the benchmark suite against a fresh private PostgreSQL 15 (durability on)
and writes bench/results/<date>.json. Workloads (by name or number; none: all):
  1 publish-single   2 publish-batch   3 deliver   4 latency
  5 transactional    6 backlog         7 outbox-relay
  8 brokers (deliveries/s into RabbitMQ, NATS JetStream, Redis Streams; SDK consumer applied/s)
  9 inbox            10 ordered-deliver (ordered by key: 10,000, 100 and 1 keys beside unordered)
  11 feed (a reader pulls 1,000,000 committed messages through GET /v1/feed, then a window at the end with since)
  12 reconcile (one consumer run over 1,000,000 committed messages; one producer run over 1,000,000 outbox rows)
  13 multi-node (deliver with 1, 2 and 3 service processes on one database)

options:
  --smoke              tiny sizes (seconds per workload), no results file unless --out
  --pg-url URL         use this PostgreSQL server (creates and drops its own databases) instead of a fresh one
  --no-peers           Tidings only (no pg-boss, graphile-worker, pgbench)
  --statements         capture pg_stat_statements for Tidings' measured phases
  --cpu-prof DIR       run the service with --cpu-prof, profiles into DIR (summarize: bench/tools/profileSummary.ts)
  --env K=V            extra environment for the service (repeatable), e.g. --env TIDINGS_DB_POOL=32
  --pg-socket          connect the service to PostgreSQL over its Unix socket instead of TCP
  --out FILE           results file ("none": do not write)`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      smoke: { type: "boolean", default: false },
      "pg-url": { type: "string" },
      "no-peers": { type: "boolean", default: false },
      statements: { type: "boolean", default: false },
      "cpu-prof": { type: "string" },
      env: { type: "string", multiple: true, default: [] },
      "pg-socket": { type: "boolean", default: false },
      out: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const serviceEnv: Record<string, string> = {};
  for (const pair of values.env ?? []) {
    const eq = pair.indexOf("=");
    if (eq < 1) throw new Error(`--env wants K=V, got "${pair}"`);
    serviceEnv[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const report = await runBench({
    workloads: positionals,
    smoke: values.smoke,
    ...(values["pg-url"] ? { pgUrl: values["pg-url"] } : {}),
    peers: !values["no-peers"],
    statements: values.statements,
    ...(values["cpu-prof"] ? { cpuProfDir: values["cpu-prof"] } : {}),
    serviceEnv,
    serviceSocket: values["pg-socket"],
    ...(values.out === undefined ? {} : { out: values.out === "none" ? null : values.out }),
  });
  return report.workloads.some((w) => w.status === "failed") ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exit(2);
  },
);
