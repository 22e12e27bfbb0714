/**
 * Releases, batched: when a request is done with its replica (or never reached it), the
 * gateway tells the scheduler that placed it, so the replica's slot frees at once. All the
 * releases of one event-loop tick go out as one message per scheduler, in one pipeline.
 *
 * A fast-path release that frees nothing for the scheduler (`deferrable`: the slot stays lent
 * to this gateway, so the scheduler's count would not move) waits up to `DEFER_MS` for
 * company: it carries only the gateway's running count (its 200 ms report says it too) and
 * the usage the fair queue is charged. Any other release sends everything batched at once.
 */
import type { Logger } from "@infera/core";
import type { Redis } from "ioredis";
import type { QueueKeys } from "./keys.ts";
import type { Assigned, Release, ReleaseUsage } from "./messages.ts";

/** What a finished request used, for the scheduler's fair queue (output tokens are charged at completion). */
export interface UsedTokens {
  tenantId: string;
  estimatedTokens: number;
  promptTokens: number;
  completionTokens: number;
}

/** Longest a deferrable release waits (ms): under the slot sync's 200 ms, so the next report does not overtake it by much. */
const DEFER_MS = 100;

export class ReleaseBatcher {
  private readonly bySched = new Map<string, Map<string, Release>>();
  private scheduled = false;
  private deferred: NodeJS.Timeout | undefined;

  constructor(private readonly o: { redis: Redis; keys: QueueKeys; logger: Logger }) {}

  /** `lease`: a fast-path request's (what its gateway runs on the replica after it). */
  add(a: Assigned, failed: boolean, used?: UsedTokens, lease?: Release["lease"], deferrable = false): void {
    let rs = this.bySched.get(a.schedulerId);
    if (!rs) {
      rs = new Map();
      this.bySched.set(a.schedulerId, rs);
    }
    const k = `${a.deploymentId}\u0000${a.replicaId}\u0000${failed ? 1 : 0}\u0000${lease ? 1 : 0}`;
    let r = rs.get(k);
    if (r) r.count++;
    else {
      r = { deploymentId: a.deploymentId, replicaId: a.replicaId, count: 1, failed };
      rs.set(k, r);
    }
    // The latest count wins (`seq` orders them).
    if (lease) r.lease = lease;
    if (used) addUsage(r, used);
    if (this.scheduled) return;
    if (deferrable && !failed) {
      if (!this.deferred) {
        this.deferred = setTimeout(() => this.flush(), DEFER_MS);
        this.deferred.unref();
      }
      return;
    }
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Publishes what is batched now. */
  flush(): void {
    this.scheduled = false;
    clearTimeout(this.deferred);
    this.deferred = undefined;
    const all = [...this.bySched.entries()];
    this.bySched.clear();
    if (all.length === 0) return;
    const pipe = this.o.redis.pipeline();
    for (const [schedulerId, rs] of all) pipe.publish(this.o.keys.schedulerChannel(schedulerId), JSON.stringify([...rs.values()]));
    pipe.exec().catch((err) => this.o.logger.warn({ err }, "could not publish releases"));
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
