import type * as OtelApi from "@opentelemetry/api";

/**
 * OpenTelemetry, when the app has `@opentelemetry/api` installed (an optional peer dependency):
 * imported on first use, so the SDK works without it, and does nothing then. The API's
 * propagator and tracer are the ones the app registered (its OpenTelemetry SDK); with none
 * registered they are the API's no-ops.
 */
let loading: Promise<typeof OtelApi | null> | undefined;

export function otelApi(): Promise<typeof OtelApi | null> {
  loading ??= import("@opentelemetry/api").then(
    (api) => api,
    () => null,
  );
  return loading;
}

/** A message's W3C trace context, as it is stored with an outbox row and sent to the service. */
export interface TraceFields {
  traceparent: string;
  tracestate: string | null;
}

/**
 * The trace context of the caller's active context (its active span), injected by the app's
 * propagator (`propagation.inject`); null without OpenTelemetry or an active span.
 */
export async function activeTrace(): Promise<TraceFields | null> {
  const api = await otelApi();
  if (!api) return null;
  const carrier: Record<string, string> = {};
  api.propagation.inject(api.context.active(), carrier);
  return carrier.traceparent ? { traceparent: carrier.traceparent, tracestate: carrier.tracestate ?? null } : null;
}

/** The `traceparent`/`tracestate` headers of a trace context (none for null). */
export function traceHeaders(trace: TraceFields | null | undefined): Record<string, string> {
  if (!trace) return {};
  return trace.tracestate ? { traceparent: trace.traceparent, tracestate: trace.tracestate } : { traceparent: trace.traceparent };
}

/** Reads header values as text: strings as they are, byte buffers (some AMQP headers) decoded, the first of several. */
const getter: OtelApi.TextMapGetter<Record<string, unknown>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const value = carrier[key];
    const one = Array.isArray(value) ? value[0] : value;
    return typeof one === "string" ? one : one instanceof Uint8Array ? new TextDecoder().decode(one) : undefined;
  },
};

/**
 * Runs `work` (the handler and its inbox transaction) in a consumer span named `name`, a child of
 * the trace context the delivery's headers carry (lower-case names: `traceparent`,
 * `tracestate`); inside an HTTP server span of that same trace (the app's own instrumentation), a
 * child of that. An exception marks the span failed and is rethrown; `outcome` names what came
 * of it. Without OpenTelemetry it runs `work` alone.
 */
export async function inConsumerSpan<T>(
  name: string,
  headers: Record<string, unknown>,
  attributes: OtelApi.Attributes,
  work: () => Promise<T>,
  outcome?: (value: T) => string,
): Promise<T> {
  const api = await otelApi();
  if (!api) return work();
  const active = api.context.active();
  const remote = api.trace.getSpanContext(api.propagation.extract(api.ROOT_CONTEXT, headers, getter));
  const current = api.trace.getSpanContext(active);
  const parent = remote && !(current && current.traceId === remote.traceId) ? api.trace.setSpanContext(active, remote) : active;
  const span = api.trace
    .getTracer("@tidings/sdk")
    .startSpan(
      name,
      { kind: api.SpanKind.CONSUMER, attributes: { "messaging.system": "tidings", "messaging.operation.type": "process", ...attributes } },
      parent,
    );
  try {
    const value = await api.context.with(api.trace.setSpan(parent, span), work);
    if (outcome) span.setAttribute("tidings.outcome", outcome(value));
    return value;
  } catch (error) {
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
    span.setAttribute("tidings.outcome", "failed");
    throw error;
  } finally {
    span.end();
  }
}

/** The attributes of a consumer span: the message, and the subscription and attempt that delivered it when known. */
export function consumerAttributes(message: { id: string; topic: string }, subscription: string | null | undefined, attempt: unknown): OtelApi.Attributes {
  const attributes: OtelApi.Attributes = { "messaging.destination.name": message.topic, "messaging.message.id": message.id };
  if (subscription) attributes["tidings.subscription"] = subscription;
  const n = Number(attempt);
  if (Number.isInteger(n) && n > 0) attributes["tidings.attempt"] = n;
  return attributes;
}
