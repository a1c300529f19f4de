import { TidingsError, type TidingsErrorCode } from "../errors.ts";
import type { MessagesApi } from "./client.ts";

/** The largest batch `POST /v1/messages/commit` takes. */
const MAX_BATCH = 1000;

/**
 * Message commits of concurrent `transaction()` calls, sent together. A commit that finds no
 * request in flight goes out at once, alone (`POST /v1/messages/:id/commit`); the ones that
 * arrive meanwhile wait for that answer and then go in one `POST /v1/messages/commit`. A lone
 * transaction waits for nothing; 32 at a time send a few requests where they sent 32 (each
 * HTTP request costs producer and service about as much as the service's combined statement).
 * Each caller gets its own id's outcome, as an error of the single call's code when refused.
 */
export class CommitCombiner {
  private waiting: Array<{ id: string; resolve(): void; reject(error: unknown): void }> = [];
  private busy = false;

  constructor(private readonly messages: MessagesApi) {}

  commit(id: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ id, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.busy || this.waiting.length === 0) return;
    const batch = this.waiting.splice(0, MAX_BATCH);
    this.busy = true;
    void this.send(batch).finally(() => {
      this.busy = false;
      this.next();
    });
  }

  private async send(batch: typeof this.waiting): Promise<void> {
    if (batch.length === 1) {
      const only = batch[0]!;
      await this.messages.commit(only.id).then(() => only.resolve(), only.reject);
      return;
    }
    let results: Awaited<ReturnType<MessagesApi["commitMany"]>>;
    try {
      results = await this.messages.commitMany(batch.map((w) => w.id));
    } catch (error) {
      for (const w of batch) w.reject(error);
      return;
    }
    batch.forEach((w, i) => {
      const result = results[i];
      if (result?.id === w.id && result.state === "committed") return w.resolve();
      if (result?.id === w.id && result.error) {
        const { code, message, ...details } = result.error;
        return w.reject(new TidingsError(code as TidingsErrorCode, message, { status: STATUS[code], details }));
      }
      w.reject(new TidingsError("server_error", `the service's answer to a batch commit has no result for message ${w.id}`));
    });
  }
}

/** The status the single call would have answered with each code. */
const STATUS: Record<string, number> = { not_found: 404, forbidden: 403, conflict: 409 };
