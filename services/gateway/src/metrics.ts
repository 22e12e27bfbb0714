import { createMetricsRegistry } from "@infera/core";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export interface GatewayMetrics {
  registry: Registry;
  requests: Counter<"route" | "status">;
  duration: Histogram<"route">;
  ttft: Histogram<"model">;
  itl: Histogram<"model">;
  tokens: Counter<"model" | "direction">;
  errors: Counter<"code">;
  enqueued: Counter<"deployment">;
  assignments: Counter<"outcome">;
  agentCalls: Counter<"outcome">;
  openStreams: Gauge;
  usagePending: Gauge;
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
      help: "Time from request to the last byte (vllm:e2e_request_latency_seconds' meaning).",
      labelNames: ["route"],
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
    itl: new Histogram({
      name: "gateway_inter_token_latency_seconds",
      help: "Time between tokens sent to the client.",
      labelNames: ["model"],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.015, 0.02, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    }),
    tokens: new Counter({
      name: "gateway_tokens_total",
      help: "Tokens by model, in (prompt) and out (completion).",
      labelNames: ["model", "direction"],
      registers: [registry],
    }),
    errors: new Counter({ name: "gateway_errors_total", help: "Error answers by code.", labelNames: ["code"], registers: [registry] }),
    enqueued: new Counter({ name: "gateway_enqueued_total", help: "Requests put on a deployment's queue.", labelNames: ["deployment"], registers: [registry] }),
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
  };
}
