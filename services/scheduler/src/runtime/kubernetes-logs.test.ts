/**
 * The request the kubernetes driver makes for a container's log (what `kubectl logs` asks the
 * API server for). Reading it from a real API server and kwok's kubelet is test/kube's.
 */
import { describe, expect, it } from "vitest";
import { podLogPath } from "./kubernetes-logs.ts";

describe("podLogPath", () => {
  it("asks pods/log for one container's last lines, following when asked", () => {
    expect(podLogPath("infera", "infera-engine-d1-5f7c-abcde", "engine", { tailLines: 100, follow: false })).toBe(
      "/api/v1/namespaces/infera/pods/infera-engine-d1-5f7c-abcde/log?container=engine&tailLines=100",
    );
    expect(podLogPath("infera", "p", "agent", { tailLines: 0, follow: true })).toBe(
      "/api/v1/namespaces/infera/pods/p/log?container=agent&tailLines=0&follow=true",
    );
  });

  it("without tailLines reads the whole log (a pod that started while following)", () => {
    expect(podLogPath("ns", "p", "engine", { follow: true })).toBe("/api/v1/namespaces/ns/pods/p/log?container=engine&follow=true");
  });

  it("never sends a negative or fractional tail, and escapes names", () => {
    expect(podLogPath("ns", "p", "engine", { tailLines: -3, follow: false })).toContain("tailLines=0");
    expect(podLogPath("ns", "p", "engine", { tailLines: 2.7, follow: false })).toContain("tailLines=2");
    expect(podLogPath("a/b", "p?x", "engine", { follow: false })).toBe("/api/v1/namespaces/a%2Fb/pods/p%3Fx/log?container=engine");
  });
});
