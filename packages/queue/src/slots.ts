/**
 * The fast path, the gateway's side: slots the dispatching scheduler of a deployment lends
 * this gateway while nothing waits in the deployment's queue (`<p>:slots:<deployment>:<gw>`,
 * written by `SlotGrants` in the scheduler). With a slot free, the gateway places a request
 * itself, in process, by the deployment's placement policy over its leased slots: no Redis
 * command and no scheduler round trip before the agent call. The slot comes back when the
 * request ends (in the batched release it sends anyway, carrying the lease's epoch).
 *
 * Every `syncMs`, for each deployment it served in the last `hotMs`, one pipelined round trip
 * (off the request path) writes what it runs on its leased slots and its request rate
 * (`<p>:slot-reports:<deployment>`), and reads its lease. A deployment idle longer, up to
 * `keepMs`, is synced only as often as keeps its lease renewed (a third of the lease's life,
 * at most a second): a user who pauses between requests still finds a slot on the next one,
 * rather than a queue round trip while the lease is lent again. A lease past its `until` (the
 * scheduler stopped renewing it) lends nothing, and nor does one while this gateway has a
 * request of that deployment waiting in the queue.
 */
import type { Logger } from "@infera/core";
import {
  addPrefill,
  createPlacementPolicy,
  DEFAULT_PREFILL_TOKENS_PER_MS,
  isPolicyName,
  type PlacementPolicy,
  type PolicyName,
  type ReplicaView,
} from "@infera/policy";
import type { Redis } from "ioredis";
import Type from "typebox";
import { Compile } from "typebox/compile";
import type { QueueKeys } from "./keys.ts";
import type { Assigned, Release, SlotReport } from "./messages.ts";

/** A lease as the scheduler writes it (the hash's fields). */
export interface SlotLease {
  epoch: number;
  /** Bumped whenever the slots change; a gateway acknowledges the version it applied (`SlotReport.seen`). */
  v: number;
  /** The scheduler to release to. */
  scheduler: string;
  /** Epoch ms: no request starts on the lease after this. */
  until: number;
  policy: PolicyName;
  /** replicaId → [address, slots]. */
  slots: Record<string, [string, number]>;
  /** replicaId → the most slots lent in a version not yet acknowledged (the scheduler's own bookkeeping). */
  ceil: Record<string, number>;
}

const SlotsField = Type.Record(Type.String(), Type.Tuple([Type.String(), Type.Integer({ minimum: 0 })]));
const CeilField = Type.Record(Type.String(), Type.Integer({ minimum: 0 }));
const slotsCheck = Compile(SlotsField);
const ceilCheck = Compile(CeilField);

function json(text: string | undefined): unknown {
  try {
    return text === undefined ? undefined : (JSON.parse(text) as unknown);
  } catch {
    return undefined;
  }
}

/** The lease hash's fields, or undefined when it is absent or not a lease. */
export function parseSlotLease(h: Record<string, string> | null | undefined): SlotLease | undefined {
  if (!h || h.v === undefined) return undefined;
  const slots = json(h.slots);
  const ceil = json(h.ceil) ?? {};
  const [epoch, v, until] = [Number(h.epoch), Number(h.v), Number(h.until)];
  const policy = h.policy ?? "";
  if (![epoch, v, until].every(Number.isFinite) || !h.scheduler || !isPolicyName(policy) || !slotsCheck.Check(slots) || !ceilCheck.Check(ceil))
    return undefined;
  return { epoch, v, until, scheduler: h.scheduler, policy, slots, ceil };
}

/** The lease's fields as a hash (the scheduler's write). */
export function slotLeaseFields(l: SlotLease): Record<string, string> {
  return {
    epoch: String(l.epoch),
    v: String(l.v),
    scheduler: l.scheduler,
    until: String(l.until),
    policy: l.policy,
    slots: JSON.stringify(l.slots),
    ceil: JSON.stringify(l.ceil),
  };
}

interface DeploymentSlots {
  lease: SlotLease | undefined;
  /** Fast-path requests running per replica. */
  inUse: Map<string, number>;
  /** Prompt tokens this gateway placed per replica, drained at the prefill rate (placement's pending-prefill estimate, of its own requests). */
  prefill: Map<string, { prefillTokens: number; prefillAt: number }>;
  policy: PlacementPolicy | undefined;
  /** Requests seen for the deployment (fast or queued) since the last sync, and the rate they make. */
  arrivals: number;
  rate: number;
  activeAt: number;
  /** When this gateway last wrote its report and read the lease. */
  syncedAt: number;
  /** Whether this gateway's report may be in the shared hash. */
  published: boolean;
}

