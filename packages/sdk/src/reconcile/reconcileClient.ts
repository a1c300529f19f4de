// What a reconciliation needs of the service, as a TidingsClient offers it: the forward feed,
// a look-up by id, and where its reports go.

import type { FeedMessage, FeedQuery, MessageInfo, ReconciliationReport } from "../client/apiTypes.ts";

/** The calls reconciliation makes; a `TidingsClient` is one. */
export interface ReconcileClient {
  feed(query: FeedQuery): AsyncIterable<FeedMessage>;
  messages: { get(id: string): Promise<MessageInfo | null> };
  reportReconciliation(report: ReconciliationReport): Promise<unknown>;
}
