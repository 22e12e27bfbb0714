/**
 * How many of the batch lines a gateway runs may be in flight on one deployment: the spare
 * capacity the replicas' heartbeats show (capacity − running − waiting over the healthy
 * ones), less a reserve kept for interactive traffic, plus what batch lines already hold (they
 * are among the running), bounded by BATCH_MAX_INFLIGHT — and at least one, so a batch still
 * drains, in the batch class behind every interactive request, when there is no room.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { Redis } from "ioredis";
import { parseReplicaReport, type RedisKeys } from "@infera/contracts";
import { HEARTBEAT_STALE_MS } from "./replica-view.ts";

export interface PacingInput {
  /** Requests one replica serves at once (the deployment's max_batch_size). */
  capacity: number;
  replicas: readonly { running: number; waiting: number; healthy: boolean; draining: boolean; at: number }[];
  /** Batch lines this gateway has in flight on the deployment now. */
  inFlight: number;
  /** Fraction of each replica's capacity left to interactive traffic. */
  reserveFraction: number;
  max: number;
  now: number;
}

export function allowedInFlight(p: PacingInput): number {
  let spare = 0;
  for (const r of p.replicas) {
    if (!r.healthy || r.draining || p.now - r.at > HEARTBEAT_STALE_MS) continue;
    spare += p.capacity - Math.ceil(p.capacity * p.reserveFraction) - r.running - r.waiting;
  }
  return Math.max(1, Math.min(p.max, p.inFlight + spare));
}

/**
 * How busy the machine is, as one number per interval: the lateness of this process's timers.
 * A gateway whose CPU is taken (by its own work, or by the other processes on its cores) runs its
 * timers late; heartbeats cannot show that, since engine slots may be free while the CPU is not.
 */
export interface LoadSignal {
  /** The 90th percentile lateness (ms) of the event loop since the last call. */
  sampleMs(): number;
  close(): void;
}

export function eventLoopLateness(resolutionMs = 10): LoadSignal {
  const h = monitorEventLoopDelay({ resolution: resolutionMs });
  h.enable();
  return {
    sampleMs() {
      // Each recorded delay includes the timer's own interval: lateness is what exceeds it.
      const ms = h.count > 0 ? Math.max(0, h.percentile(90) / 1e6 - resolutionMs) : 0;
      h.reset();
      return ms;
    },
    close: () => h.disable(),
  };
}

/**
 * AIMD on a deployment's batch limit: an interval whose lateness is above the threshold halves it,
 * one below grows it by one; never below one (the batch drains) nor above the slot allowance.
 */
export function nextLimit(limit: number, allowance: number, lateMs: number, thresholdMs: number): number {
  const base = Math.min(limit, allowance);
  return Math.max(1, lateMs > thresholdMs ? Math.floor(base / 2) : Math.min(allowance, base + 1));
}

/** Slots per deployment, granted in arrival order as the allowance (re-read from the heartbeats) leaves room. */
export class BatchPacer {
  private readonly inFlight = new Map<string, number>();
  private readonly allowed = new Map<string, { n: number; at: number }>();
  private readonly waiters = new Map<string, (() => void)[]>();

  constructor(
    private readonly o: {
      redis: Redis;
      keys: RedisKeys;
      capacityOf: (deploymentId: string) => Promise<number>;
      reserveFraction: number;
      max: number;
      /** How long an allowance is used before the heartbeats are read again. */
      refreshMs?: number;
      now?: () => number;
      /** Machine load: with it the slot allowance is also bounded by an AIMD limit (`nextLimit`). */
      load?: { signal: LoadSignal; thresholdMs: number; intervalMs: number };
      /** A deployment with no line in flight or waiting for this long is forgotten (default 5 minutes). */
      forgetMs?: number;
    },
  ) {}

  /** When each deployment last had a line start or end here. */
  private readonly lastUsed = new Map<string, number>();
  private lastSweep = -Infinity;

  /**
   * Forgets the deployments idle past `forgetMs` (deleted ones, those whose batches ended): their
   * allowance, limit and counts, so the maps hold only the deployments batch lines run on. A
   * deployment that comes back starts again at a limit of one, as a new one does.
   */
  private sweep(now: number): void {
    const forgetMs = this.o.forgetMs ?? 300_000;
    if (now - this.lastSweep < Math.min(forgetMs, 10_000)) return;
    this.lastSweep = now;
    for (const [id, at] of this.lastUsed) {
      if (now - at <= forgetMs || (this.inFlight.get(id) ?? 0) > 0 || (this.waiters.get(id)?.length ?? 0) > 0) continue;
      for (const m of [this.lastUsed, this.inFlight, this.allowed, this.waiters, this.limits]) m.delete(id);
    }
  }

