import { describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { redisKeys } from "@infera/contracts";
import { Registry } from "prom-client";
import { allowedInFlight, BatchPacer, nextLimit } from "./batch-pacing.ts";
import { registerBatchPacingMetrics } from "./metrics.ts";

const now = 1_000_000;
const replica = (running: number, waiting = 0, o: { healthy?: boolean; draining?: boolean; at?: number } = {}) => ({
  running,
  waiting,
  healthy: o.healthy ?? true,
  draining: o.draining ?? false,
  at: o.at ?? now,
});
const base = { capacity: 16, reserveFraction: 0.25, max: 64, now, inFlight: 0 };

describe("batch pacing: lines in flight per deployment", () => {
  it("drains the spare capacity less the reserve kept for interactive traffic", () => {
    // 16 per replica, 4 reserved: 12 free on an idle replica, 12 − 5 on one running 5.
    expect(allowedInFlight({ ...base, replicas: [replica(0), replica(5)] })).toBe(19);
  });

  it("counts the batch's own lines as its own: running lines are not interactive load to make room for", () => {
    expect(allowedInFlight({ ...base, inFlight: 12, replicas: [replica(12)] })).toBe(12);
  });

  it("shrinks when interactive traffic fills the replicas, but never below one line", () => {
    expect(allowedInFlight({ ...base, inFlight: 6, replicas: [replica(14, 2)] })).toBe(2);
    expect(allowedInFlight({ ...base, replicas: [replica(16, 30)] })).toBe(1);
  });

  it("ignores unhealthy, draining and silent replicas, and is bounded by BATCH_MAX_INFLIGHT", () => {
    const gone = [replica(0, 0, { healthy: false }), replica(0, 0, { draining: true }), replica(0, 0, { at: now - 60_000 })];
    expect(allowedInFlight({ ...base, replicas: gone })).toBe(1);
    expect(allowedInFlight({ ...base, max: 8, replicas: [replica(0), replica(0)] })).toBe(8);
  });
});

describe("batch pacing: backing off when the machine is busy (AIMD on event-loop lateness)", () => {
  it("nextLimit halves above the threshold, grows by one below, stays within 1 … the allowance", () => {
    expect(nextLimit(40, 64, 50, 20)).toBe(20);
    expect(nextLimit(20, 64, 5, 20)).toBe(21);
    expect(nextLimit(1, 64, 500, 20)).toBe(1);
    expect(nextLimit(64, 64, 0, 20)).toBe(64);
    // The allowance shrank below the limit: it is the base, and growth never passes it.
    expect(nextLimit(60, 10, 0, 20)).toBe(10);
    expect(nextLimit(60, 10, 30, 20)).toBe(5);
  });

  it("the pacer's limit ramps up, halves under load, recovers, never leaves 1 … the slot allowance", async () => {
    let t = now;
    const samples: number[] = [];
    // One idle replica of 16: the slot allowance is 12 (4 reserved).
    const report = { replicaId: "r", deploymentId: "d", address: "x:1", running: 0, waiting: 0, kvCacheUsage: 0, healthy: true, draining: false };
    const redis = { hgetall: async () => ({ r: JSON.stringify({ ...report, at: t }) }) } as unknown as Redis;
    const pacer = new BatchPacer({
      redis,
      keys: redisKeys("t"),
      capacityOf: async () => 16,
      reserveFraction: 0.25,
      max: 64,
      now: () => t,
      load: { signal: { sampleMs: () => samples.shift() ?? 0, close() {} }, thresholdMs: 20, intervalMs: 250 },
    });
    const signal = new AbortController().signal;
    const limits: number[] = [];
    // One interval per step, each with the lateness given (ms).
    async function run(lateness: number[]) {
      for (const l of lateness) {
        samples.push(l);
        t += 250;
        (await pacer.acquire("d", signal))();
        limits.push(pacer.limitOf("d")!);
      }
    }
    await run([0, 0, 0, 0, 0, 0, 0]);
    expect(limits).toEqual([2, 3, 4, 5, 6, 7, 8]);
    limits.length = 0;
    await run([50, 50, 5, 5, 50, 50, 50, 50, 50]);
    expect(limits).toEqual([4, 2, 3, 4, 2, 1, 1, 1, 1]);
    limits.length = 0;
    await run(Array(14).fill(0));
    expect(limits).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 12, 12, 12]);
    // Held to the limit: with 3 in flight and a limit of 3 the next line waits (for a release or the next step).
    limits.length = 0;
    await run([50, 50]); // 12 → 6 → 3
    const held = await Promise.all([0, 1, 2].map(() => pacer.acquire("d", signal)));
    let fourth = false;
    const next = pacer.acquire("d", signal).then((release) => {
      fourth = true;
      return release;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(fourth).toBe(false);
    held[0]!();
    (await next)();
    expect(fourth).toBe(true);
    for (const r of held) r();
  });
});

describe("batch pacing: what the pacer keeps per deployment", () => {
  function pacerAt(clock: { t: number }) {
    const report = { replicaId: "r", deploymentId: "d", address: "x:1", running: 0, waiting: 0, kvCacheUsage: 0, healthy: true, draining: false };
    const redis = { hgetall: async () => ({ r: JSON.stringify({ ...report, at: clock.t }) }) } as unknown as Redis;
    return new BatchPacer({
      redis,
      keys: redisKeys("t"),
      capacityOf: async () => 16,
      reserveFraction: 0.25,
      max: 64,
      now: () => clock.t,
      forgetMs: 60_000,
      load: { signal: { sampleMs: () => 0, close() {} }, thresholdMs: 20, intervalMs: 250 },
    });
  }
  const signal = new AbortController().signal;

  it("lists each deployment with its limit and lines in flight (the gateway's gauges)", async () => {
    const clock = { t: now };
    const pacer = pacerAt(clock);
    const a = await pacer.acquire("a", signal);
    clock.t += 250;
    (await pacer.acquire("b", signal))();
    // Each interval steps every deployment's limit: "a" has seen two, "b" one.
    expect(pacer.deployments()).toEqual([
      { deploymentId: "a", limit: 3, inFlight: 1 },
      { deploymentId: "b", limit: 2, inFlight: 0 },
    ]);
    a();
  });

  it("forgets a deployment idle past forgetMs (deleted, its batches over), never one with lines in flight", async () => {
    const clock = { t: now };
    const pacer = pacerAt(clock);
    const held = await pacer.acquire("busy", signal);
    for (let i = 0; i < 5; i++) {
      clock.t += 250;
      (await pacer.acquire("gone", signal))();
    }
    expect(pacer.limitOf("gone")).toBeGreaterThan(1);
    clock.t += 61_000;
    expect(pacer.deployments()).toEqual([{ deploymentId: "busy", limit: expect.any(Number), inFlight: 1 }]);
    // One that comes back starts over, at one line.
    (await pacer.acquire("gone", signal))();
    expect(pacer.deployments().map((d) => d.deploymentId)).toEqual(["busy", "gone"]);
    held();
    clock.t += 61_000;
    expect(pacer.deployments()).toEqual([]);
  });

  it("/metrics shows each deployment's limit and lines in flight, and drops the forgotten ones", async () => {
    const clock = { t: now };
    const pacer = pacerAt(clock);
    const registry = new Registry();
    registerBatchPacingMetrics(registry, () => pacer.deployments());
    const held = await pacer.acquire("dep-1", signal);
    clock.t += 250;
    const text = await registry.metrics();
    expect(text).toContain('gateway_batch_limit{deployment="dep-1"} 2');
    expect(text).toContain('gateway_batch_in_flight{deployment="dep-1"} 1');
    held();
    clock.t += 61_000;
    expect(await registry.metrics()).not.toContain("dep-1");
  });
});
