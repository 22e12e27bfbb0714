/**
 * One deployment's dispatch loop. One scheduler at a time dispatches a deployment (its
 * dispatch lease, renewed every third of `leaseMs`): it alone sees every waiting request and
 * every release, so fairness is global and a replica never gets more than its capacity from
 * two schedulers; the others stand by and take over when it stops or dies.
 *
 * While it holds the lease, the fetch loop reads the deployment's queue in batches (as many
 * entries as it has room for, `StreamConsumer.fetch`); each then waits in a fair queue
 * (virtual token counters across tenants, priority classes first) until placement finds a
 * replica with room. One pump places everything that fits and sends the whole batch of
 * assignments in one script call, which dispatches each entry once (see `@infera/queue`).
 */
import type { Logger } from "@infera/core";
import { noTracing, type TraceSpan, type Tracing } from "@infera/telemetry";
import { FairQueue, type PlacementPolicy } from "@infera/policy";
import {
  type Assignment,
  entryKey,
  type Release,
  LeaseKeeper,
  PRIORITY,
  type QueueEntry,
  type QueueKeys,
  type RedisLease,
  type StreamConsumer,
} from "@infera/queue";
import type { SchedulerMetrics } from "./metrics.ts";
import type { ReplicaDirectory } from "./replicas.ts";
import type { SlotLender } from "./slot-lender.ts";

/** One entry to take off its stream, and the message for its gateway if it is still there. */
interface Take {
  e: QueueEntry;
  message: Assignment;
  replicaId?: string;
}

export interface DispatcherOptions {
  deploymentId: string;
  capacity: number;
  policy: PlacementPolicy;
  /** This deployment's queue streams, as a member of the schedulers' group; closed by stop(). */
  consumer: StreamConsumer;
  /** The deployment's dispatch lease. */
  lease: RedisLease;
  keys: QueueKeys;
  directory: ReplicaDirectory;
  metrics: SchedulerMetrics;
  logger: Logger;
  schedulerId: string;
  /** Most entries this scheduler holds for the deployment (its fair queue's window). */
  maxQueued: number;
  /** The dispatch lease's length: another scheduler takes the deployment over this long after its holder died (default 2 s). */
  leaseMs?: number;
  /** Asks the reconciler to bring a replica up (scale from zero). */
  wake: (deploymentId: string) => void;
  now?: () => number;
  /** Placement spans, continuing each job's traceparent (default: none). */
  tracing?: Tracing;
  /** The fast path: lends gateways slots while nothing waits (absent: FAST_PATH=false). */
  lender?: SlotLender;
}

export class DeploymentDispatcher {
  private readonly queue = new FairQueue<QueueEntry>();
  /** Every entry this scheduler holds (in the fair queue or being dispatched), by `entryKey`. */
  private readonly held = new Map<string, QueueEntry>();
  private readonly lease: LeaseKeeper;
  private sweepTimer: NodeJS.Timeout | undefined;
  private fetching: Promise<void> | undefined;
  private pumping = false;
  private stopping = false;
  private readonly now: () => number;
  private readonly capacity: number;
  private readonly tracing: Tracing;
  /** Placement spans of the entries held now (tracing on, entries that carry a traceparent). */
  private readonly spans = new Map<QueueEntry, TraceSpan>();

  constructor(private readonly o: DispatcherOptions) {
    this.now = o.now ?? Date.now;
    this.capacity = o.capacity;
    this.tracing = o.tracing ?? noTracing;
    this.lease = new LeaseKeeper(o.lease, {
      everyMs: Math.max(100, Math.floor((o.leaseMs ?? 2_000) / 3)),
      onGained: () => this.activate(),
      onLost: () => this.deactivate(),
      logger: o.logger,
    });
  }

  /** This scheduler holds the deployment's dispatch lease. */
  private get active(): boolean {
    return this.lease.held;
  }

  start(): void {
    this.fetching = this.o.consumer.run({
      active: () => this.active && !this.stopping,
      room: () => this.o.maxQueued - this.held.size,
      accept: (entries) => this.accept(entries),
      held: () => this.held.values(),
      gone: (keys) => {
        for (const e of this.queue.remove((x) => keys.has(entryKey(x.stream, x.entryId)))) this.forget(e);
      },
    });
    this.lease.start();
    this.sweepTimer = setInterval(() => this.sweep(), 100);
  }

  /** Took the lease: whatever the previous holder had read is taken over now, then the fetch loop runs. */
  private async activate(): Promise<void> {
    this.o.logger.info({ deploymentId: this.o.deploymentId }, "dispatching this deployment");
    // The standing leases first: until they are counted, placing could give away slots a gateway still holds.
    await this.o.lender?.activate();
    await this.o.consumer.ensureGroups();
    await this.o.consumer.takeOver();
    this.o.consumer.wake();
  }

