import type { Attributes, Span, SpanKind } from "@opentelemetry/api";
import type { TraceContext } from "../domain/traceContext.ts";
import { contextOf, headersOf, logFieldsOf, withSpan } from "./propagation.ts";
import { tracer } from "./tracer.ts";

/** A span of work done for a message, and the trace context it sends on. */
export interface ChildSpan {
  readonly span: Span;
  /** `traceparent`/`tracestate` of the span: the other side's span is its child. */
  readonly headers: Readonly<Record<string, string>>;
  /** What log lines of the work carry: `trace_id` when the span is recorded. */
  readonly logFields: { trace_id?: string };
}

/**
 * Starts a span as a child of a message's stored trace context (a root span when it has none).
 * With no OpenTelemetry SDK registered it is the API's no-op span, and its headers pass the
 * message's own context on unchanged.
 */
export function startChildSpan(name: string, kind: SpanKind, stored: TraceContext | null | undefined, attributes: Attributes): ChildSpan {
  const parent = contextOf(stored);
  const span = tracer().startSpan(name, { kind, attributes: { "messaging.system": "tidings", ...attributes } }, parent);
  return { span, headers: headersOf(withSpan(parent, span)), logFields: logFieldsOf(span) };
}
