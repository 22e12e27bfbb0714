import { describe, expect, it } from "vitest";
import { decideReplicas, INITIAL_AUTOSCALER_STATE, type AutoscalerInput, type AutoscalerOptions, type AutoscalerState } from "./autoscaler.ts";

const opts: AutoscalerOptions = { minInstances: 1, maxInstances: 10, scaleDownCooldownMs: 60_000, scaleToZeroIdleMs: 300_000, queueWaitUpMs: 1_000 };

function input(p: Partial<AutoscalerInput>): AutoscalerInput {
  return { now: 0, replicas: 2, queued: 0, oldestWaitMs: 0, running: 0, capacityPerReplica: 10, ...p };
}

/** Drive the autoscaler over time like the reconciler does, applying each decision. */
function drive(
  steps: { at: number; queued: number; running: number; oldestWaitMs?: number }[],
  o: AutoscalerOptions,
  start: number,
): { desired: number; reason: string }[] {
  let replicas = start;
  let state: AutoscalerState = INITIAL_AUTOSCALER_STATE;
  return steps.map((s) => {
    const d = decideReplicas(input({ now: s.at, replicas, queued: s.queued, running: s.running, oldestWaitMs: s.oldestWaitMs ?? 0 }), state, o);
    replicas = d.desired;
    state = d.state;
    return { desired: d.desired, reason: d.reason };
  });
}

describe("decideReplicas", () => {
  it("scales up at once when the queue waits", () => {
    const d = decideReplicas(input({ queued: 50, running: 20, oldestWaitMs: 5_000 }), INITIAL_AUTOSCALER_STATE, opts);
    expect(d.reason).toBe("scale_up_queue");
    expect(d.desired).toBe(10); // ceil(70 / 7) = 10
  });

  it("scales up on load without a queue", () => {
    const d = decideReplicas(input({ running: 19 }), INITIAL_AUTOSCALER_STATE, opts);
    expect(d.reason).toBe("scale_up_load");
    expect(d.desired).toBe(3);
  });

  it("holds inside the band and does not flap", () => {
    // Load oscillates between 0.3 and 0.6 every 10 s: never below 0.4 for a whole cooldown.
    const steps = Array.from({ length: 60 }, (_, i) => ({ at: i * 10_000, queued: 0, running: i % 2 === 0 ? 6 : 12 }));
    const out = drive(steps, opts, 2);
    expect(out.every((o) => o.desired === 2 && o.reason === "hold")).toBe(true);
  });

  it("scales down one step per cooldown after load stays low", () => {
    const steps = Array.from({ length: 20 }, (_, i) => ({ at: i * 10_000, queued: 0, running: 4 }));
    const out = drive(steps, opts, 4);
    const downs = out.filter((o) => o.reason === "scale_down_idle");
    expect(out[5]!.desired).toBe(4); // 50 s < 60 s cooldown
    expect(out[6]).toEqual({ desired: 3, reason: "scale_down_idle" });
    // One step per 60 s cooldown: 4 → 3 (60 s) → 2 (120 s) → 1 (180 s), where 4 running is 0.4 load.
    expect(downs.map((d) => d.desired)).toEqual([3, 2, 1]);
    expect(out.findIndex((o) => o.desired === 2)).toBe(12);
    expect(out.at(-1)!.desired).toBe(1);
  });

  it("scales to zero only with min 0 and after the idle period", () => {
    const idle = Array.from({ length: 40 }, (_, i) => ({ at: i * 10_000, queued: 0, running: 0 }));
    const withMin = drive(idle, opts, 1);
    expect(withMin.every((o) => o.desired === 1)).toBe(true);
    const zeroable = drive(idle, { ...opts, minInstances: 0 }, 1);
    const first = zeroable.findIndex((o) => o.reason === "scale_to_zero");
    expect(first).toBe(30); // 300 s idle
    expect(zeroable[first]!.desired).toBe(0);
  });

  it("a queued request at zero replicas wakes one at once", () => {
    const d = decideReplicas(input({ replicas: 0, queued: 1 }), INITIAL_AUTOSCALER_STATE, { ...opts, minInstances: 0 });
    expect(d).toMatchObject({ desired: 1, reason: "wake_from_zero" });
    expect(decideReplicas(input({ replicas: 0 }), INITIAL_AUTOSCALER_STATE, { ...opts, minInstances: 0 }).desired).toBe(0);
  });

  it("clamps to min and max", () => {
    expect(decideReplicas(input({ replicas: 0 }), INITIAL_AUTOSCALER_STATE, { ...opts, minInstances: 2 })).toMatchObject({ desired: 2, reason: "clamp_min" });
    expect(decideReplicas(input({ queued: 1000, oldestWaitMs: 9_000 }), INITIAL_AUTOSCALER_STATE, opts)).toMatchObject({ desired: 10, reason: "clamp_max" });
  });
});
