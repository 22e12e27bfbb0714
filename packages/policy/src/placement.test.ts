import { describe, expect, it } from "vitest";
import { pendingPrefill, reservedSlots } from "./load.ts";
import { createPlacementPolicy, POLICY_NAMES } from "./placement.ts";
import { createPrefixAffinity } from "./prefix-affinity.ts";
import { prefixHashes } from "./prefix-hash.ts";
import type { PlacementRequest, PolicyEnv, ReplicaView } from "./types.ts";

function fakeEnv(start = 0): PolicyEnv & { t: number; draws: number } {
  let seed = 42;
  const env = {
    t: start,
    draws: 0,
    now: () => env.t,
    random: () => {
      env.draws++;
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    },
  };
  return env;
}

function replicas(n: number, capacity = 4): ReplicaView[] {
  return Array.from({ length: n }, (_, i) => ({ id: `r${i}`, capacity, running: 0, waiting: 0, inflight: 0, kvCacheUsage: 0 }));
}

let seq = 0;
function req(prefixHashes: readonly string[] = [], exclude?: string[]): PlacementRequest {
  return { requestId: `q${seq++}`, tenantId: "t", prefixHashes, estimatedTokens: 100, ...(exclude ? { exclude } : {}) };
}

/** Place and count the request as running there, as the scheduler would. */
function placeOn(policy: { place(r: PlacementRequest, v: readonly ReplicaView[]): string | null }, view: ReplicaView[], r: PlacementRequest): string | null {
  const id = policy.place(r, view);
  const v = view.find((x) => x.id === id);
  if (v) v.inflight++;
  return id;
}

describe("round-robin", () => {
  it("cycles through replicas in order", () => {
    const p = createPlacementPolicy("round-robin", fakeEnv());
    const view = replicas(3);
    expect([0, 1, 2, 3, 4, 5].map(() => p.place(req(), view))).toEqual(["r0", "r1", "r2", "r0", "r1", "r2"]);
  });

  it("skips replicas without room and returns null when all are full", () => {
    const p = createPlacementPolicy("round-robin", fakeEnv());
    const view = replicas(3, 2);
    view[1]!.running = 2;
    expect([0, 1, 2].map(() => p.place(req(), view))).toEqual(["r0", "r2", "r0"]);
    for (const v of view) v.running = 1;
    for (const v of view) v.inflight = 1;
    expect(p.place(req(), view)).toBeNull();
  });

  it("counts waiting as load but not as a lack of room", () => {
    const p = createPlacementPolicy("round-robin", fakeEnv());
    const view = replicas(1, 2);
    view[0]!.waiting = 10;
    expect(p.place(req(), view)).toBe("r0");
  });

  it("respects exclude", () => {
    const p = createPlacementPolicy("round-robin", fakeEnv());
    const view = replicas(2);
    expect([0, 1, 2].map(() => p.place(req([], ["r0"]), view))).toEqual(["r1", "r1", "r1"]);
  });
});

describe("least-loaded", () => {
  it("picks the replica with the least (running + waiting + inflight) / capacity", () => {
    const p = createPlacementPolicy("least-loaded", fakeEnv());
    const view = replicas(3, 10);
    view[0]!.running = 5;
    view[1]!.running = 2;
    view[1]!.waiting = 4; // 0.6
    view[2]!.running = 3;
    view[2]!.inflight = 1; // 0.4
    expect(p.place(req(), view)).toBe("r2");
  });

  it("compares load relative to capacity", () => {
    const p = createPlacementPolicy("least-loaded", fakeEnv());
    const view = replicas(2, 10);
    view[0]!.capacity = 100;
    view[0]!.running = 20; // 0.2
    view[1]!.running = 3; // 0.3
    expect(p.place(req(), view)).toBe("r0");
  });

  it("breaks ties by KV-cache use, then randomly", () => {
    const env = fakeEnv();
    const p = createPlacementPolicy("least-loaded", env);
    const view = replicas(3, 10);
    view[0]!.kvCacheUsage = 0.5;
    view[1]!.kvCacheUsage = 0.2;
    view[2]!.kvCacheUsage = 0.9;
    expect(p.place(req(), view)).toBe("r1");
    const seen = new Set<string | null>();
    const even = replicas(4, 10);
    for (let i = 0; i < 100; i++) seen.add(p.place(req(), even));
    expect(seen.size).toBe(4);
    expect(env.draws).toBeGreaterThan(0);
  });

  it("skips full and excluded replicas", () => {
    const p = createPlacementPolicy("least-loaded", fakeEnv());
    const view = replicas(3, 2);
    view[0]!.running = 2; // full, though waiting 0
    view[1]!.running = 1;
    view[2]!.running = 1;
    expect(p.place(req([], ["r1"]), view)).toBe("r2");
    expect(p.place(req([], ["r1", "r2"]), view)).toBeNull();
  });
});

