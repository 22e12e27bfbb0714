/**
 * One deployment's dispatch loop. A BullMQ worker takes the deployment's queued jobs
 * (durable, at-least-once: a scheduler that dies leaves them to be taken again); each
 * job then waits in a fair queue (virtual token counters across tenants, priority
 * classes first) until placement finds a replica with room. Dispatch is once-only per
 * job id (SET NX), so two schedulers, or a job delivered twice, never assign twice.
 */
import { Worker, WaitingError, type Job } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "@infera/core";
import { type Assignment, type InferJob, type RedisKeys } from "@infera/contracts";
import { FairQueue, type PlacementPolicy } from "@infera/policy";
import type { ReplicaDirectory } from "./replicas.ts";
import type { SchedulerMetrics } from "./metrics.ts";

interface Waiting {
  job: Job<InferJob>;
  token: string;
  settle: (outcome: "done" | "requeue") => void;
}

export interface DispatcherOptions {
  deploymentId: string;
  capacity: number;
  policy: PlacementPolicy;
  redis: Redis;
  /** A connection BullMQ may use (maxRetriesPerRequest: null). */
  bullConnection: Redis;
  keys: RedisKeys;
  directory: ReplicaDirectory;
  metrics: SchedulerMetrics;
  logger: Logger;
  schedulerId: string;
  maxQueued: number;
  /** BullMQ workers fetching this deployment's jobs side by side (default 8). */
  fetchers?: number;
  /** BullMQ lock duration for held jobs (default 15 s); stalled jobs are checked at a third of it. */
  jobLockMs?: number;
  /** Asks the reconciler to bring a replica up (scale from zero). */
  wake: (deploymentId: string) => void;
  now?: () => number;
}

/** Marks a job dispatched and tells its gateway, in one round trip; 0 when it was already dispatched. */
const DISPATCH_ONCE = `if redis.call('SET', KEYS[1], ARGV[1], 'PX', 600000, 'NX') then
  redis.call('PUBLISH', KEYS[2], ARGV[2])
  return 1
end
return 0`;

async function dispatchOnce(redis: Redis, dispatchedKey: string, channel: string, schedulerId: string, message: string): Promise<boolean> {
  const r = redis as Redis & { inferaDispatchOnce?: (k1: string, k2: string, a1: string, a2: string) => Promise<number> };
  if (!r.inferaDispatchOnce) redis.defineCommand("inferaDispatchOnce", { numberOfKeys: 2, lua: DISPATCH_ONCE });
  return (await r.inferaDispatchOnce!(dispatchedKey, channel, schedulerId, message)) === 1;
}

export class DeploymentDispatcher {
  private readonly queue = new FairQueue<Waiting>();
  private readonly workers: Worker<InferJob>[] = [];
  private sweepTimer: NodeJS.Timeout | undefined;
  private pumping = false;
  private stopping = false;
  private readonly now: () => number;
  capacity: number;

  constructor(private readonly o: DispatcherOptions) {
    this.now = o.now ?? Date.now;
    this.capacity = o.capacity;
  }

  get depth(): number {
    return this.queue.size;
  }

  start(): void {
    const { keys, deploymentId } = this.o;
    // A BullMQ worker fetches one job per round trip, in sequence: that, not Redis, bounds
    // how fast jobs reach the fair queue. Several workers fetch side by side.
    const fetchers = Math.max(1, Math.min(this.o.fetchers ?? 8, this.o.maxQueued));
    for (let i = 0; i < fetchers; i++) this.workers.push(this.newWorker(Math.ceil(this.o.maxQueued / fetchers)));
    this.sweepTimer = setInterval(() => this.sweep(), 100);
  }

  private newWorker(concurrency: number): Worker<InferJob> {
    const { keys, deploymentId } = this.o;
    const worker = new Worker<InferJob>(keys.queueName(deploymentId), (job, token) => this.hold(job, token ?? ""), {
      connection: this.o.bullConnection,
      prefix: keys.bullPrefix,
      concurrency,
      // Held jobs keep their lock while they wait; a dead scheduler's jobs return after this.
      lockDuration: this.o.jobLockMs ?? 15_000,
      stalledInterval: Math.max(500, Math.floor((this.o.jobLockMs ?? 15_000) / 3)),
      maxStalledCount: 1_000,
      drainDelay: 5,
    });
    worker.on("error", (err) => this.o.logger.warn({ err: err.message }, "queue worker error"));
    return worker;
  }

  private hold(job: Job<InferJob>, token: string): Promise<void> {
    if (this.stopping) return this.giveBack(job, token);
    return new Promise<"done" | "requeue">((settle) => {
      const d = job.data;
      // Lower BullMQ priority numbers run first; the fair queue serves higher numbers first.
      this.queue.push({ job, token, settle }, { tenantId: d.tenantId, priority: -d.priority, inputTokens: d.estimatedTokens, front: d.priority === 0 });
      this.o.metrics.queueDepth.set({ deployment: this.o.deploymentId }, this.queue.size);
      this.pump();
    }).then((outcome) => (outcome === "requeue" ? this.giveBack(job, token) : undefined));
  }

