/**
 * A discrete-event simulator of one deployment: a central queue (the FairQueue of
 * @infera/policy, or FIFO for comparison), a placement policy from @infera/policy, and
 * `replicas` engine replicas following the cost model of cost-model.ts.
 *
 * Events are replica step ends (at most one pending per replica) in a typed-array binary
 * heap, merged with the arrival list; there are no per-token events: a request's finish step
 * is known when its decode starts, and per-replica min-heaps of finish steps release it.
 * Per-request and per-replica state are typed arrays.
 */
import {
  addPrefill,
  createPlacementPolicy,
  FairQueue,
  type GatewaySlots,
  hasRoom,
  heldSlots,
  planGrants,
  reservedSlots,
  type PlacementOptions,
  type PlacementPolicy,
  type PlacementRequest,
  type PolicyEnv,
  type PolicyName,
  type PrefixAffinityPolicy,
  type ReplicaView,
} from "../../packages/policy/src/index.ts";
import { DEFAULT_COST, stepMs, type CostModel } from "./cost-model.ts";
import { EventHeap } from "./event-heap.ts";
import { PrefixCache } from "./prefix-cache.ts";
import { Rng } from "./rng.ts";
import { ServiceGapTracker } from "./service-gap.ts";
import type { Workload } from "./workload.ts";

export interface SimConfig {
  replicas: number;
  policy: PolicyName;
  cost?: CostModel;
  /** "fair": the VTC FairQueue; "fifo": one FIFO line (the baseline without fairness). */
  queue?: "fair" | "fifo";
  weights?: { input: number; output: number };
  /** 0: placement sees exact load. >0: replicas report every this many ms; between reports
   * placement sees the last report plus what it placed since (inflight), as in production. */
  reportLagMs?: number;
  seed?: number;
  placement?: PlacementOptions;
  /** Tokens per block in the prefix hashes handed to placement (the gateway's ~512 chars). */
  hashBlockTokens?: number;
  hashMaxBlocks?: number;
  /**
   * The fast path (slot leases, as the scheduler and gateways run it): `gateways` gateways
   * (request i arrives at gateway i mod G) hold leases the scheduler rewrites every `tickMs`
   * (`planGrants`; nothing while the queue holds anything) and read every `syncMs` (their
   * report acknowledges the version read one sync before). A gateway with a free leased slot
   * and none of its requests queued places a request itself. Exact load only (reportLagMs 0).
   */
  fastPath?: { gateways: number; tickMs?: number; syncMs?: number };
}

export interface SimResult {
  policy: PolicyName;
  queue: "fair" | "fifo";
  requests: number;
  /** Virtual time from first arrival to last completion. */
  makespanS: number;
  wallS: number;
  totalTokens: number;
  outputTokens: number;
  promptTokens: number;
  cachedTokens: number;
  /** Time to first token per request (ms), indexed like the workload. */
  ttftMs: Float64Array;
  queueWaitMs: Float64Array;
  maxServiceGap: number;
  placements: { hit: number; busy: number; miss: number } | null;
  events: number;
  /** Requests placed by their gateway on a leased slot (the fast path). */
  fastPlacements: number;
  /** The most any replica had counted at once: its requests plus the slots lent and unused (≤ max_batch_size). */
  maxCounted: number;
  /** Requests placed more than once (must be 0). */
  placedTwice: number;
}

interface CentralQueue {
  readonly size: number;
  push(item: number, meta: { tenantId: string; inputTokens: number }): void;
  peek(): number | undefined;
  pop(): number | undefined;
  charge(tenantId: string, inputTokens: number, outputTokens: number): void;
}

