// What a reconciliation needs of the service, as a TidingsClient offers it: the forward feed,
// a look-up by id, and where its reports go.

import type { MessageInfo } from "../client/apiTypes.ts";
import type { ReconciliationReport } from "../domain/reconcileReport.ts";

/** A committed message as the feed (`GET /v1/feed`) lists it; `id` is the full id (`<app>/<id>`), as deliveries carry it. */
export interface FeedMessage {
  id: string;
  topic: string;
  tag: string | null;
  key: string | null;
  payload: unknown;
  headers: Record<string, string>;
  createdAt: string;
  committedAt: string;
}

/** What the feed is asked for: a subscription's messages or a topic's, committed in the window, in commit order. */
export interface FeedQuery {
  subscription?: string;
  topic?: string;
  since?: string | Date;
  until?: string | Date;
  pageSize?: number;
}

/** The calls reconciliation makes; a `TidingsClient` is one. */
export interface ReconcileClient {
  feed(query: FeedQuery): AsyncIterable<FeedMessage>;
  messages: { get(id: string): Promise<MessageInfo | null> };
  reportReconciliation(report: ReconciliationReport): Promise<unknown>;
}
