import { describe, expect, it } from "vitest";
import { DEFAULT_COST } from "./cost-model.ts";
import { runExperiment } from "./experiment.ts";
import { percentile, simulate } from "./simulator.ts";
import { fromRecords, noisyNeighbour, sharedPrefix } from "./workload.ts";

describe("cluster simulator", () => {
  it("serves every request once, with causal timings", () => {
    const w = sharedPrefix({ requests: 3000, replicas: 4, seed: 3, cost: DEFAULT_COST, load: 1 });
    const r = simulate(w, { replicas: 4, policy: "least-loaded" });
    expect(r.requests).toBe(3000);
    let prompt = 0;
    let output = 0;
    for (let i = 0; i < w.n; i++) {
      prompt += w.prompt[i]!;
      output += w.output[i]!;
      expect(r.queueWaitMs[i]).toBeGreaterThanOrEqual(0);
      // TTFT includes at least one step after dispatch.
      expect(r.ttftMs[i]).toBeGreaterThanOrEqual(r.queueWaitMs[i]! + DEFAULT_COST.stepBaseMs);
    }
    expect(r.promptTokens).toBe(prompt);
    expect(r.outputTokens).toBe(output);
    expect(r.cachedTokens).toBeLessThan(prompt);
  });

  it("follows the cost model on an idle replica", () => {
    // One 1,000-token prompt, 11 output tokens, nothing else running.
    const w = fromRecords("one", [{ t_ms: 0, tenant: "a", prompt_tokens: 1000, output_tokens: 11 }]);
    const r = simulate(w, { replicas: 1, policy: "round-robin" });
    const m = DEFAULT_COST;
    const prefill = m.stepBaseMs + m.stepPerSeqMs + m.prefillPerTokenMs * 1000;
    expect(r.ttftMs[0]).toBeCloseTo(prefill, 6);
    expect(r.makespanS * 1000).toBeCloseTo(prefill + 10 * (m.stepBaseMs + m.stepPerSeqMs), 6);
  });

  it("a repeated prompt hits the prefix cache on the same replica", () => {
    const rec = { tenant: "a", prompt_tokens: 1600, output_tokens: 4, prefix_id: "sys", prefix_tokens: 1600 };
    const w = fromRecords("two", [
      { ...rec, t_ms: 0 },
      { ...rec, t_ms: 10_000 },
    ]);
    const r = simulate(w, { replicas: 1, policy: "round-robin" });
    expect(r.cachedTokens).toBe(1599); // all but the last token, as vLLM recomputes it
    expect(r.ttftMs[1]).toBeLessThan(r.ttftMs[0]! / 10);
  });

  it("prefix-affinity beats round-robin on prefix hit rate and TTFT on shared prefixes", () => {
    const w = sharedPrefix({ requests: 6000, replicas: 8, seed: 5, cost: DEFAULT_COST, load: 2 });
    const res = runExperiment("shared-prefix", w, {
      replicas: 8,
      cost: DEFAULT_COST,
      policies: ["round-robin", "prefix-affinity"],
      reportLagMs: 0,
      seed: 5,
      contrast: false,
    });
    const rr = res.policies["round-robin"]!;
    const pa = res.policies["prefix-affinity"]!;
    expect(pa.prefix_hit_rate as number).toBeGreaterThan((rr.prefix_hit_rate as number) + 0.1);
    expect(pa.ttft_ms_p99 as number).toBeLessThan(rr.ttft_ms_p99 as number);
    for (const p of [rr, pa]) {
      for (const k of ["throughput_tokens_per_s", "ttft_ms_p50", "ttft_ms_p99", "prefix_hit_rate", "max_service_gap_tokens"])
        expect(typeof p[k]).toBe("number");
      expect(p.max_service_gap_tokens as number).toBeLessThanOrEqual(res.vtc_bound_tokens);
    }
  });

  it("the fair queue protects a light tenant from a flood; FIFO does not", () => {
    const w = noisyNeighbour({ requests: 8000, replicas: 2, seed: 7, cost: DEFAULT_COST });
    const res = runExperiment("noisy-neighbour", w, { replicas: 2, cost: DEFAULT_COST, policies: ["least-loaded"], reportLagMs: 0, seed: 7, contrast: true });
    const p = res.policies["least-loaded"]!;
    const fair = p.light_tenant_ttft_ms_p99 as number;
    const alone = p.light_tenant_alone_ttft_ms_p99 as number;
    const fifo = p.light_tenant_ttft_ms_p99_fifo as number;
    expect(fair).toBeLessThan(fifo / 10);
    expect(fair).toBeLessThan(alone * 4);
    expect(p.ttft_ms_p99 as number).toBeGreaterThan(fair * 10); // the flood itself waits
    expect(p.max_service_gap_tokens as number).toBeGreaterThan(0);
    expect(p.max_service_gap_tokens as number).toBeLessThanOrEqual(res.vtc_bound_tokens);
  });

  it("reserved slots keep a light tenant's p99 TTFT within 2x of alone beside a flood", () => {
    // The scheduler's default placement: least-loaded, with each replica's reserved slots
    // (2 of 128) and least pending prefill for a tenant with nothing else queued.
    const w = noisyNeighbour({ requests: 80_000, replicas: 8, seed: 7, cost: DEFAULT_COST });
    const res = runExperiment("noisy-neighbour", w, { replicas: 8, cost: DEFAULT_COST, policies: ["least-loaded"], reportLagMs: 0, seed: 7, contrast: true });
    const p = res.policies["least-loaded"]!;
    expect(p.light_tenant_ttft_ms_p99 as number).toBeLessThan(2 * (p.light_tenant_alone_ttft_ms_p99 as number));
    expect(p.ttft_ms_p99 as number).toBeGreaterThan(100 * (p.light_tenant_ttft_ms_p99 as number)); // the flood is far over capacity
  });

  it("report lag: placement on stale views still serves everything", () => {
    const w = sharedPrefix({ requests: 3000, replicas: 4, seed: 9, cost: DEFAULT_COST, load: 1.5 });
    const exact = simulate(w, { replicas: 4, policy: "prefix-affinity" });
    const lagged = simulate(w, { replicas: 4, policy: "prefix-affinity", reportLagMs: 200 });
    expect(lagged.outputTokens).toBe(exact.outputTokens);
    expect(Number.isFinite(percentile(lagged.ttftMs, 99))).toBe(true);
  });

  it("fast path: at light load most requests take a leased slot; each runs once, a replica's count never exceeds its batch", () => {
    const w = sharedPrefix({ requests: 4000, replicas: 4, seed: 13, cost: DEFAULT_COST, load: 0.5 });
    const queued = simulate(w, { replicas: 4, policy: "prefix-affinity" });
    const r = simulate(w, { replicas: 4, policy: "prefix-affinity", fastPath: { gateways: 3 } });
    expect(r.outputTokens).toBe(queued.outputTokens);
    expect(r.placedTwice).toBe(0);
    expect(r.fastPlacements).toBeGreaterThan(w.n / 2);
    // Requests at a replica plus slots lent and unused there: never past max_batch_size.
    expect(r.maxCounted).toBeLessThanOrEqual(DEFAULT_COST.maxBatchSize);
    for (let i = 0; i < w.n; i++) expect(r.ttftMs[i]).toBeGreaterThanOrEqual(r.queueWaitMs[i]! + DEFAULT_COST.stepBaseMs);
  });

  it("fast path on: the light tenant beside a flood keeps its bound (leases drain while the queue holds anything)", () => {
    const w = noisyNeighbour({ requests: 80_000, replicas: 8, seed: 7, cost: DEFAULT_COST });
    const fastPath = { gateways: 3 };
    const res = runExperiment("noisy-neighbour", w, {
      replicas: 8,
      cost: DEFAULT_COST,
      policies: ["least-loaded"],
      reportLagMs: 0,
      seed: 7,
      contrast: true,
      fastPath,
    });
    const p = res.policies["least-loaded"]!;
    expect(p.light_tenant_ttft_ms_p99 as number).toBeLessThan(2 * (p.light_tenant_alone_ttft_ms_p99 as number));
    expect(p.max_service_gap_tokens as number).toBeLessThanOrEqual(res.vtc_bound_tokens);
    expect(p.placed_twice).toBe(0);
    expect(p.max_counted_per_replica as number).toBeLessThanOrEqual(DEFAULT_COST.maxBatchSize);
    // The flood's first wave finds leases out; after that the queue holds it.
    expect(p.fast_path_fraction as number).toBeGreaterThan(0);
    expect(p.fast_path_fraction as number).toBeLessThan(0.1);
  });

  it("is deterministic for a seed", () => {
    const a = sharedPrefix({ requests: 2000, replicas: 4, seed: 11, cost: DEFAULT_COST });
    const b = sharedPrefix({ requests: 2000, replicas: 4, seed: 11, cost: DEFAULT_COST });
    expect(Array.from(a.prompt)).toEqual(Array.from(b.prompt));
    const ra = simulate(a, { replicas: 4, policy: "least-loaded", seed: 2 });
    const rb = simulate(b, { replicas: 4, policy: "least-loaded", seed: 2 });
    expect(Array.from(ra.ttftMs)).toEqual(Array.from(rb.ttftMs));
  });
});
