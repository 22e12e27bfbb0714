/**
 * Traces, with the OpenTelemetry SDK when the standard `OTEL_*` variables ask for it, and a
 * pass-through that loads nothing when they do not.
 *
 * Off (the default, or `OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER=none`) no
 * OpenTelemetry module is imported and `start()` allocates nothing for a request without a
 * trace context; a request that came with a `traceparent` keeps it, so it still reaches the
 * engine (vLLM and TGI continue it) though no span of ours is recorded in between.
 *
 * On, spans are made by hand where the request path is (no auto-instrumentation: its hooks
 * would cost every Redis command and HTTP request, heartbeats included) and exported in
 * batches over OTLP/HTTP (protobuf), configured as OpenTelemetry's own SDKs are:
 * `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `…_HEADERS`,
 * `…_TIMEOUT`, `OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
 * `OTEL_BSP_*`. Unlike the specification's default, tracing is on only when an exporter or
 * an endpoint is named, so an install without a collector sends nothing anywhere.
 */
import { ConfigError, type Logger } from "@infera/core";
import type * as Api from "@opentelemetry/api";
import { formatTraceparent, parseTraceparent } from "./traceparent.ts";

type Env = Record<string, string | undefined>;
export type AttributeValue = string | number | boolean | string[];
export type Attributes = Record<string, AttributeValue | undefined>;
export type SpanKindName = "internal" | "server" | "client" | "producer" | "consumer";

/** One span, or (tracing off) the trace context it would have carried on. */
export interface TraceSpan {
  /** The W3C traceparent to send downstream: this span's, or, with tracing off, the parent's as it came. */
  readonly traceparent: string | undefined;
  /** The trace's id (32 hex), when there is a trace. */
  readonly traceId: string | undefined;
  set(key: string, value: AttributeValue | undefined): void;
  setAttributes(attributes: Attributes): void;
  /** Marks the span failed: `error.type` is the code (a small closed set), the message the status description. */
  fail(code: string, message?: string): void;
  /** `at`: `performance.now()` or epoch milliseconds (default now). */
  end(at?: number): void;
}

export interface SpanOptions {
  /** A span of this process, or a traceparent that came from elsewhere; none: a new trace. */
  parent?: TraceSpan | string;
  kind?: SpanKindName;
  /** `performance.now()` or epoch milliseconds (default now). */
  startTime?: number;
  attributes?: Attributes;
}

export interface Tracing {
  /** Spans are recorded and exported. */
  readonly enabled: boolean;
  start(name: string, options?: SpanOptions): TraceSpan;
  /** Exports what is still buffered; then spans go nowhere. */
  stop(): Promise<void>;
}

export interface TracingConfig {
  enabled: boolean;
  exporters: ("otlp" | "console")[];
  /** Where OTLP spans go: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given, else OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces (default localhost:4318). */
  otlpUrl: string;
  serviceName: string;
  sampler: string;
  samplerArg: number;
  bsp: { scheduledDelayMillis?: number; maxQueueSize?: number; maxExportBatchSize?: number; exportTimeoutMillis?: number };
}

const SAMPLERS = ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"];

