/**
 * How many of the batch lines a gateway runs may be in flight on one deployment: the spare
 * capacity the replicas' heartbeats show (capacity − running − waiting over the healthy
 * ones), less a reserve kept for interactive traffic, plus what batch lines already hold (they
 * are among the running), bounded by BATCH_MAX_INFLIGHT — and at least one, so a batch still
 * drains, in the batch class behind every interactive request, when there is no room.
 */
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
    },
  ) {}

  private async allowance(deploymentId: string): Promise<number> {
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
    for (;;) {
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
      this.inFlight.set(deploymentId, (this.inFlight.get(deploymentId) ?? 1) - 1);
      this.waiters.get(deploymentId)?.[0]?.();
    };
  }
}
