/**
 * Prefix-affinity placement (the llm-d / production-stack "prefix-aware" router, approximated
 * on the scheduler side).
 *
 * `req.prefixHashes[i]` identifies the prompt's first i+1 blocks (cumulative hashes, see
 * prefix-hash.ts), so a hash shared by two requests means a shared prefix of that length.
 * The policy remembers which replicas recently served each block hash (a bounded LRU map,
 * entries expiring after `ttlMs` of env.now()) and sends a request to the replica that holds
 * its longest remembered prefix — as long as that replica has room and is not much more
 * loaded than the least-loaded one (the balance guard). Otherwise it falls back to
 * least-loaded. Either way it records the choice for every hash of the request.
 *
 * What is recorded per request: its hashes at the anchors (indices 2^j − 1: blocks 1, 2, 4, 8,
 * … of the prefix) and its last hash. Lookup scans the request's last `scanBack` hashes (a
 * conversation's next turn finds the previous turn's last hash there) and then binary-searches
 * the anchors. So the longest match is found to within a factor of two in length, exactly for
 * a conversation's history.
 *
 * Cost per decision: O(replicas) for the load scan (the same as least-loaded), plus
 * O(scanBack + log blocks) map lookups and O(log blocks) map writes. Never
 * O(replicas × blocks). (Map operations on a large table cost ~50–300 ns each in cache misses,
 * so recording every block hash would dominate the decision.)
 */
import { DEFAULT_PREFILL_TOKENS_PER_MS, hasRoom, isExcluded, loadOf, pickLeastLoaded } from "./load.ts";
import { PrefixIndex } from "./prefix-index.ts";
import type { PlacementPolicy, PlacementRequest, PolicyEnv, ReplicaView } from "./types.ts";

export interface PrefixAffinityOptions {
  /** Most block hashes remembered; the least recently used go first. Default 200,000. */
  maxEntries?: number;
  /** A replica's claim on a hash expires after this long without being refreshed. Default 10 min. */
  ttlMs?: number;
  /** Replicas remembered per hash (a hot prefix may live on several). Default 4. */
  replicasPerPrefix?: number;
  /**
   * Balance guard: the preferred replica is used only while its load (fraction of capacity)
   * is at most the least-loaded replica's load plus this. Default 0.5.
   */
  maxImbalance?: number;
  /** Hashes at the end of a request looked up one by one before the anchor search. Default 8. */
  scanBack?: number;
  /** Drain rate of a replica's pending prefill, for the least-loaded fallback. */
  prefillTokensPerMs?: number;
}

/** Outcome counts, for metrics: `hit` went to a replica holding a prefix, `busy` had a prefix but its replicas were too loaded, `miss` had none. */
export interface PrefixAffinityCounters {
  hit: number;
  busy: number;
  miss: number;
}

export interface PrefixAffinityPolicy extends PlacementPolicy {
  readonly name: "prefix-affinity";
  readonly counters: PrefixAffinityCounters;
  /** Hashes currently remembered (for tests and metrics). */
  readonly size: number;
}

/** Resolves replica id → index in the array the caller passed, rebuilding only when the array changes. */
class ReplicaIndex {
  private arr: readonly ReplicaView[] | null = null;
  private len = -1;
  private fresh = false;
  private readonly map = new Map<string, number>();

  begin(replicas: readonly ReplicaView[]): void {
    this.fresh = false;
    if (this.arr !== replicas || this.len !== replicas.length) this.rebuild(replicas);
  }

  indexOf(replicas: readonly ReplicaView[], id: string): number {
    let i = this.map.get(id);
    if (i !== undefined && replicas[i]?.id === id) return i;
    if (this.fresh) return -1;
    this.rebuild(replicas);
    i = this.map.get(id);
    return i !== undefined ? i : -1;
  }

  private rebuild(replicas: readonly ReplicaView[]): void {
    this.map.clear();
    for (let i = 0; i < replicas.length; i++) this.map.set(replicas[i]!.id, i);
    this.arr = replicas;
    this.len = replicas.length;
    this.fresh = true;
  }
}

/** The next shorter anchor (indices 2^j − 1) below index i, or -1. */
function anchorBelow(i: number): number {
  if (i <= 0) return -1;
  if ((i & (i + 1)) === 0) return (i - 1) >> 1; // i is an anchor itself
  return (1 << (31 - Math.clz32(i + 1))) - 1;
}

