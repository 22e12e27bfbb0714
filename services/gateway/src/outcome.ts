/**
 * How a request ended, and what that costs: the outcome of one agent call (retry on another
 * replica, or done with a status and the usage the engine reported), the price of that
 * usage, and what is recorded when the request is over (metrics and the usage record).
 */
import type { EndpointKind } from "@infera/contracts";
import type { ResolvedModel } from "@infera/registry";
import type { GatewayMetrics } from "./metrics.ts";
import type { UsageRecorder } from "./usage.ts";

/** OpenAI's request attributes the gateway applies itself: kept on the usage record and in the request log. */
export interface RequestAttributes {
  endUser?: string;
  safetyIdentifier?: string;
  metadata?: Record<string, string>;
  serviceTier?: string;
}

/** What a request used, as the engine reported it (or as far as it was relayed). */
export interface RequestUsage {
  promptTokens: number;
  completionTokens: number;
  images: number;
  ttftMs: number;
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
}

/** Records a finished request: duration and status metrics, token counters, and the usage record when the engine reported usage. */
export function recordFinished(deps: { metrics: GatewayMetrics; usage: UsageRecorder }, f: FinishedRequest): void {
  const { metrics } = deps;
  const durationMs = performance.now() - f.startedAt;
  metrics.duration.observe({ route: f.route }, durationMs / 1000);
  metrics.requests.inc({ route: f.route, status: String(f.statusCode || 499) });
  if (f.usage || f.assigned) {
    const u = f.usage ?? { promptTokens: 0, completionTokens: 0, images: 0, ttftMs: 0 };
    metrics.tokens.inc({ model: f.model.modelName, direction: "in" }, u.promptTokens);
    metrics.tokens.inc({ model: f.model.modelName, direction: "out" }, u.completionTokens);
  }
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
  });
}
