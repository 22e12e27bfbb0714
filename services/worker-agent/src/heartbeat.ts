/**
 * Registers the replica and reports its load to the scheduler through Redis: every
 * interval the agent checks the engine's health, scrapes its load and writes a
 * ReplicaReport into the deployment's replica hash (and publishes it, so schedulers
 * see a change at once). Removing the field on stop takes it out of placement.
 */
import type { Redis } from "ioredis";
import type { Logger } from "@infera/core";
import type { RedisKeys, ReplicaReport } from "@infera/contracts";
import type { EngineAdapter } from "./engine/adapter.ts";
import type { AgentMetrics } from "./metrics.ts";
import type { AgentServer } from "./server.ts";

export interface HeartbeatOptions {
  redis: Redis;
  keys: RedisKeys;
  adapter: EngineAdapter;
  server: AgentServer;
  metrics: AgentMetrics;
  logger: Logger;
  deploymentId: string;
  replicaId: string;
  address: string;
  intervalMs: number;
}

export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  private draining = false;
  private wasHealthy: boolean | undefined;
  private beating: Promise<void> | undefined;

  constructor(private readonly o: HeartbeatOptions) {}

  start(): void {
    const tick = () => {
      this.beating = this.beat().finally(() => {
        if (this.timer !== undefined || !this.draining) this.timer = setTimeout(tick, this.o.intervalMs);
      });
    };
    tick();
  }

  /** One report now (also used right after start so the replica is placeable at once). */
  async beat(): Promise<void> {
    const { adapter, server, metrics } = this.o;
    const sampledAt = Date.now();
    const [healthy, load] = await Promise.all([adapter.health(), adapter.load()]);
    const running = Math.max(load?.running ?? 0, server.inflight);
    const waiting = load?.waiting ?? 0;
    server.setEngineState(healthy, { running, waiting });
    metrics.engineHealthy.set(healthy ? 1 : 0);
    metrics.engineRunning.set(running);
    metrics.engineWaiting.set(waiting);
    metrics.engineKvCache.set(load?.kvCacheUsage ?? 0);
    if (healthy !== this.wasHealthy) {
      this.o.logger.info({ healthy }, healthy ? "engine is healthy" : "engine is not healthy");
      this.wasHealthy = healthy;
    }
    await this.publish({ running, waiting, kvCacheUsage: load?.kvCacheUsage ?? 0, healthy, draining: this.draining, sampledAt });
  }

  private async publish(state: Pick<ReplicaReport, "running" | "waiting" | "kvCacheUsage" | "healthy" | "draining" | "sampledAt">): Promise<void> {
    const { redis, keys, deploymentId, replicaId, address } = this.o;
    const report: ReplicaReport = { replicaId, deploymentId, address, ...state, at: Date.now() };
    try {
      await redis.multi().hset(keys.replicas(deploymentId), replicaId, JSON.stringify(report)).sadd(keys.deploymentsWithReplicas, deploymentId).exec();
    } catch (err) {
      this.o.logger.warn({ err }, "heartbeat could not reach Redis");
    }
  }

  /** Tell schedulers to stop placing here, then keep reporting until `stop`. */
  async markDraining(): Promise<void> {
    this.draining = true;
    await this.beating;
    await this.publish({ running: this.o.server.inflight, waiting: 0, kvCacheUsage: 0, healthy: false, draining: true });
  }

  /** Stops reporting and removes this replica's report (deregisters). */
  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.beating;
    try {
      await this.o.redis.hdel(this.o.keys.replicas(this.o.deploymentId), this.o.replicaId);
    } catch {
      // Redis gone: the scheduler drops the stale report after its timeout anyway.
    }
  }
}
