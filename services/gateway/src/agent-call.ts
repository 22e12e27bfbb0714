/**
 * One call to the replica the scheduler assigned: `Generate` on its agent over gRPC,
 * relaying what it streams as SSE (or gathering the whole answer), ending in an `Outcome`.
 *
 * Before anything reached the client, a replica that is unreachable, draining, already has
 * the request, stays silent, or lost its engine (ENGINE_UNREACHABLE), makes the outcome
 * `retry` (another replica takes it). After
 * that every failure takes one path (`fail`): counted, told to the client (an error event
 * mid-stream, else OpenAI's error JSON), done with what was relayed. A client that leaves
 * makes the agent stop the engine; the call then ends with the engine's usage.
 */
import type { ServerResponse } from "node:http";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { CancelRequestSchema, Endpoint, ENGINE_UNREACHABLE, type EndpointKind, GenerateRequestSchema, type GenerateResponse } from "@infera/contracts";
import { type Logger, PlatformError } from "@infera/core";
import type { Assigned } from "@infera/queue";
import type { ResolvedModel } from "@infera/registry";
import type { AgentClients } from "./agents.ts";
import { errorBody } from "./errors.ts";
import type { GatewayMetrics } from "./metrics.ts";
import { costOf, type Outcome, type RequestUsage } from "./outcome.ts";
import { finishReasonsIn, SseRelay, type UsageOut } from "./relay.ts";
import { sendBody, sendError } from "./responses.ts";

const GRPC_ENDPOINT: Record<EndpointKind, Endpoint> = {
  chat: Endpoint.CHAT_COMPLETIONS,
  completion: Endpoint.COMPLETIONS,
  embedding: Endpoint.EMBEDDINGS,
  image: Endpoint.IMAGES,
  rerank: Endpoint.RERANK,
  score: Endpoint.SCORE,
  tokenize: Endpoint.TOKENIZE,
  detokenize: Endpoint.DETOKENIZE,
};

const decoder = new TextDecoder();
/** How long a cancelled request waits for the agent's final usage. */
const CANCEL_GRACE_MS = 3000;

/** What the agent call needs to know of the request. */
export interface CallRequest {
  requestId: string;
  /** The client's own id, if it sent one: the engine gets it as X-Request-Id, namespaced by tenant. */
  clientRequestId?: string;
  tenantId: string;
  model: ResolvedModel;
  endpoint: EndpointKind;
  stream: boolean;
  includeUsage: boolean;
  /** `performance.now()` when the request arrived (time to first token counts from it). */
  startedAt: number;
}

export interface AgentCallOptions {
  agents: AgentClients;
  metrics: GatewayMetrics;
  log: Logger;
  assigned: Assigned;
  request: CallRequest;
  /** The body for the engine (JSON, `model` the served name). */
  body: Buffer;
  res: ServerResponse;
  /** Headers every answer carries (request id, rate limits). */
  headers: Record<string, string>;
  /** Aborts when the client goes away. */
  signal: AbortSignal;
  /** Aborts when a stopping gateway's grace is over: the request ends with an error the client can retry on. */
  stopping?: AbortSignal;
  /** Streamed: the longest silence between events; whole: the longest the answer may take (ms). */
  idleMs: number;
  /** W3C traceparent for the agent (gRPC metadata `traceparent`): the agent's spans and the engine continue it. */
  traceparent?: string;
}

function engineError(e: { status: number; message: string; param: string; code: string }): PlatformError {
  // Client mistakes the engine caught stay 400s; overload stays 429; the rest are 502s.
  const status = e.status === 429 ? 429 : e.status >= 500 || e.status === 424 ? 502 : 400;
  return new PlatformError("engine_error", e.message, { status, param: e.param || null, retryable: status >= 429 });
}

