import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context } from "@opentelemetry/api";
import type { FastifyReply, FastifyRequest } from "fastify";
import { invalid, TidingsError } from "../domain/errors.ts";
import type { TraceContext } from "../domain/traceContext.ts";
import { contextOfHeaders, storedOf, traceIdOf, withSpan } from "../tracing/propagation.ts";
import { tracer } from "../tracing/tracer.ts";

/** A message's own trace context fields, as the request schema let them through. */
export interface TraceFields {
  traceparent?: string;
  tracestate?: string;
}

/** What a publish request's messages get their trace context from. */
export type TraceOf = (message: TraceFields, field: string) => TraceContext | null;

/** Links a batch's span keeps to its messages' own contexts at most (the SDK's default link limit). */
const MAX_LINKS = 128;

/** The context of a message's own fields, or null when it has none; a 400 naming the field when they are not W3C trace context. */
function ownContext(m: TraceFields, field: string): Context | null {
  if (m.traceparent === undefined) {
    if (m.tracestate !== undefined) throw invalid(`${field}tracestate`, `${field}tracestate needs a traceparent`);
    return null;
  }
  const ctx = contextOfHeaders({ traceparent: m.traceparent, tracestate: m.tracestate });
  if (!ctx) {
    throw invalid(
      `${field}traceparent`,
      `${field}traceparent is not a W3C traceparent: 00-<32 hex digits trace id>-<16 hex digits parent id>-<2 hex digits flags>, ids not all zero`,
    );
  }
  return ctx;
}

const sameSpan = (a: Context, b: Context): boolean => {
  const x = trace.getSpanContext(a);
  const y = trace.getSpanContext(b);
  return x !== undefined && y !== undefined && x.spanId === y.spanId && x.traceId === y.traceId;
};

/**
 * Runs a publish request in its server span `name`: a child of the request's `traceparent`
 * header, or (a single message) of the message's own `traceparent` field. Each message is
 * stored with its own context when it brings one other than the request's (an outbox relay's
 * batch: each row's producer), and with the publish span's otherwise, so that its deliveries
 * follow the publish in the trace. The request's log lines carry the trace id.
 */
export async function tracedPublish<T>(
  request: FastifyRequest,
  reply: FastifyReply,
  name: string,
  attributes: Attributes,
  single: TraceFields | null,
  run: (traceOf: TraceOf) => Promise<T>,
): Promise<T> {
  const own = single ? ownContext(single, "") : null;
  const parent = contextOfHeaders(request.headers) ?? own ?? ROOT_CONTEXT;
  const span = tracer().startSpan(name, { kind: SpanKind.SERVER, attributes: { "messaging.system": "tidings", ...attributes } }, parent);
  const traceId = traceIdOf(span);
  if (traceId !== undefined) request.log = request.log.child({ trace_id: traceId });
  let spanTrace: TraceContext | null | undefined;
  let links = 0;
  const traceOf: TraceOf = (m, field) => {
    const ctx = m === single ? own : ownContext(m, field);
    if (ctx && !sameSpan(ctx, parent)) {
      if (links++ < MAX_LINKS && span.isRecording()) span.addLink({ context: trace.getSpanContext(ctx)! });
      return storedOf(ctx);
    }
    spanTrace ??= storedOf(withSpan(parent, span));
    return spanTrace;
  };
  try {
    const answer = await run(traceOf);
    span.setAttribute("http.response.status_code", reply.statusCode);
    return answer;
  } catch (error) {
    // A refusal of the request (4xx) is the caller's; the span fails only for the service's own errors.
    const refused = error instanceof TidingsError && error.code !== "unavailable";
    span.setAttribute("error.type", error instanceof TidingsError ? error.code : error instanceof Error ? error.name : "error");
    if (!refused) span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
    throw error;
  } finally {
    span.end();
  }
}
