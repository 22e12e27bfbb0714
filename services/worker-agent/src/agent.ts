import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { type Logger, type MetricsRoute, type Readiness, type Stoppable, startMetricsServer, stopInOrder } from "@infera/core";
import { redisKeys } from "@infera/contracts";
import { startTracing } from "@infera/telemetry";
import { assertRedisAccess } from "@infera/queue";
import type { AgentConfig } from "./config.ts";
import { createAdapter } from "./engine/index.ts";
import { EmbeddingCoalescer } from "./engine/coalescer.ts";
import { Heartbeat } from "./heartbeat.ts";
import { createAgentMetrics } from "./metrics.ts";
import { AgentServer } from "./server.ts";

export interface RunningAgent {
  grpcPort: number;
  metricsPort: number;
  /** What stops, in order (for main.ts's shutdown helper): not ready → drain open calls → deregister → close. */
  stoppers: readonly Stoppable[];
  /** All of `stoppers`, in order. */
  stop(): Promise<void>;
}

/** `/engine/health` (the engine's /health, 200 or 503) and `/engine/metrics` (its /metrics), relayed. */
function engineRoutes(engineUrl: string): Record<string, MetricsRoute> {
  const relay =
    (path: string): MetricsRoute =>
    async () => {
      const res = await fetch(new URL(path, engineUrl), { signal: AbortSignal.timeout(5_000) });
      const body = await res.text();
      return { status: res.ok ? 200 : 503, contentType: res.headers.get("content-type") ?? "text/plain", body };
    };
  return { "/engine/health": relay("/health"), "/engine/metrics": relay("/metrics") };
}

export async function startAgent(config: AgentConfig, logger: Logger): Promise<RunningAgent> {
  await assertRedisAccess(config.redisUrl);
  const metrics = createAgentMetrics();
  const tracing = await startTracing(config.tracing, logger);
  const adapter = createAdapter(config.engineKind, config.engineUrl);
  const coalescer =
    config.embeddingBatching && (config.engineKind === "vllm" || config.engineKind === "tei")
      ? new EmbeddingCoalescer({ adapter, maxBatch: config.embeddingBatchMax, maxInflight: config.embeddingMaxInflight, metrics })
      : undefined;
  const server = new AgentServer({
    adapter,
    logger,
    metrics,
    replicaId: config.replicaId,
    tracing,
    authToken: config.authToken,
    tls: config.tls && {
      cert: readFileSync(config.tls.certFile),
      key: readFileSync(config.tls.keyFile),
      clientCa: config.tls.clientCaFile ? readFileSync(config.tls.clientCaFile) : undefined,
    },
    runEmbedding: coalescer ? (body, signal, sink) => coalescer.run(body, signal, sink) : undefined,
  });
  const grpcPort = await server.start(config.host, config.port);
  const address = config.port === 0 ? `${config.advertiseAddress.split(":")[0]}:${grpcPort}` : config.advertiseAddress;

  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 3, enableOfflineQueue: true });
  redis.on("error", () => {}); // reconnects by itself; heartbeats log their own failures
  const heartbeat = new Heartbeat({
    redis,
    keys: redisKeys(config.redisPrefix),
    adapter,
    server,
    metrics,
    logger,
    deploymentId: config.deploymentId,
    replicaId: config.replicaId,
    address,
    intervalMs: config.heartbeatMs,
  });
  heartbeat.start();

  // Ready: taking calls (the engine healthy, not draining) and Redis answers (its reports reach the schedulers).
  const ready = async (): Promise<Readiness> => {
    if (!server.serving) return { ready: false, reason: "the engine is not healthy, or the agent is draining" };
    await redis.ping();
    return { ready: true };
  };
  // The engine listens on 127.0.0.1 inside its pod (only this agent reaches it): the kubelet's
  // probes and a metrics scraper ask the agent, which asks the engine.
  const http = await startMetricsServer(metrics.registry, config.host, config.metricsPort, ready, engineRoutes(config.engineUrl));
  const metricsPort = http.port;
  logger.info({ grpcPort, metricsPort, address, engine: config.engineKind, engineUrl: config.engineUrl }, "agent listening");

  const stoppers: Stoppable[] = [
    { name: "heartbeat: draining", stop: () => heartbeat.markDraining() },
    { name: "grpc", stop: () => server.stop(config.shutdownGraceMs) },
    { name: "heartbeat", stop: () => heartbeat.stop() },
    { name: "metrics", stop: () => http.close() },
    { name: "engine client", stop: () => adapter.close() },
    { name: "redis", stop: () => redis.disconnect() },
    { name: "tracing", stop: () => tracing.stop() },
  ];
  return { grpcPort, metricsPort, stoppers, stop: () => stopInOrder(logger, stoppers) };
}