  /** Lost the lease (another scheduler has it): hand back what this one holds. */
  private async deactivate(): Promise<void> {
    this.o.logger.warn({ deploymentId: this.o.deploymentId }, "another scheduler dispatches this deployment now");
    this.o.lender?.deactivate();
    await this.handBack();
  }

  /** Entries read or taken over: into the fair queue, then placed (or, when the lease went meanwhile, handed back). */
  private async accept(entries: readonly QueueEntry[]): Promise<void> {
    for (const e of entries) {
      const k = entryKey(e.stream, e.entryId);
      if (this.held.has(k)) continue;
      this.held.set(k, e);
      if (this.tracing.enabled && e.job.traceparent !== undefined) this.spans.set(e, this.placementSpan(e));
      // Lower class numbers go first; the fair queue serves higher numbers first.
      const { tenantId, priority, estimatedTokens } = e.job;
      this.queue.push(e, { tenantId, priority: -priority, inputTokens: estimatedTokens, front: this.o.consumer.isFront(e) || priority === PRIORITY.requeued });
    }
    this.o.metrics.queueDepth.set({ deployment: this.o.deploymentId }, this.queue.size);
    if (!this.active) await this.handBack();
    else this.pump();
  }

  private forget(e: QueueEntry, replicaId?: string, at?: number): void {
    this.held.delete(entryKey(e.stream, e.entryId));
    this.o.consumer.wake();
    const span = this.spans.get(e);
    if (span) {
      this.spans.delete(e);
      if (replicaId) span.set("infera.replica.id", replicaId);
      else span.fail("not_placed", "rejected, withdrawn or handed to another scheduler");
      span.end(at);
    }
  }

  /** From the moment this scheduler holds the entry to the moment its assignment is published. */
  private placementSpan(e: QueueEntry): TraceSpan {
    return this.tracing.start("infera.scheduler.place", {
      parent: e.job.traceparent,
      kind: "consumer",
      attributes: {
        "messaging.system": "redis",
        "messaging.operation.type": "process",
        "infera.deployment.id": this.o.deploymentId,
        "infera.scheduler.id": this.o.schedulerId,
        "infera.placement.policy": this.o.policy.name,
        "infera.queue.priority": e.job.priority,
        "infera.queue.attempt": e.job.attempt,
      },
    });
  }

  /** Place as many waiting requests as replicas have room for; send the assignments in one batch. */
  pump(): void {
    if (this.pumping || this.queue.size === 0 || this.stopping || !this.active) return;
    // A new holder places nothing until it counts what the gateways' leases hold (`SlotLender.load`).
    if (this.o.lender && !this.o.lender.counted) return;
    this.pumping = true;
    const batch: Take[] = [];
    try {
      const { directory, deploymentId, policy, schedulerId } = this.o;
      let views = directory.views(deploymentId, this.capacity);
      if (views.length === 0) {
        this.o.wake(deploymentId);
        return;
      }
      for (let next = this.queue.peek(); next; next = this.queue.peek()) {
        const d = next.job;
        // More of its tenant's requests wait here: it may not take a replica's reserved slots.
        const backlogged = this.queue.sizeOf(d.tenantId) > 1;
        const request = {
          requestId: d.requestId,
          tenantId: d.tenantId,
          prefixHashes: d.prefixHashes,
          estimatedTokens: d.estimatedTokens,
          exclude: d.excludeReplicas,
          backlogged,
        };
        let replicaId = policy.place(request, views);
        let e: QueueEntry | undefined = next;
        if (replicaId) this.queue.pop();
        else if (backlogged) {
          // The head's tenant may not take reserved slots; a tenant with nothing else queued may,
          // and does not wait behind it (head-of-line blocking would keep a light tenant beside a
          // flood waiting until the flood's counter passes its own).
          e = this.queue.takeLone((x) => {
            const j = x.job;
            replicaId = policy.place(
              {
                requestId: j.requestId,
                tenantId: j.tenantId,
                prefixHashes: j.prefixHashes,
                estimatedTokens: j.estimatedTokens,
                exclude: j.excludeReplicas,
                backlogged: false,
              },
              views,
            );
            return replicaId !== null;
          });
        }
        if (!e || !replicaId) break;
        const job = e.job;
        directory.assigned(deploymentId, replicaId, job.promptTokens);
        views = directory.views(deploymentId, this.capacity);
        const address = directory.address(deploymentId, replicaId) ?? "";
        const queuedMs = this.now() - job.enqueuedAt;
        batch.push({ e, replicaId, message: { type: "assigned", requestId: job.requestId, replicaId, address, queuedMs, schedulerId, deploymentId } });
      }
    } finally {
      this.pumping = false;
      this.o.metrics.queueDepth.set({ deployment: this.o.deploymentId }, this.queue.size);
    }
    if (batch.length) void this.take(batch);
  }

