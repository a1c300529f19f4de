import type { OutgoingMessage } from "./message.ts";
import type { DeliveryState } from "./states.ts";
import type { ConsumerOutcome } from "./outcome.ts";

/** A delivery as the API shows it. */
export interface DeliveryRecord {
  id: number;
  subscription: string;
  state: DeliveryState;
  attempts: number;
  nextAttemptAt: string | null;
  lastStatus: number | null;
  lastError: string | null;
  deliveredAt: string | null;
  deadAt: string | null;
  deadReason: string | null;
  /** What the consumer reported it did (POST /v1/outcomes); null when it reported nothing. */
  outcome: ConsumerOutcome | null;
  outcomeAt: string | null;
  /** A failed outcome's error. */
  outcomeError: string | null;
}

/** A delivery this node holds the lease of, with what it needs to send it. */
export interface LeasedDelivery {
  deliveryId: number;
  /** The UTC day of its message ("YYYY-MM-DD"), its partition: results and releases find the row by id and day. */
  messageDay: string;
  subscriptionId: number;
  /** The number of this attempt (1-based, counted over the delivery's life). */
  attempt: number;
  /** Attempts made since the last manual re-send: what the retry policy counts. */
  attemptInCycle: number;
  /** When the current retry cycle's first attempt ran, or null if this is it. */
  firstAttemptAt: Date | null;
  message: OutgoingMessage;
  /**
   * The lease token of the claim that took it (lease_owner); results and releases match on it.
   * Absent: leased to this node when it was created (the token is then the node id).
   */
  lease?: string;
  /** Sent as its subscription's circuit probe: it goes while the circuit is open, and never dies of failing. */
  probe?: boolean;
}

/** What a claim took; `more`: it read as many due rows as it could take, so more may be due. */
export type ClaimBatch = LeasedDelivery[] & { more?: boolean };

/** A delivery's lease, as results and releases name it. */
export interface Lease {
  deliveryId: number;
  /** The delivery's partition day, as LeasedDelivery carries it. */
  messageDay: string;
  lease: string;
}

export type AttemptOutcome = "delivered" | "failed" | "dead";

/** One attempt's outcome, as it is recorded on its delivery and in the attempt log. */
export interface AttemptResult {
  deliveryId: number;
  /** The delivery's partition day, as LeasedDelivery carries it. */
  messageDay: string;
  /** The lease token the attempt ran under. */
  lease: string;
  messageId: string;
  subscriptionId: number;
  attempt: number;
  outcome: AttemptOutcome;
  startedAt: Date;
  latencyMs: number;
  statusCode: number | null;
  error: string | null;
  /** For "failed": when to try again. */
  nextAttemptAt: Date | null;
  /** For "dead": why. */
  deadReason: string | null;
  /** For the first attempt of a cycle: it starts the retry window. */
  firstAttemptAt: Date | null;
  /** A 429's Retry-After (ms): the whole subscription waits that long. */
  retryAfterMs?: number;
  /** Sent as its subscription's circuit probe. */
  probe?: true;
}
