import { createMetricsRegistry } from "@infera/core";
import { Counter, Gauge, Histogram, type Metric, type MetricValueWithName, type Registry } from "prom-client";

export interface GatewayMetrics {
  registry: Registry;
  requests: Counter<"route" | "status">;
  duration: Histogram<"route" | "model">;
  ttft: Histogram<"model">;
  itl: TokenGapHistogram;
  tokens: Counter<"model" | "direction">;
  errors: Counter<"code">;
  enqueued: Counter<"deployment">;
  assignments: Counter<"outcome">;
  placements: Counter<"path" | "reason">;
  agentCalls: Counter<"outcome">;
  openStreams: Gauge;
  usagePending: Gauge;
  genai: GenAiMetrics;
}

/** OpenTelemetry's GenAI semantic-convention labels, in Prometheus form, plus the tenant's tier (never the key). */
type GenAiLabels = "gen_ai_operation_name" | "gen_ai_request_model" | "tenant_tier";

/**
 * The GenAI semantic conventions' metrics (`gen_ai.server.request.duration`,
 * `gen_ai.server.time_to_first_token`, `gen_ai.server.time_per_output_token`,
 * `gen_ai.client.token.usage`) with the names and buckets an OTel Prometheus exporter gives
 * them, so dashboards made for Envoy AI Gateway, LiteLLM or vLLM's own OTel metrics chart ours.
 */
export interface GenAiMetrics {
  requestDuration: Histogram<GenAiLabels | "error_type">;
  timeToFirstToken: Histogram<GenAiLabels>;
  timePerOutputToken: Histogram<GenAiLabels>;
  tokenUsage: Histogram<GenAiLabels | "gen_ai_token_type">;
}

const GENAI_LABELS: GenAiLabels[] = ["gen_ai_operation_name", "gen_ai_request_model", "tenant_tier"];

function createGenAiMetrics(registry: Registry): GenAiMetrics {
  return {
    requestDuration: new Histogram({
      name: "gen_ai_server_request_duration_seconds",
      help: "gen_ai.server.request.duration: time from the request to its last byte; error_type set when it failed.",
      labelNames: [...GENAI_LABELS, "error_type"],
      buckets: [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92],
      registers: [registry],
    }),
    timeToFirstToken: new Histogram({
      name: "gen_ai_server_time_to_first_token_seconds",
      help: "gen_ai.server.time_to_first_token: time from the request to the first output token (streamed) or the answer.",
      labelNames: GENAI_LABELS,
      buckets: [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10],
      registers: [registry],
    }),
    timePerOutputToken: new Histogram({
      name: "gen_ai_server_time_per_output_token_seconds",
      help: "gen_ai.server.time_per_output_token: (duration - time to first token) / (output tokens - 1).",
      labelNames: GENAI_LABELS,
      buckets: [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5],
      registers: [registry],
    }),
    tokenUsage: new Histogram({
      name: "gen_ai_client_token_usage",
      help: "gen_ai.client.token.usage: tokens per request, gen_ai_token_type input or output.",
      labelNames: [...GENAI_LABELS, "gen_ai_token_type"],
      buckets: [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864],
      registers: [registry],
    }),
  };
}

