/**
 * The fast path, the dispatching scheduler's side (one per deployment, active while this
 * scheduler holds its dispatch lease). Every tick it reads what the gateways report
 * (`<p>:slot-reports:<deployment>`), lends each live gateway slots on each replica
 * (`planGrants`: its share of the free slots while nothing waits in the queue; nothing while
 * anything does) and writes the leases fenced by its epoch (`writeSlotLeases`). What the
 * leases hold (`heldSlots`) counts in the replica directory as in flight, so queue placement
 * and leases together never exceed a replica's capacity.
 *
 * A gateway that stops reporting is not renewed: its lease lapses at its `until` (a few
 * heartbeats) and its slots come back. A new holder bumps the epoch and starts from the leases
 * as the previous holder left them.
 */
import type { Logger } from "@infera/core";
import { type GatewaySlots, heldSlots, planGrants, type PolicyName } from "@infera/policy";
import { bumpSlotEpoch, type QueueKeys, readSlotLeases, readSlotReports, type Release, type SlotLease, type SlotReport, writeSlotLeases } from "@infera/queue";
import type { Redis } from "ioredis";
import type { SchedulerMetrics } from "./metrics.ts";
import type { ReplicaDirectory } from "./replicas.ts";

interface GatewayState {
  /** The lease version it applied, as of its last report, and when that report was. */
  seen: number;
  reportSeq: number;
  at: number;
  rate: number;
  /** What it runs per replica, and the seq of the report or release that said so. */
  use: Map<string, number>;
  seqBy: Map<string, number>;
}

export interface SlotLenderOptions {
  redis: Redis;
  keys: QueueKeys;
  deploymentId: string;
  schedulerId: string;
  capacity: number;
  policy: PolicyName;
  directory: ReplicaDirectory;
  metrics: SchedulerMetrics;
  logger: Logger;
  /** A lease lasts this long unless renewed (a few heartbeats); a gateway silent this long is dead. */
  ttlMs: number;
  now?: () => number;
}

/** Versions are unique across epochs: a gateway's acknowledgement names exactly one. */
const VERSIONS_PER_EPOCH = 2 ** 32;

export class SlotLender {
  private epoch = 0;
  private n = 0;
  /** Holds the dispatch lease (between `activate` and `deactivate`). */
  private active = false;
  private loaded = false;
  private ticking = false;
  private readonly leases = new Map<string, SlotLease>();
  private readonly gateways = new Map<string, GatewayState>();
  private readonly now: () => number;

  constructor(private readonly o: SlotLenderOptions) {
    this.now = o.now ?? Date.now;
  }

  /**
   * Took the dispatch lease: a new epoch, and the leases as they stand (`load`; on failure the
   * next tick tries again). Until they are read nothing may be placed: what they lend is not
   * counted yet, and a gateway may still start requests on it (`counted`).
   */
  async activate(): Promise<void> {
    this.clear();
    this.active = true;
    try {
      await this.load();
    } catch (err) {
      this.o.logger.warn({ err }, "could not read the standing slot leases; nothing is placed until they are read");
    }
  }

  /** Lost or gave up the dispatch lease: lends nothing, counts nothing. */
  deactivate(): void {
    this.active = false;
    this.clear();
    this.account();
  }

  /** What the standing leases hold is in the replica directory: queue placement may count on it. */
  get counted(): boolean {
    return this.loaded;
  }

  /** A new holder: its epoch, then the leases as the previous holder left them, so what they lend stays counted. */
  private async load(): Promise<void> {
    const { redis, keys, deploymentId } = this.o;
    if (this.epoch === 0) {
      this.epoch = await bumpSlotEpoch(redis, keys, deploymentId);
      this.o.logger.info({ epoch: this.epoch }, "lending slots to gateways (fast path)");
    }
    const reports = await readSlotReports(redis, keys, deploymentId);
    this.absorb(reports);
    for (const [gw, l] of await readSlotLeases(redis, keys, deploymentId, [...reports.keys()])) this.leases.set(gw, l);
    this.loaded = true;
    this.account();
  }

  /** The gateways' reports: what each runs per replica, the lease version it applied, its rate (the newest wins). */
  private absorb(reports: Map<string, SlotReport>): void {
    for (const [gw, rep] of reports) {
      const g = this.gateway(gw);
      if (rep.seq <= g.reportSeq) continue;
      g.reportSeq = rep.seq;
      g.seen = rep.seen;
      g.at = rep.at;
      g.rate = rep.rate;
      for (const id of new Set([...g.use.keys(), ...Object.keys(rep.use)])) {
        if (rep.seq <= (g.seqBy.get(id) ?? -1)) continue;
        g.seqBy.set(id, rep.seq);
        g.use.set(id, rep.use[id] ?? 0);
      }
    }
  }

  private clear(): void {
    this.epoch = 0;
    this.n = 0;
    this.loaded = false;
    this.leases.clear();
    this.gateways.clear();
  }

  /** Fast-path requests ended (a gateway's release): what it runs on that replica now. */
  released(r: Release): void {
    const l = r.lease;
    if (!l || !this.active) return;
    const g = this.gateway(l.gatewayId);
    if (l.seq <= (g.seqBy.get(r.replicaId) ?? -1)) return;
    g.seqBy.set(r.replicaId, l.seq);
    g.use.set(r.replicaId, l.inUse);
    this.account();
  }

