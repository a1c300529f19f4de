import { trace, type Tracer } from "@opentelemetry/api";

let cached: Tracer | undefined;

/**
 * The service's tracer: the global tracer provider's, which is the API's no-op one unless an
 * OpenTelemetry SDK was registered (runtime/tracing.ts, from OTEL_* variables, or a process
 * that embeds the service). A no-op span costs an object and no I/O.
 */
export function tracer(): Tracer {
  cached ??= trace.getTracer("tidings");
  return cached;
}
