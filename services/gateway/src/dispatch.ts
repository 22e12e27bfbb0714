/**
 * The gateway's side of the queue: put a request on its deployment's BullMQ queue,
 * wait for the scheduler's assignment on this instance's reply channel, and tell the
 * scheduler when the request is done with its replica (batched releases).
 */
import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { PlatformError, type Logger } from "@infera/core";
import { JOBS, jobId, type Assignment, type InferJob, type RedisKeys, type Release } from "@infera/contracts";
import type { GatewayMetrics } from "./metrics.ts";

export type Assigned = Extract<Assignment, { type: "assigned" }>;

interface Pending {
  resolve: (a: Assigned) => void;
  reject: (e: PlatformError) => void;
  timer: NodeJS.Timeout;
}

export interface DispatchOptions {
  redis: Redis;
  bullConnection: Redis;
  keys: RedisKeys;
  gatewayId: string;
  metrics: GatewayMetrics;
  logger: Logger;
}

export class Dispatch {
  private readonly queues = new Map<string, Queue>();
  private readonly pending = new Map<string, Pending>();
  private readonly releases = new Map<string, Map<string, Release>>();
  private flushScheduled = false;

  constructor(private readonly o: DispatchOptions) {}

  get waiting(): number {
    return this.pending.size;
  }

  /** Called with each message on this gateway's reply channel. */
  onMessage(message: string): void {
    let a: Assignment;
    try {
      a = JSON.parse(message) as Assignment;
    } catch {
      return;
    }
    this.o.logger.debug({ requestId: a.requestId, type: a.type }, "scheduler answered");
    const p = this.pending.get(a.requestId);
    if (!p) {
      // Nobody waits for it (client gone, or a duplicate): give the slot back.
      if (a.type === "assigned") this.release(a, false);
      this.o.metrics.assignments.inc({ outcome: "orphan" });
      return;
    }
    this.pending.delete(a.requestId);
    clearTimeout(p.timer);
    if (a.type === "assigned") {
      this.o.metrics.assignments.inc({ outcome: "assigned" });
      p.resolve(a);
    } else {
      this.o.metrics.assignments.inc({ outcome: "rejected" });
      p.reject(new PlatformError(a.code, a.message, { retryAfterS: a.retryAfterS }));
    }
  }

  private queue(deploymentId: string): Queue {
    let q = this.queues.get(deploymentId);
    if (!q) {
      q = new Queue(this.o.keys.queueName(deploymentId), { connection: this.o.bullConnection, prefix: this.o.keys.bullPrefix });
      this.queues.set(deploymentId, q);
    }
    return q;
  }

  /** Enqueue and wait for a replica. Rejects at the deadline or when `signal` aborts. */
  async enqueue(deploymentId: string, job: InferJob, signal: AbortSignal): Promise<Assigned> {
    const id = jobId(job.requestId, job.attempt);
    const waitMs = Math.max(0, job.deadline - Date.now());
    const assigned = new Promise<Assigned>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.pending.delete(job.requestId)) return;
        void this.queue(deploymentId).remove(id).catch(() => {});
        reject(new PlatformError("unavailable", "No replica could take the request in time; try again.", { retryAfterS: 5 }));
      }, waitMs + 250);
      this.pending.set(job.requestId, { resolve, reject, timer });
    });
    const onAbort = () => {
      const p = this.pending.get(job.requestId);
      if (!p) return;
      this.pending.delete(job.requestId);
      clearTimeout(p.timer);
      void this.queue(deploymentId).remove(id).catch(() => {});
      p.reject(new PlatformError("timeout", "The client went away."));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await this.queue(deploymentId).add(JOBS.infer.name, job, {
        ...JOBS.infer.options,
        jobId: id,
        ...(job.priority === 0 ? { lifo: true } : { priority: job.priority }),
      });
      this.o.metrics.enqueued.inc({ deployment: deploymentId });
    } catch (err) {
      const p = this.pending.get(job.requestId);
      if (p) {
        this.pending.delete(job.requestId);
        clearTimeout(p.timer);
      }
      signal.removeEventListener("abort", onAbort);
      throw new PlatformError("unavailable", "The request queue is unavailable; try again.", { cause: err, retryAfterS: 1 });
    }
    try {
      return await assigned;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** The request is done with its replica (or never reached it): the scheduler's slot frees. */
  release(a: Assigned, failed: boolean): void {
    let bySched = this.releases.get(a.schedulerId);
    if (!bySched) {
      bySched = new Map();
      this.releases.set(a.schedulerId, bySched);
    }
    const k = `${a.deploymentId}\u0000${a.replicaId}\u0000${failed ? 1 : 0}`;
    const r = bySched.get(k);
    if (r) r.count++;
    else bySched.set(k, { deploymentId: a.deploymentId, replicaId: a.replicaId, count: 1, failed });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flushReleases());
    }
  }

  private flushReleases(): void {
    this.flushScheduled = false;
    const all = [...this.releases.entries()];
    this.releases.clear();
    if (all.length === 0) return;
    const pipe = this.o.redis.pipeline();
    for (const [schedulerId, rs] of all) pipe.publish(this.o.keys.schedulerChannel(schedulerId), JSON.stringify([...rs.values()]));
    pipe.exec().catch((err) => this.o.logger.warn({ err: (err as Error).message }, "could not publish releases"));
  }

  async close(): Promise<void> {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new PlatformError("unavailable", "The gateway is shutting down.", { retryAfterS: 1 }));
      this.pending.delete(id);
    }
    this.flushReleases();
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
