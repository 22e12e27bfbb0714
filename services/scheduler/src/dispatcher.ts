/**
 * One deployment's dispatch loop. The deployment's queue is a Redis stream per priority
 * class, read by the schedulers as one consumer group. One scheduler at a time dispatches a
 * deployment (a lease in Redis, renewed every third of `leaseMs`): it alone sees every waiting
 * request and every release, so fairness is global and a replica never gets more than its
 * capacity from two schedulers; the others stand by and take over when it stops or dies.
 * The holder's fetch loop takes entries in batches (one XREADGROUP for as many as it has room
 * for); each then waits in a fair queue (virtual token counters across tenants, priority
 * classes first) until placement finds a replica with room. One pump places everything that
 * fits and sends the whole batch of assignments in one script call.
 *
 * Delivery is at-least-once: an entry stays in this scheduler's pending list until it is
 * dispatched, this scheduler renews its claim on what it holds, and entries a dead scheduler
 * held are claimed by another after `jobLockMs`. Dispatch is once-only all the same: the
 * script publishes an assignment only when it can delete the entry from its stream, so of
 * two schedulers holding one entry, or an entry the gateway has withdrawn, only one (or
 * none) is sent.
 */
import type { Redis } from "ioredis";
import type { Logger } from "@infera/core";
import { PRIORITY, QUEUE_FIELD, QUEUE_GROUP, type Assignment, type InferJob, type RedisKeys } from "@infera/contracts";
import { FairQueue, type PlacementPolicy } from "@infera/policy";
import type { ReplicaDirectory } from "./replicas.ts";
import type { SchedulerMetrics } from "./metrics.ts";

interface Waiting {
  job: InferJob;
  stream: string;
  entryId: string;
}

/** Entry ids are unique within a stream only (two classes' streams can both have `<ms>-0`). */
const heldKey = (stream: string, entryId: string) => `${stream}\u0000${entryId}`;

/** One entry to take off its stream, and the message for its gateway if it is still there. */
interface Take {
  w: Waiting;
  message: Assignment;
  replicaId?: string;
}

export interface DispatcherOptions {
  deploymentId: string;
  capacity: number;
  policy: PlacementPolicy;
  /** Commands (dispatch scripts, claims). */
  redis: Redis;
  /** A connection of this dispatcher's own for the blocking reads (maxRetriesPerRequest: null); closed by stop(). */
  blocking: Redis;
  keys: RedisKeys;
  directory: ReplicaDirectory;
  metrics: SchedulerMetrics;
  logger: Logger;
  schedulerId: string;
  /** Most entries this scheduler holds for the deployment (its fair queue's window). */
  maxQueued: number;
  /** An entry held this long without its scheduler renewing the claim may be taken by another (default 15 s). */
  jobLockMs?: number;
  /** The dispatch lease: another scheduler takes the deployment over this long after its holder died (default 2 s). */
  leaseMs?: number;
  /** Asks the reconciler to bring a replica up (scale from zero). */
  wake: (deploymentId: string) => void;
  now?: () => number;
}

/** Most entries one XREADGROUP takes per stream. */
const FETCH_MAX = 1_000;
/** Longest a blocking read waits before it looks again (ms). */
const BLOCK_MS = 1_000;

/**
 * Takes entries off their streams and tells their gateways, in one round trip. KEYS: the
 * stream of each entry; ARGV: group, then per entry its id, its gateway channel and the
 * message. An entry still in its stream is deleted and its message published (all messages
 * for one gateway as one JSON array); one already gone (dispatched by another scheduler,
 * withdrawn by its gateway) is only acknowledged. Returns 1/0 per entry: taken or not.
 */
const TAKE = `local group = ARGV[1]
local out, byChannel, order = {}, {}, {}
for i = 1, #KEYS do
  local id, ch = ARGV[i * 3 - 1], ARGV[i * 3]
  local present = #redis.call('XRANGE', KEYS[i], id, id) > 0
  redis.call('XACK', KEYS[i], group, id)
  if present then
    redis.call('XDEL', KEYS[i], id)
    local list = byChannel[ch]
    if not list then
      list = {}
      byChannel[ch] = list
      order[#order + 1] = ch
    end
    list[#list + 1] = ARGV[i * 3 + 1]
    out[i] = 1
  else
    out[i] = 0
  end
end
for _, ch in ipairs(order) do
  redis.call('PUBLISH', ch, '[' .. table.concat(byChannel[ch], ',') .. ']')
end
return out`;

