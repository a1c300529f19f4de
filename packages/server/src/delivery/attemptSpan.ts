import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import type { AttemptOutcome, LeasedDelivery } from "../domain/delivery.ts";
import type { SubscriptionRow } from "../domain/subscription.ts";
import type { SendResult } from "../transports/transport.ts";
import { startChildSpan } from "../tracing/childSpan.ts";

/** One delivery attempt's span, and the trace context it sends on. */
export interface AttemptSpan {
  /** `traceparent`/`tracestate` of the attempt: the receiver's or consumer's span is its child. */
  readonly headers: Readonly<Record<string, string>>;
  /** What log lines of the attempt carry: `trace_id` when the span is recorded. */
  readonly logFields: { trace_id?: string };
  /** Ends the span with what came of the attempt (`aborted`: cut short by shutdown, not an attempt). */
  end(outcome: AttemptOutcome | "aborted", sent: SendResult): void;
}

/**
 * Starts the span of one attempt: a child of the message's stored trace context (the producer's,
 * or the publish span's); a client span to an HTTP endpoint, a producer span to a broker.
 */
export function startAttemptSpan(subscription: SubscriptionRow, delivery: LeasedDelivery): AttemptSpan {
  const { span, headers, logFields } = startChildSpan(
    `deliver ${subscription.name}`,
    subscription.endpoint.type === "http" ? SpanKind.CLIENT : SpanKind.PRODUCER,
    delivery.message.trace,
    {
      "messaging.operation.type": "send",
      "messaging.destination.name": delivery.message.topic,
      "messaging.message.id": delivery.message.id,
      "tidings.subscription": subscription.name,
      "tidings.endpoint.type": subscription.endpoint.type,
      "tidings.attempt": delivery.attempt,
    },
  );
  return {
    headers,
    logFields,
    end(outcome, sent) {
      if (span.isRecording()) {
        span.setAttribute("tidings.outcome", outcome);
        if (sent.statusCode !== null) span.setAttribute("http.response.status_code", sent.statusCode);
        if (!sent.ok && outcome !== "aborted") span.setStatus({ code: SpanStatusCode.ERROR, message: sent.error ?? "failed" });
      }
      span.end();
    },
  };
}
