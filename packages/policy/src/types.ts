/**
 * The scheduling policy contract. Everything in this package is pure: time and
 * randomness come in through `PolicyEnv`, so the real scheduler (services/scheduler)
 * and the cluster simulator (test/sim) run the very same code.
 */

export interface PolicyEnv {
  /** Milliseconds; the real scheduler passes Date.now, the simulator its virtual clock. */
  now(): number;
  /** Uniform in [0, 1). */
  random(): number;
}

/** What placement knows about one replica at decision time. */
export interface ReplicaView {
  id: string;
  /** The most requests it takes at once: the deployment's max_batch_size. */
  capacity: number;
  /** Running in the engine, as the agent last reported. */
  running: number;
  /** Waiting inside the engine, as the agent last reported. */
  waiting: number;
  /** Placed by this scheduler and not yet reflected in the agent's report. */
  inflight: number;
  /**
   * Of `running`, at most this many may be requests that ended (their releases came after the
   * report, or just before it): a request whose tenant has nothing else queued may take their
   * slots (`hasRoom`). Optional: none.
   */
  ended?: number;
  /** 0..1 */
  kvCacheUsage: number;
  /**
   * Prompt tokens placed here that it may not have prefilled yet, as of `prefillAt`: what
   * placement sent, drained at the replica's prefill rate (see `pendingPrefill`). Optional:
   * without it every replica counts as having none.
   */
  prefillTokens?: number;
  prefillAt?: number;
}

export interface PlacementRequest {
  requestId: string;
  tenantId: string;
  /** Hashes of the prompt's leading blocks, longest prefix last. */
  prefixHashes: readonly string[];
  estimatedTokens: number;
  /** Replicas that must not get it (they failed it before its first byte). */
  exclude?: readonly string[];
  /**
   * Its tenant has more requests queued behind it. Such a request may not take a replica's
   * reserved slots (`reservedSlots`); a request whose tenant has nothing else queued may, and
   * goes where the least prompt work waits to be prefilled.
   */
  backlogged?: boolean;
}

export type PolicyName = "round-robin" | "least-loaded" | "prefix-affinity";

export interface PlacementPolicy {
  readonly name: PolicyName;
  /** The replica to serve `req`, or null when none has room. Records what it needs (e.g. prefix → replica). */
  place(req: PlacementRequest, replicas: readonly ReplicaView[]): string | null;
  /** A replica is gone: forget what was learned about it. */
  forget(replicaId: string): void;
}
