import type {
  DeliveryPage,
  JobInfo,
  ListDeliveriesQuery,
  ListedDelivery,
  NewSubscription,
  RecoverOptions,
  ResendDeadOptions,
  ResendDeadResult,
  SubscriptionChanges,
  SubscriptionInfo,
} from "./apiTypes.ts";
import type { CallFlags, ResolvedHttpOptions } from "./http.ts";
import type { MessagesApi } from "./messagesApi.ts";
import { find, operation } from "./operation.ts";

/** How long a re-send or recovery is waited for by default: a backlog of a few thousand is done within it. */
const DEFAULT_WAIT_S = 5;

/** Waiting for a job up to `waitSeconds` (RFC 7240 `Prefer: wait`), with room for the answer after it. */
function waiting(o: ResolvedHttpOptions, waitSeconds: number | undefined): CallFlags {
  const seconds = Math.max(0, Math.min(60, Math.round(waitSeconds ?? DEFAULT_WAIT_S)));
  return { headers: { prefer: `wait=${seconds}` }, timeoutMs: Math.max(o.timeoutMs, seconds * 1000 + o.timeoutMs) };
}

/** How long to wait for a job before answering with its progress (0–60 s; default 5). */
export interface WaitOptions {
  waitSeconds?: number;
}

/** Subscriptions (people's keys: viewers read, admins change them, operators re-send). */
export class SubscriptionsApi {
  constructor(private readonly o: ResolvedHttpOptions) {}

  /** Subscribes an endpoint to a topic; the answer's `secret` (for the receiver's signatures) is shown this once. */
  create(subscription: NewSubscription): Promise<SubscriptionInfo> {
    return operation(this.o, "post", "/v1/subscriptions", { body: subscription });
  }

  async list(): Promise<SubscriptionInfo[]> {
    return (await operation(this.o, "get", "/v1/subscriptions", {}, { idempotent: true })).items;
  }

  /** A subscription with its circuit's `health`, or null when there is none with this name. */
  get(name: string): Promise<SubscriptionInfo | null> {
    return find(this.o, "get", "/v1/subscriptions/{name}", { params: { name } });
  }

  /** Changes a subscription, or rotates its secret (`rotateSecret`: the new one is in the answer, and a rotation is not retried). */
  update(name: string, changes: SubscriptionChanges): Promise<SubscriptionInfo> {
    return operation(this.o, "patch", "/v1/subscriptions/{name}", { params: { name }, body: changes }, { idempotent: changes.rotateSecret !== true });
  }

  async delete(name: string): Promise<void> {
    await operation(this.o, "delete", "/v1/subscriptions/{name}", { params: { name } }, { idempotent: true });
  }

  /**
   * Re-sends the subscription's dead deliveries (up to `limit`, in batches) and waits for it up
   * to `waitSeconds`: `{ resent, batches }` when done, with `job` (follow it with `jobs.get`)
   * when it goes on in the background. Not retried: calling again re-sends what is still dead.
   */
  resendDead(name: string, options: ResendDeadOptions & WaitOptions = {}): Promise<ResendDeadResult> {
    const { waitSeconds, ...body } = options;
    return operation(this.o, "post", "/v1/subscriptions/{name}/resend-dead", { params: { name }, body }, waiting(this.o, waitSeconds));
  }

  /**
   * Re-sends the dead and failed deliveries of the messages created in [`since`, `until`), as a
   * job waited for up to `waitSeconds`. Asked again for the same window, the answer is the same
   * job and nothing is sent twice (so it is retried after a network error).
   */
  recover(name: string, options: RecoverOptions & WaitOptions): Promise<JobInfo> {
    const { waitSeconds, ...body } = options;
    return operation(this.o, "post", "/v1/subscriptions/{name}/recover", { params: { name }, body }, { ...waiting(this.o, waitSeconds), idempotent: true });
  }

  /** Makes every pending delivery waiting for a retry due now; resolves to how many. */
  async retryPending(name: string): Promise<number> {
    return (await operation(this.o, "post", "/v1/subscriptions/{name}/retry-pending", { params: { name } }, { idempotent: true })).retried;
  }
}

/** Deliveries across messages (people's keys): the dead letters, and what an operator does with them. */
export class DeliveriesApi {
  constructor(
    private readonly o: ResolvedHttpOptions,
    private readonly messages: MessagesApi,
  ) {}

  /** Deliveries newest first, one page (`state: "dead"`: the dead letters). */
  list(query: ListDeliveriesQuery = {}): Promise<DeliveryPage> {
    return operation(this.o, "get", "/v1/deliveries", { query }, { idempotent: true });
  }

  /** Sends a delivery again, on a fresh retry cycle (its message to its subscription). */
  resend(delivery: Pick<ListedDelivery, "messageId" | "subscription">): Promise<number> {
    return this.messages.resend(delivery.messageId, { subscription: delivery.subscription });
  }

  /** Stops a pending delivery: it becomes dead, with `reason`. */
  markDead(delivery: Pick<ListedDelivery, "messageId" | "subscription">, reason?: string): Promise<number> {
    return this.messages.markDead(delivery.messageId, { subscription: delivery.subscription, ...(reason === undefined ? {} : { reason }) });
  }

  /** Skips a dead delivery: on a subscription ordered by key, its key goes on with the next message. Idempotent; a `conflict` when it is not dead. */
  skip(id: number): Promise<{ id: number; skipped: boolean }> {
    return operation(this.o, "post", "/v1/deliveries/{id}/skip", { params: { id: String(id) } }, { idempotent: true });
  }
}

/** Background jobs: re-sending a subscription's dead deliveries, recoveries, and their progress. */
export class JobsApi {
  constructor(private readonly o: ResolvedHttpOptions) {}

  /** Starts re-sending a subscription's dead deliveries in the background (operator); follow it with `get`. */
  resendDead(subscription: string, options: ResendDeadOptions = {}): Promise<JobInfo> {
    return operation(this.o, "post", "/v1/subscriptions/{name}/resend-dead-jobs", { params: { name: subscription }, body: options });
  }

  /** A job and its progress, or null. */
  get(id: string): Promise<JobInfo | null> {
    return find(this.o, "get", "/v1/jobs/{id}", { params: { id } });
  }

  /** The 20 newest jobs (of one subscription). */
  async list(query: { subscription?: string } = {}): Promise<JobInfo[]> {
    return (await operation(this.o, "get", "/v1/jobs", { query }, { idempotent: true })).items;
  }
}
