/**
 * The Helm chart as rendered for the GPU production profile (and the CPU trial profile):
 * what an operator relies on at install time. Needs helm and the built validator
 * (tools/k8s-validate/bin/k8s-validate): deploy/chart-check.sh installs/builds both. A
 * missing tool FAILS this test with that instruction; it never skips.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { buildEngineDeployment, type EngineDeploymentOptions } from "../services/scheduler/src/runtime/kubernetes-manifest.ts";
import { parseEnginePodTemplate, parseGpuTypes } from "../services/scheduler/src/runtime/kubernetes-template.ts";
import type { ReplicaSpec } from "../services/scheduler/src/runtime/driver.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const CHART = join(ROOT, "helm/infera");
const VALIDATOR = join(ROOT, "tools/k8s-validate/bin/k8s-validate");
const SETUP_HINT = "run deploy/chart-check.sh once: it installs helm (go install) and builds tools/k8s-validate";

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  rules?: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}

function findHelm(): string {
  const candidates = [...(process.env.PATH ?? "").split(":").map((d) => join(d, "helm")), join(homedir(), "go/bin/helm"), "/usr/local/bin/helm"];
  const helm = candidates.find((c) => existsSync(c));
  if (!helm) throw new Error(`helm not found on PATH, in ~/go/bin or /usr/local/bin: ${SETUP_HINT}`);
  return helm;
}

/** helm template → strict validation → parsed objects. */
function render(valuesFiles: string[]): Obj[] {
  if (!existsSync(VALIDATOR)) throw new Error(`${VALIDATOR} is missing: ${SETUP_HINT}`);
  const args = ["template", "infera", CHART, "--namespace", "infera", ...valuesFiles.flatMap((f) => ["-f", join(CHART, f)])];
  const helm = spawnSync(findHelm(), args, { encoding: "utf8" });
  if (helm.status !== 0) throw new Error(`helm template failed:\n${helm.stderr}`);
  const v = spawnSync(VALIDATOR, ["-json", "-q"], { input: helm.stdout, encoding: "utf8" });
  if (v.status !== 0) throw new Error(`strict validation failed:\n${v.stderr}`);
  return JSON.parse(v.stdout) as Obj[];
}

function one(objs: Obj[], kind: string, nameSuffix: string): Obj {
  const found = objs.filter((o) => o.kind === kind && o.metadata.name.endsWith(nameSuffix));
  expect(
    found.map((o) => o.metadata.name),
    `${kind} *${nameSuffix}`,
  ).toHaveLength(1);
  return found[0] as Obj;
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: unknown;
}

function secretsKeyEnv(deployment: Obj): EnvVar | undefined {
  const pod = (deployment.spec as { template?: { spec?: { containers?: { env?: EnvVar[] }[] } } } | undefined)?.template?.spec;
  return pod?.containers?.[0]?.env?.find((e) => e.name === "SECRETS_KEY");
}

const spec: ReplicaSpec = {
  deploymentId: "dep-1",
  servedModelName: "llama-3-70b",
  task: "chat",
  engine: "vllm",
  gpu: "A100-80GB",
  numGpus: 2,
  maxBatchSize: 64,
  hf: { repo: "meta-llama/Meta-Llama-3-70B-Instruct" },
  extraArgs: [],
};

