/**
 * One inference request, end to end: enqueue on the deployment's queue, wait for the
 * scheduler's assignment, call the assigned agent over gRPC, relay what it streams,
 * record usage. A replica that fails before the first byte sends the request back to
 * the front of the queue (up to maxAttempts); after the first byte, the client gets
 * an OpenAI-shaped error event.
 */
import type { ServerResponse } from "node:http";
import * as grpc from "@grpc/grpc-js";
import { PlatformError, type Logger } from "@infera/core";
import { create } from "@bufbuild/protobuf";
import { CancelRequestSchema, Endpoint, type EndpointKind, GenerateRequestSchema, type GenerateResponse } from "@infera/contracts";
import { type Assigned, type InferJob, PRIORITY, type QueueClient } from "@infera/queue";
import { prefixHashes } from "@infera/policy";
import type { ResolvedModel } from "@infera/registry";
import type { AgentClients } from "./agents.ts";
import type { Principal } from "./auth.ts";
import { errorBody, httpStatusOf } from "./errors.ts";
import type { GatewayMetrics } from "./metrics.ts";
import { RateLimited, type Admission, type RateLimiter } from "./ratelimit.ts";
import { conformChatBody, IMAGE_USAGE, SseRelay, type UsageOut } from "./relay.ts";
import type { UsageRecorder } from "./usage.ts";

export type { EndpointKind };

const GRPC_ENDPOINT: Record<EndpointKind, Endpoint> = {
  chat: Endpoint.CHAT_COMPLETIONS,
  completion: Endpoint.COMPLETIONS,
  embedding: Endpoint.EMBEDDINGS,
  image: Endpoint.IMAGES,
};

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
}

export interface InferenceRequest {
  requestId: string;
  principal: Principal;
  model: ResolvedModel;
  endpoint: EndpointKind;
  /** The body for the engine (model already the served name). */
  engineBody: Record<string, unknown>;
  stream: boolean;
  includeUsage: boolean;
  /** Text the prompt starts with, for prefix-affine placement. */
  promptText: string;
  estimatedTokens: number;
  serviceTier?: string | null;
  route: string;
  startedAt: number;
}

type Outcome =
  | { kind: "retry"; reason: string }
  | { kind: "done"; status: string; usage?: { promptTokens: number; completionTokens: number; images: number; ttftMs: number } };

const decoder = new TextDecoder();
/** How long a cancelled request waits for the agent's final usage. */
const CANCEL_GRACE_MS = 3000;

function costOf(m: ResolvedModel, prompt: number, completion: number, images: number): number {
  const usd = (prompt * m.priceInputPerM + completion * m.priceOutputPerM) / 1e6 + images * m.pricePerImage;
  return Math.round(usd * 1e10) / 1e10;
}

function engineError(e: { status: number; message: string; param: string; code: string }): PlatformError {
  // Client mistakes the engine caught stay 400s; overload stays 429; the rest are 502s.
  const status = e.status === 429 ? 429 : e.status >= 500 || e.status === 424 ? 502 : 400;
  return new PlatformError("engine_error", e.message, { status, param: e.param || null, retryable: status >= 429 });
}

