import pg from "pg";
import { createHash } from "node:crypto";
import { uuidv7 } from "../../packages/server/src/domain/ids.ts";
import type { NewMessage } from "../../packages/server/src/domain/newMessage.ts";
import { insertMessages } from "../../packages/server/src/store/insertMessages.ts";
import { migrate } from "../../packages/server/src/store/migrate.ts";
import { payload, TOPIC } from "../lib/payload.ts";
import { createDatabase, startPrivatePostgres, useExistingPostgres } from "../lib/postgres.ts";

/**
 * What a publish statement of 1,000 messages costs in PostgreSQL, and what each part of it
 * adds: the service's own statement (with and without the app foreign key), a lean INSERT that
 * returns only what the reply needs, and the same with fewer indexes. Batches are built before
 * the clock starts: only the round trip and the statement are timed. No subscription matches,
 * as in the publish workloads. Usage: node --import tsx bench/tools/insertVariants.ts [pg-url]
 */

const LEAN = `
insert into messages (id, app, topic, tag, key, payload, headers, content_hash, state, deliver_at, committed_at)
select id, app, topic, tag, key, payload::jsonb, headers::jsonb, content_hash, 'committed', now(), now()
  from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[])
    as t(id, app, topic, tag, key, payload, headers, content_hash)
on conflict (id, day) do nothing
returning seq, id, created_at`;

const ROUNDS = 10;

function batch(round: number, app: string | null): NewMessage[] {
  return Array.from({ length: 1000 }, (_, i) => {
    const p = payload(round * 1000 + i);
    return {
      id: uuidv7(),
      app,
      topic: TOPIC,
      tag: null,
      key: `ord_${i}`,
      payload: p,
      payloadJson: JSON.stringify(p),
      headers: {},
      headersJson: "{}",
      // Any 32 bytes do for the statement's cost; the service's own hashing is not measured here.
      contentHash: createHash("sha256").update(JSON.stringify(p)).digest(),
      deliverAt: null,
      state: "committed",
      checkAfterMs: null,
    };
  });
}

function leanValues(m: NewMessage[]): unknown[] {
  return [
    m.map((x) => x.id),
    m.map((x) => x.app),
    m.map((x) => x.topic),
    m.map((x) => x.tag),
    m.map((x) => x.key),
    m.map((x) => x.payloadJson),
    m.map(() => "{}"),
    m.map((x) => x.contentHash),
  ];
}

/** Statements of 1,000 messages `parallel` at a time (4: the publish-batch workload's requests in flight). */
async function time(label: string, app: string | null, run: (m: NewMessage[]) => Promise<unknown>, offset: number): Promise<void> {
  for (const parallel of [1, 4]) {
    const rounds = Array.from({ length: ROUNDS }, (_, r) =>
      Array.from({ length: parallel }, (_, k) => batch(offset + r * parallel + k + parallel * 1000, app)),
    );
    const ms: number[] = [];
    for (const round of rounds) {
      const t0 = performance.now();
      await Promise.all(round.map(run));
      ms.push(performance.now() - t0);
    }
    ms.sort((a, b) => a - b);
    const median = ms[ROUNDS / 2]!;
    console.log(
      `${label.padEnd(62)} ×${parallel}: ${median.toFixed(1).padStart(6)} ms per ${parallel},000 = ${((parallel * 1000) / median).toFixed(1)}k msg/s`,
    );
  }
}

const url = process.argv[2];
const server = url ? await useExistingPostgres(url) : await startPrivatePostgres(console.log);
const db = await createDatabase(server, "insert_variants");
const pool = new pg.Pool({ connectionString: db.url, max: 4 });
pool.on("error", () => {});
try {
  await migrate(pool);
  await pool.query("insert into apps (name, key_hash, secret) values ('bench', '\\x00', 's')");
  const fk = (await pool.query("select 1 from pg_constraint where conname = 'messages_app_fkey'")).rowCount === 1;
  console.log(fk ? "the schema has the foreign key messages.app → apps" : "the schema has no foreign key messages.app → apps (any more)");
  await time(`service statement, app key${fk ? " (foreign key to apps checked)" : ""}`, "bench", (m) => insertMessages(pool, null, 30_000, m), 0);
  await time("service statement, admin key (app null: no foreign-key check)", null, (m) => insertMessages(pool, null, 30_000, m), 100);
  await pool.query("alter table messages drop constraint if exists messages_app_fkey");
  await time("service statement, app key, foreign key dropped", "bench", (m) => insertMessages(pool, null, 30_000, m), 200);
  await time("lean INSERT returning seq, id, created_at; no foreign key", "bench", (m) => pool.query({ name: "lean", text: LEAN, values: leanValues(m) }), 300);
  await pool.query("drop index if exists messages_created; drop index if exists messages_topic; drop index if exists messages_app");
  await time("lean INSERT, no foreign key, without 3 secondary indexes", "bench", (m) => pool.query({ name: "lean", text: LEAN, values: leanValues(m) }), 400);
} finally {
  await pool.end();
  await db.drop();
  await server.stop();
}
