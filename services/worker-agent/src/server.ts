/**
 * The agent's gRPC service: Generate runs one request on the engine and streams its
 * events back; Health reports whether the engine serves. A cancelled call aborts the
 * engine request (closing its HTTP connection frees the engine's slot). Cancel(request_id)
 * stops a call gracefully: the engine request is aborted, and the call still ends with a
 * `usage` event counting what the engine generated, so a client that left is billed exactly.
 */
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { lazyChild, type Logger } from "@infera/core";
import { noTracing, type Tracing } from "@infera/telemetry";
import {
  AgentService,
  CancelResponseSchema,
  Endpoint,
  ChunksSchema,
  GenerateResponseSchema,
  HealthResponseSchema,
  UsageSchema,
  EngineErrorSchema,
  serviceDefinition,
  AgentTokenCheck,
  ENGINE_UNREACHABLE,
  type CancelRequest,
  type CancelResponse,
  type GenerateRequest,
  type GenerateResponse,
  type HealthRequest,
  type HealthResponse,
} from "@infera/contracts";
import type { EndpointKind, EngineAdapter, EngineSink } from "./engine/adapter.ts";
import type { AgentMetrics } from "./metrics.ts";

const ENDPOINTS: Record<number, EndpointKind> = {
  [Endpoint.CHAT_COMPLETIONS]: "chat",
  [Endpoint.COMPLETIONS]: "completion",
  [Endpoint.EMBEDDINGS]: "embedding",
  [Endpoint.IMAGES]: "image",
  [Endpoint.RERANK]: "rerank",
  [Endpoint.SCORE]: "score",
  [Endpoint.TOKENIZE]: "tokenize",
  [Endpoint.DETOKENIZE]: "detokenize",
};

const encoder = new TextEncoder();
const GENERATE_RESPONSE = GenerateResponseSchema.typeName as GenerateResponse["$typeName"];
const CHUNKS = ChunksSchema.typeName as "infera.agent.v1.Chunks";

export interface AgentServiceOptions {
  adapter: EngineAdapter;
  logger: Logger;
  metrics: AgentMetrics;
  replicaId: string;
  /** The call's span (continuing the gateway's `traceparent` metadata) and the engine call's (default: none, the traceparent carried on). */
  tracing?: Tracing;
  /** The bearer token every call must carry (AGENT_AUTH_TOKEN); calls without it are refused UNAUTHENTICATED. */
  authToken: string;
  /** Serve TLS with this certificate; with `clientCa`, also require a client certificate it signed (mutual TLS). */
  tls?: { cert: Buffer; key: Buffer; clientCa?: Buffer };
  /** Runs embedding calls (through the coalescer when enabled). */
  runEmbedding?: (body: Uint8Array, signal: AbortSignal, sink: EngineSink) => Promise<void>;
}

export class AgentServer {
  private readonly server = new grpc.Server({ "grpc.max_concurrent_streams": 4096 });
  /** Ids of calls open now and recently finished: a request id runs at most once. */
  private readonly seen = new Map<string, number>();
  private readonly open = new Set<AbortController>();
  /** Graceful stops of the calls running now, by request id. */
  private readonly stops = new Map<string, AbortController>();
  /** Ids cancelled before their Generate arrived (the two RPCs may race): run nothing for them. */
  private readonly cancelledEarly = new Map<string, number>();
  private engineHealthy = false;
  private draining = false;
  private lastLoad = { running: 0, waiting: 0 };

  private readonly auth: AgentTokenCheck;

  constructor(private readonly options: AgentServiceOptions) {
    this.auth = new AgentTokenCheck(options.authToken);
    this.server.addService(serviceDefinition(AgentService) as unknown as grpc.ServiceDefinition, {
      generate: (call: grpc.ServerWritableStream<GenerateRequest, GenerateResponse>) => {
        const refused = this.refuse(call, "generate");
        if (refused) call.emit("error", refused);
        else void this.generate(call);
      },
      cancel: (call: grpc.ServerUnaryCall<CancelRequest, CancelResponse>, cb: grpc.sendUnaryData<CancelResponse>) => {
        const refused = this.refuse(call, "cancel");
        if (refused) cb(refused);
        else cb(null, create(CancelResponseSchema, { found: this.cancel(call.request.requestId) }));
      },
      health: (call: grpc.ServerUnaryCall<HealthRequest, HealthResponse>, cb: grpc.sendUnaryData<HealthResponse>) => {
        const refused = this.refuse(call, "health");
        if (refused) cb(refused);
        else cb(null, create(HealthResponseSchema, { serving: this.engineHealthy && !this.draining, replicaId: options.replicaId, ...this.lastLoad }));
      },
    });
  }

