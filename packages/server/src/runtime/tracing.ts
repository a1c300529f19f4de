import type { Logger } from "pino";

/** A running OpenTelemetry SDK: its spans are flushed at shutdown. */
export interface Tracing {
  shutdown(): Promise<void>;
}

type Env = Record<string, string | undefined>;

/**
 * Whether the OTEL_* variables ask for traces: an exporter named (other than "none"), or an
 * OTLP endpoint given. OTEL_SDK_DISABLED=true turns it off, as in every OpenTelemetry SDK.
 */
export function tracingWanted(env: Env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return false;
  const exporters = env.OTEL_TRACES_EXPORTER?.trim();
  if (exporters) return exporters.split(",").some((e) => e.trim() !== "none");
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/**
 * Starts the OpenTelemetry trace SDK when the OTEL_* variables ask for it, and registers it as
 * the global tracer provider the service's spans go to; null (nothing loaded: the SDK's modules
 * are imported only here) otherwise. OTEL_TRACES_EXPORTER: otlp (the default; OTLP over HTTP with
 * protobuf, configured by OTEL_EXPORTER_OTLP_* as usual) and/or console. OTEL_SERVICE_NAME and
 * OTEL_RESOURCE_ATTRIBUTES name the service (default "tidings"); OTEL_TRACES_SAMPLER(_ARG) pick
 * the sampler (default parentbased_always_on).
 */
export async function startTracing(env: Env, log: Logger): Promise<Tracing | null> {
  if (!tracingWanted(env)) return null;
  let sdk: typeof import("@opentelemetry/sdk-trace");
  let resources: typeof import("@opentelemetry/resources");
  let api: typeof import("@opentelemetry/api");
  try {
    [sdk, resources, api] = await Promise.all([import("@opentelemetry/sdk-trace"), import("@opentelemetry/resources"), import("@opentelemetry/api")]);
  } catch (error) {
    log.warn({ err: error }, "OTEL_* asks for traces, but the OpenTelemetry SDK packages are not installed: no spans are exported");
    return null;
  }
  const names = (env.OTEL_TRACES_EXPORTER?.trim() || "otlp").split(",").map((e) => e.trim().toLowerCase());
  const processors: import("@opentelemetry/sdk-trace").SpanProcessor[] = [];
  for (const name of names) {
    if (name === "otlp") {
      const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL;
      if (protocol && protocol !== "http/protobuf") log.warn({ protocol }, "tidings exports OTLP over http/protobuf only");
      const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-proto");
      processors.push(new sdk.BatchSpanProcessor({ exporter: new OTLPTraceExporter() }));
    } else if (name === "console") {
      processors.push(new sdk.SimpleSpanProcessor({ exporter: new sdk.ConsoleSpanExporter() }));
    } else if (name !== "none") {
      log.warn({ exporter: name }, "unknown OTEL_TRACES_EXPORTER: ignored (tidings knows otlp, console and none)");
    }
  }
  if (processors.length === 0) return null;
  const resource = resources
    .defaultResource()
    .merge(resources.resourceFromAttributes({ "service.name": "tidings" }))
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const provider = new sdk.TracerProvider({ resource, sampler: samplerOf(sdk, env, log), spanProcessors: processors });
  if (!api.trace.setGlobalTracerProvider(provider)) {
    // The process registered its own (it embeds the service): the spans go there.
    await provider.shutdown();
    return null;
  }
  log.info({ exporters: names }, "OpenTelemetry tracing is on");
  return {
    shutdown: async () => {
      await provider.shutdown().catch((error: unknown) => log.warn({ err: error }, "flushing spans at shutdown failed"));
    },
  };
}

/** The sampler OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG name. */
function samplerOf(sdk: typeof import("@opentelemetry/sdk-trace"), env: Env, log: Logger): import("@opentelemetry/sdk-trace").Sampler {
  const name = env.OTEL_TRACES_SAMPLER?.trim().toLowerCase() || "parentbased_always_on";
  const arg = Number(env.OTEL_TRACES_SAMPLER_ARG ?? "1");
  const ratio = new sdk.TraceIdRatioBasedSampler(Number.isFinite(arg) && arg >= 0 && arg <= 1 ? arg : 1);
  const roots: Record<string, import("@opentelemetry/sdk-trace").Sampler> = {
    always_on: new sdk.AlwaysOnSampler(),
    always_off: new sdk.AlwaysOffSampler(),
    traceidratio: ratio,
  };
  const root = roots[name.replace(/^parentbased_/, "")];
  if (!root) {
    log.warn({ sampler: name }, "unknown OTEL_TRACES_SAMPLER: parentbased_always_on is used");
    return new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() });
  }
  return name.startsWith("parentbased_") ? new sdk.ParentBasedSampler({ root }) : root;
}
