/**
 * Reconciles what the registry wants with what runs. Only the leader (a Redis lease)
 * acts, so several schedulers can run. Each pass, per deployment: move its lifecycle
 * forward from what the driver and the agents' heartbeats show, decide how many
 * replicas it should have (autoscaler), and hand that to the runtime driver.
 */
import type { Kysely } from "kysely";
import type { Redis } from "ioredis";
import { PlatformError, type Logger } from "@infera/core";
import type { DeploymentStatusNote, ObservedDeployment, RedisKeys } from "@infera/contracts";
import { RedisLease } from "@infera/queue";
import { decideReplicas, INITIAL_AUTOSCALER_STATE, type AutoscalerState } from "@infera/policy";
import {
  getSealedHfToken,
  listDeployments,
  noteDeploymentEvent,
  openSecretWithKeys,
  putHfToken,
  sealSecret,
  transition,
  type DB,
  type DeploymentState,
  type DeploymentView,
} from "@infera/registry";
import type { ReplicaDirectory } from "./replicas.ts";
import type { SchedulerMetrics } from "./metrics.ts";
import type { ReplicaObservation, ReplicaSpec, RuntimeDriver } from "./runtime/driver.ts";
import { hfTokenSecretName } from "./runtime/kubernetes-manifest.ts";

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
  /** Requests queued for a deployment (waiting in Redis or held by a scheduler). */
  queued: (deploymentId: string) => Promise<number>;
  /**
   * Key from SECRETS_KEY (`secretsKeyFrom`): opens deployments' sealed Hugging Face tokens
   * for the kubernetes driver. Without it a kubernetes deployment with a token fails.
   */
  secretsKey?: Buffer;
  /** From SECRETS_KEY_PREVIOUS: tokens sealed under it still open, and are re-sealed under `secretsKey`. */
  previousSecretsKey?: Buffer;
  now?: () => number;
}

/** How often the leader reads the cluster's GPU nodes for the deploy API. */
const CAPACITY_EVERY_MS = 10_000;
/** How long a failed deployment's last runtime view is kept. */
const FAILED_VIEW_MS = 86_400_000;

