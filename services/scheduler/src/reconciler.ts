/**
 * Reconciles what the registry wants with what runs. Only the leader (a Redis lease)
 * acts, so several schedulers can run. Each pass, per deployment: move its lifecycle
 * forward from what the driver and the agents' heartbeats show, decide how many
 * replicas it should have (autoscaler), and hand that to the runtime driver.
 */
import type { Kysely } from "kysely";
import type { Redis } from "ioredis";
import type { Queue } from "bullmq";
import type { Logger } from "@infera/core";
import type { RedisKeys } from "@infera/contracts";
import { decideReplicas, INITIAL_AUTOSCALER_STATE, type AutoscalerState } from "@infera/policy";
import { listDeployments, transition, type DB, type DeploymentConfig, type DeploymentSettings, type DeploymentView } from "@infera/registry";
import type { ReplicaDirectory } from "./replicas.ts";
import type { SchedulerMetrics } from "./metrics.ts";
import type { ReplicaSpec, RuntimeDriver } from "./runtime/driver.ts";

export interface ReconcilerOptions {
  db: Kysely<DB>;
  redis: Redis;
  keys: RedisKeys;
  driver: RuntimeDriver;
  directory: ReplicaDirectory;
  metrics: SchedulerMetrics;
  logger: Logger;
  schedulerId: string;
  intervalMs: number;
  scaleToZeroIdleMs: number;
  /** BullMQ queue handle per deployment (for depth). */
  queueFor: (deploymentId: string) => Queue;
  /** This scheduler's own waiting count per deployment. */
  localDepth: (deploymentId: string) => number;
  now?: () => number;
}

const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') and 1 or 0`;

export function replicaSpecOf(d: DeploymentView): ReplicaSpec {
  const config = d.config as unknown as DeploymentConfig;
  return {
    deploymentId: d.id,
    servedModelName: d.model_name,
    task: d.task,
    engine: config.engine,
    gpu: config.gpu,
    numGpus: config.num_gpus,
    maxBatchSize: config.max_batch_size,
    hf: config.hf ? { repo: config.hf.repo, revision: config.hf.revision ?? undefined, tokenSecretName: config.hf.has_token ? `infera-hf-${d.id}` : undefined } : undefined,
    containerImage: config.container_image ?? undefined,
    extraArgs: config.extra_args,
  };
}

export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private leader = false;
  private readonly scale = new Map<string, AutoscalerState>();
  private readonly applied = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly o: ReconcilerOptions) {
    this.now = o.now ?? Date.now;
  }

  start(): void {
    const loop = () => {
      this.timer = setTimeout(() => {
        void this.kick().finally(loop);
      }, this.o.intervalMs);
    };
    void this.kick().finally(loop);
  }

  /** Run a pass now (a deployment changed or a queue needs a replica); coalesces. */
  kick(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.pass()
      .catch((err) => this.o.logger.error({ err: (err as Error).message }, "reconcile pass failed"))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          void this.kick();
        }
      });
    return this.running;
  }

  private async pass(): Promise<void> {
    this.leader = (await this.o.redis.eval(RENEW, 1, this.o.keys.leader, this.o.schedulerId, String(Math.max(3000, this.o.intervalMs * 5)))) === 1;
    if (!this.leader) return;
    const deployments = await listDeployments(this.o.db, {});
    for (const d of deployments) {
      try {
        await this.reconcile(d);
      } catch (err) {
        this.o.logger.error({ err: (err as Error).message, deploymentId: d.id }, "could not reconcile deployment");
      }
    }
  }

  private async reconcile(d: DeploymentView): Promise<void> {
    const { driver, directory, logger } = this.o;
    const log = logger.child({ deploymentId: d.id });
    if (d.status === "deleted" || d.status === "stopped" || d.status === "failed") {
      if (this.applied.has(d.id)) {
        await driver.remove(d.id);
        this.applied.delete(d.id);
        this.scale.delete(d.id);
        directory.forget(d.id);
        log.info({ status: d.status }, "replicas removed");
      }
      return;
    }
    await directory.refresh(d.id);
    const observed = await driver.observe(d.id);
    const ready = directory.states(d.id).ready;
    const failed = observed.filter((r) => r.phase === "failed");
    this.o.metrics.replicas.set({ deployment: d.id, state: "ready" }, ready);
    this.o.metrics.replicas.set({ deployment: d.id, state: "starting" }, observed.filter((r) => r.phase === "starting" || r.phase === "pending").length);
    this.o.metrics.replicas.set({ deployment: d.id, state: "failed" }, failed.length);

    if (failed.length > 0 && failed.length === observed.length && ready === 0) {
      const reason = failed[0]?.reason ?? "replica failed";
      log.warn({ reason }, "deployment failed");
      await transition(this.o.db, d.id, "failed", { failReason: reason });
      await this.publishChange(d.id);
      return;
    }

    const desired = await this.desiredReplicas(d, observed.length);
    if (this.applied.get(d.id) !== desired || observed.length !== desired) {
      await driver.apply(replicaSpecOf(d), desired);
      this.applied.set(d.id, desired);
    }

    // Move the lifecycle forward from what is observed.
    if (d.status === "initializing") await this.step(d.id, "downloading", "weights requested");
    else if (d.status === "downloading" && observed.some((r) => r.phase === "starting" || r.phase === "running")) await this.step(d.id, "deploying", "engine starting");
    else if (d.status === "deploying" && ready > 0) await this.step(d.id, "running", "a replica is serving");
  }

  private async step(id: string, to: "downloading" | "deploying" | "running", reason: string): Promise<void> {
    await transition(this.o.db, id, to, { reason });
    this.o.logger.info({ deploymentId: id, to }, "deployment state changed");
    await this.publishChange(id);
  }

  private async publishChange(id: string): Promise<void> {
    await this.o.redis.publish(this.o.keys.registryChannel, JSON.stringify({ deploymentId: id }));
  }

  private async desiredReplicas(d: DeploymentView, current: number): Promise<number> {
    const settings = d.settings as unknown as DeploymentSettings;
    const config = d.config as unknown as DeploymentConfig;
    // Jobs a scheduler holds while they wait for room are "active" in BullMQ: still queued for us.
    const counts = await this.o.queueFor(d.id).getJobCounts("wait", "prioritized", "active");
    const queued = (counts.wait ?? 0) + (counts.prioritized ?? 0) + (counts.active ?? 0);
    const totals = this.o.directory.totals(d.id);
    const state = this.scale.get(d.id) ?? INITIAL_AUTOSCALER_STATE;
    const decision = decideReplicas(
      { now: this.now(), replicas: current, queued, oldestWaitMs: 0, running: totals.running + totals.waiting, capacityPerReplica: config.max_batch_size },
      state,
      { minInstances: settings.min_instances, maxInstances: settings.max_instances, scaleToZeroIdleMs: this.o.scaleToZeroIdleMs },
    );
    this.scale.set(d.id, decision.state);
    if (decision.desired !== current) {
      this.o.metrics.autoscaler.inc({ deployment: d.id, reason: decision.reason });
      this.o.logger.info({ deploymentId: d.id, from: current, to: decision.desired, reason: decision.reason }, "autoscaler decision");
    }
    return decision.desired;
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    if (this.leader) await this.o.redis.eval(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`, 1, this.o.keys.leader, this.o.schedulerId);
  }
}
