import { fullIdOf, type Envelope } from "../domain/envelope.ts";
import type { Executor } from "../executor/executor.ts";
import type { Inbox } from "../inbox/inbox.ts";
import type { MessageInfo } from "./apiTypes.ts";
import type { TidingsClient } from "./client.ts";

export interface ReconcileOptions {
  client: TidingsClient;
  db: Executor;
  inbox: Inbox;
  /** The same business change the webhook receiver runs. */
  handle(message: Envelope, tx: Executor): Promise<unknown>;
}

/** Message ids in results are full ids (`<app>/<id>`), the ids deliveries and the inbox use. */
export interface ReconcileResult {
  /** Messages that had been missed and are now applied. */
  applied: string[];
  /** Messages that had been applied already. */
  duplicates: string[];
  /** Ids asked for that the service does not have (or not committed). */
  missing: string[];
}

/**
 * A message as a delivery would have brought it. Its id is the full id (`<app>/<id>`, as in
 * `webhook-id`), so the inbox sees a reconciled message and a delivered one as the same.
 */
function envelopeOf(m: MessageInfo): Envelope {
  return { id: fullIdOf(m), topic: m.topic, tag: m.tag, key: m.key, payload: m.payload, headers: m.headers, createdAt: m.createdAt };
}

async function apply(o: ReconcileOptions, messages: Iterable<MessageInfo> | AsyncIterable<MessageInfo>, result: ReconcileResult): Promise<ReconcileResult> {
  for await (const m of messages) {
    if (m.state !== "committed") {
      result.missing.push(fullIdOf(m));
      continue;
    }
    const envelope = envelopeOf(m);
    const outcome = await o.inbox.handle(o.db, envelope, (tx) => o.handle(envelope, tx));
    (outcome.status === "applied" ? result.applied : result.duplicates).push(envelope.id);
  }
  return result;
}

/**
 * @deprecated for a window of messages use `Reconciler` (streamed, reported); this one stays for a
 * few known ids.
 * Reconciliation by message id: pulls each message from the service's query API and applies it
 * through the inbox, so a notice the receiver never got has the same effect as if it had come,
 * and one it did get is skipped.
 */
export async function reconcileIds(o: ReconcileOptions, ids: readonly string[]): Promise<ReconcileResult> {
  const result: ReconcileResult = { applied: [], duplicates: [], missing: [] };
  const found: MessageInfo[] = [];
  for (const id of ids) {
    const m = await o.client.messages.get(id);
    if (m) found.push(m);
    else result.missing.push(id);
  }
  return apply(o, found, result);
}

/**
 * @deprecated use `new Reconciler({ client, db, consumer: { topic, inbox, handle } }).run({ since })`:
 * it streams the feed page by page and reports the run; this one holds every match in memory.
 * Reconciliation by business key and/or topic (e.g. the transaction number a payment result is
 * about): applies every committed message that matches, oldest first, through the inbox.
 */
export async function reconcileQuery(o: ReconcileOptions, query: { key?: string; topic?: string }): Promise<ReconcileResult> {
  const all: MessageInfo[] = [];
  for await (const m of o.client.messages.listAll({ ...query, state: "committed", limit: 1000 })) all.push(m);
  all.reverse(); // the API lists newest first; apply in the order they were sent
  return apply(o, all, { applied: [], duplicates: [], missing: [] });
}
