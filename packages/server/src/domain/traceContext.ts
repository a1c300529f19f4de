/**
 * A message's W3C trace context (traceparent, and tracestate when there is one): where in a
 * trace the message was sent. Kept beside the message, not in its content: the same message
 * sent again from another trace is still the same message.
 */
export interface TraceContext {
  traceparent: string;
  tracestate: string | null;
}

/** The W3C trace context header names, on HTTP requests and as broker message headers. */
export const TRACEPARENT = "traceparent";
export const TRACESTATE = "tracestate";
