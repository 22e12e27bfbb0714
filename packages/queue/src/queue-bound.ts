/**
 * Backpressure: the queue of each deployment is bounded (`max` requests waiting for a
 * replica, across all gateways). Each gateway knows its own waiting requests exactly (they
 * are its pending promises, no Redis needed) and learns the other gateways' counts from a
 * small hash per deployment that every gateway rewrites and reads in one pipelined round
 * trip per `syncMs` tick — off the request path.
 */
import type { Logger } from "@infera/core";
import type { Redis } from "ioredis";
import type { QueueKeys } from "./keys.ts";

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

/** How long a deployment stays in the sync after this gateway's last waiting request (ms). */
const ACTIVE_MS = 10_000;

export interface QueueBoundOptions {
  redis: Redis;
  keys: QueueKeys;
  gatewayId: string;
  logger: Logger;
  /** Most requests waiting per deployment, across gateways. Default: unbounded (no sync at all). */
  max?: number;
  /** How often gateways exchange their counts (ms). Default 200. */
  syncMs?: number;
  now?: () => number;
}

export class QueueBound {
  private readonly counts = new Map<string, QueueCount>();
  private syncTimer: NodeJS.Timeout | undefined;
  private syncing = false;
  readonly max: number;
  private readonly syncMs: number;
  private readonly now: () => number;

  constructor(private readonly o: QueueBoundOptions) {
    this.max = o.max ?? Number.POSITIVE_INFINITY;
    this.syncMs = o.syncMs ?? 200;
    this.now = o.now ?? Date.now;
  }

  /** Requests waiting on a deployment: this gateway's exactly, plus the others' last reported. */
  queued(deploymentId: string): number {
    const c = this.counts.get(deploymentId);
    return c ? c.mine + c.others : 0;
  }

  /** Starts exchanging counts with the other gateways (only with a bound). */
  start(): void {
    if (this.syncTimer || !Number.isFinite(this.max)) return;
    this.syncTimer = setInterval(() => void this.sync(), this.syncMs);
    this.syncTimer.unref();
  }

  /**
   * Counts a new waiting request unless the deployment is at its bound (`force`: a re-queue,
   * already admitted, always counts). False: refused.
   */
  async enter(deploymentId: string, force: boolean): Promise<boolean> {
    let c = this.counts.get(deploymentId);
    if (!c && Number.isFinite(this.max)) {
      // A deployment this gateway has not seen lately: learn the others' counts first (one
      // round trip, once); from then on the periodic sync keeps them.
      const fresh: QueueCount = { mine: 0, others: 0, activeAt: this.now(), published: false, first: undefined };
      fresh.first = this.readOthers(deploymentId, fresh).finally(() => {
        fresh.first = undefined;
      });
      this.counts.set(deploymentId, fresh);
      c = fresh;
    } else if (!c) {
      c = { mine: 0, others: 0, activeAt: 0, published: false, first: undefined };
      this.counts.set(deploymentId, c);
    }
    if (c.first) await c.first;
    if (!force && c.mine + c.others >= this.max) return false;
    c.mine++;
    c.activeAt = this.now();
    return true;
  }

  /** A waiting request left the queue (answered, timed out, abandoned). */
  leave(deploymentId: string): void {
    const c = this.counts.get(deploymentId);
    if (c) {
      c.mine--;
      c.activeAt = this.now();
    }
  }

  /** Stops the sync and clears this gateway's counts from the shared hashes. */
  async stop(): Promise<void> {
    if (this.syncTimer) clearInterval(this.syncTimer);
    this.syncTimer = undefined;
    const published = [...this.counts.entries()].filter(([, c]) => c.published);
    if (published.length) {
      const pipe = this.o.redis.pipeline();
      for (const [id] of published) pipe.hdel(this.o.keys.queuedByGateway(id), this.o.gatewayId);
      await pipe.exec().catch(() => {});
    }
  }

  /** One pipelined round trip: write this gateway's count per active deployment, read everyone's. */
  private async sync(): Promise<void> {
    if (this.syncing) return;
    const now = this.now();
    const active = [...this.counts.entries()].filter(([, c]) => c.mine > 0 || c.published || now - c.activeAt < ACTIVE_MS);
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
        if (c.mine === 0 && !c.published && c.others === 0 && now - c.activeAt >= ACTIVE_MS) this.counts.delete(id);
      });
    } catch (err) {
      this.o.logger.warn({ err }, "could not exchange queue counts");
    } finally {
      this.syncing = false;
    }
  }

  private async readOthers(deploymentId: string, c: QueueCount): Promise<void> {
    try {
      c.others = this.othersOf(await this.o.redis.hgetall(this.o.keys.queuedByGateway(deploymentId)));
    } catch (err) {
      this.o.logger.warn({ err }, "could not read queue counts");
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
}