export async function runInference(deps: InferenceDeps, res: ServerResponse, r: InferenceRequest): Promise<void> {
  const { queue, metrics } = deps;
  const headers: Record<string, string> = { "x-request-id": r.requestId };
  const gone = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) gone.abort();
  };
  res.on("close", onClose);
  if (r.stream) metrics.openStreams.inc();
  const log = deps.logger.child({ requestId: r.requestId });
  const body = Buffer.from(JSON.stringify(r.engineBody));
  const prefixes = r.endpoint === "chat" || r.endpoint === "completion" ? prefixHashes(r.promptText) : [];
  const priority =
    r.serviceTier === "priority" || r.principal.tier === "priority" ? PRIORITY.priority : r.principal.tier === "batch" ? PRIORITY.batch : PRIORITY.standard;
  const exclude: string[] = [];
  const deadline = Date.now() + deps.queueWaitMs;
  let status = "ok";
  let usage: { promptTokens: number; completionTokens: number; images: number; ttftMs: number } | undefined;
  let assigned: Assigned | undefined;
  let admission: Admission | undefined;
  try {
    // One Redis round trip: revocation, rpm, tpm (reserving the estimate), concurrency, tenant cap.
    if (deps.limiter) {
      try {
        admission = await deps.limiter.admit(r.principal, r.model.deploymentId, r.requestId, r.estimatedTokens);
      } catch (err) {
        if (err instanceof RateLimited) Object.assign(headers, err.headers);
        throw err;
      }
      Object.assign(headers, admission.headers);
    }
    for (let attempt = 0; ; attempt++) {
      const job: InferJob = {
        requestId: r.requestId,
        gatewayId: deps.gatewayId,
        tenantId: r.principal.tenantId,
        keyId: r.principal.keyId,
        endpoint: r.endpoint,
        prefixHashes: prefixes,
        estimatedTokens: r.estimatedTokens,
        promptTokens: Math.ceil(r.promptText.length / 4),
        deadline,
        enqueuedAt: Date.now(),
        priority: attempt === 0 ? priority : PRIORITY.requeued,
        excludeReplicas: exclude.length ? exclude : undefined,
        attempt,
      };
      assigned = await queue.enqueue(r.model.deploymentId, job, gone.signal);
      const outcome = await callAgent(deps, assigned, r, body, res, headers, gone.signal, log);
      if (outcome.kind === "retry") {
        queue.release(assigned, true);
        assigned = undefined;
        exclude.push(outcome.reason);
        metrics.agentCalls.inc({ outcome: "retry" });
        if (attempt + 1 >= deps.maxAttempts) throw new PlatformError("unavailable", "No replica could serve the request; try again.", { retryAfterS: 2 });
        log.warn({ attempt, replica: outcome.reason }, "replica failed before the first byte; re-queued");
        continue;
      }
      status = outcome.status;
      usage = outcome.usage;
      break;
    }
  } catch (err) {
    const e = err instanceof PlatformError ? err : new PlatformError("internal", "The server had an error while processing your request.", { cause: err });
    status = gone.signal.aborted ? "cancelled" : e.code;
    if (!gone.signal.aborted && !res.headersSent) sendError(res, e, headers, metrics);
    else if (!gone.signal.aborted && !res.writableEnded) {
      metrics.errors.inc({ code: e.code });
      res.end(`data: ${JSON.stringify(errorBody(e))}\n\n`);
    }
    if (e.code === "internal") log.error({ err: (e.cause as Error)?.message ?? e.message }, "request failed");
  } finally {
    res.off("close", onClose);
    if (r.stream) metrics.openStreams.dec();
    admission?.settle(usage ? usage.promptTokens + usage.completionTokens : 0);
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
    const durationMs = performance.now() - r.startedAt;
    metrics.duration.observe({ route: r.route }, durationMs / 1000);
    metrics.requests.inc({ route: r.route, status: String(res.statusCode || 499) });
    if (usage || assigned) {
      const u = usage ?? { promptTokens: 0, completionTokens: 0, images: 0, ttftMs: 0 };
      metrics.tokens.inc({ model: r.model.modelName, direction: "in" }, u.promptTokens);
      metrics.tokens.inc({ model: r.model.modelName, direction: "out" }, u.completionTokens);
    }
    if (usage) {
      deps.usage.record({
        request_id: r.requestId,
        tenant_id: r.principal.tenantId,
        key_id: r.principal.keyId,
        deployment_id: r.model.deploymentId,
        model: r.model.modelName,
        endpoint: r.endpoint,
        prompt_tokens: usage.promptTokens,
        completion_tokens: usage.completionTokens,
        images: usage.images,
        ttft_ms: usage.ttftMs,
        duration_ms: durationMs,
        status,
        cost_usd: costOf(r.model, usage.promptTokens, usage.completionTokens, usage.images),
      });
    }
  }
}