export function createGatewayMetrics(): GatewayMetrics {
  const registry = createMetricsRegistry("gateway");
  return {
    registry,
    requests: new Counter({
      name: "gateway_requests_total",
      help: "HTTP requests by route and status.",
      labelNames: ["route", "status"],
      registers: [registry],
    }),
    duration: new Histogram({
      name: "gateway_request_duration_seconds",
      help: "Time from request to the last byte (vllm:e2e_request_latency_seconds' meaning), by route and model (empty: not an inference request).",
      labelNames: ["route", "model"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: [registry],
    }),
    ttft: new Histogram({
      name: "gateway_time_to_first_token_seconds",
      help: "Time from request to the first token sent to the client.",
      labelNames: ["model"],
      buckets: [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10],
      registers: [registry],
    }),
    itl: new TokenGapHistogram(
      "gateway_inter_token_latency_seconds",
      "Time between tokens sent to the client.",
      [0.0005, 0.001, 0.005, 0.01, 0.015, 0.02, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1],
      registry,
    ),
    tokens: new Counter({
      name: "gateway_tokens_total",
      help: "Tokens by model, in (prompt) and out (completion).",
      labelNames: ["model", "direction"],
      registers: [registry],
    }),
    errors: new Counter({ name: "gateway_errors_total", help: "Error answers by code.", labelNames: ["code"], registers: [registry] }),
    enqueued: new Counter({ name: "gateway_enqueued_total", help: "Requests put on a deployment's queue.", labelNames: ["deployment"], registers: [registry] }),
    placements: new Counter({
      name: "gateway_placements_total",
      help: "How requests got their replica: on a slot the scheduler lent this gateway (fast) or through the queue (queue; reason: no_lease, own_queued, lease_expiring, lends_none, slots_taken, fast_path_off); first attempts.",
      labelNames: ["path", "reason"],
      registers: [registry],
    }),
    assignments: new Counter({
      name: "gateway_assignments_total",
      help: "Scheduler answers received, by outcome.",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    agentCalls: new Counter({
      name: "gateway_agent_calls_total",
      help: "gRPC Generate calls to agents, by outcome.",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    openStreams: new Gauge({ name: "gateway_open_streams", help: "Client streams open now.", registers: [registry] }),
    usagePending: new Gauge({ name: "gateway_usage_records_pending", help: "Usage records not yet written to Postgres.", registers: [registry] }),
    genai: createGenAiMetrics(registry),
  };
}

/**
 * The batch pacer's state per deployment, read at each scrape: `gateway_batch_limit` (the lines
 * this gateway may have in flight there now: the back-off's AIMD limit within the spare slots)
 * and `gateway_batch_in_flight` (those it has). A deployment the pacer forgot is not listed.
 */
export function registerBatchPacingMetrics(registry: Registry, read: () => { deploymentId: string; limit: number; inFlight: number }[]): void {
  const gauge = (name: string, help: string, value: (d: { limit: number; inFlight: number }) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["deployment"],
      registers: [registry],
      collect() {
        this.reset();
        for (const d of read()) this.set({ deployment: d.deploymentId }, value(d));
      },
    });
  gauge("gateway_batch_limit", "Batch lines this gateway may have in flight per deployment now (the back-off's limit within the spare slots).", (d) => d.limit);
  gauge("gateway_batch_in_flight", "Batch lines this gateway has in flight per deployment.", (d) => d.inFlight);
}

/** One exposition line's value as prom-client's registry reads it (`sharedLabels` come after `le`, as prom-client orders them). */
type GapValue = MetricValueWithName<string> & { sharedLabels: { model: string } };

/** One model's series of a TokenGapHistogram. */
interface GapSeries {
  model: string;
  /** Observations per bucket (not cumulative); the last is +Inf's own. */
  counts: Float64Array;
  sum: number;
  count: number;
}

/**
 * A Prometheus histogram with one label (`model`) for what is observed once per relayed token:
 * the same exposition as prom-client's Histogram (buckets, `+Inf`, `_sum`, `_count`, the
 * registry's default labels), but an observation is a bucket search and three additions on the
 * series the request holds. prom-client's observe validates and hashes the labels every time,
 * which was ~4% of the relay's CPU per token.
 */
export class TokenGapHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  /** As prom-client's metrics say theirs (what tools that read a registry look at). */
  readonly labelNames: readonly string[] = ["model"];
  private readonly series = new Map<string, GapSeries>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
    registry: Registry,
  ) {
    registry.registerMetric(this as unknown as Metric);
  }

  /** Zeroes every series in place (requests open now keep theirs); as prom-client's, none is shown until it is observed again. */
  reset(): void {
    for (const s of this.series.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }

  /** The series for a model: `observe(seconds)`. */
  labels(l: { model: string }): { observe(value: number): void } {
    let s = this.series.get(l.model);
    if (!s) {
      s = { model: l.model, counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
      this.series.set(l.model, s);
    }
    const series = s;
    const buckets = this.buckets;
    return {
      observe(value: number): void {
        let i = 0;
        while (i < buckets.length && value > buckets[i]!) i++;
        series.counts[i]!++;
        series.sum += value;
        series.count++;
      },
    };
  }

  /** What the registry reads of a metric (prom-client's `MetricObjectWithValues`). */
  async get(): Promise<{ name: string; help: string; type: "histogram"; values: MetricValueWithName<string>[]; aggregator: "sum" }> {
    const m = await this.getForPromString();
    return { ...m, values: m.values.map(({ sharedLabels, ...v }) => ({ ...v, labels: { ...v.labels, ...sharedLabels } })) };
  }

  /** The text exposition's form: the model in `sharedLabels`, after `le`, as prom-client writes it. */
  async getForPromString(): Promise<{ name: string; help: string; type: "histogram"; values: GapValue[]; aggregator: "sum" }> {
    const values: GapValue[] = [];
    for (const s of this.series.values()) {
      // As prom-client: a series exists from its first observation (and again after a reset).
      if (s.count === 0) continue;
      const shared = { model: s.model };
      const bucket = `${this.name}_bucket`;
      let acc = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        acc += s.counts[i]!;
        values.push({ metricName: bucket, labels: { le: this.buckets[i]! }, sharedLabels: shared, value: acc });
      }
      values.push({ metricName: bucket, labels: { le: "+Inf" }, sharedLabels: shared, value: s.count });
      values.push({ metricName: `${this.name}_sum`, labels: {}, sharedLabels: shared, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: {}, sharedLabels: shared, value: s.count });
    }
    return { name: this.name, help: this.help, type: "histogram", values, aggregator: "sum" };
  }
}