export function callAgent(o: AgentCallOptions): Promise<Outcome> {
  const { metrics, log, assigned: a, request: r, res, headers, signal, idleMs } = o;
  return new Promise<Outcome>((resolve) => {
    log.debug({ replica: a.replicaId, address: a.address, queuedMs: a.queuedMs }, "calling agent");
    const md = new grpc.Metadata();
    md.set("x-request-id", r.requestId);
    if (o.traceparent !== undefined) md.set("traceparent", o.traceparent);
    const agent = o.agents.get(a.address);
    const req = create(GenerateRequestSchema, {
      requestId: r.requestId,
      endpoint: GRPC_ENDPOINT[r.endpoint],
      body: o.body,
      stream: r.stream,
      tenantId: r.tenantId,
      correlationId: r.clientRequestId === undefined ? r.requestId : `${r.tenantId}:${r.clientRequestId}`,
    });
    const call = agent.generate(req, md);
    let events = 0;
    let settled = false;
    let counted = 0;
    let ttftMs = 0;
    let cancelling = false;
    let cancelTimer: NodeJS.Timeout | undefined;
    let bodyJson: string | undefined;
    /** What reached the client so far, when the engine's own count will not come. */
    const relayed = (): RequestUsage => ({ promptTokens: 0, completionTokens: counted, images: 0, ttftMs });

    const finish = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      if (idle) clearTimeout(idle);
      if (cancelTimer) clearTimeout(cancelTimer);
      signal.removeEventListener("abort", onAbort);
      o.stopping?.removeEventListener("abort", onStopping);
      resolve(outcome);
    };
    /** The one failure path past retrying: counted, told to the client, done (with what was relayed, unless `usage` is false). */
    const fail = (err: PlatformError, status: string, callOutcome: "timeout" | "engine_error" | "failed", usage = true) => {
      metrics.agentCalls.inc({ outcome: callOutcome });
      if (relay?.hasStarted) {
        metrics.errors.inc({ code: err.code });
        relay.error(errorBody(err));
      } else sendError(res, err, headers, metrics);
      finish({ kind: "done", status, usage: usage ? relayed() : undefined });
    };

    // A replica that hangs (a frozen agent, a stalled engine) must not hold the request
    // forever. Streamed: silent before the first event → another replica (the first one's
    // call is cancelled, so nothing reaches the client twice); silent mid-stream → an error
    // event. Non-streamed: the answer comes whole at the end, so only a total deadline, and
    // no retry (the engine may have been working all along).
    const onIdle = () => {
      if (settled) return;
      // Events came since the timer was set: wait out the rest of the silence from the last one.
      const quietMs = performance.now() - lastEventAt;
      if (quietMs < idleMs) {
        idle = setTimeout(onIdle, idleMs - quietMs);
        return;
      }
      call.cancel();
      if (events === 0 && r.stream) {
        log.warn({ replica: a.replicaId, idleMs }, "replica sent nothing in time; re-queued");
        finish({ kind: "retry", reason: a.replicaId });
        return;
      }
      log.warn({ replica: a.replicaId, idleMs, events }, "replica stopped responding mid-request");
      fail(new PlatformError("timeout", "The replica serving this request stopped responding."), "replica_timeout", "timeout");
    };
    // Per event only the time is noted; the one timer, when it fires, checks the silence since
    // then and waits out the rest (a timer moved per token costs more than a clock read).
    let lastEventAt = performance.now();
    let idle: NodeJS.Timeout | undefined = setTimeout(onIdle, idleMs);

    const onAbort = () => {
      metrics.agentCalls.inc({ outcome: "cancelled" });
      // The client left. The agent stops the engine and ends this call with the usage of what the
      // engine generated (Cancel, not a cancelled call, which could carry nothing back); only if
      // that does not come in time is the call dropped and what was relayed counted.
      cancelling = true;
      log.debug({ replica: a.replicaId, events }, "client left; asking the replica to stop");
      if (idle) clearTimeout(idle);
      agent.cancel(create(CancelRequestSchema, { requestId: r.requestId }), new grpc.Metadata(), { deadline: Date.now() + CANCEL_GRACE_MS }, () => {});
      cancelTimer = setTimeout(() => {
        log.warn({ replica: a.replicaId }, "no usage from the replica after cancel; counting what was relayed");
        call.cancel();
        finish({ kind: "done", status: "cancelled", usage: relayed() });
      }, CANCEL_GRACE_MS);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    // The gateway's grace is over: the client is told (an error event mid-stream) rather than cut,
    // and what reached it is counted.
    const onStopping = () => {
      if (settled || cancelling) return;
      call.cancel();
      log.warn({ replica: a.replicaId, events }, "request still running when the shutdown grace ended; ended with an error");
      fail(new PlatformError("unavailable", "This gateway shut down before the request finished; retry it.", { retryAfterS: 1 }), "shutdown", "failed");
    };
    o.stopping?.addEventListener("abort", onStopping, { once: true });

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

    call.on("data", (ev: GenerateResponse) => {
      if (settled) return;
      const e = ev.event;
      if (cancelling) {
        if (e.case === "usage") {
          const u = e.value;
          finish({
            kind: "done",
            status: "cancelled",
            usage: { promptTokens: u.promptTokens, completionTokens: u.completionTokens, images: u.images, ttftMs },
          });
        } else if (e.case === "error") finish({ kind: "done", status: "cancelled", usage: relayed() });
        return;
      }
      events++;
      if (r.stream) lastEventAt = performance.now();
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
          else sendBody(res, { endpoint: r.endpoint, json: bodyJson, usage: out, headers });
          if (!ttftMs) ttftMs = performance.now() - r.startedAt;
          metrics.agentCalls.inc({ outcome: "ok" });
          const generated = r.endpoint === "chat" || r.endpoint === "completion";
          const finishReasons = relay ? relay.finishReasons : bodyJson && generated ? finishReasonsIn(bodyJson) : [];
          finish({
            kind: "done",
            status: "ok",
            usage: { promptTokens: u.promptTokens, completionTokens: u.completionTokens, images: u.images, ttftMs, finishReasons },
          });
          break;
        }
        case "error":
          // The agent lost its engine before anything reached the client: another replica can take it.
          if (e.value.code === ENGINE_UNREACHABLE && !relay?.hasStarted && bodyJson === undefined) {
            log.warn({ replica: a.replicaId, message: e.value.message }, "replica's engine unreachable; re-queued");
            finish({ kind: "retry", reason: a.replicaId });
            break;
          }
          fail(engineError(e.value), "engine_error", "engine_error", false);
          break;
      }
    });
    call.on("error", (err: grpc.ServiceError) => {
      if (settled) return;
      if (cancelling) return finish({ kind: "done", status: "cancelled", usage: relayed() });
      if (err.code === grpc.status.CANCELLED && signal.aborted) return;
      // Nothing reached the client yet: another replica can take it.
      if (events === 0 && (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.ALREADY_EXISTS || err.code === grpc.status.CANCELLED)) {
        finish({ kind: "retry", reason: a.replicaId });
        return;
      }
      log.warn({ code: err.code, details: err.details, replica: a.replicaId }, "agent call failed");
      fail(new PlatformError("engine_error", "The replica serving this request failed.", { status: 502 }), "replica_failed", "failed");
    });
    call.on("end", () => {
      if (settled) return;
      if (cancelling) return finish({ kind: "done", status: "cancelled", usage: relayed() });
      if (events === 0) {
        finish({ kind: "retry", reason: a.replicaId });
        return;
      }
      fail(new PlatformError("engine_error", "The replica ended the request without finishing it.", { status: 502 }), "replica_failed", "failed");
    });
  });
}
