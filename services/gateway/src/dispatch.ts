/**
 * The gateway's side of the queue: add a request to its deployment's queue stream (one
 * XADD), wait for the scheduler's assignment on this instance's reply channel, and tell the
 * scheduler when the request is done with its replica (batched releases). A request the
 * gateway gives up on (client gone, deadline) is deleted from the stream, so no scheduler
 * dispatches it afterwards.
 *
 * Backpressure: the queue of each deployment is bounded (`queueMax` requests waiting for a
 * replica, across all gateways). Each gateway knows its own waiting requests exactly (they
 * are its pending promises, no Redis needed) and learns the other gateways' counts from a
 * small hash per deployment that every gateway rewrites and reads in one pipelined round
 * trip per `syncMs` tick — off the request path. A request that would take the total past
 * the bound is answered 429 `queue_full` at once; one that waits past its deadline 503.
 */
import type { Redis } from "ioredis";
import { PlatformError, type Logger } from "@infera/core";
import { QUEUE_FIELD, type Assignment, type InferJob, type RedisKeys, type Release, type ReleaseUsage } from "@infera/contracts";
import type { GatewayMetrics } from "./metrics.ts";

export type Assigned = Extract<Assignment, { type: "assigned" }>;

interface Pending {
  deploymentId: string;
  resolve: (a: Assigned) => void;
  reject: (e: PlatformError) => void;
  timer: NodeJS.Timeout;
  /** Deletes the request's queue entry (once it is known) so that no scheduler dispatches it. */
  withdraw: () => void;
}

/** What a finished request used, for the scheduler's fair queue (output tokens are charged at completion). */
export interface UsedTokens {
  tenantId: string;
  estimatedTokens: number;
  promptTokens: number;
  completionTokens: number;
}

interface QueueCount {
  /** This gateway's requests waiting for a replica. */
  mine: number;
  /** The other gateways' waiting requests, as of the last sync. */
  others: number;
  /** Last time this gateway had a request waiting (keeps the sync going a while after). */
  activeAt: number;
  /** Whether this gateway's field in the shared hash may be non-zero. */
  published: boolean;
  /** The first read of the other gateways' counts (once per deployment this gateway meets). */
  first: Promise<void> | undefined;
}

export interface DispatchOptions {
  redis: Redis;
  /** Connection for queue entries: waits for Redis to come back rather than failing (maxRetriesPerRequest: null). */
  queueConnection: Redis;
  keys: RedisKeys;
  gatewayId: string;
  metrics: GatewayMetrics;
  logger: Logger;
  /** Most requests waiting for a replica per deployment, across gateways; beyond it 429. Default: unbounded. */
  queueMax?: number;
  /** How often gateways exchange their waiting counts (ms). Default 200. */
  syncMs?: number;
  now?: () => number;
}

export class Dispatch {
  private readonly pending = new Map<string, Pending>();
  private readonly releases = new Map<string, Map<string, Release>>();
  private readonly counts = new Map<string, QueueCount>();
  private flushScheduled = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private syncing = false;
  private readonly queueMax: number;
  private readonly syncMs: number;
  private readonly now: () => number;

  constructor(private readonly o: DispatchOptions) {
    this.queueMax = o.queueMax ?? Number.POSITIVE_INFINITY;
    this.syncMs = o.syncMs ?? 200;
    this.now = o.now ?? Date.now;
  }

  get waiting(): number {
    return this.pending.size;
  }

  /** Requests waiting for a replica on a deployment: this gateway's exactly, plus the others' last reported. */
  queued(deploymentId: string): number {
    const c = this.counts.get(deploymentId);
    return c ? c.mine + c.others : 0;
  }

  /** Starts exchanging waiting counts with the other gateways (only needed with a bound). */
  start(): void {
    if (this.syncTimer || !Number.isFinite(this.queueMax)) return;
    this.syncTimer = setInterval(() => void this.sync(), this.syncMs);
    this.syncTimer.unref();
  }

