/**
 * The engine's /metrics: vLLM V1's families (every series labelled `model_name` and
 * `engine`), and in TGI mode TGI's families too (labelled `model_name`). Fed by the
 * scheduler through the EngineObserver interface.
 */
import { Counter, Exposition, Gauge, Histogram } from "./prometheus.ts";

export interface EngineGauges {
  running(): number;
  waiting(): number;
  kvUsage(): number;
}

export interface AdmitEvent {
  queueMs: number;
  promptTokens: number;
  cachedTokens: number;
}

export interface FinishEvent {
  e2eMs: number;
  queueMs: number;
  /** One per sequence: "stop" | "length". */
  reasons: readonly string[];
  generatedTokens: number;
}

/** What the scheduler reports as requests move through it. */
export interface EngineObserver {
  admitted(e: AdmitEvent): void;
  generated(tokens: number): void;
  firstToken(ttftMs: number): void;
  interToken(ms: number, times: number): void;
  finished(e: FinishEvent): void;
  aborted(sequences: number): void;
  /** A request answered with an error (injected fault, overload, validation). */
  failed(kind: string): void;
}

const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
const ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const REQUEST_BUCKETS = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];
const TGI_DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const TGI_TOKEN_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192];

export interface EngineMetrics extends EngineObserver {
  render(): string;
}

export function createEngineMetrics(options: { model: string; tgi: boolean; gauges: EngineGauges }): EngineMetrics {
  const { model, gauges } = options;
  const base = { engine: "0", model_name: model };
  const x = new Exposition();
  x.add(new Gauge("vllm:num_requests_running", "Number of requests in model execution batches.", base, gauges.running));
  x.add(new Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", base, gauges.waiting));
  x.add(new Gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", base, gauges.kvUsage));
  const promptTokens = x.add(new Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", base)).child();
  const generationTokens = x.add(new Counter("vllm:generation_tokens", "Number of generation tokens processed.", base)).child();
  const success = x.add(new Counter("vllm:request_success", "Count of successfully processed requests.", base));
  const successBy = new Map<string, { inc(n?: number): void }>();
  for (const reason of ["stop", "length", "abort"]) successBy.set(reason, success.child({ finished_reason: reason }));
  const prefixQueries = x.add(new Counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.", base)).child();
  const prefixHits = x.add(new Counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", base)).child();
  const ttft = x.add(new Histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", base, TTFT_BUCKETS));
  const itl = x.add(new Histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", base, ITL_BUCKETS));
  const e2e = x.add(new Histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", base, REQUEST_BUCKETS));
  const queue = x.add(new Histogram("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", base, REQUEST_BUCKETS));

  let tgi: {
    duration: Histogram;
    queueDuration: Histogram;
    generated: Histogram;
    failure: Counter;
    success: { inc(n?: number): void };
    count: { inc(n?: number): void };
  } | null = null;
  if (options.tgi) {
    const tb = { model_name: model };
    x.add(new Gauge("tgi_queue_size", "Requests waiting in the router queue.", tb, gauges.waiting));
    x.add(new Gauge("tgi_batch_current_size", "Requests in the current batch.", tb, gauges.running));
    tgi = {
      count: x.add(new Counter("tgi_request_count", "Requests received.", tb, "")).child(),
      success: x.add(new Counter("tgi_request_success", "Requests that succeeded.", tb, "")).child(),
      failure: x.add(new Counter("tgi_request_failure", "Requests that failed, by error type.", tb, "")),
      duration: x.add(new Histogram("tgi_request_duration", "Request duration in seconds.", tb, TGI_DURATION_BUCKETS)),
      queueDuration: x.add(new Histogram("tgi_request_queue_duration", "Time spent in the queue in seconds.", tb, TGI_DURATION_BUCKETS)),
      generated: x.add(new Histogram("tgi_request_generated_tokens", "Generated tokens per request.", tb, TGI_TOKEN_BUCKETS)),
    };
  }

  return {
    render: () => x.render(),
    admitted(e) {
      promptTokens.inc(e.promptTokens);
      prefixQueries.inc(e.promptTokens);
      prefixHits.inc(e.cachedTokens);
      queue.observe(e.queueMs / 1000);
      tgi?.count.inc();
      tgi?.queueDuration.observe(e.queueMs / 1000);
    },
    generated(tokens) {
      generationTokens.inc(tokens);
    },
    firstToken(ms) {
      ttft.observe(ms / 1000);
    },
    interToken(ms, times) {
      itl.observe(ms / 1000, times);
    },
    finished(e) {
      for (const r of e.reasons) successBy.get(r === "length" ? "length" : "stop")?.inc();
      e2e.observe(e.e2eMs / 1000);
      if (tgi !== null) {
        tgi.success.inc();
        tgi.duration.observe(e.e2eMs / 1000);
        tgi.generated.observe(e.generatedTokens);
      }
    },
    aborted(sequences) {
      successBy.get("abort")?.inc(sequences);
    },
    failed(kind) {
      tgi?.failure.child({ err: kind }).inc();
    },
  };
}