/** How long after this gateway's last request for a deployment it is synced at every tick (ms). */
const HOT_MS = 10_000;
/** How long after it the deployment keeps its lease, synced less often (ms). */
const KEEP_MS = 300_000;
/** The longest an idle deployment goes between syncs (ms): within the lease's life at the default heartbeat (3 s). */
const IDLE_SYNC_MS = 1000;

export interface SlotLeasesOptions {
  redis: Redis;
  keys: QueueKeys;
  gatewayId: string;
  logger: Logger;
  syncMs?: number;
  /** `HOT_MS` and `KEEP_MS` (tests shorten them). */
  hotMs?: number;
  keepMs?: number;
  now?: () => number;
}

/**
 * Why the last `take` found no slot: no lease read yet; this gateway's own requests of the
 * deployment wait in the queue; the lease is about to lapse (not renewed in time); it lends
 * nothing (drained: entries wait in the queue); every slot it lends is in use.
 */
export type QueueReason = "no_lease" | "own_queued" | "lease_expiring" | "lends_none" | "slots_taken";

export class SlotLeases {
  /** Why the last `take` returned no slot (undefined after one that did). */
  missed: QueueReason | undefined;
  private readonly deps = new Map<string, DeploymentSlots>();
  private timer: NodeJS.Timeout | undefined;
  private syncing = false;
  private seq = 0;
  private lastSyncAt: number;
  private readonly syncMs: number;
  private readonly now: () => number;

