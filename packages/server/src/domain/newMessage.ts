import type { MessageContent } from "./message.ts";
import type { TraceContext } from "./traceContext.ts";

/** A message as it is to be stored: what a publish request decided, ready for the insert. */
export interface NewMessage extends MessageContent {
  /** The full id (`<app>/<id>`, or the bare id of the admin's message). */
  id: string;
  /** The payload as JSON text, where the caller has it already (it is made when needed otherwise). */
  payloadJson?: string;
  headersJson?: string;
  /**
   * A hash of the content as sent, to tell a repeat from a clash cheaply; null for ids the
   * service generated (they cannot clash). A differing hash is settled by comparing content.
   */
  contentHash: Buffer | null;
  /** null: now. */
  deliverAt: Date | null;
  state: "committed" | "prepared";
  /** Prepared messages: how long after storing to first ask the producer (ms). */
  checkAfterMs: number | null;
  /** Prepared messages: what the producer asked to get back in each check-back (`context`); absent: none. Not part of its content. */
  checkContext?: string | null;
  /** Where in a trace it was sent; not part of its content (contentHash). Absent: none. */
  trace?: TraceContext | null;
}
