/**
 * The gateway's side of the queue: add a request to its deployment's queue stream (one
 * XADD), wait for the scheduler's assignment on this gateway's reply channel, and tell the
 * scheduler when the request is done with its replica (batched releases). A request the
 * gateway stops waiting for (client gone, deadline, shutdown) is withdrawn: its entry is
 * deleted from the stream, so no scheduler dispatches it afterwards.
 *
 * A request that would take its deployment's queue past the bound (`QueueBound`) is
 * refused at once with `queue_full` (429); one that waits past its deadline gets
 * `unavailable` (503).
 *
 * The fast path (`place`, `slots.ts`): while the scheduler lends this gateway slots, a first
 * attempt is placed here without Redis; its release tells the scheduler what runs there now.
 */
import { type Logger, PlatformError } from "@infera/core";
import type { Redis } from "ioredis";
import { QUEUE_FIELD, type QueueKeys } from "./keys.ts";
import { type Assigned, type Assignment, type InferJob, parseAssignments } from "./messages.ts";
import { QueueBound } from "./queue-bound.ts";
import { ReleaseBatcher, type UsedTokens } from "./releases.ts";
import { type QueueReason, SlotLeases } from "./slots.ts";

/** How long past the job's deadline the gateway still waits for an answer (ms). */
const DEADLINE_SLACK_MS = 250;

interface Pending {
  deploymentId: string;
  resolve: (a: Assigned) => void;
  reject: (e: PlatformError) => void;
  timer: NodeJS.Timeout;
  /** Deletes the request's queue entry (once it is known) so that no scheduler dispatches it. */
  withdraw: () => void;
}

/** The counters a QueueClient keeps (the gateway's metrics). */
export interface QueueClientMetrics {
  assignments: { inc(labels: { outcome: "assigned" | "rejected" | "orphan" | "queue_full" }): void };
  enqueued: { inc(labels: { deployment: string }): void };
  /** How each first attempt got its replica: a leased slot (`fast`) or the queue. */
  placements?: { inc(labels: { path: "fast" | "queue"; reason?: QueueReason | "fast_path_off" }): void };
}

export interface QueueClientOptions {
  redis: Redis;
  /** Connection for queue entries: waits for Redis to come back rather than failing (maxRetriesPerRequest: null). */
  queueConnection: Redis;
  keys: QueueKeys;
  gatewayId: string;
  metrics: QueueClientMetrics;
  logger: Logger;
  /** Most requests waiting for a replica per deployment, across gateways; beyond it 429. Default: unbounded. */
  queueMax?: number;
  /** How often gateways exchange their waiting counts (ms). Default 200. */
  syncMs?: number;
  /** The fast path (slot leases, `slots.ts`): place on a leased slot while one is free. Default true (FAST_PATH). */
  fastPath?: boolean;
  /** How long an idle deployment's slot lease is synced at every tick, then kept (`slots.ts`); tests shorten them. */
  slotLeaseIdle?: { hotMs: number; keepMs: number };
  now?: () => number;
}

export class QueueClient {
  private readonly pending = new Map<string, Pending>();
  private readonly bound: QueueBound;
  private readonly releases: ReleaseBatcher;
  private readonly slots: SlotLeases | undefined;
  /** Requests waiting for a replica, per deployment (this gateway's). */
  private readonly waitingBy = new Map<string, number>();

  constructor(private readonly o: QueueClientOptions) {
    this.bound = new QueueBound({ redis: o.redis, keys: o.keys, gatewayId: o.gatewayId, logger: o.logger, max: o.queueMax, syncMs: o.syncMs, now: o.now });
    this.releases = new ReleaseBatcher({ redis: o.redis, keys: o.keys, logger: o.logger });
    if (o.fastPath !== false)
      this.slots = new SlotLeases({ redis: o.redis, keys: o.keys, gatewayId: o.gatewayId, logger: o.logger, syncMs: o.syncMs, now: o.now, ...o.slotLeaseIdle });
  }

  /** The channel this gateway's assignments arrive on; its messages go to `deliver`. */
  get replyChannel(): string {
    return this.o.keys.gatewayChannel(this.o.gatewayId);
  }

  /** Requests this gateway has waiting for a replica. */
  get waiting(): number {
    return this.pending.size;
  }

  /** Requests waiting for a replica on a deployment: this gateway's exactly, plus the others' last reported. */
  queued(deploymentId: string): number {
    return this.bound.queued(deploymentId);
  }

  /** Starts exchanging waiting counts with the other gateways (only needed with a bound). */
  start(): void {
    this.bound.start();
    this.slots?.start();
  }

  /**
   * The fast path: a replica from this gateway's leased slots, placed here and now (no Redis),
   * when it holds a free one and none of its requests of the deployment waits in the queue.
   * Undefined: enqueue. Counts the placement's path.
   */
  place(
    deploymentId: string,
    req: { requestId: string; tenantId: string; prefixHashes: readonly string[]; estimatedTokens: number; promptTokens?: number },
  ): Assigned | undefined {
    const a = this.slots?.take(deploymentId, req, this.waitingBy.get(deploymentId) ?? 0);
    if (a) this.o.metrics.placements?.inc({ path: "fast" });
    else this.o.metrics.placements?.inc({ path: "queue", reason: this.slots?.missed ?? "fast_path_off" });
    if (a) this.o.logger.debug({ requestId: a.requestId, replicaId: a.replicaId, epoch: a.epoch }, "placed on a leased slot");
    return a;
  }