  /** Return a job to the queue (this scheduler is stopping) for another scheduler to take. */
  private async giveBack(job: Job<InferJob>, token: string): Promise<void> {
    await job.moveToWait(token);
    throw new WaitingError();
  }

  /** Place as many waiting requests as replicas have room for. */
  pump(): void {
    if (this.pumping || this.queue.size === 0) return;
    this.pumping = true;
    try {
      const { directory, deploymentId, policy } = this.o;
      let views = directory.views(deploymentId, this.capacity);
      if (views.length === 0) {
        this.o.wake(deploymentId);
        return;
      }
      while (this.queue.size > 0) {
        const next = this.queue.peek();
        if (!next) break;
        const d = next.job.data;
        const replicaId = policy.place(
          { requestId: d.requestId, tenantId: d.tenantId, prefixHashes: d.prefixHashes, estimatedTokens: d.estimatedTokens, exclude: d.excludeReplicas },
          views,
        );
        if (!replicaId) break;
        this.queue.pop();
        directory.assigned(deploymentId, replicaId);
        views = directory.views(deploymentId, this.capacity);
        void this.assign(next, replicaId);
      }
    } finally {
      this.pumping = false;
      this.o.metrics.queueDepth.set({ deployment: this.o.deploymentId }, this.queue.size);
    }
  }

  private async assign(w: Waiting, replicaId: string): Promise<void> {
    const { redis, keys, deploymentId } = this.o;
    const d = w.job.data;
    const address = this.o.directory.address(deploymentId, replicaId) ?? "";
    const queuedMs = this.now() - d.enqueuedAt;
    const msg: Assignment = { type: "assigned", requestId: d.requestId, replicaId, address, queuedMs, schedulerId: this.o.schedulerId, deploymentId };
    try {
      const dispatched = await dispatchOnce(redis, keys.dispatched(w.job.id ?? d.requestId), keys.gatewayChannel(d.gatewayId), this.o.schedulerId, JSON.stringify(msg));
      if (dispatched) {
        this.o.logger.debug({ requestId: d.requestId, replicaId, queuedMs }, "dispatched");
        this.o.metrics.dispatched.inc({ deployment: deploymentId });
        this.o.metrics.queueTime.observe({ deployment: deploymentId }, queuedMs / 1000);
      } else {
        // Another scheduler (or an earlier delivery of this job) already dispatched it.
        this.o.directory.released(deploymentId, replicaId, 1, false);
      }
      w.settle("done");
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message, requestId: d.requestId }, "could not publish an assignment");
      this.o.directory.released(deploymentId, replicaId, 1, false);
      w.settle("requeue");
    }
  }

  /**
   * Usage learned when requests end (the gateways' releases): output tokens, and the
   * difference between the prompt tokens used and the estimate charged at dispatch.
   */
  charge(tenantId: string, inputTokens: number, outputTokens: number): void {
    this.queue.charge(tenantId, inputTokens, outputTokens);
  }

  /** The tenant's virtual token counter in this scheduler's fair queue. */
  counter(tenantId: string): number {
    return this.queue.counter(tenantId);
  }

  /** Answer requests whose deadline passed while they waited. */
  private sweep(): void {
    const now = this.now();
    const expired = this.queue.remove((w) => w.job.data.deadline <= now);
    for (const w of expired) void this.reject(w, "unavailable", "no replica could take the request before its deadline", 5);
    if (expired.length) this.o.metrics.queueDepth.set({ deployment: this.o.deploymentId }, this.queue.size);
    if (this.queue.size > 0) this.pump();
  }

  private async reject(w: Waiting, code: "unavailable" | "not_found", message: string, retryAfterS?: number): Promise<void> {
    const d = w.job.data;
    this.o.metrics.rejected.inc({ deployment: this.o.deploymentId, reason: code });
    const msg: Assignment = { type: "rejected", requestId: d.requestId, code, message, retryAfterS };
    try {
      await this.o.redis.publish(this.o.keys.gatewayChannel(d.gatewayId), JSON.stringify(msg));
    } finally {
      w.settle("done");
    }
  }

  /** The deployment was stopped or deleted: answer everything that waits. */
  async rejectAll(code: "unavailable" | "not_found", message: string): Promise<void> {
    const all = this.queue.remove(() => true);
    // Stopped (or failed): the client may come back later; deleted: it need not.
    await Promise.all(all.map((w) => this.reject(w, code, message, code === "unavailable" ? 30 : undefined)));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const w of this.queue.remove(() => true)) w.settle("requeue");
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
