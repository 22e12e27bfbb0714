import { describe, expect, it } from "vitest";
import type { ObservedDeployment, ReplicaReport } from "@infera/contracts";
import { replicasOut } from "./replica-view.ts";

const NOW = 1_800_000_000_000;

function observed(replicas: Partial<ObservedDeployment["replicas"][number]>[]): ObservedDeployment {
  return {
    deploymentId: "dep_1",
    runtime: "kubernetes",
    at: NOW,
    replicas: replicas.map((r, i) => ({
      replicaId: `pod-${i}`,
      phase: "running",
      since: NOW - 60_000,
      node: "gpu-node-1",
      gpu: "H100-80GB",
      numGpus: 1,
      reason: null,
      restarts: 0,
      downloadProgress: null,
      ...r,
    })),
  };
}

function report(id: string, r: Partial<ReplicaReport> = {}): Record<string, string> {
  const full: ReplicaReport = {
    replicaId: id,
    deploymentId: "dep_1",
    address: "a:1",
    running: 3,
    waiting: 1,
    kvCacheUsage: 0.5,
    healthy: true,
    draining: false,
    at: NOW - 500,
    ...r,
  };
  return { [id]: JSON.stringify(full) };
}

describe("a replica as /replicas shows it", () => {
  it("is ready when the runtime runs it and its agent reports healthy, with its load", () => {
    const [r] = replicasOut(observed([{}]), report("pod-0"), NOW);
    expect(r).toMatchObject({ replica_id: "pod-0", phase: "ready", ready: true, reason: null, node: "gpu-node-1", gpu: "H100-80GB" });
    expect(r?.load).toEqual({ running: 3, waiting: 1, kv_cache_usage: 0.5 });
    expect(r?.last_heartbeat).toBe(new Date(NOW - 500).toISOString());
  });

  it("says why it is not ready: unschedulable, crash, unhealthy engine, silent or stale agent, draining", () => {
    const unschedulable = replicasOut(
      observed([{ phase: "pending", reason: "Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu." }]),
      {},
      NOW,
    )[0];
    expect(unschedulable).toMatchObject({ phase: "pending", ready: false, reason: expect.stringContaining("Insufficient nvidia.com/gpu") });
    const crashed = replicasOut(observed([{ phase: "failed", reason: "engine: CrashLoopBackOff after 5 restarts (last exit code 1)" }]), {}, NOW)[0];
    expect(crashed).toMatchObject({ phase: "failed", reason: expect.stringContaining("exit code 1") });
    expect(replicasOut(observed([{}]), report("pod-0", { healthy: false }), NOW)[0]).toMatchObject({
      phase: "starting",
      reason: expect.stringContaining("not healthy"),
    });
    expect(replicasOut(observed([{}]), {}, NOW)[0]).toMatchObject({ phase: "starting", reason: expect.stringContaining("not reported") });
    expect(replicasOut(observed([{}]), report("pod-0", { at: NOW - 30_000 }), NOW)[0]?.reason).toContain("no heartbeat from the worker agent for 30 s");
    expect(replicasOut(observed([{}]), report("pod-0", { draining: true }), NOW)[0]).toMatchObject({ phase: "draining", ready: false });
  });

  it("does not take a report from before the runtime restarted the replica for the new process", () => {
    const [r] = replicasOut(
      observed([{ since: NOW - 1000, restarts: 1, reason: "restarted after engine exited (code 1)" }]),
      report("pod-0", { at: NOW - 2000 }),
      NOW,
    );
    expect(r).toMatchObject({ phase: "starting", ready: false, restarts: 1 });
    expect(r?.reason).toContain("restarted after engine exited (code 1); the worker agent has not reported yet");
  });

  it("shows replicas only the heartbeats know, and nothing from malformed reports", () => {
    const rs = replicasOut(null, { ...report("lonely"), broken: "{nope" }, NOW);
    expect(rs.map((r) => [r.replica_id, r.phase])).toEqual([["lonely", "ready"]]);
  });
});