function callAgent(
  deps: InferenceDeps,
  a: Assigned,
  r: InferenceRequest,
  body: Buffer,
  res: ServerResponse,
  headers: Record<string, string>,
  signal: AbortSignal,
  log: Logger,
): Promise<Outcome> {
  const { metrics } = deps;
  return new Promise<Outcome>((resolve) => {
    log.debug({ replica: a.replicaId, address: a.address, queuedMs: a.queuedMs }, "calling agent");
    const md = new grpc.Metadata();
    md.set("x-request-id", r.requestId);
    const call = deps.agents
      .get(a.address)
      .generate(
        create(GenerateRequestSchema, { requestId: r.requestId, endpoint: GRPC_ENDPOINT[r.endpoint], body, stream: r.stream, tenantId: r.principal.tenantId }),
        md,
      );
    let events = 0;
    let settled = false;
    let counted = 0;
    let ttftMs = 0;
    let cancelling = false;
    let cancelTimer: NodeJS.Timeout | undefined;
    const relayed = (): Outcome => ({ kind: "done", status: "cancelled", usage: { promptTokens: 0, completionTokens: counted, images: 0, ttftMs } });
    // A replica that hangs (a frozen agent, a stalled engine) must not hold the request
    // forever. Streamed: silent before the first event → another replica (the first one's
    // call is cancelled, so nothing reaches the client twice); silent mid-stream → an error
    // event. Non-streamed: the answer comes whole at the end, so only a total deadline, and
    // no retry (the engine may have been working all along).
    const idleMs = r.stream ? (deps.agentIdleTimeoutMs ?? 60_000) : (deps.agentCallTimeoutMs ?? 600_000);
    let idle: NodeJS.Timeout | undefined;
    // Re-armed on every event: refresh() moves the same timer instead of making a new one per token.
    const armIdle = () => {
      if (idle) idle.refresh();
      else idle = setTimeout(onIdle, idleMs);
    };
    const finish = (o: Outcome) => {
      if (settled) return;
      settled = true;
      if (idle) clearTimeout(idle);
      if (cancelTimer) clearTimeout(cancelTimer);
      signal.removeEventListener("abort", onAbort);
      resolve(o);
    };
    const onIdle = () => {
      if (settled) return;
      call.cancel();
      if (events === 0 && r.stream) {
        log.warn({ replica: a.replicaId, idleMs }, "replica sent nothing in time; re-queued");
        finish({ kind: "retry", reason: a.replicaId });
        return;
      }
      log.warn({ replica: a.replicaId, idleMs, events }, "replica stopped responding mid-request");
      metrics.agentCalls.inc({ outcome: "timeout" });
      const pe = new PlatformError("timeout", "The replica serving this request stopped responding.");
      if (relay?.hasStarted) {
        metrics.errors.inc({ code: pe.code });
        relay.error(errorBody(pe));
      } else sendError(res, pe, headers, metrics);
      finish({ kind: "done", status: "replica_timeout", usage: { promptTokens: 0, completionTokens: counted, images: 0, ttftMs } });
    };
    armIdle();
    const onAbort = () => {
      metrics.agentCalls.inc({ outcome: "cancelled" });
      // The client left. The agent stops the engine and ends this call with the usage of what the
      // engine generated (Cancel, not a cancelled call, which could carry nothing back); only if
      // that does not come in time is the call dropped and what was relayed counted.
      cancelling = true;
      log.debug({ replica: a.replicaId, events }, "client left; asking the replica to stop");
      if (idle) clearTimeout(idle);
      deps.agents
        .get(a.address)
        .cancel(create(CancelRequestSchema, { requestId: r.requestId }), new grpc.Metadata(), { deadline: Date.now() + CANCEL_GRACE_MS }, () => {});
      cancelTimer = setTimeout(() => {
        log.warn({ replica: a.replicaId }, "no usage from the replica after cancel; counting what was relayed");
        call.cancel();
        finish(relayed());
      }, CANCEL_GRACE_MS);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    // Per token: the labelled child once per request, not a label lookup per observation.
    const itl = r.stream ? metrics.itl.labels({ model: r.model.modelName }) : undefined;
    const relay = r.stream
      ? new SseRelay(res, headers, r.includeUsage, (gap) => {
          if (gap === undefined) {
            ttftMs = performance.now() - r.startedAt;
            metrics.ttft.observe({ model: r.model.modelName }, ttftMs / 1000);
          } else itl?.observe(gap / 1000);
        })
      : undefined;
    let bodyJson: string | undefined;

    call.on("data", (ev: GenerateResponse) => {
      if (settled) return;
      if (cancelling) {
        const e = ev.event;
        if (e.case === "usage")
          finish({
            kind: "done",
            status: "cancelled",
            usage: { promptTokens: e.value.promptTokens, completionTokens: e.value.completionTokens, images: e.value.images, ttftMs },
          });
        else if (e.case === "error") finish(relayed());
        return;
      }
      events++;
      if (r.stream) armIdle();
      const e = ev.event;
      switch (e.case) {
        case "chunk":
          counted++;
          relay?.chunk(e.value);
          break;
        case "chunks":
          counted += e.value.items.length;
          for (const item of e.value.items) relay?.chunk(item);
          break;
        case "body":
          bodyJson = decoder.decode(e.value);
          break;
        case "usage": {
          const u = e.value;
          const out: UsageOut = {
            prompt_tokens: u.promptTokens,
            completion_tokens: u.completionTokens,
            total_tokens: u.promptTokens + u.completionTokens,
            estimated_cost: costOf(r.model, u.promptTokens, u.completionTokens, u.images),
          };
          if (relay) relay.usage(out);
          else sendBody(res, bodyJson, out, headers, r);
          if (!ttftMs) ttftMs = performance.now() - r.startedAt;
          metrics.agentCalls.inc({ outcome: "ok" });
          finish({ kind: "done", status: "ok", usage: { promptTokens: u.promptTokens, completionTokens: u.completionTokens, images: u.images, ttftMs } });
          break;
        }
        case "error": {
          const err = engineError(e.value);
          metrics.agentCalls.inc({ outcome: "engine_error" });
          if (relay?.hasStarted) {
            metrics.errors.inc({ code: err.code });
            relay.error(errorBody(err));
          } else sendError(res, err, headers, metrics);
          finish({ kind: "done", status: "engine_error" });
          break;
        }
      }
    });
    call.on("error", (err: grpc.ServiceError) => {
      if (settled) return;
      if (cancelling) return finish(relayed());
      if (err.code === grpc.status.CANCELLED && signal.aborted) return;
      // Nothing reached the client yet: another replica can take it.
      if (events === 0 && (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.ALREADY_EXISTS || err.code === grpc.status.CANCELLED)) {
        finish({ kind: "retry", reason: a.replicaId });
        return;
      }
      log.warn({ code: err.code, details: err.details, replica: a.replicaId }, "agent call failed");
      metrics.agentCalls.inc({ outcome: "failed" });
      const pe = new PlatformError("engine_error", "The replica serving this request failed.", { status: 502 });
      if (relay?.hasStarted) {
        metrics.errors.inc({ code: pe.code });
        relay.error(errorBody(pe));
      } else sendError(res, pe, headers, metrics);
      finish({ kind: "done", status: "replica_failed", usage: { promptTokens: 0, completionTokens: counted, images: 0, ttftMs } });
    });
    call.on("end", () => {
      if (settled) return;
      if (cancelling) return finish(relayed());
      if (events === 0) {
        finish({ kind: "retry", reason: a.replicaId });
        return;
      }
      const pe = new PlatformError("engine_error", "The replica ended the request without finishing it.", { status: 502 });
      if (relay?.hasStarted) relay.error(errorBody(pe));
      else sendError(res, pe, headers, metrics);
      finish({ kind: "done", status: "replica_failed", usage: { promptTokens: 0, completionTokens: counted, images: 0, ttftMs } });
    });
  });
}

function sendBody(res: ServerResponse, bodyJson: string | undefined, usage: UsageOut, headers: Record<string, string>, r: InferenceRequest): void {
  const parsed = bodyJson ? (JSON.parse(bodyJson) as Record<string, unknown>) : {};
  if (r.endpoint === "image") {
    // Images: OpenAI's usage counts tokens the diffusion server does not report; cost rides along like the provider's.
    parsed.usage = { ...IMAGE_USAGE, estimated_cost: usage.estimated_cost };
  } else if (r.endpoint === "embedding") {
    parsed.usage = { prompt_tokens: usage.prompt_tokens, total_tokens: usage.prompt_tokens, estimated_cost: usage.estimated_cost };
  } else {
    if (r.endpoint === "chat") conformChatBody(parsed);
    parsed.usage = usage;
  }
  const out = JSON.stringify(parsed);
  res.writeHead(200, { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(out) });
  res.end(out);
}

export function sendError(res: ServerResponse, err: PlatformError, headers: Record<string, string>, metrics: GatewayMetrics): void {
  if (res.headersSent) return;
  metrics.errors.inc({ code: err.code });
  const out = JSON.stringify(errorBody(err));
  const h: Record<string, string | number> = { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(out) };
  if (err.retryAfterS !== undefined) h["retry-after"] = String(err.retryAfterS);
  res.writeHead(httpStatusOf(err), h);
  res.end(out);
}