describe("prefix-affinity", () => {
  const sysA = prefixHashes("A".repeat(4096), 512); // 8 blocks
  const sysB = prefixHashes("B".repeat(4096), 512);
  const withTail = (base: string, tail: string): string[] => prefixHashes(base + tail, 512);

  it("sticks to the replica that served a shared prefix", () => {
    const p = createPlacementPolicy("prefix-affinity", fakeEnv());
    const view = replicas(8, 100);
    const first = placeOn(p, view, req(withTail("A".repeat(4096), "x".repeat(1024))));
    for (let i = 0; i < 10; i++) {
      expect(placeOn(p, view, req(withTail("A".repeat(4096), String(i).repeat(1024))))).toBe(first);
    }
  });

  it("prefers the replica holding the longest matching prefix", () => {
    const env = fakeEnv();
    const p = createPrefixAffinity(env);
    const view = replicas(4, 100);
    const conv = "A".repeat(4096) + "turn1".repeat(300);
    // Replica r2 served the whole conversation so far; r0 only the system prompt.
    expect(p.place(req(sysA), [view[0]!])).toBe("r0");
    expect(p.place(req(prefixHashes(conv, 512)), [view[2]!])).toBe("r2");
    expect(p.place(req(prefixHashes(conv + "turn2".repeat(300), 512)), view)).toBe("r2");
    expect(p.counters.hit).toBe(1);
  });

  it("spreads different prefixes across replicas", () => {
    const p = createPlacementPolicy("prefix-affinity", fakeEnv());
    const view = replicas(4, 100);
    const used = new Set<string | null>();
    for (let i = 0; i < 4; i++) used.add(placeOn(p, view, req(prefixHashes(String.fromCharCode(65 + i).repeat(2048), 512))));
    expect(used.size).toBe(4);
  });

  it("falls back when the preferred replica is full, too loaded, or excluded", () => {
    const p = createPrefixAffinity(fakeEnv(), { maxImbalance: 0.5 });
    const view = replicas(3, 10);
    const home = p.place(req(sysA), view)!;
    const v = view.find((x) => x.id === home)!;
    v.running = 10; // full
    expect(p.place(req(sysA), view)).not.toBe(home);
    expect(p.counters.busy).toBe(1);

    const p2 = createPrefixAffinity(fakeEnv(), { maxImbalance: 0.5 });
    const view2 = replicas(3, 10);
    const home2 = p2.place(req(sysB), view2)!;
    view2.find((x) => x.id === home2)!.running = 6; // has room but 0.6 above the others (> 0.5)
    expect(p2.place(req(sysB), view2)).not.toBe(home2);

    // Within the guard (0.4 ≤ 0 + 0.5) it stays, unless excluded.
    const p3 = createPrefixAffinity(fakeEnv(), { maxImbalance: 0.5 });
    const h3 = p3.place(req(sysB), replicas(3, 10))!;
    const view3 = replicas(3, 10);
    view3.find((x) => x.id === h3)!.running = 4;
    expect(p3.place(req(sysB), view3)).toBe(h3);
    expect(p3.place(req(sysB, [h3]), view3)).not.toBe(h3);
  });

  it("remembers several replicas for a hot prefix and picks the least loaded of them", () => {
    const p = createPrefixAffinity(fakeEnv(), { maxImbalance: 0.25 });
    const view = replicas(6, 10);
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) seen.add(placeOn(p, view, req(sysA))!);
    // 40 requests on 60 slots: one replica cannot hold them, so the guard spreads the hot prefix.
    expect(seen.size).toBeGreaterThan(1);
    const loads = view.map((v) => v.inflight);
    expect(Math.max(...loads)).toBeLessThanOrEqual(10);
  });

  it("forgets a removed replica", () => {
    const p = createPrefixAffinity(fakeEnv());
    const view = replicas(4, 100);
    const home = p.place(req(sysA), view)!;
    p.forget(home);
    expect(p.size).toBe(0);
    // Same array, still listing the replica: no stale affinity, it is a miss now.
    p.place(req(sysA), view);
    expect(p.counters.miss).toBe(2);
  });

  it("drops claims older than the TTL", () => {
    const env = fakeEnv();
    const p = createPrefixAffinity(env, { ttlMs: 1_000 });
    const view = replicas(4, 100);
    p.place(req(sysA), view);
    env.t = 500;
    p.place(req(sysA), view);
    expect(p.counters.hit).toBe(1);
    env.t = 1_600; // last refreshed at 500
    p.place(req(sysA), view);
    expect(p.counters.hit).toBe(1);
    expect(p.counters.miss).toBe(2);
  });

  it("bounds the map (LRU)", () => {
    const p = createPrefixAffinity(fakeEnv(), { maxEntries: 50 });
    const view = replicas(2, 1000);
    for (let i = 0; i < 100; i++) p.place(req(prefixHashes(`prompt ${i} `.repeat(200), 512, 4)), view);
    expect(p.size).toBe(50);
  });

  it("handles a replica list that changes between calls", () => {
    const p = createPrefixAffinity(fakeEnv());
    const home = p.place(req(sysA), replicas(4, 100))!;
    const shuffled = replicas(4, 100).reverse();
    expect(p.place(req(sysA), shuffled)).toBe(home);
    const without = replicas(4, 100).filter((r) => r.id !== home);
    expect(p.place(req(sysA), without)).not.toBe(home);
  });
});