function positiveInt(env: Env, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new ConfigError(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return n;
}

/** What the `OTEL_*` variables ask for; a value this process cannot honour fails naming the variable. */
export function tracingConfig(env: Env, service: string): TracingConfig {
  const disabled = (env.OTEL_SDK_DISABLED ?? "").trim().toLowerCase() === "true";
  const named = (env.OTEL_TRACES_EXPORTER ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  for (const e of named)
    if (e !== "otlp" && e !== "console" && e !== "none") throw new ConfigError(`OTEL_TRACES_EXPORTER must be otlp, console or none, got ${JSON.stringify(e)}`);
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const otlpUrl = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || `${(env.OTEL_EXPORTER_OTLP_ENDPOINT || "http://localhost:4318").replace(/\/+$/, "")}/v1/traces`;
  const exporters = (named.length ? named.filter((e) => e !== "none") : endpoint ? ["otlp"] : []) as ("otlp" | "console")[];
  for (const name of ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]) {
    const p = env[name];
    if (p && p !== "http/protobuf")
      throw new ConfigError(`${name} must be http/protobuf (the only OTLP protocol this build exports), got ${JSON.stringify(p)}`);
  }
  const sampler = (env.OTEL_TRACES_SAMPLER || "parentbased_always_on").toLowerCase();
  if (!SAMPLERS.includes(sampler)) throw new ConfigError(`OTEL_TRACES_SAMPLER must be one of ${SAMPLERS.join(", ")}, got ${JSON.stringify(sampler)}`);
  const arg = env.OTEL_TRACES_SAMPLER_ARG;
  const samplerArg = arg === undefined || arg === "" ? 1 : Number(arg);
  if (!(samplerArg >= 0 && samplerArg <= 1)) throw new ConfigError(`OTEL_TRACES_SAMPLER_ARG must be a number between 0 and 1, got ${JSON.stringify(arg)}`);
  return {
    enabled: !disabled && exporters.length > 0,
    exporters,
    otlpUrl,
    serviceName: env.OTEL_SERVICE_NAME || `infera-${service}`,
    sampler,
    samplerArg,
    bsp: {
      scheduledDelayMillis: positiveInt(env, "OTEL_BSP_SCHEDULE_DELAY"),
      maxQueueSize: positiveInt(env, "OTEL_BSP_MAX_QUEUE_SIZE"),
      maxExportBatchSize: positiveInt(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
      exportTimeoutMillis: positiveInt(env, "OTEL_BSP_EXPORT_TIMEOUT"),
    },
  };
}

/** A span that records nothing and carries its parent's context on. */
class PassThroughSpan implements TraceSpan {
  constructor(
    readonly traceparent: string | undefined,
    readonly traceId: string | undefined,
  ) {}
  set(): void {}
  setAttributes(): void {}
  fail(): void {}
  end(): void {}
}

const NO_TRACE = new PassThroughSpan(undefined, undefined);

/** Tracing off: nothing recorded, a client's traceparent carried on unchanged. */
export const noTracing: Tracing = {
  enabled: false,
  start(_name, options) {
    const parent = options?.parent;
    if (parent === undefined) return NO_TRACE;
    if (typeof parent !== "string") return parent;
    const p = parseTraceparent(parent);
    return p ? new PassThroughSpan(formatTraceparent(p), p.traceId) : NO_TRACE;
  },
  stop: async () => {},
};

/**
 * The wall clock minus `performance.now()`, to a few microseconds: read at the moment
 * `Date.now()` ticks (it is whole milliseconds), and again every minute, because
 * `performance.timeOrigin` drifts from the wall clock over a process's life. Spans of
 * different processes are compared on one timeline, so every span time goes through it.
 */
let clockOffset = 0;
let offsetAt = Number.NEGATIVE_INFINITY;
function wallOffset(): number {
  const now = performance.now();
  if (now - offsetAt > 60_000) {
    const d0 = Date.now();
    let d = d0;
    while (d === d0) d = Date.now();
    offsetAt = performance.now();
    clockOffset = d - offsetAt;
  }
  return clockOffset;
}

/** Epoch milliseconds for a time given as `performance.now()` (or already epoch ms; default now). */
function epochMs(t: number | undefined): number {
  if (t !== undefined && t > 1e12) return t;
  return (t ?? performance.now()) + wallOffset();
}

class SdkSpan implements TraceSpan {
  private header: string | undefined;
  constructor(
    readonly span: Api.Span,
    private readonly api: typeof Api,
  ) {}
  get traceparent(): string {
    if (this.header === undefined) {
      const c = this.span.spanContext();
      this.header = formatTraceparent({ traceId: c.traceId, spanId: c.spanId, flags: c.traceFlags });
    }
    return this.header;
  }
  get traceId(): string {
    return this.span.spanContext().traceId;
  }
  set(key: string, value: AttributeValue | undefined): void {
    if (value !== undefined) this.span.setAttribute(key, value);
  }
  setAttributes(attributes: Attributes): void {
    for (const k in attributes) this.set(k, attributes[k]);
  }
  fail(code: string, message?: string): void {
    this.span.setAttribute("error.type", code);
    this.span.setStatus({ code: this.api.SpanStatusCode.ERROR, message });
  }
  end(at?: number): void {
    this.span.end(epochMs(at));
  }
}

/** Tracing as `tracingConfig` read it from the environment: the SDK (imported only now) or `noTracing`. */
export async function startTracing(config: TracingConfig, logger: Logger): Promise<Tracing> {
  if (!config.enabled) return noTracing;
  const [api, sdk, resources] = await Promise.all([import("@opentelemetry/api"), import("@opentelemetry/sdk-trace"), import("@opentelemetry/resources")]);
  const processors: import("@opentelemetry/sdk-trace").SpanProcessor[] = [];
  if (config.exporters.includes("otlp")) {
    const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-proto");
    processors.push(new sdk.BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: config.otlpUrl }), ...config.bsp }));
  }
  if (config.exporters.includes("console")) processors.push(new sdk.SimpleSpanProcessor({ exporter: new sdk.ConsoleSpanExporter() }));
  const ratio = new sdk.TraceIdRatioBasedSampler(config.samplerArg);
  const root = {
    always_on: new sdk.AlwaysOnSampler(),
    always_off: new sdk.AlwaysOffSampler(),
    traceidratio: ratio,
    parentbased_always_on: new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() }),
    parentbased_always_off: new sdk.ParentBasedSampler({ root: new sdk.AlwaysOffSampler() }),
    parentbased_traceidratio: new sdk.ParentBasedSampler({ root: ratio }),
  }[config.sampler];
  const resource = resources
    .resourceFromAttributes({ "service.name": config.serviceName, "service.namespace": "infera" })
    .merge(resources.detectResources({ detectors: [resources.resourceAttributesEnvDetector, resources.serviceNameEnvDetector] }));
  const provider = new sdk.TracerProvider({ resource, sampler: root, spanProcessors: processors });
  const tracer = provider.getTracer("infera");
  const KINDS: Record<SpanKindName, Api.SpanKind> = {
    internal: api.SpanKind.INTERNAL,
    server: api.SpanKind.SERVER,
    client: api.SpanKind.CLIENT,
    producer: api.SpanKind.PRODUCER,
    consumer: api.SpanKind.CONSUMER,
  };
  const parentContext = (parent: TraceSpan | string | undefined): Api.Context => {
    if (parent === undefined) return api.ROOT_CONTEXT;
    if (parent instanceof SdkSpan) return api.trace.setSpan(api.ROOT_CONTEXT, parent.span);
    const p = parseTraceparent(typeof parent === "string" ? parent : parent.traceparent);
    return p ? api.trace.setSpanContext(api.ROOT_CONTEXT, { traceId: p.traceId, spanId: p.spanId, traceFlags: p.flags, isRemote: true }) : api.ROOT_CONTEXT;
  };
  logger.info({ serviceName: config.serviceName, exporters: config.exporters, sampler: config.sampler }, "tracing on");
  return {
    enabled: true,
    start(name, options = {}) {
      const attributes: Api.Attributes = {};
      for (const k in options.attributes) {
        const v = options.attributes[k];
        if (v !== undefined) attributes[k] = v;
      }
      const span = tracer.startSpan(
        name,
        { kind: KINDS[options.kind ?? "internal"], startTime: epochMs(options.startTime), attributes },
        parentContext(options.parent),
      );
      return new SdkSpan(span, api);
    },
    stop: () => provider.shutdown().catch((err: unknown) => logger.warn({ err }, "could not export the last spans")),
  };
}