  constructor(private readonly o: SlotLeasesOptions) {
    this.syncMs = o.syncMs ?? 200;
    this.now = o.now ?? Date.now;
    this.lastSyncAt = this.now();
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.sync(), this.syncMs);
    this.timer.unref();
  }

  /**
   * A slot for the request, if this gateway holds a free one (`waiting`: this gateway's
   * requests of the deployment waiting in the queue; with any, it queues too). Counts the
   * request for the rate either way. Synchronous: no Redis.
   */
  take(
    deploymentId: string,
    req: { requestId: string; tenantId: string; prefixHashes: readonly string[]; estimatedTokens: number; promptTokens?: number },
    waiting: number,
  ): Assigned | undefined {
    const d = this.state(deploymentId);
    d.arrivals++;
    d.activeAt = this.now();
    const l = d.lease;
    // A margin of one sync tick before `until`: the scheduler counts the lease that long after it.
    if (!l) return this.miss("no_lease");
    if (waiting > 0) return this.miss("own_queued");
    if (this.now() > l.until - this.syncMs) return this.miss("lease_expiring");
    const views: ReplicaView[] = [];
    for (const [id, [, k]] of Object.entries(l.slots)) {
      if (k > 0) views.push({ id, capacity: k, running: d.inUse.get(id) ?? 0, waiting: 0, inflight: 0, kvCacheUsage: 0, ...d.prefill.get(id) });
    }
    if (views.length === 0) return this.miss("lends_none");
    if (d.policy?.name !== l.policy)
      d.policy = createPlacementPolicy(l.policy, { now: this.now, random: Math.random }, { prefillTokensPerMs: DEFAULT_PREFILL_TOKENS_PER_MS });
    const replicaId = d.policy.place({ ...req, backlogged: false }, views);
    if (!replicaId) return this.miss("slots_taken");
    this.missed = undefined;
    d.inUse.set(replicaId, (d.inUse.get(replicaId) ?? 0) + 1);
    const p = d.prefill.get(replicaId) ?? { prefillTokens: 0, prefillAt: 0 };
    d.prefill.set(replicaId, p);
    addPrefill(p, req.promptTokens ?? 0, this.now(), DEFAULT_PREFILL_TOKENS_PER_MS);
    const address = l.slots[replicaId]![0];
    return { type: "assigned", requestId: req.requestId, replicaId, address, queuedMs: 0, schedulerId: l.scheduler, deploymentId, epoch: l.epoch };
  }

  private miss(reason: QueueReason): undefined {
    this.missed = reason;
    return undefined;
  }

  /**
   * A fast-path request ended: its slot is free again. What the release tells the scheduler,
   * and whether it can wait: it frees nothing the scheduler could give anyone else while the
   * lease this gateway holds still lends it that slot (the scheduler counts a lease as
   * max(what runs, what it lends), so the count does not move). A release that takes this
   * gateway's use below a lease that shrank, or under another epoch, frees a slot: not deferrable.
   */
  release(a: Assigned): { lease: NonNullable<Release["lease"]>; deferrable: boolean } {
    const d = this.state(a.deploymentId);
    const n = Math.max(0, (d.inUse.get(a.replicaId) ?? 0) - 1);
    if (n === 0) d.inUse.delete(a.replicaId);
    else d.inUse.set(a.replicaId, n);
    const l = d.lease;
    // Not near `until` either: past it the scheduler counts only what runs.
    const deferrable = l !== undefined && l.epoch === a.epoch && (l.slots[a.replicaId]?.[1] ?? 0) > n && this.now() <= l.until - this.syncMs;
    return { lease: { gatewayId: this.o.gatewayId, epoch: a.epoch ?? 0, seq: ++this.seq, seen: l?.v ?? 0, inUse: n }, deferrable };
  }

  /** Fast-path requests this gateway runs on a deployment now. */
  inUse(deploymentId: string): number {
    let n = 0;
    for (const v of this.deps.get(deploymentId)?.inUse.values() ?? []) n += v;
    return n;
  }

  /** Stops the sync and takes this gateway's reports out of the shared hashes. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const published = [...this.deps.entries()].filter(([, d]) => d.published);
    if (published.length === 0) return;
    const pipe = this.o.redis.pipeline();
    for (const [id] of published) pipe.hdel(this.o.keys.slotReports(id), this.o.gatewayId);
    await pipe.exec().catch(() => {});
  }

  private state(deploymentId: string): DeploymentSlots {
    let d = this.deps.get(deploymentId);
    if (!d) {
      d = {
        lease: undefined,
        inUse: new Map(),
        prefill: new Map(),
        policy: undefined,
        arrivals: 0,
        rate: 0,
        activeAt: this.now(),
        syncedAt: 0,
        published: false,
      };
      this.deps.set(deploymentId, d);
    }
    return d;
  }

  /** One pipelined round trip: this gateway's report per deployment due, then its leases. */
  async sync(): Promise<void> {
    if (this.syncing) return;
    const now = this.now();
    const elapsedS = Math.max(0.001, (now - this.lastSyncAt) / 1000);
    this.lastSyncAt = now;
    const hotMs = this.o.hotMs ?? HOT_MS;
    const keepMs = this.o.keepMs ?? KEEP_MS;
    const active: [string, DeploymentSlots][] = [];
    for (const [id, d] of this.deps) {
      const idleMs = d.inUse.size > 0 ? 0 : now - d.activeAt;
      if (idleMs >= keepMs) {
        // Idle long enough: out of the sync (the scheduler stops lending once the report goes stale).
        this.deps.delete(id);
        if (d.published) void this.o.redis.hdel(this.o.keys.slotReports(id), this.o.gatewayId).catch(() => {});
        continue;
      }
      // Idle: often enough that the report stays fresh and the lease is renewed before it lapses.
      const every = d.lease ? Math.max(this.syncMs, Math.min(IDLE_SYNC_MS, (d.lease.until - d.syncedAt) / 3)) : IDLE_SYNC_MS;
      if (idleMs < hotMs || now - d.syncedAt >= every) active.push([id, d]);
    }
    if (active.length === 0) return;
    this.syncing = true;
    const pipe = this.o.redis.pipeline();
    for (const [id, d] of active) {
      // A moving average over about a second: the share's weight, not an exact count.
      const alpha = Math.min(1, elapsedS);
      d.rate = d.rate * (1 - alpha) + (d.arrivals / elapsedS) * alpha;
      d.arrivals = 0;
      const report: SlotReport = { seq: ++this.seq, seen: d.lease?.v ?? 0, use: Object.fromEntries(d.inUse), rate: Math.round(d.rate * 100) / 100, at: now };
      const key = this.o.keys.slotReports(id);
      pipe.hset(key, this.o.gatewayId, JSON.stringify(report));
      pipe.pexpire(key, Math.max(10_000, this.syncMs * 50));
      d.published = true;
      d.syncedAt = now;
      pipe.hgetall(this.o.keys.slots(id, this.o.gatewayId));
    }
    try {
      const results = (await pipe.exec()) ?? [];
      active.forEach(([id, d], i) => {
        const [err, h] = results[i * 3 + 2] ?? [];
        if (err || this.deps.get(id) !== d) return;
        d.lease = parseSlotLease(h as Record<string, string> | null);
      });
    } catch (err) {
      this.o.logger.warn({ err }, "could not exchange slot leases");
    } finally {
      this.syncing = false;
    }
  }
}