  /** Each deployment this gateway paces now, with its limit (`limitOf`) and lines in flight: the gateway's metrics. */
  deployments(): { deploymentId: string; limit: number; inFlight: number }[] {
    this.sweep((this.o.now ?? Date.now)());
    return [...this.lastUsed.keys()].map((id) => ({ deploymentId: id, limit: this.limitOf(id) ?? 1, inFlight: this.inFlight.get(id) ?? 0 }));
  }

  /** The AIMD limit per deployment (starts at one: a batch ramps up while the machine keeps up). */
  private readonly limits = new Map<string, number>();
  private lastSample = -Infinity;

  /** One step of every deployment's limit per interval, from the lateness since the last step. */
  private step(now: number): void {
    const load = this.o.load;
    if (!load || now - this.lastSample < load.intervalMs) return;
    // After an idle stretch the first window is that stretch: a fair picture of the machine too.
    this.lastSample = now;
    const late = load.signal.sampleMs();
    for (const [id, limit] of this.limits) {
      const allowed = this.allowed.get(id)?.n ?? limit;
      this.limits.set(id, nextLimit(limit, allowed, late, load.thresholdMs));
    }
  }

  /** The deployment's limit now (for tests and metrics); the slot allowance when no load signal is set. */
  limitOf(deploymentId: string): number | undefined {
    return this.o.load ? (this.limits.get(deploymentId) ?? 1) : this.allowed.get(deploymentId)?.n;
  }

  private async allowance(deploymentId: string): Promise<number> {
    const n = await this.slotAllowance(deploymentId);
    if (!this.o.load) return n;
    if (!this.limits.has(deploymentId)) this.limits.set(deploymentId, 1);
    this.step((this.o.now ?? Date.now)());
    return Math.min(n, this.limits.get(deploymentId) ?? 1);
  }

  private async slotAllowance(deploymentId: string): Promise<number> {
    const now = (this.o.now ?? Date.now)();
    const cached = this.allowed.get(deploymentId);
    if (cached && now - cached.at < (this.o.refreshMs ?? 250)) return cached.n;
    const raw = await this.o.redis.hgetall(this.o.keys.replicas(deploymentId)).catch(() => ({}) as Record<string, string>);
    const replicas = Object.values(raw).flatMap((t) => parseReplicaReport(t) ?? []);
    const n = allowedInFlight({
      capacity: await this.o.capacityOf(deploymentId),
      replicas,
      inFlight: this.inFlight.get(deploymentId) ?? 0,
      reserveFraction: this.o.reserveFraction,
      max: this.o.max,
      now,
    });
    this.allowed.set(deploymentId, { n, at: now });
    return n;
  }

  /** Waits for a slot on the deployment (or the signal); the release function frees it. */
  async acquire(deploymentId: string, signal: AbortSignal): Promise<() => void> {
    const touch = () => this.lastUsed.set(deploymentId, (this.o.now ?? Date.now)());
    this.sweep((this.o.now ?? Date.now)());
    for (;;) {
      touch();
      if (signal.aborted) throw signal.reason ?? new Error("aborted");
      const held = this.inFlight.get(deploymentId) ?? 0;
      if (held < (await this.allowance(deploymentId))) break;
      // Woken by a release, or after the allowance may have changed.
      await new Promise<void>((resolve) => {
        const list = this.waiters.get(deploymentId) ?? [];
        const timer = setTimeout(done, this.o.refreshMs ?? 250);
        function done() {
          clearTimeout(timer);
          const i = list.indexOf(done);
          if (i !== -1) list.splice(i, 1);
          resolve();
        }
        list.push(done);
        this.waiters.set(deploymentId, list);
      });
    }
    this.inFlight.set(deploymentId, (this.inFlight.get(deploymentId) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      touch();
      this.inFlight.set(deploymentId, (this.inFlight.get(deploymentId) ?? 1) - 1);
      this.waiters.get(deploymentId)?.[0]?.();
    };
  }
}
