import { Redis } from "ioredis";
import { startMetricsServer, type Logger } from "@infera/core";
import { redisKeys } from "@infera/contracts";
import type { AgentConfig } from "./config.ts";
import { createAdapter } from "./engine/index.ts";
import { EmbeddingCoalescer } from "./engine/coalescer.ts";
import { Heartbeat } from "./heartbeat.ts";
import { createAgentMetrics } from "./metrics.ts";
import { AgentServer } from "./server.ts";

export interface RunningAgent {
  grpcPort: number;
  metricsPort: number;
  /** Graceful: not ready → drain open calls → deregister → close. */
  stop(): Promise<void>;
}

export async function startAgent(config: AgentConfig, logger: Logger): Promise<RunningAgent> {
  const metrics = createAgentMetrics();
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
    runEmbedding: coalescer ? (body, signal, sink) => coalescer.run(body, signal, sink) : undefined,
  });
  const grpcPort = await server.listen(config.host, config.port);
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

  const http = await startMetricsServer(metrics.registry, config.host, config.metricsPort);
  const metricsPort = http.port;
  logger.info({ grpcPort, metricsPort, address, engine: config.engineKind, engineUrl: config.engineUrl }, "agent listening");

  return {
    grpcPort,
    metricsPort,
    async stop() {
      await heartbeat.markDraining();
      await server.drain(config.shutdownGraceMs);
      await heartbeat.deregister();
      http.close();
      await adapter.close();
      redis.disconnect();
    },
  };
}
