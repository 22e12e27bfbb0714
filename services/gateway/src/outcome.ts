/**
 * How a request ended, and what that costs: the outcome of one agent call (retry on another
 * replica, or done with a status and the usage the engine reported), the price of that
 * usage, and what is recorded when the request is over (metrics and the usage record).
 */
import type { EndpointKind } from "@infera/contracts";
import type { ResolvedModel } from "@infera/registry";
import type { AccessLog } from "./access-log.ts";
import { GENAI_OPERATION } from "./genai.ts";
import type { GatewayMetrics } from "./metrics.ts";
import type { UsageRecorder } from "./usage.ts";

/** OpenAI's request attributes the gateway applies itself: kept on the usage record and in the request log. */
export interface RequestAttributes {
  endUser?: string;
  safetyIdentifier?: string;
  metadata?: Record<string, string>;
  serviceTier?: string;
  /** The batch this request is a line of (Batch API). */
  batchId?: string;
}

/** What a request used, as the engine reported it (or as far as it was relayed). */
export interface RequestUsage {
  promptTokens: number;
  completionTokens: number;
  images: number;
  ttftMs: number;
  /** What the engine said ended each choice (`stop`, `length`, …), when it said. */
  finishReasons?: string[];
}

/** The end of one agent call: `retry` (nothing reached the client; `reason` is the replica to exclude) or `done`. */
export type Outcome = { kind: "retry"; reason: string } | { kind: "done"; status: string; usage?: RequestUsage };

/** USD for this much usage at the model's prices (rounded to 1e-10). */
export function costOf(m: ResolvedModel, prompt: number, completion: number, images: number): number {
  const usd = (prompt * m.priceInputPerM + completion * m.priceOutputPerM) / 1e6 + images * m.pricePerImage;
  return Math.round(usd * 1e10) / 1e10;
}

export interface FinishedRequest {
  requestId: string;
  clientRequestId?: string;
  tenantId: string;
  keyId: string;
  model: ResolvedModel;
  endpoint: EndpointKind;
  route: string;
  /** `performance.now()` when the request arrived. */
  startedAt: number;
  /** The HTTP status the client got (0: none, it went away). */
  statusCode: number;
  status: string;
  usage: RequestUsage | undefined;
  /** A replica was assigned (its tokens count even when the engine reported none). */
  assigned: boolean;
  /** OpenAI's user / safety_identifier / metadata / service_tier, for the usage record. */
  attributes?: RequestAttributes;
  /** The key's tier (metrics are labelled by it, never by key). */
  tier: string;
  stream: boolean;
  /** The last replica assigned, if any. */
  replicaId?: string;
  /** Enqueue to assignment over every attempt (ms). */
  queueMs?: number;
  attempts: number;
  traceId?: string;
}

/** The GenAI semconv metrics of one finished request (`metrics.ts`: GenAiMetrics). */
function observeGenAi(metrics: GatewayMetrics, f: FinishedRequest, durationMs: number): void {
  const labels = { gen_ai_operation_name: GENAI_OPERATION[f.endpoint], gen_ai_request_model: f.model.modelName, tenant_tier: f.tier };
  const g = metrics.genai;
  g.requestDuration.observe({ ...labels, error_type: f.status === "ok" ? "" : f.status }, durationMs / 1000);
  const u = f.usage;
  if (!u) return;
  if (u.ttftMs > 0) g.timeToFirstToken.observe(labels, u.ttftMs / 1000);
  if (f.stream && u.completionTokens > 1 && u.ttftMs > 0) g.timePerOutputToken.observe(labels, (durationMs - u.ttftMs) / 1000 / (u.completionTokens - 1));
  g.tokenUsage.observe({ ...labels, gen_ai_token_type: "input" }, u.promptTokens);
  if (f.endpoint === "chat" || f.endpoint === "completion") g.tokenUsage.observe({ ...labels, gen_ai_token_type: "output" }, u.completionTokens);
}

/**
 * Records a finished request: duration and status metrics (the platform's and the GenAI
 * semconv set), token counters, the access log line, and the usage record when the engine
 * reported usage.
 */
export function recordFinished(deps: { metrics: GatewayMetrics; usage: UsageRecorder; accessLog?: AccessLog }, f: FinishedRequest): void {
  const { metrics } = deps;
  const durationMs = performance.now() - f.startedAt;
  const status = f.statusCode || 499;
  metrics.duration.observe({ route: f.route, model: f.model.modelName }, durationMs / 1000);
  metrics.requests.inc({ route: f.route, status: String(status) });
  observeGenAi(metrics, f, durationMs);
  if (f.usage || f.assigned) {
    const u = f.usage ?? { promptTokens: 0, completionTokens: 0, images: 0, ttftMs: 0 };
    metrics.tokens.inc({ model: f.model.modelName, direction: "in" }, u.promptTokens);
    metrics.tokens.inc({ model: f.model.modelName, direction: "out" }, u.completionTokens);
  }
  deps.accessLog?.write({
    requestId: f.requestId,
    clientRequestId: f.clientRequestId,
    traceId: f.traceId,
    tenantId: f.tenantId,
    keyId: f.keyId,
    tier: f.tier,
    route: f.route,
    endpoint: f.endpoint,
    model: f.model.modelName,
    deploymentId: f.model.deploymentId,
    replicaId: f.replicaId,
    stream: f.stream,
    status,
    tokensIn: f.usage?.promptTokens ?? 0,
    tokensOut: f.usage?.completionTokens ?? 0,
    queueMs: f.queueMs,
    ttftMs: f.usage?.ttftMs || undefined,
    totalMs: durationMs,
    finishReason: f.usage?.finishReasons?.length ? f.usage.finishReasons.join(",") : undefined,
    errorCode: f.status === "ok" ? undefined : f.status,
    attempts: f.attempts,
  });
  if (!f.usage) return;
  deps.usage.record({
    request_id: f.requestId,
    tenant_id: f.tenantId,
    key_id: f.keyId,
    deployment_id: f.model.deploymentId,
    model: f.model.modelName,
    endpoint: f.endpoint,
    prompt_tokens: f.usage.promptTokens,
    completion_tokens: f.usage.completionTokens,
    images: f.usage.images,
    ttft_ms: f.usage.ttftMs,
    duration_ms: durationMs,
    status: f.status,
    cost_usd: costOf(f.model, f.usage.promptTokens, f.usage.completionTokens, f.usage.images),
    end_user: f.attributes?.endUser ?? null,
    safety_identifier: f.attributes?.safetyIdentifier ?? null,
    metadata: f.attributes?.metadata ? JSON.stringify(f.attributes.metadata) : null,
    service_tier: f.attributes?.serviceTier ?? null,
    client_request_id: f.clientRequestId ?? null,
    batch_id: f.attributes?.batchId ?? null,
  });
}