describe("reserved slots and pending prefill", () => {
  const backlogged = (): PlacementRequest => ({ ...req(), backlogged: true });

  it("keeps 1/64 of a replica's batch for tenants with nothing else queued", () => {
    expect([16, 63, 64, 128, 256].map(reservedSlots)).toEqual([0, 0, 1, 2, 4]);
    for (const name of POLICY_NAMES) {
      const p = createPlacementPolicy(name, fakeEnv());
      const view = replicas(2, 128);
      for (const v of view) v.running = 126;
      expect(p.place(backlogged(), view), name).toBeNull();
      expect(p.place(req(), view), name).not.toBeNull();
      view[1]!.running = 125;
      expect(p.place(backlogged(), view), name).toBe("r1");
    }
  });

  it("does not count ended requests a report still shows against a tenant with nothing else queued; a backlogged one still does", () => {
    for (const name of POLICY_NAMES) {
      const p = createPlacementPolicy(name, fakeEnv());
      // 126 placed here, and the report's 2 more are requests whose releases came since: the reserved slots are free.
      const view = replicas(1, 128).map((v) => ({ ...v, running: 2, inflight: 126, ended: 2 }));
      expect(p.place(req(), view), name).toBe("r0");
      expect(p.place(backlogged(), view), name).toBeNull();
      // Only as many as ended: a third request nobody placed still counts.
      view[0]!.running = 3;
      view[0]!.inflight = 127;
      expect(p.place(req(), view), name).toBeNull();
    }
  });

  it("sends a request whose tenant has nothing queued where the least prompt work waits, and a backlogged one by load", () => {
    const env = fakeEnv(1_000);
    const p = createPlacementPolicy("least-loaded", env, { prefillTokensPerMs: 10 });
    const view = replicas(3, 128);
    view[0]!.running = 100; // busiest, but nothing left to prefill
    view[1]!.running = 10;
    view[1]!.prefillTokens = 4_000; // sent 100 ms ago: 3,000 left
    view[1]!.prefillAt = 900;
    view[2]!.running = 20;
    view[2]!.prefillTokens = 500; // sent just now
    view[2]!.prefillAt = 1_000;
    expect(p.place(req(), view)).toBe("r0");
    expect(p.place(backlogged(), view)).toBe("r1");
    // Drained: 400 ms later every replica has prefilled what it was sent; load decides again.
    env.t = 1_400;
    expect(p.place(req(), view)).toBe("r1");
    expect(pendingPrefill(view[1]!, 1_000, 10)).toBe(3_000);
    expect(pendingPrefill(view[1]!, 1_400, 10)).toBe(0);
  });

  it("prefix-affinity falls back by pending prefill too", () => {
    const p = createPlacementPolicy("prefix-affinity", fakeEnv(0), { prefillTokensPerMs: 10 });
    const view = replicas(2, 128);
    view[0]!.prefillTokens = 2_000;
    view[1]!.running = 50;
    expect(p.place(req(["x"]), view)).toBe("r1");
  });
});