  /** The UNAUTHENTICATED error for a call without the release's token (counted), else undefined. */
  private refuse(call: { metadata: grpc.Metadata; getPeer(): string }, method: "generate" | "cancel" | "health"): Partial<grpc.StatusObject> | undefined {
    const result = this.auth.check(call.metadata);
    if (result === "ok") return undefined;
    this.options.metrics.unauthenticated.inc({ method, reason: result });
    this.options.logger.warn({ method, reason: result, peer: call.getPeer() }, "refused a call without the agent token");
    return { code: grpc.status.UNAUTHENTICATED, details: result === "missing" ? "no agent token: this agent serves the gateway only" : "wrong agent token" };
  }

  get inflight(): number {
    return this.open.size;
  }

  setEngineState(healthy: boolean, load?: { running: number; waiting: number }): void {
    this.engineHealthy = healthy;
    if (load) this.lastLoad = load;
  }

  /** Binds the gRPC server: the port it listens on. */
  async start(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const tls = this.options.tls;
      const credentials = tls
        ? grpc.ServerCredentials.createSsl(tls.clientCa ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], tls.clientCa !== undefined)
        : grpc.ServerCredentials.createInsecure();
      this.server.bindAsync(`${host}:${port}`, credentials, (err, bound) => (err ? reject(err) : resolve(bound)));
    });
  }

  /** Whether it takes calls now (the engine healthy, not draining). */
  get serving(): boolean {
    return this.engineHealthy && !this.draining;
  }

  /** Stop taking calls; resolve when the open ones finish or `graceMs` passes (then cancel them). */
  async stop(graceMs: number): Promise<void> {
    this.draining = true;
    const deadline = Date.now() + graceMs;
    while (this.open.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const c of this.open) c.abort();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
  }

  forceStop(): void {
    for (const c of this.open) c.abort();
    this.server.forceShutdown();
  }

  /** Stops the call for `requestId` gracefully (see the file comment); false when none is open. */
  cancel(requestId: string): boolean {
    const stop = this.stops.get(requestId);
    if (stop) {
      stop.abort();
      return true;
    }
    if (this.seen.has(requestId)) return false;
    const now = Date.now();
    this.cancelledEarly.set(requestId, now);
    if (this.cancelledEarly.size > 10_000)
      for (const [k, t] of this.cancelledEarly) if (now - t > 60_000 || this.cancelledEarly.size > 10_000) this.cancelledEarly.delete(k);
    return true;
  }

  private async generate(call: grpc.ServerWritableStream<GenerateRequest, GenerateResponse>): Promise<void> {
    const { logger, metrics, adapter } = this.options;
    const req = call.request;
    const endpoint = ENDPOINTS[req.endpoint];
    if (!endpoint) {
      call.emit("error", { code: grpc.status.INVALID_ARGUMENT, details: `unknown endpoint ${req.endpoint}` });
      return;
    }
    if (this.draining || !this.engineHealthy) {
      // Before the first byte: the gateway re-queues it for another replica.
      call.emit("error", { code: grpc.status.UNAVAILABLE, details: this.draining ? "replica is draining" : "engine is not healthy" });
      return;
    }
    if (this.seen.has(req.requestId)) {
      metrics.requests.inc({ endpoint, status: "duplicate" });
      call.emit("error", { code: grpc.status.ALREADY_EXISTS, details: `request ${req.requestId} was already run here` });
      return;
    }
    this.remember(req.requestId);
    const log = lazyChild(logger, { requestId: req.requestId });
    log.debug({ endpoint, stream: req.stream }, "generate");
    const tracing = this.options.tracing ?? noTracing;
    const traceparent = call.metadata.get("traceparent")[0];
    const span = tracing.start("infera.agent.v1.AgentService/Generate", {
      parent: typeof traceparent === "string" ? traceparent : undefined,
      kind: "server",
      attributes: tracing.enabled
        ? { "rpc.system": "grpc", "rpc.service": "infera.agent.v1.AgentService", "rpc.method": "Generate", "infera.replica.id": this.options.replicaId }
        : undefined,
    });
    const engineSpan = tracing.start("infera.engine.call", {
      parent: span,
      kind: "client",
      attributes: tracing.enabled ? { "infera.engine.kind": adapter.kind, "http.request.method": "POST", "gen_ai.operation.name": endpoint } : undefined,
    });
    const controller = new AbortController();
    const stop = new AbortController();
    this.stops.set(req.requestId, stop);
    if (this.cancelledEarly.delete(req.requestId)) stop.abort();
    /** Stopped (the signal's `aborted` getter, read per chunk, validates its receiver: ~1% of the relay's CPU). */
    let stopped = stop.signal.aborted;
    stop.signal.addEventListener(
      "abort",
      () => {
        stopped = true;
        status = "cancelled";
      },
      { once: true },
    );
    this.open.add(controller);
    metrics.inflight.set(this.open.size);
    const started = performance.now();
    let firstAt = 0;
    let status = "ok";
    let finished = false;
    call.on("cancelled", () => {
      // grpc-js reports a call whose stream closed as cancelled, ended ones too: abort only a call
      // still running (an abort makes a DOMException, ~2% of the agent's CPU per request).
      if (finished) return;
      status = "cancelled";
      controller.abort();
    });

    const write = (event: GenerateResponse["event"]) => {
      if (!call.cancelled && !call.writableEnded) call.write(create(GenerateResponseSchema, { event }));
    };
    // Chunks parsed from one engine read leave as one message (the adapter hands them over
    // synchronously; the flush runs right after): when the engine or the gateway is behind,
    // the per-message cost is paid once per read, not once per token.
    let pending: Uint8Array[] = [];
    const flush = () => {
      if (pending.length === 0) return;
      const items = pending;
      pending = [];
      // Plain message objects (what `create` would make, without its reflection): this runs per engine read.
      if (call.cancelled || call.writableEnded) return;
      if (items.length === 1) call.write({ $typeName: GENERATE_RESPONSE, event: { case: "chunk", value: items[0]! } } satisfies GenerateResponse);
      else call.write({ $typeName: GENERATE_RESPONSE, event: { case: "chunks", value: { $typeName: CHUNKS, items } } } satisfies GenerateResponse);
    };
    const sink: EngineSink = {
      chunk(json) {
        if (firstAt === 0) firstAt = performance.now();
        if (stopped) return; // nobody reads them now; only the usage matters
        if (pending.push(typeof json === "string" ? encoder.encode(json) : json) === 1) queueMicrotask(flush);
      },
      body(json) {
        if (firstAt === 0) firstAt = performance.now();
        write({ case: "body", value: encoder.encode(json) });
      },
      usage(u) {
        flush();
        const ttftMs = firstAt ? firstAt - started : performance.now() - started;
        if (tracing.enabled) engineSpan.setAttributes({ "gen_ai.usage.input_tokens": u.promptTokens, "gen_ai.usage.output_tokens": u.completionTokens });
        metrics.ttft.observe(ttftMs / 1000);
        write({ case: "usage", value: create(UsageSchema, { ...u, ttftMs }) });
      },
      error(e) {
        flush();
        status = "engine_error";
        write({ case: "error", value: create(EngineErrorSchema, e) });
      },
    };
    try {
      if (endpoint === "embedding" && this.options.runEmbedding) await this.options.runEmbedding(req.body, controller.signal, sink);
      else
        await adapter.run(
          {
            endpoint,
            body: req.body,
            stream: req.stream,
            signal: controller.signal,
            stop: stop.signal,
            correlationId: req.correlationId || req.requestId,
            traceparent: engineSpan.traceparent,
          },
          sink,
        );
    } catch (err) {
      if (controller.signal.aborted) {
        status = "cancelled";
      } else {
        status = "engine_error";
        log.warn({ err }, "engine call failed");
        sink.error({ status: 502, message: `engine unreachable: ${(err as Error).message}`, type: "server_error", param: "", code: ENGINE_UNREACHABLE });
      }
    } finally {
      finished = true;
      this.stops.delete(req.requestId);
      // The engine answered an error (or could not be reached): nothing it made counts, so the
      // same request may run here again (a batch line tried again keeps its request id).
      if (status === "engine_error") this.seen.delete(req.requestId);
      this.open.delete(controller);
      metrics.inflight.set(this.open.size);
      metrics.requests.inc({ endpoint, status });
      log.debug({ status, ms: Math.round(performance.now() - started) }, "generate finished");
      if (tracing.enabled) {
        if (status !== "ok") engineSpan.fail(status);
        if (firstAt) engineSpan.set("infera.ttft_ms", Math.round((firstAt - started) * 10) / 10);
        engineSpan.end();
        if (status !== "ok") span.fail(status);
        span.end();
      }
      flush();
      if (!call.writableEnded) call.end();
    }
  }

  private remember(id: string): void {
    const now = Date.now();
    this.seen.set(id, now);
    if (this.seen.size > 50_000) {
      // Forget the oldest ids (Map keeps insertion order); ids are random, reuse is an attack or a bug.
      for (const [k, t] of this.seen) {
        if (now - t < 600_000 && this.seen.size <= 40_000) break;
        this.seen.delete(k);
      }
    }
  }
}
