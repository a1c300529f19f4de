import type { MessageRecord } from "./message.ts";

/** A prepared message this node holds the check lease of. */
export interface DueCheck {
  message: MessageRecord;
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