export function replicaSpecOf(d: DeploymentView): ReplicaSpec {
  const config = d.config;
  return {
    deploymentId: d.id,
    servedModelName: d.model_name,
    task: d.task,
    modalities: d.modalities,
    engine: config.engine,
    gpu: config.gpu,
    numGpus: config.num_gpus,
    maxBatchSize: config.max_batch_size,
    hf: config.hf
      ? { repo: config.hf.repo, revision: config.hf.revision ?? undefined, tokenSecretName: config.hf.has_token ? hfTokenSecretName(d.id) : undefined }
      : undefined,
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
  /** Stopped/failed/deleted deployments this process has made sure run nothing (once each). */
  private readonly settled = new Set<string>();
  private readonly now: () => number;
  /** Only the holder of this lease reconciles (renewed every pass, lapses after five). */
  private readonly lease: RedisLease;
  /** The status note last published per deployment. */
  private readonly notes = new Map<string, string>();
  private capacityAt = -Infinity;
  /** When the last pass ended (epoch ms; 0: none yet): readiness says the loop runs. */
  lastPassAt = 0;

  constructor(private readonly o: ReconcilerOptions) {
    this.now = o.now ?? Date.now;
    this.lease = new RedisLease({ redis: o.redis, key: o.keys.leader, holder: o.schedulerId, ttlMs: Math.max(3000, o.intervalMs * 5) });
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
      .catch((err) => this.o.logger.error({ err }, "reconcile pass failed"))
      .finally(() => {
        this.running = undefined;
        this.lastPassAt = this.now();
        if (this.again) {
          this.again = false;
          void this.kick();
        }
      });
    return this.running;
  }

  private async pass(): Promise<void> {
    this.leader = await this.lease.hold();
    if (!this.leader) return;
    await this.publishCapacity();
    const deployments = await listDeployments(this.o.db, {});
    for (const d of deployments) {
      try {
        await this.reconcile(d);
      } catch (err) {
        this.o.logger.error({ err, deploymentId: d.id }, "could not reconcile deployment");
      }
    }
  }

  /** What the cluster's GPU nodes hold, for the deploy API (at most every CAPACITY_EVERY_MS). */
  private async publishCapacity(): Promise<void> {
    const { driver, redis, keys, logger } = this.o;
    if (!driver.capacity || this.now() - this.capacityAt < CAPACITY_EVERY_MS) return;
    this.capacityAt = this.now();
    try {
      const cap = await driver.capacity();
      if (!cap) return;
      const fields: Record<string, string> = {};
      for (const [gpu, c] of cap) fields[gpu] = JSON.stringify(c);
      const pipe = redis.multi().del(keys.gpuCapacity);
      if (Object.keys(fields).length > 0) pipe.hset(keys.gpuCapacity, fields);
      await pipe.exec();
    } catch (err) {
      // The deploy API falls back to the configured counts; the next pass retries.
      logger.warn({ err }, "could not read GPU capacity from the cluster");
    }
  }

  /** Why replicas wait (the runtime's words, e.g. the pod's PodScheduled message), for the deploy API. */
  private async noteStatus(d: DeploymentView, observed: readonly ReplicaObservation[]): Promise<void> {
    const { redis, keys } = this.o;
    const message = observed.find((r) => r.phase === "pending" && r.reason)?.reason;
    if (message === undefined) {
      if (this.notes.delete(d.id)) await redis.hdel(keys.deploymentStatus, d.id);
      return;
    }
    await redis.hset(keys.deploymentStatus, d.id, JSON.stringify({ message, at: this.now() } satisfies DeploymentStatusNote));
    if (this.notes.get(d.id) !== message) this.o.logger.info({ deploymentId: d.id, message }, "replicas waiting");
    this.notes.set(d.id, message);
  }

  private async reconcile(d: DeploymentView): Promise<void> {
    const { driver, directory, logger, redis, keys } = this.o;
    const log = logger.child({ deploymentId: d.id });
    if (d.status === "deleted" || d.status === "stopped" || d.status === "failed") {
      // Once per process and deployment (a restarted scheduler may find replicas of an
      // earlier run), then whenever this process had started some.
      if (this.applied.has(d.id) || !this.settled.has(d.id)) {
        // Stopped: the runtime keeps the deployment at zero (on Kubernetes its Deployment,
        // PDB and token Secret stay, scaled to 0, for `start`); failed and deleted: removed.
        if (d.status === "stopped") await driver.apply(replicaSpecOf(d), 0);
        else await driver.remove(d.id);
        await redis.hdel(keys.desiredReplicas, d.id);
        await redis.hdel(keys.deploymentStatus, d.id);
        this.notes.delete(d.id);
        // A failed deployment's last view (with its replicas' reasons) stays readable for a day.
        if (d.status === "failed") await redis.pexpire(keys.runtimeObserved(d.id), FAILED_VIEW_MS);
        else await redis.del(keys.runtimeObserved(d.id));
        if (this.applied.has(d.id)) log.info({ status: d.status }, d.status === "stopped" ? "scaled to zero: stopped" : "replicas removed");
        this.applied.delete(d.id);
        this.scale.delete(d.id);
        directory.forget(d.id);
        this.settled.add(d.id);
      }
      return;
    }
    this.settled.delete(d.id);
    await directory.refresh(d.id);
    const observed = await driver.observe(d.id);
    await this.noteStatus(d, observed);
    await this.publishObserved(d, observed);
    // Only the runtime's current replicas count: right after a stop and start, the reports of
    // the replicas just removed are still fresh for a moment.
    const ready = directory.readyAmong(d.id, new Set(observed.filter((r) => r.phase !== "stopping").map((r) => r.replicaId)));
    const failed = observed.filter((r) => r.phase === "failed");
    this.o.metrics.replicas.set({ deployment: d.id, state: "ready" }, ready);
    this.o.metrics.replicas.set({ deployment: d.id, state: "starting" }, observed.filter((r) => r.phase === "starting" || r.phase === "pending").length);
    this.o.metrics.replicas.set({ deployment: d.id, state: "failed" }, failed.length);

    if (failed.length > 0 && failed.length === observed.length && ready === 0) {
      const reason = failed[0]?.reason ?? "replica failed";
      log.warn({ reason }, "deployment failed");
      await transition(this.o.db, d.id, "failed", { failReason: reason, expectFrom: [d.status] });
      await this.publishChange(d.id);
      return;
    }

    const before = this.applied.get(d.id);
    const desired = await this.desiredReplicas(d, observed.length);
    if (before !== desired || observed.length !== desired) {
      const spec = await this.specWithToken(d);
      if ("failReason" in spec) {
        // Not retried: it needs an operator (SECRETS_KEY), then a start.
        log.warn({ reason: spec.failReason }, "deployment failed");
        await transition(this.o.db, d.id, "failed", { failReason: spec.failReason, expectFrom: [d.status] });
        await this.publishChange(d.id);
        return;
      }
      try {
        await driver.apply(spec, desired);
      } catch (err) {
        // The runtime cannot build this deployment at all (e.g. a vLLM engine without
        // hf.repo): fail it with the reason rather than retrying every pass.
        if (!(err instanceof PlatformError) || err.code !== "invalid_request") throw err;
        log.warn({ reason: err.message }, "deployment failed");
        await transition(this.o.db, d.id, "failed", { failReason: err.message, expectFrom: [d.status] });
        await this.publishChange(d.id);
        return;
      }
      this.applied.set(d.id, desired);
      await redis.hset(keys.desiredReplicas, d.id, String(desired));
      // Scale to zero and back are not lifecycle moves (the deployment stays running), but
      // an operator reading its history should see them.
      if (d.status === "running" && before !== undefined && (before === 0) !== (desired === 0)) {
        await noteDeploymentEvent(this.o.db, d.id, desired === 0 ? "scaled to zero: idle" : "woken from zero: requests queued", ["running"]);
      }
    }

    // Move the lifecycle forward from what is observed.
    if (d.status === "initializing") await this.step(d, "downloading", "weights requested");
    else if (d.status === "downloading" && observed.length > 0) {
      // The runtime has replicas for it: starting, or waiting for room (no node with the GPUs).
      await this.step(
        d,
        "deploying",
        observed.some((r) => r.phase === "starting" || r.phase === "running") ? "engine starting" : "replicas created, waiting for a node",
      );
    } else if (d.status === "deploying" && ready > 0) {
      await this.step(d, "running", "a replica is serving");
      // Idleness counts from when it serves, not from while it was starting.
      this.scale.delete(d.id);
    }
  }

  /**
   * The driver's spec, with the Hugging Face token opened when the driver hands it to engines
   * (kubernetes; the local runtime ignores tokens). `failReason` when the deployment has a
   * token this scheduler cannot open. A database error throws (the next pass retries).
   */
  private async specWithToken(d: DeploymentView): Promise<ReplicaSpec | { failReason: string }> {
    const spec = replicaSpecOf(d);
    if (this.o.driver.name !== "kubernetes" || spec.hf?.tokenSecretName === undefined) return spec;
    const { secretsKey } = this.o;
    if (!secretsKey) {
      return {
        failReason:
          "the deployment has a Hugging Face token but the scheduler has no SECRETS_KEY to open it (give it the gateway's SECRETS_KEY, then start the deployment)",
      };
    }
    const sealed = await getSealedHfToken(this.o.db, d.id);
    if (sealed === undefined) return { failReason: "the deployment has a Hugging Face token (hf.has_token) but none is stored; deploy it again with hf.token" };
    try {
      const previous = this.o.previousSecretsKey;
      const { plain, keyIndex } = openSecretWithKeys(sealed, previous ? [secretsKey, previous] : [secretsKey]);
      if (keyIndex > 0) {
        await putHfToken(this.o.db, d.id, sealSecret(plain, secretsKey));
        this.o.logger.info({ deploymentId: d.id }, "re-sealed the deployment's Hugging Face token under the current SECRETS_KEY");
      }
      return { ...spec, hfToken: plain };
    } catch {
      return {
        failReason:
          "the deployment's Hugging Face token cannot be opened with the scheduler's SECRETS_KEY (sealed under another key, or damaged): give the scheduler the gateway's SECRETS_KEY, then start the deployment",
      };
    }
  }

  private async step(d: DeploymentView, to: Extract<DeploymentState, "downloading" | "deploying" | "running">, reason: string): Promise<void> {
    // Compare-and-set: an API call (stop, delete) may have moved it since this pass read it.
    await transition(this.o.db, d.id, to, { reason, expectFrom: [d.status] });
    this.o.logger.info({ deploymentId: d.id, to }, "deployment state changed");
    await this.publishChange(d.id);
  }

  /** What the runtime shows of a deployment's replicas, for the deploy API's `/replicas` (runtime-view.ts). */
  private async publishObserved(d: DeploymentView, observed: readonly ReplicaObservation[]): Promise<void> {
    const config = d.config;
    const view: ObservedDeployment = {
      deploymentId: d.id,
      runtime: this.o.driver.name,
      at: this.now(),
      replicas: observed.map((r) => ({
        replicaId: r.replicaId,
        phase: r.phase,
        since: r.since ?? null,
        node: r.node ?? null,
        gpu: config.gpu,
        numGpus: config.num_gpus,
        reason: r.reason ?? null,
        restarts: r.restarts,
        downloadProgress: r.downloadProgress ?? null,
      })),
    };
    await this.o.redis.set(this.o.keys.runtimeObserved(d.id), JSON.stringify(view), "PX", Math.max(30_000, this.o.intervalMs * 10));
  }

  /** Whether this scheduler held the reconciler lease at its last pass (it also answers log requests). */
  get isLeader(): boolean {
    return this.leader;
  }

  private async publishChange(id: string): Promise<void> {
    await this.o.redis.publish(this.o.keys.registryChannel, JSON.stringify({ deploymentId: id }));
  }

  private async desiredReplicas(d: DeploymentView, current: number): Promise<number> {
    const { settings, config } = d;
    // Until it runs, a deployment needs a replica whatever min_instances says (0 included):
    // it cannot reach `running` otherwise, and requests may already wait for it.
    if (d.status !== "running") return Math.min(Math.max(1, settings.min_instances), Math.max(1, settings.max_instances));
    const queued = await this.o.queued(d.id);
    const totals = this.o.directory.totals(d.id);
    const state = this.scale.get(d.id) ?? INITIAL_AUTOSCALER_STATE;
    const decision = decideReplicas(
      { now: this.now(), replicas: current, queued, oldestWaitMs: 0, running: totals.running + totals.waiting, capacityPerReplica: config.max_batch_size },
      state,
      { minInstances: settings.min_instances, maxInstances: settings.max_instances, scaleToZeroIdleMs: this.o.scaleToZeroIdleMs },
    );
    this.scale.set(d.id, decision.state);
    // Every decision counts (hold included), so a dashboard shows the autoscaler is alive.
    this.o.metrics.autoscaler.inc({ deployment: d.id, reason: decision.reason });
    if (decision.desired !== current) {
      this.o.logger.info({ deploymentId: d.id, from: current, to: decision.desired, reason: decision.reason }, "autoscaler decision");
    }
    return decision.desired;
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    if (this.leader) await this.lease.release();
  }
}
