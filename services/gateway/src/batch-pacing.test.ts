import { describe, expect, it } from "vitest";
import { allowedInFlight } from "./batch-pacing.ts";

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
