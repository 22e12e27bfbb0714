/**
 * One inference request, end to end: admission (rate limits), a leased slot (the fast path)
 * or enqueue on the deployment's queue and wait for the scheduler's assignment, the agent call (`agent-call.ts`), and what
 * is recorded when it ends (`outcome.ts`). A replica that fails before the first byte sends
 * the request back to the front of the queue (up to maxAttempts), that replica excluded.
 */
import type { ServerResponse } from "node:http";
import type { EndpointKind } from "@infera/contracts";
import { type Logger, lazyChild, ownedBuffer, PlatformError } from "@infera/core";
import { DEFAULT_BLOCK_CHARS, prefixHashes } from "@infera/policy";
import { type Assigned, type InferJob, PRIORITY, type QueueClient } from "@infera/queue";
import type { ResolvedModel } from "@infera/registry";
import { noTracing, type TraceSpan, type Tracing } from "@infera/telemetry";
import type { AccessLog } from "./access-log.ts";
import { callAgent } from "./agent-call.ts";
import type { AgentClients } from "./agents.ts";
import type { Principal } from "./auth.ts";
import { errorBody } from "./errors.ts";
import { GENAI_OPERATION } from "./genai.ts";
import type { GatewayMetrics } from "./metrics.ts";
import { type RequestAttributes, type RequestUsage, recordFinished } from "./outcome.ts";
import { type Admission, RateLimited, type RateLimiter } from "./ratelimit.ts";
import { sendError } from "./responses.ts";
import type { UsageRecorder } from "./usage.ts";

export type { EndpointKind, RequestAttributes };

export interface InferenceDeps {
  queue: QueueClient;
  agents: AgentClients;
  usage: UsageRecorder;
  metrics: GatewayMetrics;
  logger: Logger;
  gatewayId: string;
  queueWaitMs: number;
  maxAttempts: number;
  /** Per-key limits and the tenant cap per model; absent: none (unit tests). */
  limiter?: RateLimiter;
  /** A streamed call whose replica is silent this long (before its first event or between events) is given up on; default 60 s. */
  agentIdleTimeoutMs?: number;
  /** A non-streamed call (its only events come at the end) is given up on after this; default 600 s. */
  agentCallTimeoutMs?: number;
  /** Spans of the request (default: none, the client's traceparent carried on). */
  tracing?: Tracing;
  /** One line per finished request; absent: none. */
  accessLog?: AccessLog;
  /** Aborts when a stopping gateway's grace is over: calls still running end with an error. */
  stopping?: AbortSignal;
}

export interface InferenceRequest {
  /** The platform's own id (request-id.ts): what everything keys on. */
  requestId: string;
  /** The client's own id for it, if it sent one: logged, echoed, sent on to the engine; keys nothing. */
  clientRequestId?: string;
  /** The client's W3C `traceparent`, if it sent one: the request's trace continues it. */
  traceparent?: string;
  principal: Principal;
  model: ResolvedModel;
  endpoint: EndpointKind;
  /** The body for the engine (model already the served name). */
  engineBody: Record<string, unknown>;
  stream: boolean;
  includeUsage: boolean;
  /** Text the prompt starts with, for prefix-affine placement. */
  promptText: string;
  /** OpenAI's `prompt_cache_key`: requests that share it prefer the same replica. */
  cacheKey?: string;
  /** Prompt tokens (the model's tokenizer, or a bound that never undercounts). */
  promptTokens: number;
  /** Prompt tokens plus the most output tokens it may produce: what admission reserves. */
  estimatedTokens: number;
  serviceTier?: string | null;
  /** What the usage record keeps of the request as sent. */
  attributes?: RequestAttributes;
  route: string;
  startedAt: number;
}

/**
 * `prompt_cache_key` as the first prefix block (one block of its own, padded), so requests
 * with the same key share at least that block however their prompts differ, and then their
 * prompts' blocks.
 */
function cacheKeyBlock(key: string): string {
  return `\u0001${key}`.slice(0, DEFAULT_BLOCK_CHARS).padEnd(DEFAULT_BLOCK_CHARS, "\u0000");
}

const PRIORITY_NAME: Record<number, string> = {
  [PRIORITY.requeued]: "requeued",
  [PRIORITY.priority]: "priority",
  [PRIORITY.standard]: "standard",
  [PRIORITY.batch]: "batch",
};

/** The request's own span (the gateway's: auth, validation and limits happened in it), named as the GenAI conventions name it. */
function requestSpan(tracing: Tracing, r: InferenceRequest): TraceSpan {
  const operation = GENAI_OPERATION[r.endpoint];
  return tracing.start(`${operation} ${r.model.modelName}`, {
    parent: r.traceparent,
    kind: "server",
    startTime: r.startedAt,
    attributes: {
      "gen_ai.operation.name": operation,
      "gen_ai.request.model": r.model.modelName,
      "gen_ai.provider.name": r.model.engine,
      "http.request.method": "POST",
      "http.route": r.route,
      "infera.request.id": r.requestId,
      "infera.tenant.id": r.principal.tenantId,
      "infera.tenant.tier": r.principal.tier,
      "infera.deployment.id": r.model.deploymentId,
      "infera.stream": r.stream,
    },
  });
}

