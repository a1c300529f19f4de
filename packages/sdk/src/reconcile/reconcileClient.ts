// What a reconciliation needs of the service, as a TidingsClient offers it: the forward feed,
// look-ups of up to 1000 ids at once, and where its reports go.

import type { FeedMessage, FeedQuery, MessageLookup, ReconciliationReport } from "../client/apiTypes.ts";

/** The calls reconciliation makes; a `TidingsClient` is one. */
export interface ReconcileClient {
  feed(query: FeedQuery): AsyncIterable<FeedMessage>;
  messages: { lookup(ids: readonly string[]): Promise<MessageLookup> };
  reportReconciliation(report: ReconciliationReport): Promise<unknown>;
}