class FifoQueue implements CentralQueue {
  private items: number[] = [];
  private head = 0;
  get size(): number {
    return this.items.length - this.head;
  }
  push(item: number): void {
    this.items.push(item);
  }
  peek(): number | undefined {
    return this.head === this.items.length ? undefined : this.items[this.head];
  }
  pop(): number | undefined {
    if (this.head === this.items.length) return undefined;
    const v = this.items[this.head++]!;
    if (this.head > 65_536 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return v;
  }
  charge(): void {}
}

const REPORT_TICK = -1;
const LEASE_TICK = -2;
const GATEWAY_SYNC = -3;

export function simulate(w: Workload, config: SimConfig): SimResult {
  const started = performance.now();
  const cost = config.cost ?? DEFAULT_COST;
  const R = config.replicas;
  const cap = cost.maxBatchSize;
  const B = cost.blockTokens;
  const weights = config.weights ?? { input: 1, output: 2 };
  const lag = config.reportLagMs ?? 0;
  const hashBlock = config.hashBlockTokens ?? 128;
  const hashMax = config.hashMaxBlocks ?? 64;
  const queueKind = config.queue ?? "fair";
  const n = w.n;
  const fp = config.fastPath;
  if (fp && lag > 0) throw new Error("the fast path is modelled with exact load (reportLagMs 0)");

  let now = 0;
  const rng = new Rng(config.seed ?? 1);
  const env: PolicyEnv = { now: () => now, random: () => rng.next() };
  // Placement estimates what a replica has left to prefill at the cost model's rate.
  const prefillRate = 1 / cost.prefillPerTokenMs;
  const policy: PlacementPolicy = createPlacementPolicy(config.policy, env, { prefillTokensPerMs: prefillRate, ...config.placement });
  const wantsHashes = config.policy === "prefix-affinity";
  const queue: CentralQueue = queueKind === "fair" ? new FairQueue<number>({ weights }) : new FifoQueue();

  // Per request.
  const dispatchT = new Float64Array(n).fill(Number.NaN);
  const firstT = new Float64Array(n).fill(Number.NaN);
  const remaining = new Int32Array(n);

  // Per replica.
  const views: ReplicaView[] = Array.from({ length: R }, (_, i) => ({
    id: `r${i}`,
    capacity: cap,
    running: 0,
    waiting: 0,
    inflight: 0,
    kvCacheUsage: 0,
    prefillTokens: 0,
    prefillAt: 0,
  }));
  const indexOfId = new Map<string, number>(views.map((v, i) => [v.id, i]));
  // Replicas with room for any request, and with room beyond the reserved slots (for a backlogged tenant's).
  const roomFlag = new Uint8Array(R).fill(1);
  let roomCount = R;
  const openFlag = new Uint8Array(R).fill(1);
  let openCount = R;
  const batch = new Int32Array(R); // requests in the engine batch (prefill or decode)
  const localWait: number[][] = Array.from({ length: R }, () => []);
  const ring = new Int32Array(R * cap); // prefill FIFO per replica
  const ringHead = new Int32Array(R);
  const ringLen = new Int32Array(R);
  const fKey = new Int32Array(R * cap); // finish-step min-heap per replica
  const fReq = new Int32Array(R * cap);
  const fLen = new Int32Array(R);
  const stepIdx = new Int32Array(R);
  const prefillDone = new Int32Array(R);
  const busy = new Uint8Array(R);
  const kvTokens = new Float64Array(R);
  const kvCapTokens = cost.cacheBlocks * B;
  const caches = Array.from({ length: R }, () => new PrefixCache(cost.cacheBlocks));

  // Tenants.
  const T = w.tenantNames.length;
  const queued = new Int32Array(T);
  const gap = new ServiceGapTracker(T);

  // Prefix keys for the replica caches: system prompt p → p; conversation c → P + c; request i → P + C + i.
  const P = w.numPrefixes;
  const C = w.numConvs;
  const sysHashes: string[][] = Array.from({ length: P }, (_, p) => Array.from({ length: hashMax }, (_, j) => `s${p}.${j}`));

  let promptTokens = 0;
  let cachedTokens = 0;
  let outputTokens = 0;
  let lastDone = 0;
  let events = 0;
  const heap = new EventHeap(R + 16);

  // The fast path, per gateway g × replica r at g * R + r: the lease as written (kCur), the most
  // an unacknowledged version lent (ceil), the lease the gateway applied (kApplied), what it
  // runs (use) and what the scheduler last heard it runs (reported).
  const G = fp?.gateways ?? 0;
  const tickMs = fp?.tickMs ?? 250;
  const syncMs = fp?.syncMs ?? 200;
  const reserved = reservedSlots(cap);
  const kCur = new Int32Array(G * R);
  const ceil = new Int32Array(G * R);
  const kApplied = new Int32Array(G * R);
  const use = new Int32Array(G * R);
  const reported = new Int32Array(G * R);
  const version = new Int32Array(G);
  const applied = new Int32Array(G);
  const seenBySched = new Int32Array(G);
  const gwQueued = new Int32Array(G);
  const arrivals = new Float64Array(G);
  const rate = new Float64Array(G);
  const fastReq = new Uint8Array(n);
  const queuePlaced = new Int32Array(R);
  const unlent = new Int32Array(R);
  // The prompt work each gateway placed on each replica (its own estimate of pending prefill).
  const gwPrefill = Array.from({ length: G * R }, () => ({ prefillTokens: 0, prefillAt: 0 }));
  const gwPolicies = Array.from({ length: G }, () => createPlacementPolicy(config.policy, env, { prefillTokensPerMs: prefillRate, ...config.placement }));
  let fastPlacements = 0;
  let maxCounted = 0;
  let placedTwice = 0;
  let ticksQueued = 0;

  const heldAt = (g: number, r: number): number => {
    const i = g * R + r;
    const acked = seenBySched[g] === version[g];
    return heldSlots({ inUse: reported[i]!, ceiling: acked ? kCur[i]! : Math.max(ceil[i]!, kCur[i]!) });
  };

  /** Lent and unused slots count as in flight for the queue's placement. */
  function recount(r: number): void {
    if (G === 0) return;
    let s = 0;
    for (let g = 0; g < G; g++) s += Math.max(0, heldAt(g, r) - use[g * R + r]!);
    unlent[r] = s;
    views[r]!.inflight = s;
    refreshRoom(r);
    const counted = batch[r]! + localWait[r]!.length + s;
    if (counted > maxCounted) maxCounted = counted;
  }

  /** The scheduler's round: new leases per gateway (a version when its slots change). */
  function leaseTick(): void {
    const drain = queue.size > 0;
    const next = new Int32Array(G * R);
    for (let r = 0; r < R; r++) {
      const standing: GatewaySlots[] = [];
      for (let g = 0; g < G; g++) {
        const i = g * R + r;
        const acked = seenBySched[g] === version[g];
        standing.push({ granted: kCur[i]!, ceiling: acked ? kCur[i]! : Math.max(ceil[i]!, kCur[i]!), inUse: reported[i]!, rate: rate[g]! });
      }
      const ks = planGrants(cap - reserved - queuePlaced[r]!, standing, drain);
      for (let g = 0; g < G; g++) next[g * R + r] = ks[g]!;
    }
    for (let g = 0; g < G; g++) {
      let changed = false;
      for (let r = 0; r < R; r++) if (next[g * R + r] !== kCur[g * R + r]) changed = true;
      if (!changed) continue;
      const acked = seenBySched[g] === version[g];
      for (let r = 0; r < R; r++) {
        const i = g * R + r;
        ceil[i] = Math.max(next[i]!, acked ? kCur[i]! : Math.max(ceil[i]!, kCur[i]!));
        kCur[i] = next[i]!;
      }
      version[g]!++;
    }
    for (let r = 0; r < R; r++) recount(r);
  }

  /** Each gateway's sync: it reports what it runs and the version it had applied, then applies the current one. */
  function gatewaySync(): void {
    for (let g = 0; g < G; g++) {
      for (let r = 0; r < R; r++) reported[g * R + r] = use[g * R + r]!;
      seenBySched[g] = applied[g]!;
      applied[g] = version[g]!;
      for (let r = 0; r < R; r++) kApplied[g * R + r] = kCur[g * R + r]!;
      rate[g] = 0.5 * rate[g]! + 0.5 * (arrivals[g]! / syncMs);
      arrivals[g] = 0;
    }
    for (let r = 0; r < R; r++) recount(r);
  }

  /** The gateway of request q places it on one of its leased slots, if it has one free. */
  function placeFast(q: number): boolean {
    const g = q % G;
    arrivals[g]!++;
    if (gwQueued[g]! > 0) return false;
    const lv: ReplicaView[] = [];
    for (let r = 0; r < R; r++) {
      const k = kApplied[g * R + r]!;
      if (k > 0) lv.push({ id: views[r]!.id, capacity: k, running: use[g * R + r]!, waiting: 0, inflight: 0, kvCacheUsage: 0, ...gwPrefill[g * R + r]! });
    }
    if (lv.length === 0) return false;
    const t = w.tenant[q]!;
    const id = gwPolicies[g]!.place(
      { requestId: String(q), tenantId: w.tenantNames[t]!, prefixHashes: wantsHashes ? hashesOf(q) : [], estimatedTokens: w.prompt[q]! + w.output[q]! },
      lv,
    );
    if (id === null) return false;
    const r = indexOfId.get(id)!;
    use[g * R + r]!++;
    addPrefill(gwPrefill[g * R + r]!, w.prompt[q]!, now, prefillRate);
    fastReq[q] = 1;
    fastPlacements++;
    // Charged as the scheduler charges a fast request's release: its prompt (the fair queue never held it).
    queue.charge(w.tenantNames[t]!, w.prompt[q]!, 0);
    gap.serve(t, weights.input * w.prompt[q]!);
    placed(r, q);
    return true;
  }

  function placed(r: number, q: number): void {
    if (!Number.isNaN(dispatchT[q]!)) placedTwice++;
    addPrefill(views[r]!, w.prompt[q]!, now, prefillRate);
    dispatchT[q] = now;
    admit(r, q);
    syncView(r);
    recount(r);
  }

  function refreshRoom(r: number): void {
    const room = hasRoom(views[r]!) ? 1 : 0;
    if (room !== roomFlag[r]) {
      roomCount += room === 1 ? 1 : -1;
      roomFlag[r] = room;
    }
    const open = hasRoom(views[r]!, true) ? 1 : 0;
    if (open !== openFlag[r]) {
      openCount += open === 1 ? 1 : -1;
      openFlag[r] = open;
    }
  }

  function syncView(r: number): void {
    if (lag > 0) return;
    const v = views[r]!;
    v.running = batch[r]!;
    v.waiting = localWait[r]!.length;
    v.kvCacheUsage = kvTokens[r]! / kvCapTokens;
    refreshRoom(r);
  }

  function hashesOf(q: number): string[] {
    const blocks = Math.min(hashMax, Math.floor(w.prompt[q]! / hashBlock));
    const out = new Array<string>(blocks);
    const p = w.prefix[q]!;
    const sysFull = p >= 0 ? Math.floor(w.prefixTokens[q]! / hashBlock) : 0;
    const c = w.conv[q]!;
    const sys = p >= 0 ? sysHashes[p]! : undefined;
    for (let j = 0; j < blocks; j++) out[j] = j < sysFull && sys !== undefined ? sys[j]! : c >= 0 ? `c${c}.${j}` : `q${q}.${j}`;
    return out;
  }

  function enterBatch(r: number, q: number): void {
    batch[r]!++;
    kvTokens[r]! += w.prompt[q]! + w.output[q]!;
    const pos = r * cap + ((ringHead[r]! + ringLen[r]!) % cap);
    ring[pos] = q;
    ringLen[r]!++;
  }

  /** The request lands on replica r: look up its cached prefix, then queue its prefill. */
  function admit(r: number, q: number): void {
    const cache = caches[r]!;
    const prompt = w.prompt[q]!;
    const p = w.prefix[q]!;
    const c = w.conv[q]!;
    const sysBlocks = p >= 0 ? Math.floor(w.prefixTokens[q]! / B) : 0;
    const restBlocks = Math.floor(prompt / B) - sysBlocks;
    let hitBlocks = 0;
    if (sysBlocks > 0 && cache.get(p) >= sysBlocks) hitBlocks = sysBlocks;
    if (c >= 0 && (sysBlocks === 0 || hitBlocks > 0)) hitBlocks += Math.min(cache.get(P + c), restBlocks);
    const hit = Math.min(hitBlocks * B, prompt - 1);
    if (sysBlocks > 0) cache.touch(p, sysBlocks);
    cache.touch(c >= 0 ? P + c : P + C + q, restBlocks);
    promptTokens += prompt;
    cachedTokens += hit;
    remaining[q] = prompt - hit;
    if (batch[r]! < cap) enterBatch(r, q);
    else localWait[r]!.push(q);
    if (busy[r] === 0) startStep(r);
  }

  function startStep(r: number): void {
    const decoding = fLen[r]!;
    let budget = cost.maxBatchedTokens - decoding;
    let tokens = 0;
    let seqs = 0;
    let done = 0;
    const len = ringLen[r]!;
    const head = ringHead[r]!;
    for (let k = 0; k < len && budget > 0; k++) {
      const q = ring[r * cap + ((head + k) % cap)]!;
      const rem = remaining[q]!;
      const take = Math.min(rem, budget);
      remaining[q] = rem - take;
      budget -= take;
      tokens += take;
      seqs++;
      if (take === rem) done++;
      else break;
    }
    prefillDone[r] = done;
    if (decoding + seqs === 0) {
      busy[r] = 0;
      return;
    }
    busy[r] = 1;
    heap.push(now + stepMs(cost, decoding + seqs, tokens), r);
  }

  function finishPush(r: number, key: number, q: number): void {
    const base = r * cap;
    let i = fLen[r]!++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (fKey[base + p]! <= key) break;
      fKey[base + i] = fKey[base + p]!;
      fReq[base + i] = fReq[base + p]!;
      i = p;
    }
    fKey[base + i] = key;
    fReq[base + i] = q;
  }