function priorityOf(r: InferenceRequest): number {
  if (r.serviceTier === "priority" || r.principal.tier === "priority") return PRIORITY.priority;
  return r.principal.tier === "batch" ? PRIORITY.batch : PRIORITY.standard;
}

export async function runInference(deps: InferenceDeps, res: ServerResponse, r: InferenceRequest): Promise<void> {
  const { queue, metrics } = deps;
  const headers: Record<string, string> = { "x-request-id": r.requestId };
  if (r.clientRequestId !== undefined) headers["x-client-request-id"] = r.clientRequestId;
  const gone = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) gone.abort();
  };
  res.on("close", onClose);
  if (r.stream) metrics.openStreams.inc();
  const a = r.attributes;
  const log = lazyChild(
    deps.logger,
    a && (a.endUser || a.safetyIdentifier || a.metadata)
      ? { requestId: r.requestId, clientRequestId: r.clientRequestId, user: a.endUser, safetyIdentifier: a.safetyIdentifier, metadata: a.metadata }
      : { requestId: r.requestId, clientRequestId: r.clientRequestId },
  );
  const prefixes =
    r.endpoint === "chat" || r.endpoint === "completion" ? prefixHashes(r.cacheKey ? cacheKeyBlock(r.cacheKey) + r.promptText : r.promptText) : [];
  const exclude: string[] = [];
  const deadline = Date.now() + deps.queueWaitMs;
  const idleMs = r.stream ? (deps.agentIdleTimeoutMs ?? 60_000) : (deps.agentCallTimeoutMs ?? 600_000);
  const request = { ...r, tenantId: r.principal.tenantId };
  let status = "ok";
  let usage: RequestUsage | undefined;
  let assigned: Assigned | undefined;
  let admission: Admission | undefined;
  const tracing = deps.tracing ?? noTracing;
  const span = requestSpan(tracing, r);
  // W3C Trace Context level 2: the client learns which trace its request is (only when it is recorded).
  if (tracing.enabled) headers.traceresponse = span.traceparent!;
  let replicaId: string | undefined;
  let queueMs = 0;
  let attempts = 0;
  // Until its record is in (finally, below): a stopping gateway's usage flush waits for it.
  deps.usage.started();
  try {
    // Inside the try: a body that cannot be serialised is answered, not left hanging.
    // Kept for the call and its retries: in memory of its own, not a slab shared with other requests.
    const body = ownedBuffer(JSON.stringify(r.engineBody));
    // One Redis round trip: revocation, rpm, tpm (reserving the estimate), concurrency, tenant cap.
    if (deps.limiter) {
      const limits = tracing.enabled ? tracing.start("infera.gateway.admission", { parent: span }) : undefined;
      try {
        admission = await deps.limiter.admit(r.principal, r.model.deploymentId, r.requestId, r.estimatedTokens);
      } catch (err) {
        if (err instanceof RateLimited) Object.assign(headers, err.headers);
        limits?.fail(err instanceof PlatformError ? err.code : "internal");
        throw err;
      } finally {
        limits?.end();
      }
      Object.assign(headers, admission.headers);
    }
    for (let attempt = 0; ; attempt++) {
      attempts = attempt + 1;
      const priority = attempt === 0 ? priorityOf(r) : PRIORITY.requeued;
      const enqueuedAt = performance.now();
      // The fast path: a slot the scheduler lent this gateway, placed here without Redis (a retry always queues).
      const fast =
        attempt === 0
          ? queue.place(r.model.deploymentId, {
              requestId: r.requestId,
              tenantId: request.tenantId,
              prefixHashes: prefixes,
              estimatedTokens: r.estimatedTokens,
              promptTokens: r.promptTokens,
            })
          : undefined;
      const wait = fast
        ? fastPlacementSpan(tracing, span, fast)
        : tracing.start("infera.queue.wait", {
            parent: span,
            kind: "producer",
            attributes: {
              "messaging.system": "redis",
              "infera.deployment.id": r.model.deploymentId,
              "infera.queue.priority": PRIORITY_NAME[priority],
              "infera.queue.attempt": attempt,
            },
          });
      const job: InferJob = {
        requestId: r.requestId,
        gatewayId: deps.gatewayId,
        tenantId: r.principal.tenantId,
        keyId: r.principal.keyId,
        endpoint: r.endpoint,
        prefixHashes: prefixes,
        estimatedTokens: r.estimatedTokens,
        promptTokens: r.promptTokens,
        deadline,
        enqueuedAt: Date.now(),
        priority,
        excludeReplicas: exclude.length ? exclude : undefined,
        attempt,
        traceparent: wait.traceparent,
      };
      try {
        assigned = fast ?? (await queue.enqueue(r.model.deploymentId, job, gone.signal));
      } catch (err) {
        wait.fail(err instanceof PlatformError ? err.code : "internal");
        throw err;
      } finally {
        queueMs += performance.now() - enqueuedAt;
        if (assigned) wait.setAttributes({ "infera.replica.id": assigned.replicaId, "infera.scheduler.id": assigned.schedulerId });
        wait.end();
      }
      replicaId = assigned.replicaId;
      const call = tracing.start("infera.agent.v1.AgentService/Generate", {
        parent: span,
        kind: "client",
        attributes: {
          "rpc.system": "grpc",
          "rpc.service": "infera.agent.v1.AgentService",
          "rpc.method": "Generate",
          "server.address": assigned.address,
          "infera.replica.id": assigned.replicaId,
        },
      });
      const outcome = await callAgent({
        agents: deps.agents,
        metrics,
        log,
        assigned,
        request,
        body,
        res,
        headers,
        signal: gone.signal,
        stopping: deps.stopping,
        idleMs,
        traceparent: call.traceparent,
      });
      if (outcome.kind === "retry" || outcome.status !== "ok") call.fail(outcome.kind === "retry" ? "replica_unavailable" : outcome.status);
      call.end();
      if (outcome.kind === "done") {
        status = outcome.status;
        usage = outcome.usage;
        break;
      }
      queue.release(assigned, true);
      assigned = undefined;
      exclude.push(outcome.reason);
      metrics.agentCalls.inc({ outcome: "retry" });
      if (attempt + 1 >= deps.maxAttempts) throw new PlatformError("unavailable", "No replica could serve the request; try again.", { retryAfterS: 2 });
      log.warn({ attempt, replica: outcome.reason }, "replica failed before the first byte; re-queued");
    }
  } catch (err) {
    const e = err instanceof PlatformError ? err : new PlatformError("internal", "The server had an error while processing your request.", { cause: err });
    status = gone.signal.aborted ? "cancelled" : e.code;
    if (!gone.signal.aborted && !res.headersSent) sendError(res, e, headers, metrics);
    else if (!gone.signal.aborted && !res.writableEnded) {
      metrics.errors.inc({ code: e.code });
      res.end(`data: ${JSON.stringify(errorBody(e))}\n\n`);
    }
    if (e.code === "internal") log.error({ err: e.cause ?? e }, "request failed");
  } finally {
    res.off("close", onClose);
    if (r.stream) metrics.openStreams.dec();
    void admission?.settle(usage ? usage.promptTokens + usage.completionTokens : 0);
    if (assigned) {
      // The scheduler's fair queue charges what the request really used (output tokens at completion).
      const used = usage && {
        tenantId: r.principal.tenantId,
        estimatedTokens: r.estimatedTokens,
        promptTokens: usage.promptTokens,
        completionTokens: usage.completionTokens,
      };
      queue.release(assigned, false, used);
    }
    recordFinished(deps, {
      ...request,
      keyId: r.principal.keyId,
      statusCode: res.statusCode,
      status,
      usage,
      assigned: assigned !== undefined,
      attributes: r.attributes,
      tier: r.principal.tier,
      stream: r.stream,
      replicaId,
      queueMs: attempts ? queueMs : undefined,
      attempts,
      traceId: span.traceId,
    });
    deps.usage.finished();
    if (tracing.enabled) endRequestSpan(span, res.statusCode, status, usage);
  }
}

/** A fast-path placement: on the gateway, in place of the queue wait and the scheduler's placement. */
function fastPlacementSpan(tracing: Tracing, parent: TraceSpan, a: Assigned): TraceSpan {
  return tracing.start("infera.gateway.place", {
    parent,
    attributes: { "infera.deployment.id": a.deploymentId, "infera.placement.path": "fast", "infera.slot.epoch": a.epoch },
  });
}

/** The request span's outcome: GenAI usage and finish reasons (never content), the HTTP status, the error's code. */
function endRequestSpan(span: TraceSpan, statusCode: number, status: string, usage: RequestUsage | undefined): void {
  span.setAttributes({
    "http.response.status_code": statusCode || 499,
    "gen_ai.usage.input_tokens": usage?.promptTokens,
    "gen_ai.usage.output_tokens": usage?.completionTokens,
    "gen_ai.response.finish_reasons": usage?.finishReasons?.length ? usage.finishReasons : undefined,
    "infera.ttft_ms": usage?.ttftMs ? Math.round(usage.ttftMs * 10) / 10 : undefined,
  });
  if (status !== "ok") span.fail(status);
  span.end();
}
