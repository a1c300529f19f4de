import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import v8 from "node:v8";
import vm from "node:vm";
import pg from "pg";
import { Inbox, Reconciler, type Executor, type ReconciliationReport } from "../src/index.ts";
import { openDatabase, type OpenDatabase } from "./support/databases.ts";
import { startTidings, type TestTidings } from "./support/tidings.ts";

// Reconciliation over a window of many messages holds one page at a time: the service's
// messages and the consumer's inbox are seeded with SQL (the API would take minutes for a
// million), a few inbox rows left out, and one run finds and applies exactly those, its
// process's resident memory sampled throughout. TIDINGS_RECONCILE_MESSAGES sets the size
// (default 1,000,000; `npm run bench` runs the same at 1,000,000 as workload "reconcile").

const TOTAL = Number(process.env.TIDINGS_RECONCILE_MESSAGES ?? 1_000_000);
/** Every STEP-th message is missing from the inbox. */
const STEP = Math.max(1, Math.floor(TOTAL / 100));
const TOPIC = "ledger.posted";
const CHUNK = 100_000;

// A full collection on demand, to weigh what the run keeps alive (RSS alone moves with the heap's
// own sizing: it says little of what is held).
v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;
const liveHeap = () => {
  gc();
  return process.memoryUsage().heapUsed;
};

let tidings: TestTidings;
let consumer: OpenDatabase;

/** Seeds `count` committed messages straight into the service's table, each chunk its own transaction (and place in the feed). */
async function seedMessages(url: string, count: number): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (let first = 0; first < count; first += CHUNK) {
      await client.query(
        `insert into messages (id, app, topic, key, payload, headers, content_hash, state, deliver_at, committed_at)
         select 'seed-' || lpad(g::text, 10, '0'), null, $1, 'acct-' || (g % 1000),
                p, '{}'::jsonb, sha256(convert_to(p::text, 'UTF8')), 'committed', now(), now()
           from generate_series($2::int, $3::int) g,
                lateral (select jsonb_build_object('account', 'acct-' || (g % 1000), 'amount', 1 + g % 500, 'note', repeat('x', 150)) as p) x`,
        [TOPIC, first, Math.min(count, first + CHUNK) - 1],
      );
    }
    await client.query("vacuum analyze messages");
  } finally {
    await client.end();
  }
}

before(async () => {
  tidings = await startTidings("reconcile_scale");
  consumer = await openDatabase("postgres", "reconcile_scale_consumer");
  await tidings.subscribe("ledger", TOPIC, "http://127.0.0.1:9/ledger");
  await consumer.db.query("CREATE TABLE postings (message_id text PRIMARY KEY, amount integer NOT NULL)");
});
after(async () => {
  await consumer?.close();
  await tidings?.close();
});

test(`one run over ${TOTAL.toLocaleString("en-US")} messages finds and applies exactly the missing ones in bounded memory`, async () => {
  const seedStarted = performance.now();
  await seedMessages(tidings.databaseUrl, TOTAL);
  // The inbox has every message but every STEP-th one.
  await consumer.db.query(
    `INSERT INTO tidings_inbox (consumer, id, topic, status, attempts, applied_at)
     SELECT 'ledger', 'seed-' || lpad(g::text, 10, '0'), $1, 'applied', 1, now() FROM generate_series(0, $2::int - 1) g WHERE g % $3 <> 0`,
    [TOPIC, TOTAL, STEP],
  );
  await consumer.db.query("VACUUM ANALYZE tidings_inbox");
  const missing = Array.from({ length: Math.ceil(TOTAL / STEP) }, (_, i) => `seed-${String(i * STEP).padStart(10, "0")}`);
  console.log(`# seeded ${TOTAL} messages and ${TOTAL - missing.length} inbox records in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`);

  const inbox = new Inbox({ consumer: "ledger", cleanupIntervalMs: 0 });
  const reconciler = new Reconciler({
    client: tidings.admin,
    db: consumer.db,
    consumer: {
      subscription: "ledger",
      inbox,
      handle: async (message, tx: Executor) => {
        await tx.query("INSERT INTO postings (message_id, amount) VALUES ($1, $2)", [message.id, (message.payload as { amount: number }).amount]);
      },
    },
    name: "scale-test",
  });
  // Pages compared so far (one inbox query each): the live heap is weighed after the first fifth.
  let pages = 0;
  const firstFifth = Math.ceil(TOTAL / 1000 / 5);
  let heapAtFifth = 0;
  const lookUp = inbox.statusesOf.bind(inbox);
  inbox.statusesOf = (db, ids) => {
    if (++pages === firstFifth) heapAtFifth = liveHeap();
    return lookUp(db, ids);
  };
  const heapBefore = liveHeap();
  const rssBefore = process.memoryUsage().rss;
  let peak = rssBefore;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const started = performance.now();
  let report: ReconciliationReport;
  try {
    report = await reconciler.run({ since: new Date(Date.now() - 3_600_000) });
  } finally {
    clearInterval(sampler);
  }
  const seconds = (performance.now() - started) / 1000;
  const heapAfter = liveHeap();
  const mb = (n: number) => (n / 1048576).toFixed(0);
  console.log(
    `# reconciled ${TOTAL} messages in ${seconds.toFixed(1)} s (${Math.round(TOTAL / seconds)} msg/s), ${report.counts.repaired} applied; ` +
      `RSS before ${mb(rssBefore)} MB, peak ${mb(peak)} MB (+${mb(peak - rssBefore)} MB); live heap ${mb(heapBefore)} MB before, ${mb(heapAtFifth)} MB after the first fifth, ${mb(heapAfter)} MB after the run — service and reconciler in this one process`,
  );

  assert.deepEqual(report.counts, { checked: TOTAL, missing: missing.length, repaired: missing.length, failed: 0 });
  const applied = await consumer.db.query<{ message_id: string }>("SELECT message_id FROM postings ORDER BY message_id");
  assert.deepEqual(
    applied.map((r) => r.message_id),
    missing,
    "exactly the missing ones were applied",
  );
  // A window held in memory would grow with every page (a parsed message is ~1 kB: the last four
  // fifths of a million would add ~800 MB); one page at a time, what is alive stays the same.
  assert.ok(heapAtFifth > 0, "the heap was weighed within the run");
  assert.ok(heapAfter - heapAtFifth < 16 * 1048576, `the live heap does not grow with the messages read: ${mb(heapAfter - heapAtFifth)} MB more at the end`);
  assert.ok(peak - rssBefore < 256 * 1048576, `the run's resident memory stays bounded: +${mb(peak - rssBefore)} MB`);
});
