import type { MessageRecord } from "./message.ts";

/** A prepared message this node holds the check lease of. */
export interface DueCheck {
  message: MessageRecord;
  /** What the producer sent with the prepare for its check-backs (`checkContext`); absent or null: none. */
  context?: string | null;
  checkUrl: string | null;
  secret: string | null;
  /** The lease token of the claim that took it (check_owner). */
  lease: string;
}

/** One check-back, as the check log keeps it. */
export interface CheckLog {
  messageId: string;
  checkNo: number;
  startedAt: Date;
  latencyMs: number;
  statusCode: number | null;
  answer: "commit" | "rollback" | "unknown" | null;
  error: string | null;
}
