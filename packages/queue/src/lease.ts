/**
 * A lease in Redis: one key whose value is its holder's id, with an expiry. The holder
 * renews it well within the expiry; when the holder dies, the lease lapses and another takes
 * it. The dispatch lease of each deployment (which scheduler dispatches it) and the
 * reconciler's leader lease are both this.
 */
import type { Logger } from "@infera/core";
import type { Redis } from "ioredis";
import { scripts } from "./scripts.ts";

export interface RedisLeaseOptions {
  redis: Redis;
  key: string;
  /** This holder's id (the value the key holds while it has the lease). */
  holder: string;
  /** How long the lease lasts unless renewed (ms). */
  ttlMs: number;
}

export class RedisLease {
  constructor(private readonly o: RedisLeaseOptions) {}

  get key(): string {
    return this.o.key;
  }

  /** Takes the lease if it is free: true when this holder has it now. */
  async acquire(): Promise<boolean> {
    return (await this.o.redis.set(this.o.key, this.o.holder, "PX", this.o.ttlMs, "NX")) === "OK";
  }

  /** Extends the lease this holder has: false when it has lapsed or another holds it. */
  async renew(): Promise<boolean> {
    return (await scripts(this.o.redis).leaseRenew(this.o.key, this.o.holder, this.o.ttlMs)) === 1;
  }

  /** Renews the lease when this holder has it, else takes it when free (one round trip): true when held. */
  async hold(): Promise<boolean> {
    return (await scripts(this.o.redis).leaseHold(this.o.key, this.o.holder, this.o.ttlMs)) === 1;
  }

  /** Drops the lease when this holder has it (another holder's is left alone). */
  async release(): Promise<void> {
    await scripts(this.o.redis).leaseRelease(this.o.key, this.o.holder);
  }
}

export interface LeaseKeeperOptions {
  /** How often to try to take the lease, or renew it while held (ms): well within its ttl. */
  everyMs: number;
  /** This holder took the lease (it was free). */
  onGained: () => Promise<void>;
  /** This holder found the lease no longer its own (it lapsed, or another holds it now). */
  onLost: () => Promise<void>;
  logger: Logger;
}

/** Keeps trying to hold a lease: takes it when free, renews it while held, and says when that changes. */
export class LeaseKeeper {
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private stopped = false;
  /** Whether this holder has the lease, as of its last tick. */
  held = false;

  constructor(
    readonly lease: RedisLease,
    private readonly o: LeaseKeeperOptions,
  ) {}

  start(): void {
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.o.everyMs);
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.ticking) return;
    this.ticking = true;
    try {
      if (this.held) {
        if (!(await this.lease.renew())) {
          this.held = false;
          await this.o.onLost();
        }
      } else if (await this.lease.acquire()) {
        this.held = true;
        await this.o.onGained();
      }
    } catch (err) {
      if (!this.stopped) this.o.logger.warn({ err, lease: this.lease.key }, "could not renew the lease");
    } finally {
      this.ticking = false;
    }
  }

  /** Stops trying; the lease stays as it is until `release`. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** Drops the lease if this holder has it (after `stop`: for the next holder to take at once). */
  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    await this.lease.release().catch(() => {});
  }
}