  /**
   * One round: read the reports, lend (nothing when `drain`: entries wait in the queue),
   * write the leases, count what they hold. False when this scheduler was fenced off.
   */
  async tick(drain: boolean): Promise<boolean> {
    if (!this.active || this.ticking) return true;
    this.ticking = true;
    const { redis, keys, deploymentId } = this.o;
    try {
      if (!this.loaded) await this.load();
      this.absorb(await readSlotReports(redis, keys, deploymentId));
      const now = this.now();
      const live = [...this.gateways.entries()].filter(([, g]) => g.at > now - this.o.ttlMs).map(([gw]) => gw);
      const writes = new Map<string, SlotLease | undefined>();
      // A silent gateway's lease is not renewed; once past its `until` its slots are back.
      for (const gw of this.gateways.keys()) {
        if (live.includes(gw)) continue;
        const l = this.leases.get(gw);
        if (l && l.until > now) continue;
        this.gateways.delete(gw);
        if (l) {
          this.leases.delete(gw);
          writes.set(gw, undefined);
        }
      }
      const slots = new Map<string, Record<string, [string, number]>>(live.map((gw) => [gw, {}]));
      for (const r of this.o.directory.leasable(deploymentId, this.o.capacity)) {
        const standing: GatewaySlots[] = live.map((gw) => this.standing(gw, r.id, now));
        const ks = planGrants(r.free, standing, drain);
        live.forEach((gw, i) => {
          if (ks[i]! > 0) slots.get(gw)![r.id] = [r.address, ks[i]!];
        });
      }
      for (const gw of live) {
        const lease = this.next(gw, slots.get(gw)!, now);
        this.leases.set(gw, lease);
        writes.set(gw, lease);
      }
      this.account();
      const written = await writeSlotLeases(redis, keys, { deploymentId, holder: this.o.schedulerId, epoch: this.epoch, ttlMs: this.o.ttlMs }, writes);
      if (!written) {
        this.o.logger.warn({ epoch: this.epoch }, "slot leases fenced off: another scheduler dispatches this deployment");
        this.deactivate();
      }
      return written;
    } catch (err) {
      this.o.logger.warn({ err }, "could not lend slots");
      return true;
    } finally {
      this.ticking = false;
    }
  }

  /** A gateway's standing on one replica: its lease's slots, what it may still believe it holds, what it runs. */
  private standing(gw: string, replicaId: string, now: number): GatewaySlots {
    const l = this.leases.get(gw);
    const g = this.gateways.get(gw);
    const granted = l?.slots[replicaId]?.[1] ?? 0;
    return { granted, ceiling: l ? this.ceiling(l, g, replicaId, now) : 0, inUse: g?.use.get(replicaId) ?? 0, rate: g?.rate ?? 0 };
  }

  /** The most slots the gateway may start requests on under its lease: past `until` none; acknowledged, the current ones; else the ceiling. */
  private ceiling(l: SlotLease, g: GatewayState | undefined, replicaId: string, now: number): number {
    if (l.until <= now) return 0;
    const k = l.slots[replicaId]?.[1] ?? 0;
    return g?.seen === l.v ? k : Math.max(k, l.ceil[replicaId] ?? 0);
  }

  /** The gateway's lease from now: a new version when its slots change (with the ceiling it may still use), else renewed. */
  private next(gw: string, slots: Record<string, [string, number]>, now: number): SlotLease {
    const old = this.leases.get(gw);
    const until = now + this.o.ttlMs;
    const base = { epoch: this.epoch, scheduler: this.o.schedulerId, until, policy: this.o.policy };
    if (old && old.epoch === this.epoch && sameSlots(old.slots, slots)) return { ...old, ...base };
    const g = this.gateways.get(gw);
    const ceil: Record<string, number> = {};
    const ids = new Set([...Object.keys(slots), ...Object.keys(old?.slots ?? {}), ...Object.keys(old?.ceil ?? {})]);
    for (const id of ids) {
      const c = Math.max(slots[id]?.[1] ?? 0, old ? this.ceiling(old, g, id, now) : 0);
      if (c > 0) ceil[id] = c;
    }
    this.o.metrics.leaseVersions.inc({ deployment: this.o.deploymentId });
    return { ...base, v: this.epoch * VERSIONS_PER_EPOCH + ++this.n, slots, ceil };
  }

  /** What the leases hold per replica into the directory (and the gauges). */
  private account(): void {
    const now = this.now();
    const held = new Map<string, { held: number; use: number }>();
    let granted = 0;
    let inUse = 0;
    for (const gw of new Set([...this.leases.keys(), ...this.gateways.keys()])) {
      const l = this.leases.get(gw);
      const g = this.gateways.get(gw);
      const ids = new Set([...Object.keys(l?.slots ?? {}), ...Object.keys(l?.ceil ?? {}), ...(g?.use.keys() ?? [])]);
      for (const id of ids) {
        const s = this.standing(gw, id, now);
        const h = held.get(id) ?? { held: 0, use: 0 };
        h.held += heldSlots(s);
        h.use += s.inUse;
        held.set(id, h);
        granted += s.granted;
        inUse += s.inUse;
      }
    }
    this.o.directory.setLeased(this.o.deploymentId, held);
    this.o.metrics.grantedSlots.set({ deployment: this.o.deploymentId }, granted);
    this.o.metrics.leasedInUse.set({ deployment: this.o.deploymentId }, inUse);
  }

  private gateway(gw: string): GatewayState {
    let g = this.gateways.get(gw);
    if (!g) {
      g = { seen: -1, reportSeq: -1, at: 0, rate: 0, use: new Map(), seqBy: new Map() };
      this.gateways.set(gw, g);
    }
    return g;
  }
}

function sameSlots(a: Record<string, [string, number]>, b: Record<string, [string, number]>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((id) => b[id]?.[0] === a[id]![0] && b[id]?.[1] === a[id]![1]);
}