describe("helm chart, GPU production profile", () => {
  const objs = render(["values-gpu-production.yaml"]);
  const tplText = one(objs, "ConfigMap", "-engine-pod-template").data?.["engine-pod-template.yaml"] ?? "";
  const template = parseEnginePodTemplate(tplText, "rendered engine pod template");
  const gpuTypes = parseGpuTypes(one(objs, "ConfigMap", "-gpu-types").data?.["gpu-types.json"] ?? "", "rendered GPU types");
  const options: EngineDeploymentOptions = { namespace: "infera", gpuTypes };

  it("offers the profile's GPU types with node selectors and tolerations", () => {
    expect(gpuTypes.map((g) => g.name)).toEqual(["H100-80GB", "A100-80GB"]);
    expect(gpuTypes[1]?.nodeSelector).toEqual({ "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "node-pool": "gpu-a100" });
    expect(gpuTypes[1]?.tolerations?.length).toBe(2);
  });

  it("leaves GPU count to the driver: no GPU in the template, numGpus in the built pod", () => {
    const tplEngine = template.template.spec?.containers.find((c) => c.name === "engine");
    expect(tplEngine?.resources?.limits?.["nvidia.com/gpu"]).toBeUndefined();
    expect(template.gpuResourceName).toBe("nvidia.com/gpu");
    const dep = buildEngineDeployment(spec, 1, template, options);
    const engine = dep.spec?.template.spec?.containers.find((c) => c.name === "engine");
    expect(engine?.resources?.limits?.["nvidia.com/gpu"]).toBe("2");
    expect(engine?.args).toContain("--tensor-parallel-size");
    expect(engine?.args?.[engine.args.indexOf("--tensor-parallel-size") + 1]).toBe("2");
    expect(dep.spec?.template.spec?.nodeSelector).toMatchObject({ "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB" });
    expect(dep.spec?.template.spec?.runtimeClassName).toBe("nvidia");
    // The built Deployment from the real chart template is strictly valid too.
    const v = spawnSync(VALIDATOR, ["-q"], { input: JSON.stringify(dep), encoding: "utf8" });
    expect(v.status, v.stderr).toBe(0);
  });

  it("probes the engine on /health and drains within terminationGracePeriodSeconds", () => {
    const podSpec = template.template.spec;
    const engine = podSpec?.containers.find((c) => c.name === "engine");
    const agent = podSpec?.containers.find((c) => c.name === "agent");
    for (const probe of [engine?.startupProbe, engine?.readinessProbe, engine?.livenessProbe]) {
      expect(probe?.httpGet?.path).toBe("/health");
    }
    const grace = podSpec?.terminationGracePeriodSeconds ?? 30;
    const preStop = Number(engine?.lifecycle?.preStop?.exec?.command?.[1]);
    expect(engine?.lifecycle?.preStop?.exec?.command?.[0]).toBe("sleep");
    expect(preStop).toBe(template.drain.preStopSleepSeconds);
    const dep = buildEngineDeployment(spec, 1, template, options);
    const args = dep.spec?.template.spec?.containers.find((c) => c.name === "engine")?.args ?? [];
    const shutdown = Number(args[args.indexOf("--shutdown-timeout") + 1]);
    const agentGraceMs = Number(agent?.env?.find((e) => e.name === "SHUTDOWN_GRACE_MS")?.value);
    expect(preStop + shutdown).toBeLessThan(grace);
    expect(preStop + agentGraceMs / 1000).toBeLessThan(grace);
    expect({ preStop, shutdown, grace }).toEqual({ preStop: 15, shutdown: 45, grace: 75 });
    expect(podSpec?.volumes?.find((v) => v.name === "dshm")?.emptyDir?.medium).toBe("Memory");
    expect(podSpec?.volumes?.find((v) => v.name === "model-cache")?.persistentVolumeClaim?.claimName).toBe("infera-model-cache");
  });

  it("grants the scheduler exactly the engine RBAC, namespaced, nothing cluster-wide", () => {
    const role = one(objs, "Role", "-scheduler");
    expect(role.metadata.namespace).toBe("infera");
    expect(role.rules).toEqual([
      { apiGroups: ["apps"], resources: ["deployments"], verbs: ["get", "list", "watch", "create", "update", "patch", "delete"] },
      { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] },
      // The infera-hf-<deploymentId> token Secrets; never list/watch (no enumerating Secrets).
      { apiGroups: [""], resources: ["secrets"], verbs: ["get", "create", "update", "delete"] },
    ]);
    const binding = one(objs, "RoleBinding", "-scheduler");
    expect(binding.roleRef).toMatchObject({ kind: "Role", name: role.metadata.name });
    const sa = one(objs, "ServiceAccount", "-scheduler");
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: sa.metadata.name, namespace: "infera" }]);
    expect(objs.filter((o) => o.kind.startsWith("Cluster"))).toEqual([]);
    expect(objs.filter((o) => o.kind === "Role")).toHaveLength(1);
  });

  it("gives the gateway and the scheduler the same SECRETS_KEY from the operator's Secret", () => {
    for (const name of ["-gateway", "-scheduler"]) {
      expect(secretsKeyEnv(one(objs, "Deployment", name)), name).toEqual({
        name: "SECRETS_KEY",
        valueFrom: { secretKeyRef: { name: "infera-secrets-key", key: "secrets-key" } },
      });
    }
    // An existing Secret: the chart generates none.
    expect(objs.filter((o) => o.kind === "Secret").map((o) => o.metadata.name)).toEqual([]);
  });

  it("runs an HA gateway: 3 replicas via HPA, a PDB, spread", () => {
    const hpa = one(objs, "HorizontalPodAutoscaler", "-gateway");
    expect(hpa.spec).toMatchObject({ minReplicas: 3, maxReplicas: 12, scaleTargetRef: { kind: "Deployment", name: "infera-gateway" } });
    const pdb = one(objs, "PodDisruptionBudget", "-gateway");
    expect(pdb.spec).toMatchObject({ minAvailable: 2, selector: { matchLabels: { "app.kubernetes.io/component": "gateway" } } });
    const gw = one(objs, "Deployment", "-gateway");
    // With an HPA the Deployment must not pin replicas (helm upgrades would fight the HPA).
    expect(gw.spec?.replicas).toBeUndefined();
    expect(one(objs, "Ingress", "-gateway").spec).toMatchObject({ ingressClassName: "nginx" });
  });

  it("migrates with a pre-install,pre-upgrade hook Job against the external database", () => {
    const job = one(objs, "Job", "-migrations");
    expect(job.metadata.annotations?.["helm.sh/hook"]).toBe("pre-install,pre-upgrade");
    expect(job.metadata.annotations?.["helm.sh/hook-delete-policy"]).toBe("before-hook-creation,hook-succeeded");
    expect(JSON.stringify(job.spec)).toContain('"secretKeyRef":{"key":"database-url","name":"infera-database"}');
    expect(objs.filter((o) => o.kind === "StatefulSet")).toEqual([]);
  });

  it("monitors gateway/scheduler (ServiceMonitor) and engine pods (PodMonitor)", () => {
    expect(
      objs
        .filter((o) => o.kind === "ServiceMonitor")
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(["infera-gateway", "infera-scheduler"]);
    const pm = one(objs, "PodMonitor", "-engine");
    expect(JSON.stringify(pm.spec)).toContain('"app.kubernetes.io/managed-by":"infera"');
  });
});

