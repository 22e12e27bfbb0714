import { describe, expect, it } from "vitest";
import { instancesOf } from "./deploy.ts";

describe("a deployment's instances", () => {
  const now = 1_000_000;
  const report = (over: Record<string, unknown>) =>
    JSON.stringify({
      replicaId: "r",
      deploymentId: "d",
      address: "a",
      running: 0,
      waiting: 0,
      kvCacheUsage: 0,
      healthy: true,
      draining: false,
      at: now - 100,
      ...over,
    });
  const settings = { min_instances: 1, max_instances: 2 };

  it("counts fresh, healthy, undrained reports as running; pending is what was asked for less those", () => {
    const reports = { a: report({}), b: report({ healthy: false }), c: report({ draining: true }), d: report({ at: now - 60_000 }), e: "not json" };
    expect(instancesOf({ status: "running", settings: settings as never }, reports, "2", now)).toEqual({ running: 1, pending: 1 });
  });

  it("is 0/0 at scale to zero and when stopped", () => {
    expect(instancesOf({ status: "running", settings: settings as never }, {}, "0", now)).toEqual({ running: 0, pending: 0 });
    expect(instancesOf({ status: "stopped", settings: settings as never }, {}, null, now)).toEqual({ running: 0, pending: 0 });
  });

  it("before the reconciler has asked, a deploying deployment wants at least one replica", () => {
    expect(instancesOf({ status: "initializing", settings: { min_instances: 0, max_instances: 1 } as never }, {}, null, now)).toEqual({
      running: 0,
      pending: 1,
    });
  });
});