  /** One pipelined round trip: write this gateway's count per active deployment, read everyone's. */
  private async sync(): Promise<void> {
    if (this.syncing) return;
    const now = this.now();
    const active = [...this.counts.entries()].filter(([, c]) => c.mine > 0 || c.published || now - c.activeAt < 10_000);
    if (active.length === 0) return;
    this.syncing = true;
    const pipe = this.o.redis.pipeline();
    const reads: number[] = [];
    let n = 0;
    for (const [id, c] of active) {
      const key = this.o.keys.queuedByGateway(id);
      if (c.mine > 0) {
        pipe.hset(key, this.o.gatewayId, `${c.mine}:${now}`);
        pipe.pexpire(key, this.syncMs * 50);
        n += 2;
      } else if (c.published) {
        pipe.hdel(key, this.o.gatewayId);
        n++;
      }
      c.published = c.mine > 0;
      pipe.hgetall(key);
      reads.push(n++);
    }
    try {
      const results = (await pipe.exec()) ?? [];
      active.forEach(([id], i) => {
        const c = this.counts.get(id);
        const h = results[reads[i] ?? -1]?.[1] as Record<string, string> | null | undefined;
        if (!c || !h) return;
        c.others = this.othersOf(h);
        if (c.mine === 0 && !c.published && c.others === 0 && now - c.activeAt >= 10_000) this.counts.delete(id);
      });
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message }, "could not exchange queue counts");
    } finally {
      this.syncing = false;
    }
  }

  private async readOthers(deploymentId: string, c: QueueCount): Promise<void> {
    try {
      c.others = this.othersOf(await this.o.redis.hgetall(this.o.keys.queuedByGateway(deploymentId)));
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message }, "could not read queue counts");
    }
  }

  /** Sum of the other gateways' fresh counts (a gateway that stopped writing counts for nothing after a few ticks). */
  private othersOf(h: Record<string, string>): number {
    const fresh = this.now() - this.syncMs * 5;
    let others = 0;
    for (const [gw, v] of Object.entries(h)) {
      if (gw === this.o.gatewayId) continue;
      const [count, at] = v.split(":");
      if (Number(at) >= fresh) others += Number(count) || 0;
    }
    return others;
  }

  /** Takes a request out of the waiting set (answered, timed out, abandoned); undefined when it was not there. */
  private settle(requestId: string): Pending | undefined {
    const p = this.pending.get(requestId);
    if (!p) return undefined;
    this.pending.delete(requestId);
    clearTimeout(p.timer);
    const c = this.counts.get(p.deploymentId);
    if (c) {
      c.mine--;
      c.activeAt = this.now();
    }
    return p;
  }

  /** The gateway stops waiting (deadline, client gone, shutting down): the entry is withdrawn and the caller answered `err`. */
  private giveUp(requestId: string, err: PlatformError): void {
    const p = this.settle(requestId);
    if (!p) return;
    p.withdraw();
    p.reject(err);
  }

  /** Called with each message on this gateway's reply channel (a JSON array of assignments). */
  onMessage(message: string): void {
    let all: Assignment[];
    try {
      all = JSON.parse(message) as Assignment[];
    } catch {
      return;
    }
    if (!Array.isArray(all)) return;
    for (const a of all) this.answer(a);
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

  /**
   * Enqueue and wait for a replica. Rejects at once with `queue_full` (429) when the
   * deployment's queue is at its bound (re-queues after a failed replica are let through:
   * they were already admitted), at the deadline with `unavailable` (503), or when `signal` aborts.
   */
  async enqueue(deploymentId: string, job: InferJob, signal: AbortSignal): Promise<Assigned> {
    let c = this.counts.get(deploymentId);
    if (!c && Number.isFinite(this.queueMax)) {
      // A deployment this gateway has not seen lately: learn the others' counts first (one
      // round trip, once); from then on the periodic sync keeps them.
      const fresh: QueueCount = { mine: 0, others: 0, activeAt: this.now(), published: false, first: undefined };
      fresh.first = this.readOthers(deploymentId, fresh).finally(() => (fresh.first = undefined));
      this.counts.set(deploymentId, fresh);
      c = fresh;
    } else if (!c) {
      c = { mine: 0, others: 0, activeAt: 0, published: false, first: undefined };
      this.counts.set(deploymentId, c);
    }
    if (c.first) await c.first;
    if (job.attempt === 0 && c.mine + c.others >= this.queueMax) {
      this.o.metrics.assignments.inc({ outcome: "queue_full" });
      throw new PlatformError("queue_full", `The model's queue is full (${this.queueMax} requests waiting); retry shortly.`, { retryAfterS: 2 });
    }
    c.mine++;
    c.activeAt = this.now();
    const waitMs = Math.max(0, job.deadline - Date.now());
    const stream = this.o.keys.queue(deploymentId, job.priority);
    const added = this.o.queueConnection.xadd(stream, "*", QUEUE_FIELD, JSON.stringify(job));
    const withdraw = () => void added.then((entryId) => (entryId ? this.o.queueConnection.xdel(stream, entryId) : 0)).catch(() => {});
    const assigned = new Promise<Assigned>((resolve, reject) => {
      const timer = setTimeout(
        () => this.giveUp(job.requestId, new PlatformError("unavailable", "No replica could take the request in time; try again.", { retryAfterS: 5 })),
        waitMs + 250,
      );
      this.pending.set(job.requestId, { deploymentId, resolve, reject, timer, withdraw });
    });
    // It may reject (deadline, client gone) while the add below still waits for Redis.
    assigned.catch(() => {});
    const onAbort = () => this.giveUp(job.requestId, new PlatformError("timeout", "The client went away."));
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

  /**
   * The request is done with its replica (or never reached it): the scheduler's slot frees.
   * `used` (what the request consumed) lets the scheduler's fair queue charge output tokens.
   */
  release(a: Assigned, failed: boolean, used?: UsedTokens): void {
    let bySched = this.releases.get(a.schedulerId);
    if (!bySched) {
      bySched = new Map();
      this.releases.set(a.schedulerId, bySched);
    }
    const k = `${a.deploymentId}\u0000${a.replicaId}\u0000${failed ? 1 : 0}`;
    let r = bySched.get(k);
    if (r) r.count++;
    else {
      r = { deploymentId: a.deploymentId, replicaId: a.replicaId, count: 1, failed };
      bySched.set(k, r);
    }
    if (used) addUsage(r, used);
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
    if (this.syncTimer) clearInterval(this.syncTimer);
    for (const id of [...this.pending.keys()]) this.giveUp(id, new PlatformError("unavailable", "The gateway is shutting down.", { retryAfterS: 1 }));
    this.flushReleases();
    const published = [...this.counts.entries()].filter(([, c]) => c.published);
    if (published.length) {
      const pipe = this.o.redis.pipeline();
      for (const [id] of published) pipe.hdel(this.o.keys.queuedByGateway(id), this.o.gatewayId);
      await pipe.exec().catch(() => {});
    }
  }
}

function addUsage(r: Release, used: UsedTokens): void {
  r.usage ??= [];
  let u: ReleaseUsage | undefined = r.usage.find((x) => x.tenantId === used.tenantId);
  if (!u) {
    u = { tenantId: used.tenantId, estimatedTokens: 0, promptTokens: 0, completionTokens: 0 };
    r.usage.push(u);
  }
  u.estimatedTokens += used.estimatedTokens;
  u.promptTokens += used.promptTokens;
  u.completionTokens += used.completionTokens;
}