describe("helm chart, CPU trial profile", () => {
  const objs = render(["values-trial.yaml"]);

  it("runs engine-sim with no GPU, runtime class or GPU node selection", () => {
    const text = one(objs, "ConfigMap", "-engine-pod-template").data?.["engine-pod-template.yaml"] ?? "";
    expect(text).not.toContain("nvidia.com/gpu:");
    const template = parseEnginePodTemplate(text, "trial template");
    expect(template.mode).toBe("sim");
    expect(template.template.spec?.runtimeClassName).toBeUndefined();
    const dep = buildEngineDeployment({ ...spec, gpu: "sim-gpu" }, 1, template, { namespace: "infera", gpuTypes: [] });
    const engine = dep.spec?.template.spec?.containers.find((c) => c.name === "engine");
    expect(engine?.image).toMatch(/engine-sim/);
    expect(engine?.resources?.limits?.["nvidia.com/gpu"]).toBeUndefined();
  });

  it("generates SECRETS_KEY into a Secret kept across upgrades and uninstall, for the gateway and the scheduler", () => {
    const secret = one(objs, "Secret", "-secrets-key");
    expect(secret.metadata.annotations?.["helm.sh/resource-policy"]).toBe("keep");
    expect(Buffer.from(secret.data?.["secrets-key"] ?? "", "base64").toString("utf8")).toMatch(/^[A-Za-z0-9]{64}$/);
    for (const name of ["-gateway", "-scheduler"]) {
      expect(secretsKeyEnv(one(objs, "Deployment", name))?.valueFrom, name).toEqual({
        secretKeyRef: { name: secret.metadata.name, key: "secrets-key" },
      });
    }
  });

  it("bundles Postgres and Redis (noeviction) and migrates after install", () => {
    expect(
      objs
        .filter((o) => o.kind === "StatefulSet")
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(["infera-postgres", "infera-redis"]);
    expect(one(objs, "ConfigMap", "-redis").data?.["redis.conf"]).toContain("maxmemory-policy noeviction");
    expect(one(objs, "Job", "-migrations").metadata.annotations?.["helm.sh/hook"]).toBe("post-install,pre-upgrade");
    expect(objs.filter((o) => o.kind === "Pod" && o.metadata.annotations?.["helm.sh/hook"] === "test")).toHaveLength(2);
  });
});