  /** Sends a batch: assignments (and rejections) for the entries still queued; frees the slots of the rest. */
  private async take(batch: Take[]): Promise<void> {
    const { deploymentId, keys, metrics, directory } = this.o;
    let taken: number[];
    // Placement spans end when the assignments are sent (the gateway may hear of them before the call returns).
    const sentAt = performance.now();
    try {
      const entries = batch.map((t) => ({ ...t.e, channel: keys.gatewayChannel(t.e.job.gatewayId), message: JSON.stringify(t.message) }));
      taken = await this.o.consumer.take(entries);
    } catch (err) {
      this.o.logger.warn({ err, requests: batch.length }, "could not publish assignments");
      // Try again later: back to the front of the fair queue, slots given back.
      for (const t of batch) {
        if (t.replicaId) directory.released(deploymentId, t.replicaId, 1, false);
        if (!this.stopping && this.active) this.queue.push(t.e, { tenantId: t.e.job.tenantId, priority: -t.e.job.priority, inputTokens: 0, front: true });
        else this.forget(t.e);
      }
      return;
    }
    batch.forEach((t, i) => {
      const m = t.message;
      this.forget(t.e, m.type === "assigned" && taken[i] === 1 ? m.replicaId : undefined, sentAt);
      if (m.type === "rejected") {
        metrics.rejected.inc({ deployment: deploymentId, reason: m.code });
      } else if (taken[i] === 1) {
        this.o.logger.debug({ requestId: m.requestId, replicaId: m.replicaId, queuedMs: m.queuedMs }, "dispatched");
        metrics.dispatched.inc({ deployment: deploymentId });
        metrics.queueTime.observe({ deployment: deploymentId }, m.queuedMs / 1000);
      } else {
        // Dispatched by another scheduler already, or withdrawn by its gateway.
        directory.released(deploymentId, m.replicaId, 1, false);
      }
    });
  }

  /**
   * The fast path's round (each replica poll): lend gateways slots, or, while entries wait
   * here for a replica, lend nothing so that every slot that frees goes to the fair queue.
   * An entry already placed (its assignment on the way) waits for nothing and counts in the
   * replica's in-flight: it does not drain the leases (it did, and under load one queued
   * request kept every gateway off the fast path: gateways with empty leases queue, which drains again).
   */
  async lend(): Promise<void> {
    if (!this.o.lender || !this.active || this.stopping) return;
    await this.o.lender.tick(this.queue.size > 0);
    this.pump();
  }

  /** Fast-path requests ended on a gateway: the slots its lease held are counted again from what it runs. */
  leaseReleased(r: Release): void {
    this.o.lender?.released(r);
    this.pump();
  }

  /**
   * Usage learned when requests end (the gateways' releases): output tokens, and the
   * difference between the prompt tokens used and the estimate charged at dispatch.
   */
  charge(tenantId: string, inputTokens: number, outputTokens: number): void {
    this.queue.charge(tenantId, inputTokens, outputTokens);
  }

  /** Answer requests whose deadline passed while they waited. */
  private sweep(): void {
    const now = this.now();
    const expired = this.queue.remove((e) => e.job.deadline <= now);
    if (expired.length) {
      void this.take(expired.map((e) => ({ e, message: rejection(e, "unavailable", "no replica could take the request before its deadline", 5) })));
      this.o.metrics.queueDepth.set({ deployment: this.o.deploymentId }, this.queue.size);
    }
    if (this.queue.size > 0) this.pump();
  }

  /** The deployment was stopped or deleted: answer everything that waits. */
  async rejectAll(code: "unavailable" | "not_found", message: string): Promise<void> {
    const all = this.queue.remove(() => true);
    // Stopped (or failed): the client may come back later; deleted: it need not.
    if (all.length) await this.take(all.map((e) => ({ e, message: rejection(e, code, message, code === "unavailable" ? 30 : undefined) })));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.lease.stop();
    this.o.lender?.deactivate();
    clearInterval(this.sweepTimer);
    // Ends a blocked read at once; what it had taken stays in this scheduler's pending list
    // and the next holder of the lease takes it over.
    this.o.consumer.close();
    await this.fetching;
    await this.handBack();
    // After the hand-back: the next holder finds everything in the front stream.
    await this.lease.release();
  }

  /** Moves what this scheduler holds to the front stream, for the lease's next holder to read at once. */
  private async handBack(): Promise<void> {
    const left = this.queue.remove(() => true);
    for (const e of left) this.forget(e);
    this.o.metrics.queueDepth.set({ deployment: this.o.deploymentId }, 0);
    await this.o.consumer
      .handBack(left)
      .catch((err) => this.o.logger.warn({ err, requests: left.length }, "could not hand queued requests back; the next holder takes them over"));
  }
}

function rejection(e: QueueEntry, code: "unavailable" | "not_found", message: string, retryAfterS?: number): Assignment {
  return { type: "rejected", requestId: e.job.requestId, code, message, retryAfterS };
}
