import { localId } from "../domain/messageIds.ts";
import { stringifyExact } from "../domain/rawJson.ts";
import type { Logger } from "pino";
import { storableText } from "../domain/storableText.ts";
import type { CheckLog, DueCheck } from "../domain/check.ts";
import { ERROR_TEXT_LIMIT, type HttpTransport } from "../transports/httpTransport.ts";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { startChildSpan } from "../tracing/childSpan.ts";

export type CheckAnswer = "commit" | "rollback" | "unknown";

export interface CheckCall {
  statusCode: number | null;
  answer: CheckAnswer | null;
  error: string | null;
  /** Cut short by shutdown: nothing to log, the check lease is given back. */
  aborted?: boolean;
}

export interface CheckBackOps {
  claim(limit: number): Promise<DueCheck[]>;
  /** Asks the producer app (`trace`: the check's W3C trace context headers); never throws; bounded by the delivery timeout and `signal`. */
  call(check: DueCheck, checkNo: number, signal: AbortSignal, trace: Readonly<Record<string, string>>): Promise<CheckCall>;
  /** Gives the check lease back (shutdown). */
  release(check: DueCheck): Promise<void>;
  commit(id: string): Promise<void>;
  rollback(id: string): Promise<void>;
  /** Unknown, an error or no answer: schedule the next check or go in doubt. */
  unresolved(check: DueCheck): Promise<{ inDoubt: boolean } | null>;
  counted(id: string): Promise<void>;
  log(entry: CheckLog): Promise<void>;
  /**
   * How the app's check URL did: answered (commit, rollback or unknown), or failed (no answer,
   * an error, an answer that is not one). Failures in a row raise the app's check_url_failing alert.
   */
  checkUrl(due: DueCheck, call: CheckCall): Promise<void>;
}

/** Parses a check-back answer: `{"status":"commit"|"rollback"|"unknown"}`. */
export function parseCheckAnswer(text: string): CheckAnswer | null {
  try {
    const status = (JSON.parse(text) as { status?: unknown }).status;
    return status === "commit" || status === "rollback" || status === "unknown" ? status : null;
  } catch {
    return null;
  }
}

/**
 * One check-back: POSTs `{"id","topic","tag","key","payload","checks"}` (and `"context"`, the
 * message's checkContext, when it was prepared with one) to the app's check URL,
 * signed with the app's secret, within the delivery timeout, reading at most 64 KB of the answer.
 * Whatever the app answers is stored as storable text.
 */
export async function callCheckUrl(
  transport: HttpTransport,
  due: DueCheck,
  checkNo: number,
  signal: AbortSignal,
  trace: Readonly<Record<string, string>> = {},
): Promise<CheckCall> {
  if (!due.checkUrl || !due.secret) return { statusCode: null, answer: null, error: "the app has no check URL" };
  const m = due.message;
  // The producer is asked about its own id (its barrier rows are keyed by it), not the full id.
  const id = localId(m.id);
  const fields: Record<string, unknown> = { id, topic: m.topic, tag: m.tag, key: m.key, payload: m.payload, checks: checkNo };
  // The producer's check context, only when it sent one: the SDK answers for its own database only.
  if (due.context != null) fields.context = due.context;
  const body = stringifyExact(fields);
  const r = await transport.call(due.checkUrl, due.secret, id, body, { ...trace, "tidings-check": String(checkNo) }, signal);
  if (r.aborted) return { statusCode: null, answer: null, error: r.error, aborted: true };
  if (r.error !== null) return { statusCode: r.statusCode, answer: null, error: storableText(r.error, ERROR_TEXT_LIMIT) };
  const statusCode = r.statusCode!;
  const answer = statusCode >= 200 && statusCode < 300 ? parseCheckAnswer(r.text) : null;
  return { statusCode, answer, error: answer ? null : storableText(`HTTP ${statusCode}: ${r.text}`, 300) };
}

/**
 * Asks producers about prepared messages left unresolved past their check time, and applies
 * the answer. Leases on the message rows keep two nodes from checking one message at once.
 */
export class CheckBackScheduler {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private stopped = false;
  private inFlight = 0;
  private readonly checking = new Set<Promise<void>>();
  private rounding: Promise<void> | null = null;
  private readonly aborts = new AbortController();

  constructor(
    private readonly ops: CheckBackOps,
    private readonly options: { pollIntervalMs: number; concurrency: number },
    private readonly log: Logger,
  ) {}

  start(): void {
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.rounding = this.round().finally(() => (this.rounding = null));
    }, ms);
    this.timer.unref();
  }

  private async round(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    let full = false;
    try {
      const room = this.options.concurrency - this.inFlight;
      if (room > 0) {
        const due = await this.ops.claim(room);
        full = due.length === room;
        for (const check of due) {
          this.inFlight++;
          const work = this.check(check).finally(() => {
            this.inFlight--;
            this.checking.delete(work);
          });
          this.checking.add(work);
        }
      }
    } catch (error) {
      this.log.warn({ err: error }, "claiming check-backs failed");
    } finally {
      this.running = false;
    }
    this.schedule(full ? 10 : this.options.pollIntervalMs);
  }

  private async check(due: DueCheck): Promise<void> {
    const id = due.message.id;
    const checkNo = due.message.checks + 1;
    const startedAt = new Date();
    const started = performance.now();
    // A child of the message's trace context: the producer's, as its transaction prepared it.
    const { span, headers, logFields } = startChildSpan(`check-back ${due.message.topic}`, SpanKind.CLIENT, due.message.trace, {
      "messaging.destination.name": due.message.topic,
      "messaging.message.id": id,
      "tidings.check": checkNo,
    });
    const result = await this.ops.call(due, checkNo, this.aborts.signal, headers);
    const latencyMs = Math.round(performance.now() - started);
    if (result.statusCode !== null) span.setAttribute("http.response.status_code", result.statusCode);
    span.setAttribute("tidings.answer", result.answer ?? "none");
    if (result.answer === null && !result.aborted) span.setStatus({ code: SpanStatusCode.ERROR, message: result.error ?? "no answer" });
    span.end();
    if (result.aborted) {
      await this.ops.release(due).catch((error: unknown) => this.log.warn({ err: error, messageId: id, ...logFields }, "releasing a check lease failed"));
      return;
    }
    try {
      await this.ops.log({ messageId: id, checkNo, startedAt, latencyMs, ...result });
      await this.ops.checkUrl(due, result);
      if (result.answer === "commit") {
        await this.ops.counted(id);
        await this.ops.commit(id);
      } else if (result.answer === "rollback") {
        await this.ops.counted(id);
        await this.ops.rollback(id);
      } else {
        const after = await this.ops.unresolved(due);
        if (after?.inDoubt) this.log.warn({ messageId: id, checks: checkNo, ...logFields }, "message is in doubt: checks exhausted");
      }
    } catch (error) {
      // The lease expires and another round checks again.
      this.log.warn({ err: error, messageId: id, ...logFields }, "applying a check-back answer failed");
    }
  }

  /**
   * Stops claiming; gives the checks in flight `graceMs` to finish, then aborts their calls
   * (their leases are given back, nothing is logged) and waits for them to settle.
   */
  async stop(graceMs = 2000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.rounding;
    let timer: NodeJS.Timeout | undefined;
    const settled = Promise.allSettled([...this.checking]);
    await Promise.race([settled, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    if (this.checking.size > 0) {
      this.aborts.abort();
      await Promise.race([Promise.allSettled([...this.checking]), new Promise((r) => setTimeout(r, 2000).unref())]);
    }
  }
}