  function finishPop(r: number): number {
    const base = r * cap;
    const top = fReq[base]!;
    const n2 = --fLen[r]!;
    if (n2 === 0) return top;
    const key = fKey[base + n2]!;
    const val = fReq[base + n2]!;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n2) break;
      let c = l;
      if (l + 1 < n2 && fKey[base + l + 1]! < fKey[base + l]!) c = l + 1;
      if (fKey[base + c]! >= key) break;
      fKey[base + i] = fKey[base + c]!;
      fReq[base + i] = fReq[base + c]!;
      i = c;
    }
    fKey[base + i] = key;
    fReq[base + i] = val;
    return top;
  }

  function complete(r: number, q: number): void {
    const out = w.output[q]!;
    batch[r]!--;
    kvTokens[r]! -= w.prompt[q]! + out;
    outputTokens += out;
    lastDone = now;
    const c = w.conv[q]!;
    if (c >= 0) {
      // The answer's full blocks are cached too (the next turn starts with them).
      const sysBlocks = w.prefix[q]! >= 0 ? Math.floor(w.prefixTokens[q]! / B) : 0;
      caches[r]!.touch(P + c, Math.floor((w.prompt[q]! + out) / B) - sysBlocks);
    }
    const t = w.tenant[q]!;
    if (G > 0) {
      if (fastReq[q] === 1) {
        // Its release tells the scheduler what the gateway runs there now.
        const i = (q % G) * R + r;
        use[i]!--;
        reported[i] = use[i]!;
      } else queuePlaced[r]!--;
    }
    queue.charge(w.tenantNames[t]!, 0, out);
    gap.serve(t, weights.output * out);
    const waiting = localWait[r]!;
    if (waiting.length > 0) enterBatch(r, waiting.shift()!);
  }

  function stepEnd(r: number): void {
    const k = ++stepIdx[r]!;
    const done = prefillDone[r]!;
    for (let d = 0; d < done; d++) {
      const q = ring[r * cap + ringHead[r]!]!;
      ringHead[r] = (ringHead[r]! + 1) % cap;
      ringLen[r]!--;
      firstT[q] = now;
      const out = w.output[q]!;
      if (out <= 1) complete(r, q);
      else finishPush(r, k + out - 1, q);
    }
    while (fLen[r]! > 0 && fKey[r * cap]! <= k) complete(r, finishPop(r));
    syncView(r);
    recount(r);
    startStep(r);
  }

  function dispatch(): void {
    while (queue.size > 0) {
      const q = queue.peek()!;
      const t = w.tenant[q]!;
      // The tenant has more queued behind this one: it may not take reserved slots.
      const backlogged = queued[t]! > 1;
      if ((backlogged ? openCount : roomCount) === 0) break;
      const tenantId = w.tenantNames[t]!;
      const req: PlacementRequest = {
        requestId: String(q),
        tenantId,
        prefixHashes: wantsHashes ? hashesOf(q) : [],
        estimatedTokens: w.prompt[q]! + w.output[q]!,
        backlogged,
      };
      const id = policy.place(req, views);
      const r = id === null ? undefined : indexOfId.get(id);
      if (r === undefined) throw new Error(`placement returned ${String(id)} while ${backlogged ? openCount : roomCount} replicas had room`);
      queue.pop();
      gap.serve(t, weights.input * w.prompt[q]!);
      const backlog = --queued[t]!;
      if (backlog === 0) gap.end(t);
      if (G > 0) {
        gwQueued[q % G]!--;
        queuePlaced[r]!++;
      }
      if (lag > 0) {
        views[r]!.inflight++;
        refreshRoom(r);
      }
      placed(r, q);
    }
  }

  function report(): void {
    for (let r = 0; r < R; r++) {
      const v = views[r]!;
      v.running = batch[r]!;
      v.waiting = localWait[r]!.length;
      v.inflight = 0;
      v.kvCacheUsage = kvTokens[r]! / kvCapTokens;
      refreshRoom(r);
    }
  }

  let ai = 0;
  if (lag > 0) heap.push(lag, REPORT_TICK);
  if (G > 0) {
    heap.push(tickMs, LEASE_TICK);
    heap.push(syncMs, GATEWAY_SYNC);
    ticksQueued = 2;
  }
  // Periodic events go on while anything else is left to happen.
  const more = () => ai < n || heap.size > ticksQueued || queue.size > 0;
  while (ai < n || heap.size > 0) {
    const tA = ai < n ? w.t[ai]! : Number.POSITIVE_INFINITY;
    const tE = heap.peekTime();
    events++;
    if (tA <= tE) {
      now = tA;
      do {
        const t = w.tenant[ai]!;
        if (G === 0 || !placeFast(ai)) {
          queue.push(ai, { tenantId: w.tenantNames[t]!, inputTokens: w.prompt[ai]! });
          if (queued[t]!++ === 0) gap.start(t);
          if (G > 0) gwQueued[ai % G]!++;
        }
        ai++;
      } while (ai < n && w.t[ai] === now);
    } else {
      now = tE;
      const r = heap.pop();
      if (r === REPORT_TICK) {
        report();
        if (ai < n || heap.size > 0 || queue.size > 0) heap.push(now + lag, REPORT_TICK);
      } else if (r === LEASE_TICK || r === GATEWAY_SYNC) {
        ticksQueued--;
        if (r === LEASE_TICK) leaseTick();
        else gatewaySync();
        if (more()) {
          heap.push(now + (r === LEASE_TICK ? tickMs : syncMs), r);
          ticksQueued++;
        }
      } else stepEnd(r);
    }
    dispatch();
  }

  const ttftMs = new Float64Array(n);
  const queueWaitMs = new Float64Array(n);
  for (let q = 0; q < n; q++) {
    ttftMs[q] = firstT[q]! - w.t[q]!;
    queueWaitMs[q] = dispatchT[q]! - w.t[q]!;
  }
  const pa = config.policy === "prefix-affinity" ? (policy as PrefixAffinityPolicy).counters : null;
  return {
    policy: config.policy,
    queue: queueKind,
    requests: n,
    makespanS: (lastDone - (n > 0 ? w.t[0]! : 0)) / 1000,
    wallS: (performance.now() - started) / 1000,
    totalTokens: promptTokens + outputTokens,
    outputTokens,
    promptTokens,
    cachedTokens,
    ttftMs,
    queueWaitMs,
    maxServiceGap: gap.maxGap,
    placements: pa === null ? null : { ...pa },
    events,
    fastPlacements,
    maxCounted,
    placedTwice,
  };
}

/** Nearest-rank percentile of the values (optionally only where mask(i)). */
export function percentile(values: Float64Array, p: number, mask?: (i: number) => boolean): number {
  let sel: Float64Array;
  if (mask === undefined) sel = Float64Array.from(values);
  else {
    const tmp: number[] = [];
    for (let i = 0; i < values.length; i++) if (mask(i)) tmp.push(values[i]!);
    sel = Float64Array.from(tmp);
  }
  if (sel.length === 0) return Number.NaN;
  sel.sort();
  const k = Math.min(sel.length - 1, Math.max(0, Math.ceil((p / 100) * sel.length) - 1));
  return sel[k]!;
}
