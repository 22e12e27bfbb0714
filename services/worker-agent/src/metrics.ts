import { createMetricsRegistry } from "@infera/core";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export interface AgentMetrics {
  registry: Registry;
  requests: Counter<"endpoint" | "status">;
  unauthenticated: Counter<"method" | "reason">;
  engineHealthy: Gauge;
  engineRunning: Gauge;
  engineWaiting: Gauge;
  engineKvCache: Gauge;
  inflight: Gauge;
  ttft: Histogram;
  embeddingBatchSize: Histogram;
}

export function createAgentMetrics(): AgentMetrics {
  const registry = createMetricsRegistry("agent");
  return {
    registry,
    requests: new Counter({
      name: "agent_requests_total",
      help: "Requests the agent ran on its engine, by endpoint and outcome (ok|engine_error|cancelled|duplicate).",
      labelNames: ["endpoint", "status"],
      registers: [registry],
    }),
    unauthenticated: new Counter({
      name: "agent_unauthenticated_calls_total",
      help: "gRPC calls refused with UNAUTHENTICATED, by method (generate|cancel|health) and reason (missing|wrong token).",
      labelNames: ["method", "reason"],
      registers: [registry],
    }),
    engineHealthy: new Gauge({ name: "agent_engine_healthy", help: "1 when the engine answers its health check.", registers: [registry] }),
    engineRunning: new Gauge({
      name: "agent_engine_requests_running",
      help: "Requests running in the engine (vllm:num_requests_running).",
      registers: [registry],
    }),
    engineWaiting: new Gauge({
      name: "agent_engine_requests_waiting",
      help: "Requests waiting in the engine (vllm:num_requests_waiting).",
      registers: [registry],
    }),
    engineKvCache: new Gauge({
      name: "agent_engine_kv_cache_usage_ratio",
      help: "Engine KV-cache use, 0..1 (vllm:kv_cache_usage_perc).",
      registers: [registry],
    }),
    inflight: new Gauge({ name: "agent_inflight_requests", help: "gRPC Generate calls open on this agent.", registers: [registry] }),
    ttft: new Histogram({
      name: "agent_engine_time_to_first_token_seconds",
      help: "Engine time to first token seen by the agent.",
      buckets: [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10],
      registers: [registry],
    }),
    embeddingBatchSize: new Histogram({
      name: "agent_embedding_batch_size",
      help: "Embedding requests coalesced into one engine call.",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
      registers: [registry],
    }),
  };
}
