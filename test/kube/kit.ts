/** What the Kubernetes suites share: the chart, the simulated nodes, CRDs, waiting. */
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { prometheusOperatorCrds, type KubeCluster, type NodeSpec } from "@infera/testkit";

export const CHART = fileURLToPath(new URL("../../helm/infera", import.meta.url));

/**
 * Two CPU nodes for the platform, and the GPU pools of values-gpu-production.yaml as a GPU
 * operator labels and taints them: 2 H100 nodes with 8 GPUs each, 2 A100 nodes with 4.
 */
export function gpuNodes(): NodeSpec[] {
  const gpu = (name: string, product: string, pool: string, gpus: number): NodeSpec => ({
    name,
    labels: { "nvidia.com/gpu.product": product, "nvidia.com/gpu.count": String(gpus), "node-pool": pool },
    taints: [
      { key: "nvidia.com/gpu", value: "present", effect: "NoSchedule" },
      { key: "node-pool", value: pool, effect: "NoSchedule" },
    ],
    capacity: { cpu: "96", memory: "1Ti", pods: "110", "nvidia.com/gpu": String(gpus) },
  });
  return [
    { name: "cpu-0", capacity: { cpu: "32", memory: "128Gi", pods: "110" } },
    { name: "cpu-1", capacity: { cpu: "32", memory: "128Gi", pods: "110" } },
    gpu("h100-0", "NVIDIA-H100-80GB-HBM3", "gpu-h100", 8),
    gpu("h100-1", "NVIDIA-H100-80GB-HBM3", "gpu-h100", 8),
    gpu("a100-0", "NVIDIA-A100-SXM4-80GB", "gpu-a100", 4),
    gpu("a100-1", "NVIDIA-A100-SXM4-80GB", "gpu-a100", 4),
  ];
}

/** The Secrets values-gpu-production.yaml names (its header says how an operator makes them). */
export function PRODUCTION_SECRETS(o: { databaseUrl: string; redisUrl: string; adminKey: string }): Record<string, Record<string, string>> {
  return {
    "infera-database": { "database-url": o.databaseUrl },
    "infera-redis": { "redis-url": o.redisUrl },
    "infera-admin-key": { "admin-key": o.adminKey },
    "hf-token": { token: "hf_defaultTokenOfTheCluster" },
    "infera-secrets-key": { "secrets-key": "kube-test-secrets-key-0123456789abcdef" },
    "infera-agent-token": { "agent-token": "kube-test-agent-token-0123456789abcdefghij" },
    "infera-s3": { "access-key-id": "kube-test-access-key", "secret-access-key": "kube-test-secret-access-key-0123456789" },
  };
}

/** The Prometheus Operator's own CRDs (ServiceMonitor, PodMonitor), so its objects are validated by their real schema. */
export async function applyPrometheusCrds(kube: KubeCluster): Promise<void> {
  const r = await kube.kubectl(["apply", "--server-side", ...prometheusOperatorCrds().flatMap((f) => ["-f", f])]);
  expect(r.status, r.stderr).toBe(0);
  const w = await kube.kubectl([
    "wait",
    "--for=condition=Established",
    "--timeout=60s",
    "crd/servicemonitors.monitoring.coreos.com",
    "crd/podmonitors.monitoring.coreos.com",
  ]);
  expect(w.status, w.stderr).toBe(0);
}

/** How often the suites poll the API server while they wait (testkit's waitFor): often enough, without loading 2 cores. */
export const KUBE_POLL_MS = 250;

/** What is in a namespace and what happened there (for a failing test's message). */
export async function namespaceReport(kube: KubeCluster, ns: string): Promise<string> {
  const objs = await kube.kubectl(["-n", ns, "get", "deploy,rs,pods,pdb,pvc,jobs", "-o", "wide"]);
  const events = await kube.kubectl(["-n", ns, "get", "events", "--sort-by=.lastTimestamp"]);
  return `${objs.stdout}${objs.stderr}\n--- events\n${events.stdout.split("\n").slice(-25).join("\n")}`;
}

/** What the NVIDIA GPU operator adds to a cluster besides node labels: the "nvidia" RuntimeClass engine pods name. */
export async function installGpuRuntimeClass(kube: KubeCluster): Promise<void> {
  const r = await kube.api("POST", "/apis/node.k8s.io/v1/runtimeclasses", {
    apiVersion: "node.k8s.io/v1",
    kind: "RuntimeClass",
    metadata: { name: "nvidia" },
    handler: "nvidia",
  });
  expect(r.status, r.text).toBe(201);
}