  /** Fast-path requests this gateway runs on a deployment now. */
  fastInUse(deploymentId: string): number {
    return this.slots?.inUse(deploymentId) ?? 0;
  }

  /**
   * Enqueues the request and waits for its assignment. Rejects at once with `queue_full`
   * when the deployment's queue is at its bound (re-queues after a failed replica are let
   * through: they were already admitted), at the deadline with `unavailable`, when `signal`
   * aborts (`timeout`: the client went away), or when the scheduler rejects it.
   */
  async enqueue(deploymentId: string, job: InferJob, signal: AbortSignal): Promise<Assigned> {
    if (!(await this.bound.enter(deploymentId, job.attempt > 0))) {
      this.o.metrics.assignments.inc({ outcome: "queue_full" });
      throw new PlatformError("queue_full", `The model's queue is full (${this.bound.max} requests waiting); retry shortly.`, { retryAfterS: 2 });
    }
    const waitMs = Math.max(0, job.deadline - Date.now());
    const stream = this.o.keys.queue(deploymentId, job.priority);
    const conn = this.o.queueConnection;
    const added = conn.xadd(stream, "*", QUEUE_FIELD, JSON.stringify(job));
    const withdraw = () => void added.then((entryId) => (entryId ? conn.xdel(stream, entryId) : 0)).catch(() => {});
    const assigned = new Promise<Assigned>((resolve, reject) => {
      const timer = setTimeout(
        () => this.withdraw(job.requestId, new PlatformError("unavailable", "No replica could take the request in time; try again.", { retryAfterS: 5 })),
        waitMs + DEADLINE_SLACK_MS,
      );
      this.pending.set(job.requestId, { deploymentId, resolve, reject, timer, withdraw });
      this.waitingBy.set(deploymentId, (this.waitingBy.get(deploymentId) ?? 0) + 1);
    });
    // It may reject (deadline, client gone) while the add below still waits for Redis.
    assigned.catch(() => {});
    const onAbort = () => this.withdraw(job.requestId, new PlatformError("timeout", "The client went away."));
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      // Redis down: the add waits for it to come back, but never past the request's deadline.
      await Promise.race([
        added,
        assigned.then(
          () => undefined,
          () => undefined,
        ),
      ]);
      this.o.metrics.enqueued.inc({ deployment: deploymentId });
    } catch (err) {
      this.settle(job.requestId);
      signal.removeEventListener("abort", onAbort);
      throw new PlatformError("unavailable", "The request queue is unavailable; try again.", { cause: err, retryAfterS: 1 });
    }
    try {
      return await assigned;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** Stops waiting for a request (deadline, client gone, shutting down): its entry is withdrawn and its caller gets `err`. */
  withdraw(requestId: string, err: PlatformError): void {
    const p = this.settle(requestId);
    if (!p) return;
    p.withdraw();
    p.reject(err);
  }

  /** A message on this gateway's reply channel (a JSON array of assignments). */
  deliver(message: string): void {
    const { items, dropped } = parseAssignments(message);
    if (dropped) this.o.logger.warn({ dropped }, "dropped assignments that do not match the schema");
    for (const a of items) this.answer(a);
  }

  /**
   * The request is done with its replica (or never reached it): the scheduler's slot frees.
   * `used` (what the request consumed) lets the scheduler's fair queue charge output tokens.
   */
  release(a: Assigned, failed: boolean, used?: UsedTokens): void {
    const fast = a.epoch !== undefined ? this.slots?.release(a) : undefined;
    this.releases.add(a, failed, used, fast?.lease, fast?.deferrable === true);
  }

  /** Answers every waiting request `unavailable`, sends the releases batched so far, and clears this gateway's counts. */
  async stop(): Promise<void> {
    for (const id of [...this.pending.keys()]) this.withdraw(id, new PlatformError("unavailable", "The gateway is shutting down.", { retryAfterS: 1 }));
    this.releases.flush();
    await Promise.all([this.bound.stop(), this.slots?.stop()]);
  }

  private answer(a: Assignment): void {
    this.o.logger.debug({ requestId: a.requestId, type: a.type }, "scheduler answered");
    const p = this.settle(a.requestId);
    if (!p) {
      // Nobody waits for it (client gone, or a duplicate): give the slot back.
      if (a.type === "assigned") this.release(a, false);
      this.o.metrics.assignments.inc({ outcome: "orphan" });
      return;
    }
    if (a.type === "assigned") {
      this.o.metrics.assignments.inc({ outcome: "assigned" });
      p.resolve(a);
    } else {
      this.o.metrics.assignments.inc({ outcome: "rejected" });
      p.reject(new PlatformError(a.code, a.message, { retryAfterS: a.retryAfterS }));
    }
  }

  /** Takes a request out of the waiting set; undefined when it was not there. */
  private settle(requestId: string): Pending | undefined {
    const p = this.pending.get(requestId);
    if (!p) return undefined;
    this.pending.delete(requestId);
    clearTimeout(p.timer);
    this.bound.leave(p.deploymentId);
    const w = (this.waitingBy.get(p.deploymentId) ?? 1) - 1;
    if (w > 0) this.waitingBy.set(p.deploymentId, w);
    else this.waitingBy.delete(p.deploymentId);
    return p;
  }
}