export function createPrefixAffinity(env: PolicyEnv, options: PrefixAffinityOptions = {}): PrefixAffinityPolicy {
  const maxEntries = options.maxEntries ?? 200_000;
  const ttlMs = options.ttlMs ?? 600_000;
  const perPrefix = Math.max(1, options.replicasPerPrefix ?? 4);
  const maxImbalance = options.maxImbalance ?? 0.5;
  const scanBack = Math.max(0, options.scanBack ?? 8);
  const prefillTokensPerMs = options.prefillTokensPerMs ?? DEFAULT_PREFILL_TOKENS_PER_MS;
  const prefixes = new PrefixIndex(maxEntries, perPrefix, ttlMs);
  const index = new ReplicaIndex();
  const counters: PrefixAffinityCounters = { hit: 0, busy: 0, miss: 0 };
  const random = (): number => env.random();

  /**
   * Index of the longest remembered prefix, or -1: first the last `scanBack` hashes one by one
   * (a conversation's next turn extends the previous turn's prompt, whose last hash was
   * recorded), then a binary search over the anchors (anchor j is index 2^j − 1; a request
   * records every anchor below its length, so "anchor j is remembered" is monotone in j).
   */
  function findLongest(hashes: readonly string[], now: number): number {
    const k = hashes.length;
    const stop = Math.max(0, k - 1 - scanBack);
    for (let i = k - 1; i >= stop; i--) if (prefixes.find(hashes[i]!, now) >= 0) return i;
    let lo = 0;
    // Anchors below the scanned tail: 2^j − 1 < stop.
    let hi = 31 - Math.clz32(stop + 1);
    if ((1 << hi) - 1 >= stop) hi--;
    let best = -1;
    while (lo <= hi) {
      const j = (lo + hi) >>> 1;
      const i = (1 << j) - 1;
      if (prefixes.find(hashes[i]!, now) >= 0) {
        best = i;
        lo = j + 1;
      } else hi = j - 1;
    }
    return best;
  }

  const policy: PrefixAffinityPolicy = {
    name: "prefix-affinity",
    counters,
    get size(): number {
      return prefixes.size;
    },
    place(req: PlacementRequest, replicas: readonly ReplicaView[]): string | null {
      const now = env.now();
      const fallback = pickLeastLoaded(replicas, req, random, { now, tokensPerMs: prefillTokensPerMs });
      if (fallback < 0) return null;
      const hashes = req.prefixHashes;
      let chosen = -1;
      let sawPrefix = false;
      const k = hashes.length;
      if (k > 0) {
        const longest = findLongest(hashes, now);
        if (longest >= 0) {
          sawPrefix = true;
          index.begin(replicas);
          const limit = loadOf(replicas[fallback]!) + maxImbalance;
          // From the longest match down through the shorter anchors until a holder passes the guard.
          for (let i = longest; chosen < 0 && i >= 0; i = anchorBelow(i)) {
            const slot = prefixes.find(hashes[i]!, now);
            if (slot < 0) continue;
            let bestLoad = Number.POSITIVE_INFINITY;
            const claims = prefixes.countAt(slot);
            for (let c = 0; c < claims; c++) {
              if (now - prefixes.timeAt(slot, c) > ttlMs) break;
              const id = prefixes.idAt(slot, c);
              const ri = index.indexOf(replicas, id);
              if (ri < 0) continue;
              const r = replicas[ri]!;
              if (!hasRoom(r, req.backlogged) || isExcluded(id, req.exclude)) continue;
              const load = loadOf(r);
              if (load <= limit && load < bestLoad) {
                bestLoad = load;
                chosen = ri;
              }
            }
          }
        }
      }
      if (chosen >= 0) counters.hit++;
      else if (sawPrefix) counters.busy++;
      else counters.miss++;
      const target = chosen >= 0 ? chosen : fallback;
      const id = replicas[target]!.id;
      // Record the anchors and the last hash.
      for (let i = 0; i < k - 1; i = 2 * i + 1) prefixes.record(hashes[i]!, id, now);
      if (k > 0) prefixes.record(hashes[k - 1]!, id, now);
      return id;
    },
    forget(replicaId: string): void {
      prefixes.forget(replicaId);
    },
  };
  return policy;
}
