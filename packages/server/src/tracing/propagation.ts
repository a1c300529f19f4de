import { ROOT_CONTEXT, trace, type Context, type Span } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { TRACEPARENT, TRACESTATE, type TraceContext } from "../domain/traceContext.ts";

/**
 * The service speaks W3C trace context on its wire whatever propagator the process has
 * registered (none, when it does not trace itself): the context of a message goes through
 * the service even when the service emits no spans of its own.
 */
const w3c = new W3CTraceContextPropagator();

type Carrier = Record<string, string | string[] | undefined>;

const getter = {
  keys: (carrier: Carrier) => Object.keys(carrier),
  get: (carrier: Carrier, key: string) => carrier[key],
};
const setter = {
  set: (carrier: Record<string, string>, key: string, value: string) => {
    carrier[key] = value;
  },
};

/** The context of `traceparent`/`tracestate` headers (HTTP request headers, lower-case), or null when they hold none valid. */
export function contextOfHeaders(headers: Carrier): Context | null {
  if (!headers[TRACEPARENT]) return null;
  const ctx = w3c.extract(ROOT_CONTEXT, headers, getter);
  return trace.getSpanContext(ctx) ? ctx : null;
}

/** The context a stored trace context stands for (the root when there is none). */
export function contextOf(stored: TraceContext | null | undefined): Context {
  if (!stored) return ROOT_CONTEXT;
  const carrier: Carrier = { [TRACEPARENT]: stored.traceparent };
  if (stored.tracestate) carrier[TRACESTATE] = stored.tracestate;
  return w3c.extract(ROOT_CONTEXT, carrier, getter);
}

/** The `traceparent`/`tracestate` headers of a context (none when it holds no valid span context). */
export function headersOf(ctx: Context): Record<string, string> {
  const carrier: Record<string, string> = {};
  w3c.inject(ctx, carrier, setter);
  return carrier;
}

/** A context as it is stored with a message, or null. */
export function storedOf(ctx: Context): TraceContext | null {
  const carrier = headersOf(ctx);
  const traceparent = carrier[TRACEPARENT];
  return traceparent ? { traceparent, tracestate: carrier[TRACESTATE] ?? null } : null;
}

/** `parent` with `span` as its active span: what a child of the span, or a header carrying it, starts from. */
export const withSpan = (parent: Context, span: Span): Context => trace.setSpan(parent, span);

/** The trace id for log lines, when the span is recorded (a trace a backend will show). */
export function traceIdOf(span: Span): string | undefined {
  return span.isRecording() ? span.spanContext().traceId : undefined;
}

/** What a log line of the span's work carries: its trace id, when it is recorded; nothing otherwise. */
export function logFieldsOf(span: Span): { trace_id?: string } {
  return span.isRecording() ? { trace_id: span.spanContext().traceId } : {};
}