/**
 * Hands entries back (this scheduler stops, or lost the lease): each still in its stream moves to the
 * front class, to be read at once by another scheduler. KEYS[1]: the front stream, then the
 * stream of each entry; ARGV: group, then per entry its id and its job.
 */
const GIVE_BACK = `local group = ARGV[1]
for i = 2, #KEYS do
  local id, job = ARGV[i * 2 - 2], ARGV[i * 2 - 1]
  if #redis.call('XRANGE', KEYS[i], id, id) > 0 then
    redis.call('XADD', KEYS[1], '*', '${QUEUE_FIELD}', job)
    redis.call('XDEL', KEYS[i], id)
  end
  redis.call('XACK', KEYS[i], group, id)
end
return 1`;

/** Renews the lease when this scheduler still holds it: 1, else 0. KEYS[1]: lease; ARGV: holder, ms. */
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`;

/** Drops the lease when this scheduler holds it. KEYS[1]: lease; ARGV[1]: holder. */
const DROP = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

type ScriptRedis = Redis & {
  inferaTake(numKeys: number, ...args: string[]): Promise<number[]>;
  inferaGiveBack(numKeys: number, ...args: string[]): Promise<number>;
  inferaRenewLease(lease: string, holder: string, ms: number): Promise<number>;
  inferaDropLease(lease: string, holder: string): Promise<number>;
};

function scripts(redis: Redis): ScriptRedis {
  const r = redis as ScriptRedis;
  if (typeof r.inferaTake !== "function") {
    redis.defineCommand("inferaTake", { lua: TAKE });
    redis.defineCommand("inferaGiveBack", { lua: GIVE_BACK });
    redis.defineCommand("inferaRenewLease", { numberOfKeys: 1, lua: RENEW });
    redis.defineCommand("inferaDropLease", { numberOfKeys: 1, lua: DROP });
  }
  return r;
}

type StreamEntries = [id: string, fields: string[]][];

/** An entry to take off its stream, and what to publish to its gateway if it was still there. */
export interface TakeEntry {
  stream: string;
  entryId: string;
  channel: string;
  message: string;
}

/** Runs the take script over a batch: 1 for each entry taken (its message published), 0 for one already gone. */
export function takeEntries(redis: Redis, entries: TakeEntry[]): Promise<number[]> {
  const args: string[] = entries.map((e) => e.stream);
  args.push(QUEUE_GROUP);
  for (const e of entries) args.push(e.entryId, e.channel, e.message);
  return scripts(redis).inferaTake(entries.length, ...args);
}

/** Creates the consumer group on each of the deployment's streams (and the streams), from their start. */
export async function ensureQueueGroups(redis: Redis, streams: readonly string[]): Promise<void> {
  for (const s of streams) {
    try {
      await redis.xgroup("CREATE", s, QUEUE_GROUP, "0", "MKSTREAM");
    } catch (err) {
      if (!String((err as Error).message).includes("BUSYGROUP")) throw err;
    }
  }
}

/** Requests queued for a deployment (waiting in Redis or held by a scheduler), across its streams. */
export async function queuedCount(redis: Redis, keys: RedisKeys, deploymentId: string): Promise<number> {
  const pipe = redis.pipeline();
  for (const s of keys.queues(deploymentId)) pipe.xlen(s);
  const results = (await pipe.exec()) ?? [];
  return results.reduce((n, [err, len]) => n + (err ? 0 : Number(len)), 0);
}

export class DeploymentDispatcher {
  private readonly queue = new FairQueue<Waiting>();
  /** Every entry this scheduler holds (in the fair queue or being dispatched), by stream and entry id. */
  private readonly held = new Map<string, Waiting>();
  private readonly streams: string[];
  private readonly lockMs: number;
  private readonly leaseMs: number;
  private sweepTimer: NodeJS.Timeout | undefined;
  private claimTimer: NodeJS.Timeout | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private fetching: Promise<void> | undefined;
  /** Wakes the fetch loop (room freed, lease taken, stopping). */
  private nudge: (() => void) | undefined;
  /** This scheduler holds the deployment's dispatch lease. */
  private active = false;
  private leasing = false;
  private pumping = false;
  private stopping = false;
  private readonly now: () => number;
  capacity: number;

  constructor(private readonly o: DispatcherOptions) {
    this.now = o.now ?? Date.now;
    this.capacity = o.capacity;
    this.streams = o.keys.queues(o.deploymentId);
    this.lockMs = o.jobLockMs ?? 15_000;
    this.leaseMs = o.leaseMs ?? 2_000;
  }

  get depth(): number {
    return this.queue.size;
  }

  start(): void {
    this.leaseTimer = setInterval(() => void this.tickLease(), Math.max(100, Math.floor(this.leaseMs / 3)));
    void this.tickLease();
    this.fetching = this.fetchLoop();
    this.sweepTimer = setInterval(() => this.sweep(), 100);
    this.claimTimer = setInterval(() => void this.renewAndClaim(), Math.max(250, Math.floor(this.lockMs / 3)));
  }

  /** Takes the lease when it is free, renews it while held, and lets go when another has it. */
  private async tickLease(): Promise<void> {
    if (this.stopping || this.leasing) return;
    this.leasing = true;
    const { redis, keys, deploymentId, schedulerId } = this.o;
    const lease = keys.dispatchLease(deploymentId);
    try {
      if (this.active) {
        if ((await scripts(redis).inferaRenewLease(lease, schedulerId, this.leaseMs)) !== 1) await this.deactivate();
      } else if ((await redis.set(lease, schedulerId, "PX", this.leaseMs, "NX")) === "OK") {
        await this.activate();
      }
    } catch (err) {
      if (!this.stopping) this.o.logger.warn({ err: (err as Error).message }, "could not renew the dispatch lease");
    } finally {
      this.leasing = false;
    }
  }

  /** Took the lease: whatever the previous holder had read is taken over now, then the fetch loop runs. */
  private async activate(): Promise<void> {
    this.active = true;
    this.o.logger.info({ deploymentId: this.o.deploymentId }, "dispatching this deployment");
    await ensureQueueGroups(this.o.redis, this.streams);
    await this.claimIdle(0);
    this.wakeFetch();
  }

  /**
   * Takes over the entries other consumers have held at least `minIdleMs` without renewing
   * (all of them at 0: the lease says their holder is gone), as far as there is room.
   */
  private async claimIdle(minIdleMs: number): Promise<void> {
    const { redis, schedulerId } = this.o;
    for (const stream of this.streams) {
      for (let cursor = "0-0"; ; ) {
        const room = this.o.maxQueued - this.held.size;
        if (room <= 0 || !this.active || this.stopping) return;
        const [next, entries] = (await redis.xautoclaim(stream, QUEUE_GROUP, schedulerId, minIdleMs, cursor, "COUNT", Math.min(room, FETCH_MAX))) as [
          string,
          StreamEntries,
        ];
        if (entries.length) {
          this.o.logger.info({ entries: entries.length, stream }, "took over entries another scheduler had read");
          // Entries deleted since they were read come back empty: nothing to take.
          this.accept(
            stream,
            entries.filter((e) => e?.[1]),
          );
          this.pump();
        }
        if (next === "0-0") break;
        cursor = next;
      }
    }
  }

  /** Lost the lease (another scheduler has it): hand back what this one holds. */
  private async deactivate(): Promise<void> {
    this.active = false;
    this.o.logger.warn({ deploymentId: this.o.deploymentId }, "another scheduler dispatches this deployment now");
    await this.handBack();
  }

  private wakeFetch(): void {
    const wake = this.nudge;
    this.nudge = undefined;
    wake?.();
  }

  /** Reads the streams in batches of what this scheduler has room for, while it holds the lease. */
  private async fetchLoop(): Promise<void> {
    const blocking = this.o.blocking;
    // activate() made the groups; a read that fails (streams deleted, Redis away) makes them again.
    let groups = true;
    while (!this.stopping) {
      const room = this.o.maxQueued - this.held.size;
      if (room <= 0 || !this.active) {
        await new Promise<void>((resolve) => (this.nudge = resolve));
        continue;
      }
      try {
        if (!groups) await ensureQueueGroups(blocking, this.streams);
        groups = true;
        const ids = this.streams.map(() => ">");
        const count = Math.min(room, FETCH_MAX);
        const res = (await blocking.xreadgroup(
          "GROUP",
          QUEUE_GROUP,
          this.o.schedulerId,
          "COUNT",
          count,
          "BLOCK",
          BLOCK_MS,
          "STREAMS",
          ...this.streams,
          ...ids,
        )) as [stream: string, entries: StreamEntries][] | null;
        for (const [stream, entries] of res ?? []) this.accept(stream, entries);
        // The lease went while the read waited: what it brought goes back at once.
        if (res && !this.active) await this.handBack();
        else if (res) this.pump();
      } catch (err) {
        if (this.stopping) break;
        // The streams were deleted under us (NOGROUP) or Redis is away: set up again shortly.
        groups = false;
        this.o.logger.warn({ err: (err as Error).message }, "could not read the queue");
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  private accept(stream: string, entries: StreamEntries): void {
    const front = stream === this.streams[0];
    for (const [entryId, fields] of entries) {
      if (this.held.has(heldKey(stream, entryId))) continue;
      const raw = fields[fields.indexOf(QUEUE_FIELD) + 1];
      let job: InferJob;
      try {
        job = JSON.parse(raw ?? "") as InferJob;
      } catch {
        // Not ours to serve: drop it, or it would come back from the pending list forever.
        void takeEntries(this.o.redis, [{ stream, entryId, channel: "", message: "" }]).catch(() => {});
        continue;
      }
      const w: Waiting = { job, stream, entryId };
      this.held.set(heldKey(stream, entryId), w);
      // Lower class numbers go first; the fair queue serves higher numbers first.
      this.queue.push(w, {
        tenantId: job.tenantId,
        priority: -job.priority,
        inputTokens: job.estimatedTokens,
        front: front || job.priority === PRIORITY.requeued,
      });
    }
    this.o.metrics.queueDepth.set({ deployment: this.o.deploymentId }, this.queue.size);
  }

  private forget(w: Waiting): void {
    this.held.delete(heldKey(w.stream, w.entryId));
    this.wakeFetch();
  }

  /**
   * Renews this scheduler's claim on what it holds (so no other scheduler takes it) and
   * takes over entries another scheduler held past the lock (it died). Entries deleted
   * meanwhile (their gateway withdrew them) are dropped from the fair queue.
   */
  private async renewAndClaim(): Promise<void> {
    if (this.stopping || !this.active) return;
    const { redis, schedulerId } = this.o;
    try {
      const byStream = new Map<string, string[]>();
      for (const w of this.held.values()) {
        let ids = byStream.get(w.stream);
        if (!ids) {
          ids = [];
          byStream.set(w.stream, ids);
        }
        ids.push(w.entryId);
      }
      const gone = new Set<string>();
      for (const [stream, ids] of byStream) {
        for (let i = 0; i < ids.length; i += 500) {
          const chunk = ids.slice(i, i + 500);
          const kept = new Set((await redis.xclaim(stream, QUEUE_GROUP, schedulerId, 0, ...chunk, "JUSTID")) as string[]);
          for (const id of chunk) if (!kept.has(id)) gone.add(heldKey(stream, id));
        }
      }
      if (gone.size) {
        for (const w of this.queue.remove((x) => gone.has(heldKey(x.stream, x.entryId)))) this.forget(w);
      }
      // A safety net: a hand-back that failed leaves entries in another consumer's pending list.
      await this.claimIdle(this.lockMs);
    } catch (err) {
      if (!this.stopping) this.o.logger.warn({ err: (err as Error).message }, "could not renew queue claims");
    }
  }

  /** Place as many waiting requests as replicas have room for; send the assignments in one batch. */
  pump(): void {
    if (this.pumping || this.queue.size === 0 || this.stopping || !this.active) return;
    this.pumping = true;
    const batch: Take[] = [];
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
        const d = next.job;
        const replicaId = policy.place(
          {
            requestId: d.requestId,
            tenantId: d.tenantId,
            prefixHashes: d.prefixHashes,
            estimatedTokens: d.estimatedTokens,
            exclude: d.excludeReplicas,
            // More of its tenant's requests wait here: it may not take a replica's reserved slots.
            backlogged: this.queue.sizeOf(d.tenantId) > 1,
          },
          views,
        );
        if (!replicaId) break;
        this.queue.pop();
        directory.assigned(deploymentId, replicaId, d.promptTokens);
        views = directory.views(deploymentId, this.capacity);
        const address = directory.address(deploymentId, replicaId) ?? "";
        const queuedMs = this.now() - d.enqueuedAt;
        batch.push({
          w: next,
          replicaId,
          message: { type: "assigned", requestId: d.requestId, replicaId, address, queuedMs, schedulerId: this.o.schedulerId, deploymentId },
        });
      }
    } finally {
      this.pumping = false;
      this.o.metrics.queueDepth.set({ deployment: this.o.deploymentId }, this.queue.size);
    }
    if (batch.length) void this.take(batch);
  }

  /** Sends a batch: assignments (and rejections) for the entries still queued; frees the slots of the rest. */
  private async take(batch: Take[]): Promise<void> {
    const { deploymentId, keys, metrics } = this.o;
    let taken: number[];
    try {
      taken = await takeEntries(
        this.o.redis,
        batch.map((t) => ({ stream: t.w.stream, entryId: t.w.entryId, channel: keys.gatewayChannel(t.w.job.gatewayId), message: JSON.stringify(t.message) })),
      );
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message, requests: batch.length }, "could not publish assignments");
      // Try again later: back to the front of the fair queue, slots given back.
      for (const t of batch) {
        if (t.replicaId) this.o.directory.released(deploymentId, t.replicaId, 1, false);
        if (!this.stopping && this.active) this.queue.push(t.w, { tenantId: t.w.job.tenantId, priority: -t.w.job.priority, inputTokens: 0, front: true });
        else this.forget(t.w);
      }
      return;
    }
    batch.forEach((t, i) => {
      this.forget(t.w);
      const m = t.message;
      if (m.type === "rejected") {
        metrics.rejected.inc({ deployment: deploymentId, reason: m.code });
      } else if (taken[i] === 1) {
        this.o.logger.debug({ requestId: m.requestId, replicaId: m.replicaId, queuedMs: m.queuedMs }, "dispatched");
        metrics.dispatched.inc({ deployment: deploymentId });
        metrics.queueTime.observe({ deployment: deploymentId }, m.queuedMs / 1000);
      } else {
        // Dispatched by another scheduler already, or withdrawn by its gateway.
        this.o.directory.released(deploymentId, m.replicaId, 1, false);
      }
    });
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
    const expired = this.queue.remove((w) => w.job.deadline <= now);
    if (expired.length) {
      void this.take(expired.map((w) => ({ w, message: rejection(w, "unavailable", "no replica could take the request before its deadline", 5) })));
      this.o.metrics.queueDepth.set({ deployment: this.o.deploymentId }, this.queue.size);
    }
    if (this.queue.size > 0) this.pump();
  }

  /** The deployment was stopped or deleted: answer everything that waits. */
  async rejectAll(code: "unavailable" | "not_found", message: string): Promise<void> {
    const all = this.queue.remove(() => true);
    // Stopped (or failed): the client may come back later; deleted: it need not.
    if (all.length) await this.take(all.map((w) => ({ w, message: rejection(w, code, message, code === "unavailable" ? 30 : undefined) })));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of [this.sweepTimer, this.claimTimer, this.leaseTimer]) if (t) clearInterval(t);
    // Ends a blocked read at once; what it had taken stays in this scheduler's pending list
    // and the next holder of the lease takes it over.
    this.o.blocking.disconnect();
    this.wakeFetch();
    await this.fetching;
    await this.handBack();
    if (this.active) {
      this.active = false;
      // After the hand-back: the next holder finds everything in the front stream.
      await scripts(this.o.redis)
        .inferaDropLease(this.o.keys.dispatchLease(this.o.deploymentId), this.o.schedulerId)
        .catch(() => {});
    }
  }

  /** Moves what this scheduler holds to the front stream, for the lease's next holder to read at once. */
  private async handBack(): Promise<void> {
    const left = this.queue.remove(() => true);
    for (const w of left) this.forget(w);
    this.o.metrics.queueDepth.set({ deployment: this.o.deploymentId }, 0);
    if (left.length === 0) return;
    const front = this.o.keys.queue(this.o.deploymentId, PRIORITY.requeued);
    const args: string[] = [front, ...left.map((w) => w.stream), QUEUE_GROUP];
    for (const w of left) args.push(w.entryId, JSON.stringify(w.job));
    await scripts(this.o.redis)
      .inferaGiveBack(left.length + 1, ...args)
      .catch((err) =>
        this.o.logger.warn({ err: (err as Error).message, requests: left.length }, "could not hand queued requests back; the next holder takes them over"),
      );
  }
}

function rejection(w: Waiting, code: "unavailable" | "not_found", message: string, retryAfterS?: number): Assignment {
  return { type: "rejected", requestId: w.job.requestId, code, message, retryAfterS };
}
