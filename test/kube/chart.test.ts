/**
 * The Helm chart against a real Kubernetes control plane (etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler of the pinned release; kwok nodes): every values
 * profile installs with `helm install --wait` into a namespace that enforces PodSecurity
 * "restricted", every object is accepted (admission, defaulting, validation, the Prometheus
 * Operator's own CRD schemas), no step waits on a hook, generated Secrets never change
 * (helm upgrade, `helm template | kubectl apply` re-runs), upgrade and uninstall leave
 * nothing behind; scheduler HA holds a PDB through evictions and a rolling update; every
 * bad values file in helm/testdata/invalid is refused by the chart naming the value (and,
 * where it says so, the API server would have refused the result); and every rule and verb
 * of the scheduler's Role and ClusterRole is needed: without it the kubernetes driver,
 * holding a token of the chart's ServiceAccount, fails.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeConfig, loadAllYaml } from "@kubernetes/client-node";
import { runHostPods, startKube, waitFor, type HostPods, type KubeCluster } from "@infera/testkit";
import { buildEngineDeployment, engineDeploymentName } from "../../services/scheduler/src/runtime/kubernetes-manifest.ts";
import { KubernetesRuntimeDriver } from "../../services/scheduler/src/runtime/kubernetes.ts";
import { parseEnginePodTemplate, parseGpuTypes, type EnginePodTemplate, type GpuType } from "../../services/scheduler/src/runtime/kubernetes-template.ts";
import type { ReplicaSpec } from "../../services/scheduler/src/runtime/driver.ts";
import { CHART, PRODUCTION_SECRETS, applyPrometheusCrds, gpuNodes, installGpuRuntimeClass, KUBE_POLL_MS, namespaceReport } from "./kit.ts";

const INVALID = join(CHART, "../testdata/invalid");
/** The Secrets the chart's Job generates with the default values (bundled Postgres and Redis). */
const GENERATED = ["infera-admin-key", "infera-secrets-key", "infera-agent-token", "infera-redis-auth", "infera-postgres"];

let kube: KubeCluster;
let hostPods: HostPods;

interface Meta {
  name: string;
  ownerReferences?: { kind: string; name: string }[];
  namespace?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Item {
  apiVersion: string;
  kind: string;
  metadata: Meta;
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  data?: Record<string, string>;
  rules?: Rule[];
}
interface Rule {
  apiGroups: string[];
  resources: string[];
  resourceNames?: string[];
  verbs: string[];
}
interface PodSpec {
  initContainers?: { name: string; env?: EnvVar[] }[];
  containers: { name: string; env?: EnvVar[]; args?: string[]; image: string; lifecycle?: { preStop?: { exec?: { command?: string[] } } } }[];
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } };
}

async function json<T>(args: string[]): Promise<T> {
  const r = await kube.kubectl([...args, "-o", "json"]);
  if (r.status !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

async function helmOk(args: string[]): Promise<string> {
  const r = await kube.helm(args, { timeoutMs: 240_000 });
  if (r.status !== 0) throw new Error(`helm ${args.join(" ")}:\n${r.stderr}\n${await namespaceReport(kube, args[args.indexOf("-n") + 1] ?? "default")}`);
  return r.stdout;
}

/** Objects of `helm get manifest` as the API server has them now (it fails if one is missing). */
async function liveObjects(ns: string, release = "infera"): Promise<Item[]> {
  const manifest = await helmOk(["get", "manifest", release, "-n", ns]);
  const r = await kube.kubectl(["get", "-n", ns, "-f", "-", "-o", "json"], { input: manifest });
  if (r.status !== 0) throw new Error(`objects of the release missing:\n${r.stderr}`);
  const list = JSON.parse(r.stdout) as { items?: Item[] } & Item;
  return list.items ?? [list];
}

/** Every object carrying Helm's release annotation, namespaced (ns) and cluster-wide: what Helm manages. */
async function helmManaged(ns: string): Promise<string[]> {
  const out: string[] = [];
  for (const [namespaced, scope] of [
    ["true", ["-n", ns]],
    ["false", []],
  ] as const) {
    const kinds = (await kube.kubectl(["api-resources", "--verbs=list", `--namespaced=${namespaced}`, "-o", "name"])).stdout
      .trim()
      .split("\n")
      .filter((k) => !k.startsWith("events"));
    const r = await kube.kubectl(["get", kinds.join(","), ...scope, "-o", "json"]);
    for (const i of (JSON.parse(r.stdout) as { items: Item[] }).items) {
      const a = i.metadata.annotations ?? {};
      // Owned objects (ReplicaSets, ControllerRevisions) inherit the annotations; their owner is what Helm manages.
      if (i.metadata.ownerReferences?.length) continue;
      if (a["meta.helm.sh/release-name"] === "infera" && a["meta.helm.sh/release-namespace"] === ns) out.push(`${i.kind}/${i.metadata.name}`);
    }
  }
  return out.sort();
}

/** Everything listable in the namespace now (events aside), as kind/name. */
async function everythingIn(ns: string): Promise<string[]> {
  const kinds = (await kube.kubectl(["api-resources", "--verbs=list", "--namespaced", "-o", "name"])).stdout
    .trim()
    .split("\n")
    .filter((k) => !k.startsWith("events"));
  const r = await kube.kubectl(["get", kinds.join(","), "-n", ns, "-o", "json"]);
  return (JSON.parse(r.stdout) as { items: Item[] }).items.map((i) => `${i.kind}/${i.metadata.name}`).sort();
}

async function secretData(ns: string, name: string): Promise<Record<string, string>> {
  const s = await json<Item>(["-n", ns, "get", "secret", name]);
  return Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString()]));
}

/** The Secrets a release's pods read; each must exist and hold the key (no dangling secretKeyRef). */
async function expectSecretRefsResolve(ns: string): Promise<void> {
  const pods = await json<{ items: { metadata: Meta; spec: PodSpec }[] }>(["-n", ns, "get", "pods"]);
  for (const p of pods.items) {
    for (const c of [...(p.spec.initContainers ?? []), ...p.spec.containers]) {
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (!ref) continue;
        const data = await secretData(ns, ref.name).catch(() => undefined);
        expect(data?.[ref.key], `${p.metadata.name}/${c.name} ${e.name} → Secret ${ref.name} key ${ref.key}`).toBeTruthy();
      }
    }
  }
}

async function waitJobsComplete(ns: string): Promise<void> {
  await waitFor(
    `Jobs in ${ns} complete`,
    async () => {
      const jobs = await json<{ items: { status?: { succeeded?: number } }[] }>(["-n", ns, "get", "jobs"]);
      return jobs.items.length > 0 && jobs.items.every((j) => (j.status?.succeeded ?? 0) >= 1);
    },
    { timeoutMs: 60_000, intervalMs: KUBE_POLL_MS, diagnose: async () => `${JSON.stringify(hostPods.runs)}\n${await namespaceReport(kube, ns)}` },
  );
}

async function createNamespace(ns: string): Promise<void> {
  const r = await kube.api("POST", "/api/v1/namespaces", {
    apiVersion: "v1",
    kind: "Namespace",
    // What a careful cluster admin sets: the platform's pods must meet PodSecurity "restricted".
    metadata: { name: ns, labels: { "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted" } },
  });
  expect(r.status, r.text).toBe(201);
}

async function createSecrets(ns: string, secrets: Record<string, Record<string, string>>): Promise<void> {
  for (const [name, kv] of Object.entries(secrets)) {
    const r = await kube.kubectl(["-n", ns, "create", "secret", "generic", name, ...Object.entries(kv).map(([k, v]) => `--from-literal=${k}=${v}`)]);
    expect(r.status, r.stderr).toBe(0);
  }
}

function engineTemplateOf(objs: readonly Item[]): { template: EnginePodTemplate; gpuTypes: GpuType[] } {
  const cm = (suffix: string) => objs.find((o) => o.kind === "ConfigMap" && o.metadata.name.endsWith(suffix))?.data ?? {};
  return {
    template: parseEnginePodTemplate(cm("-engine-pod-template")["engine-pod-template.yaml"] ?? "", "the chart's engine pod template"),
    gpuTypes: parseGpuTypes(cm("-gpu-types")["gpu-types.json"] ?? "[]", "the chart's GPU types", { allowEmpty: true }),
  };
}

const llama = (deploymentId: string, gpu: string): ReplicaSpec => ({
  deploymentId,
  servedModelName: "llama-3-8b",
  task: "chat",
  engine: "vllm",
  gpu,
  numGpus: 1,
  maxBatchSize: 64,
  hf: { repo: "meta-llama/Meta-Llama-3-8B-Instruct" },
  hfToken: "hf_rbacTestToken",
  extraArgs: [],
});

beforeAll(async () => {
  kube = await startKube({ label: "chart", nodes: gpuNodes() });
  await installGpuRuntimeClass(kube);
  await applyPrometheusCrds(kube);
  hostPods = runHostPods(kube);
}, 2_700_000); // a first run on a machine builds the control plane (tools/kube/build.sh)

afterAll(async () => {
  await hostPods?.stop();
  await kube?.stop();
}, 120_000);

const PROFILES = [
  { name: "default", ns: "p-default", values: [] as string[], upgrade: ["--set", "gateway.logLevel=debug"] },
  { name: "trial", ns: "p-trial", values: ["-f", `${CHART}/values-trial.yaml`], upgrade: ["--set", "gateway.logLevel=debug"] },
  {
    name: "gpu-production",
    ns: "p-production",
    values: ["-f", `${CHART}/values-gpu-production.yaml`],
    // Turning things off must delete them.
    upgrade: ["--set", "monitoring.serviceMonitor.enabled=false", "--set", "scheduler.podDisruptionBudget.enabled=false", "--set", "scheduler.replicas=1"],
  },
];

describe.each(PROFILES)("profile $name: install --wait, upgrade, uninstall", ({ name, ns, values, upgrade }) => {
  const generated: Record<string, Record<string, string>> = {};

  it("installs with --wait: every object accepted, no hook on the way, pods migrate first, every Secret a pod reads exists", async () => {
    await createNamespace(ns);
    if (name === "gpu-production") {
      await createSecrets(
        ns,
        PRODUCTION_SECRETS({ databaseUrl: "postgres://infera@127.0.0.1:5432/infera", redisUrl: "redis://127.0.0.1:6379", adminKey: "sk-infera-production" }),
      );
    }
    await helmOk(["install", "infera", CHART, "-n", ns, ...values, "--wait", "--timeout", "120s"]);
    const objs = await liveObjects(ns);
    expect(objs.length).toBeGreaterThan(10);
    // NetworkPolicies on by default, every one accepted by the API server's validation.
    expect(
      objs
        .filter((o) => o.kind === "NetworkPolicy")
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(
      name === "gpu-production"
        ? ["infera-batch-gateway", "infera-engine", "infera-gateway", "infera-scheduler"]
        : ["infera-engine", "infera-gateway", "infera-postgres", "infera-redis", "infera-scheduler"],
    );
    // Only `helm test` pods are hooks: nothing in the install waits on a step after readiness.
    const hooks = (await helmOk(["get", "hooks", "infera", "-n", ns])).split("\n---").filter((d) => /kind:/.test(d));
    for (const h of hooks) expect(h, "a hook that is not a test").toMatch(/helm\.sh\/hook: test\b/);
    for (const d of objs.filter((o) => o.kind === "Deployment")) {
      expect(d.status?.readyReplicas, d.metadata.name).toBe(d.spec?.replicas);
      const pod = (d.spec?.template as { spec: PodSpec } | undefined)?.spec;
      expect(
        pod?.initContainers?.map((c) => c.name),
        `${d.metadata.name} migrates before it starts`,
      ).toEqual(["migrate"]);
    }
    // The generated Secrets: made by the Job (run here as its pod, with its ServiceAccount's token).
    if (name !== "gpu-production") {
      await waitJobsComplete(ns);
      for (const s of GENERATED) generated[s] = await secretData(ns, s);
      expect(generated["infera-admin-key"]?.["admin-key"]).toMatch(/^sk-infera-[A-Za-z0-9]{40}$/);
      expect(generated["infera-secrets-key"]?.["secrets-key"]).toMatch(/^[A-Za-z0-9]{64}$/);
      expect(generated["infera-agent-token"]?.["agent-token"]).toMatch(/^[A-Za-z0-9]{48}$/);
      expect(generated["infera-redis-auth"]?.password).toMatch(/^[A-Za-z0-9]{32}$/);
      const pw = generated["infera-postgres"]?.password ?? "";
      expect(pw).toMatch(/^[A-Za-z0-9]{32}$/);
      expect(generated["infera-postgres"]?.["database-url"]).toBe(`postgres://infera:${pw}@infera-postgres:5432/infera`);
    } else {
      // Every Secret is the operator's: nothing to generate, no Job.
      expect(objs.filter((o) => o.kind === "Job" || o.kind === "Secret")).toEqual([]);
    }
    await expectSecretRefsResolve(ns);
    // The gateway and the scheduler read the same SECRETS_KEY.
    const keyRef = (dep: string) =>
      (objs.find((o) => o.kind === "Deployment" && o.metadata.name === dep)?.spec?.template as { spec: PodSpec } | undefined)?.spec.containers[0]?.env?.find(
        (e) => e.name === "SECRETS_KEY",
      )?.valueFrom?.secretKeyRef;
    expect(keyRef("infera-gateway")).toEqual(keyRef("infera-scheduler"));
    expect(keyRef("infera-gateway")?.name).toBe("infera-secrets-key");
  }, 240_000);

  if (name === "trial") {
    it("trial engines are engine-sim pods that PodSecurity 'restricted' admits (made by the driver with the scheduler's token)", async () => {
      const { template, gpuTypes } = engineTemplateOf(await liveObjects(ns));
      expect(template.mode).toBe("sim");
      const kc = new KubeConfig();
      kc.loadFromFile(await kube.serviceAccountKubeconfig(ns, "infera-scheduler"));
      const driver = new KubernetesRuntimeDriver({ namespace: ns, template, gpuTypes, kubeConfig: kc });
      await driver.apply({ ...llama("trial-1", "sim-gpu"), hfToken: undefined }, 1);
      let phases: string[] = [];
      await waitFor(
        "the engine pod admitted and running",
        async () => {
          phases = (await driver.observe("trial-1")).map((o) => o.phase);
          return phases.length === 1 && phases[0] === "running";
        },
        { timeoutMs: 30_000, intervalMs: KUBE_POLL_MS, diagnose: async () => `${phases}\n${await namespaceReport(kube, ns)}` },
      );
      const pod = (
        await json<{ items: { spec: PodSpec & { runtimeClassName?: string } }[] }>(["-n", ns, "get", "pods", "-l", "infera.dev/deployment-id=trial-1"])
      ).items[0];
      expect(pod?.spec.containers.find((c) => c.name === "engine")?.image).toMatch(/engine-sim/);
      expect(pod?.spec.runtimeClassName).toBeUndefined();
      expect(JSON.stringify(pod?.spec)).not.toContain("nvidia.com/gpu");
      const redisConf = (await json<Item>(["-n", ns, "get", "configmap", "infera-redis"])).data?.["redis.conf"];
      expect(redisConf).toContain("maxmemory-policy noeviction");
      await driver.remove("trial-1");
    }, 60_000);
  }

  if (name === "gpu-production") {
    it("is highly available: 3 gateways (HPA minimum), 2 schedulers and 2 batch gateways, each behind a PDB the disruption controller counts", async () => {
      await waitFor(
        "PDBs computed",
        async () => {
          const pdbs = await json<{ items: Item[] }>(["-n", ns, "get", "pdb"]);
          const st = (n: string) => pdbs.items.find((p) => p.metadata.name === n)?.status as { expectedPods?: number; disruptionsAllowed?: number } | undefined;
          return (
            st("infera-gateway")?.expectedPods === 3 &&
            st("infera-gateway")?.disruptionsAllowed === 1 &&
            st("infera-scheduler")?.expectedPods === 2 &&
            st("infera-scheduler")?.disruptionsAllowed === 1 &&
            st("infera-batch-gateway")?.expectedPods === 2 &&
            st("infera-batch-gateway")?.disruptionsAllowed === 1
          );
        },
        { timeoutMs: 30_000, intervalMs: KUBE_POLL_MS, diagnose: () => namespaceReport(kube, ns) },
      );
      const objs = await liveObjects(ns);
      const hpa = objs.find((o) => o.kind === "HorizontalPodAutoscaler");
      expect(hpa?.spec).toMatchObject({ minReplicas: 3, maxReplicas: 12, scaleTargetRef: { kind: "Deployment", name: "infera-gateway" } });
      expect(objs.find((o) => o.kind === "Ingress")?.spec).toMatchObject({ ingressClassName: "nginx" });
      expect(
        objs
          .filter((o) => o.kind === "ServiceMonitor")
          .map((o) => o.metadata.name)
          .sort(),
      ).toEqual(["infera-batch-gateway", "infera-gateway", "infera-scheduler"]);
      expect(JSON.stringify(objs.find((o) => o.kind === "PodMonitor")?.spec)).toContain('"app.kubernetes.io/managed-by":"infera"');
      const sched = objs.find((o) => o.kind === "Deployment" && o.metadata.name === "infera-scheduler");
      expect(sched?.spec?.strategy).toEqual({ type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
      expect(objs.find((o) => o.kind === "PriorityClass")).toMatchObject({ metadata: { name: `${ns}-infera-engine` }, value: 1_000_000 } as object);
    });

    it("the scheduler PDB: draining, one eviction is allowed and a second refused (429) while the first pod's replacement is not up", async () => {
      const pods = (await json<{ items: Item[] }>(["-n", ns, "get", "pods", "-l", "app.kubernetes.io/component=scheduler"])).items;
      expect(pods).toHaveLength(2);
      // The eviction API decides on the PDB's status, which the disruption controller writes
      // after the fact: right after pods become Ready it may still count fewer healthy ones and
      // refuse the first eviction too (429). So first the status the test is about.
      let pdb: Item | undefined;
      await waitFor(
        "the scheduler PDB's status current, both pods healthy, one disruption allowed",
        async () => {
          pdb = await json<Item>(["-n", ns, "get", "pdb", "infera-scheduler"]);
          const st = pdb.status as { observedGeneration?: number; currentHealthy?: number; desiredHealthy?: number; disruptionsAllowed?: number };
          const generation = (pdb.metadata as Meta & { generation?: number }).generation;
          return st.observedGeneration === generation && st.currentHealthy === 2 && st.desiredHealthy === 1 && st.disruptionsAllowed === 1;
        },
        { timeoutMs: 30_000, intervalMs: KUBE_POLL_MS, diagnose: async () => `${JSON.stringify(pdb?.status)}\n${await namespaceReport(kube, ns)}` },
      );
      // As `kubectl drain` does: cordon first. Otherwise the evicted pod's replacement (Ready
      // within milliseconds under kwok) makes the PDB allow a second eviction as well.
      const nodes = (await json<{ items: Item[] }>(["get", "nodes"])).items.map((n) => n.metadata.name);
      const cordon = async (verb: "cordon" | "uncordon") => {
        for (const n of nodes) {
          const r = await kube.kubectl([verb, n]);
          expect(r.status, r.stderr).toBe(0);
        }
      };
      const evict = (pod: string) =>
        kube.api("POST", `/api/v1/namespaces/${ns}/pods/${pod}/eviction`, {
          apiVersion: "policy/v1",
          kind: "Eviction",
          metadata: { name: pod, namespace: ns },
        });
      await cordon("cordon");
      try {
        const first = await evict(pods[0]!.metadata.name);
        expect(first.status, first.text).toBe(201);
        const second = await evict(pods[1]!.metadata.name);
        expect(second.status, second.text).toBe(429);
        expect(second.text).toContain("Cannot evict pod as it would violate the pod's disruption budget");
      } finally {
        await cordon("uncordon");
      }
      await waitFor(
        "2 schedulers ready again",
        async () => (await json<{ status?: { readyReplicas?: number } }>(["-n", ns, "get", "deploy", "infera-scheduler"])).status?.readyReplicas === 2,
        { timeoutMs: 30_000, intervalMs: KUBE_POLL_MS, diagnose: () => namespaceReport(kube, ns) },
      );
    });

    it("a rolling update of the schedulers never has fewer than 2 ready", async () => {
      const before = (await json<Item>(["-n", ns, "get", "deploy", "infera-scheduler"])).metadata;
      let minReady = Infinity;
      let done = false;
      const watch = (async () => {
        while (!done) {
          const d = await json<{ status?: { readyReplicas?: number; availableReplicas?: number } }>(["-n", ns, "get", "deploy", "infera-scheduler"]);
          minReady = Math.min(minReady, d.status?.availableReplicas ?? 0);
        }
      })();
      await helmOk(["upgrade", "infera", CHART, "-n", ns, ...values, "--set", "scheduler.podAnnotations.rollout=two", "--wait", "--timeout", "120s"]);
      done = true;
      await watch;
      const after = await json<Item & { status?: { updatedReplicas?: number; readyReplicas?: number } }>(["-n", ns, "get", "deploy", "infera-scheduler"]);
      expect(after.metadata.annotations?.["deployment.kubernetes.io/revision"]).not.toBe(before.annotations?.["deployment.kubernetes.io/revision"]);
      expect(after.status).toMatchObject({ updatedReplicas: 2, readyReplicas: 2 });
      expect(minReady).toBeGreaterThanOrEqual(2);
    }, 180_000);

    it("the engine pod template drains within its grace period, and asks for no GPU until the driver does", async () => {
      const { template, gpuTypes } = engineTemplateOf(await liveObjects(ns));
      expect(gpuTypes.map((g) => g.name)).toEqual(["H100-80GB", "A100-80GB"]);
      const dep = buildEngineDeployment({ ...llama("drain-1", "A100-80GB"), hfToken: undefined, numGpus: 2 }, 1, template, { namespace: ns, gpuTypes });
      const pod = dep.spec?.template.spec;
      const engine = pod?.containers.find((c) => c.name === "engine");
      expect(template.template.spec?.containers.find((c) => c.name === "engine")?.resources?.limits?.["nvidia.com/gpu"]).toBeUndefined();
      expect(engine?.resources?.limits?.["nvidia.com/gpu"]).toBe("2");
      const args = engine?.args ?? [];
      const preStop = Number(engine?.lifecycle?.preStop?.exec?.command?.[1]);
      const shutdown = Number(args[args.indexOf("--shutdown-timeout") + 1]);
      const agentGrace = Number(pod?.containers.find((c) => c.name === "agent")?.env?.find((e) => e.name === "SHUTDOWN_GRACE_MS")?.value) / 1000;
      const grace = pod?.terminationGracePeriodSeconds ?? 30;
      expect({ preStop, shutdown, agentGrace, grace }).toEqual({ preStop: 15, shutdown: 45, agentGrace: 45, grace: 75 });
      // And the API server accepts it as it is.
      const r = await kube.kubectl(["apply", "-n", ns, "--dry-run=server", "-f", "-"], { input: JSON.stringify(dep) });
      expect(r.status, r.stderr).toBe(0);
    });

    it("the driver's GPU engine pod is admitted by PodSecurity 'restricted' (non-root, no escalation, no capabilities, RuntimeDefault); without the lockdown it is not", async () => {
      const { template, gpuTypes } = engineTemplateOf(await liveObjects(ns));
      const dep = buildEngineDeployment({ ...llama("lockdown-1", "H100-80GB"), hfToken: undefined }, 1, template, { namespace: ns, gpuTypes });
      const pod = (spec: unknown, name: string) =>
        JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { name, namespace: ns, labels: dep.spec?.template.metadata?.labels }, spec });
      const admitted = await kube.kubectl(["apply", "-n", ns, "--dry-run=server", "-f", "-"], { input: pod(dep.spec?.template.spec, "lockdown-1") });
      expect(admitted.status, admitted.stderr).toBe(0);
      // The same pod as the engine container ran before: root, default capabilities.
      const loose = structuredClone(dep.spec?.template.spec)!;
      delete loose.containers.find((c) => c.name === "engine")!.securityContext;
      delete loose.securityContext;
      const refused = await kube.kubectl(["apply", "-n", ns, "--dry-run=server", "-f", "-"], { input: pod(loose, "lockdown-2") });
      expect(refused.status).not.toBe(0);
      expect(refused.stderr).toMatch(/violates PodSecurity "restricted:latest"/);
    });
  }

  it("helm upgrade keeps every generated Secret and leaves nothing it no longer renders", async () => {
    await helmOk(["upgrade", "infera", CHART, "-n", ns, ...values, ...upgrade, "--wait", "--timeout", "120s"]);
    for (const [s, data] of Object.entries(generated)) expect(await secretData(ns, s), s).toEqual(data);
    const rendered = (await liveObjects(ns)).map((o) => `${o.kind}/${o.metadata.name}`).sort();
    await waitFor("what Helm manages = what it rendered", async () => JSON.stringify(await helmManaged(ns)) === JSON.stringify(rendered), {
      timeoutMs: 30_000,
      intervalMs: KUBE_POLL_MS,
      diagnose: async () => `${await helmManaged(ns)}\n!=\n${rendered}`,
    });
    if (name === "gpu-production") {
      // The batch gateways' metrics-only Service goes with the ServiceMonitors.
      expect(
        rendered.filter((o) => o.startsWith("ServiceMonitor/") || o === "Service/infera-batch-gateway" || o === "PodDisruptionBudget/infera-scheduler"),
      ).toEqual([]);
    }
  }, 180_000);

  it("helm uninstall leaves only what is kept on purpose (generated Secrets, volumes)", async () => {
    await helmOk(["uninstall", "infera", "-n", ns, "--wait", "--timeout", "120s"]);
    const kept = [
      "ConfigMap/kube-root-ca.crt",
      "ServiceAccount/default",
      ...Object.keys(generated).map((s) => `Secret/${s}`),
      ...(name === "gpu-production" ? Object.keys(PRODUCTION_SECRETS({ databaseUrl: "", redisUrl: "", adminKey: "" })).map((s) => `Secret/${s}`) : []),
      // The bundled stores' volumes (Helm never deletes a StatefulSet's claims), or the model
      // cache (kept on purpose: terabytes of weights to download again).
      ...(name === "gpu-production"
        ? ["PersistentVolumeClaim/infera-model-cache"]
        : ["PersistentVolumeClaim/data-infera-postgres-0", "PersistentVolumeClaim/data-infera-redis-0"]),
    ].sort();
    let left: string[] = [];
    await waitFor(
      "only the kept objects left",
      async () => {
        left = await everythingIn(ns);
        return JSON.stringify(left) === JSON.stringify(kept);
      },
      { timeoutMs: 60_000, intervalMs: KUBE_POLL_MS, diagnose: () => `left: ${left.join(", ")}\nkept: ${kept.join(", ")}` },
    );
    // A kept object keeps Helm's annotations (a reinstall adopts it): only the model cache is one.
    expect(await helmManaged(ns)).toEqual(name === "gpu-production" ? ["PersistentVolumeClaim/infera-model-cache"] : []);
  }, 180_000);
});

describe("helm template | kubectl apply", () => {
  const ns = "p-apply";

  it("re-applied (and with its Job run again) keeps every generated Secret", async () => {
    await createNamespace(ns);
    const rendered = (await kube.helm(["template", "infera", CHART, "-n", ns])).stdout;
    const apply = async () => {
      const r = await kube.kubectl(["apply", "-n", ns, "-f", "-"], { input: rendered });
      expect(r.status, r.stderr).toBe(0);
    };
    await apply();
    await waitJobsComplete(ns);
    const first = Object.fromEntries(await Promise.all(GENERATED.map(async (s) => [s, await secretData(ns, s)] as const)));
    // A second render has new random values in it, had the chart put any there: it has none.
    const again = (await kube.helm(["template", "infera", CHART, "-n", ns])).stdout;
    expect(again).toBe(rendered);
    await apply();
    // The Job deleted (a cleanup, a TTL) and applied again: it runs again and changes nothing.
    expect((await kube.kubectl(["delete", "jobs", "-n", ns, "--all", "--wait"])).status).toBe(0);
    const runsBefore = hostPods.runs.length;
    await apply();
    await waitJobsComplete(ns);
    const rerun = hostPods.runs.slice(runsBefore).find((r) => r.namespace === ns && r.pod.startsWith("infera-secrets-"));
    expect(rerun?.output).toContain("kept Secret infera-secrets-key (it exists)");
    for (const [s, data] of Object.entries(first)) expect(await secretData(ns, s), s).toEqual(data);
  }, 180_000);
});

describe("bad values are refused by the chart, naming the value", () => {
  const files = readdirSync(INVALID)
    .filter((f) => f.endsWith(".yaml"))
    .sort();

  it.each(files)(
    "%s",
    async (file) => {
      const text = readFileSync(join(INVALID, file), "utf8");
      const expectMessage = /^# expect: (.*)$/m.exec(text)?.[1];
      const kubernetes = /^# kubernetes: (.*)$/m.exec(text)?.[1];
      expect(expectMessage, `${file}: first line must be '# expect: <regex>'`).toBeTruthy();
      const args = ["template", "infera", CHART, "-n", "p-invalid", "-f", join(INVALID, file)];
      const refused = await kube.helm(args);
      expect(refused.status, `${file} was accepted`).not.toBe(0);
      expect(refused.stderr).toMatch(new RegExp(expectMessage!));
      if (!kubernetes) return;
      // Without the schema, the API server refuses what would be rendered (or what the
      // scheduler would build from it): the chart's check is there first, not instead.
      const unchecked = await kube.helm([...args, "--skip-schema-validation"]);
      expect(unchecked.status, unchecked.stderr).toBe(0);
      const objs = (loadAllYaml(unchecked.stdout) as (Item | null)[]).filter((o): o is Item => o !== null);
      let input = unchecked.stdout;
      if (objs.some((o) => o.kind === "ConfigMap" && o.metadata.name.endsWith("-engine-pod-template"))) {
        const { template, gpuTypes } = engineTemplateOf(objs);
        const spec = { ...llama("invalid-1", gpuTypes[0]?.name ?? "H100-80GB"), hfToken: undefined };
        input += `\n---\n${JSON.stringify(buildEngineDeployment(spec, 1, template, { namespace: "p-invalid", gpuTypes }))}\n`;
      }
      const dry = await kube.kubectl(["apply", "-n", "p-invalid", "--dry-run=server", "-f", "-"], { input });
      expect(dry.status, `the API server accepted ${file} unchecked`).not.toBe(0);
      expect(dry.stderr).toMatch(new RegExp(kubernetes));
    },
    60_000,
  );

  beforeAll(async () => {
    await createNamespace("p-invalid");
  });
});

describe("the scheduler's RBAC: every rule and verb is needed by the kubernetes driver", () => {
  const ns = "p-rbac";
  const sa = `system:serviceaccount:${ns}:infera-scheduler`;
  let kubeconfig = "";
  let template: EnginePodTemplate;
  let gpuTypes: GpuType[];
  let role: Item;
  let clusterRole: Item;
  let seq = 0;

  /** Everything the driver does for a deployment's lifecycle, with the chart's ServiceAccount. */
  async function lifecycle(): Promise<void> {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const driver = new KubernetesRuntimeDriver({ namespace: ns, template, gpuTypes, kubeConfig: kc });
    const id = `rbac-${++seq}`;
    const spec = llama(id, "H100-80GB");
    await driver.apply(spec, 1); // Secret, Deployment, PDB: get (404) + apply (patch, authorized as create); the owner ConfigMap: get
    await driver.apply(spec, 2); // get + apply (patch) of each
    await driver.observe(id); // pods: list
    // Once the ReplicaSet has made a pod (the API server's own doing): its logs (pods/log: get).
    const sel = encodeURIComponent(`infera.dev/deployment-id=${id}`);
    await waitFor(
      `a pod of ${id}`,
      async () => (await kube.api<{ items: unknown[] }>("GET", `/api/v1/namespaces/${ns}/pods?labelSelector=${sel}`)).body.items.length > 0,
      { timeoutMs: 30_000, intervalMs: KUBE_POLL_MS, diagnose: () => namespaceReport(kube, ns) },
    );
    for await (const _ of driver.logs(id, { tail: 10, follow: false, signal: new AbortController().signal })) {
      // kwok has no log for these pods' containers: nothing to read, but the reads are made.
    }
    await driver.capacity(); // nodes: list (ClusterRole)
    await driver.remove(id); // delete of each
  }

  async function allowed(verb: string, rule: Rule): Promise<boolean> {
    const r = await kube.api<{ status?: { allowed?: boolean } }>("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
      apiVersion: "authorization.k8s.io/v1",
      kind: "SubjectAccessReview",
      spec: {
        user: sa,
        groups: ["system:serviceaccounts", `system:serviceaccounts:${ns}`, "system:authenticated"],
        resourceAttributes: {
          namespace: ns,
          verb,
          group: rule.apiGroups[0],
          resource: rule.resources[0]?.split("/")[0],
          subresource: rule.resources[0]?.split("/")[1],
          name: rule.resourceNames?.[0],
        },
      },
    });
    return r.body.status?.allowed === true;
  }

  async function setRules(kind: "roles" | "clusterroles", base: Item, rules: Rule[]): Promise<void> {
    const path =
      kind === "roles"
        ? `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles/${base.metadata.name}`
        : `/apis/rbac.authorization.k8s.io/v1/clusterroles/${base.metadata.name}`;
    const live = await kube.api<Item>("GET", path);
    const r = await kube.api("PUT", path, { ...live.body, rules });
    expect(r.status, r.text).toBe(200);
  }

  async function cleanUp(): Promise<void> {
    for (const kind of ["deployments", "poddisruptionbudgets", "secrets"]) {
      await kube.kubectl(["-n", ns, "delete", kind, "-l", "app.kubernetes.io/managed-by=infera", "--wait=false"]);
    }
  }

  beforeAll(async () => {
    // Its engine pods must exist (the driver reads their logs): the locked-down GPU engine pod
    // meets "restricted" like the platform's own.
    await createNamespace(ns);
    await helmOk([
      "install",
      "infera",
      CHART,
      "-n",
      ns,
      "-f",
      `${CHART}/values-gpu-production.yaml`,
      "--set",
      "monitoring.serviceMonitor.enabled=false",
      "--set",
      "monitoring.podMonitor.enabled=false",
      "--wait",
      "--timeout",
      "120s",
    ]);
    const objs = await liveObjects(ns);
    ({ template, gpuTypes } = engineTemplateOf(objs));
    role = objs.find((o) => o.kind === "Role" && o.metadata.name === "infera-scheduler")!;
    clusterRole = objs.find((o) => o.kind === "ClusterRole")!;
    kubeconfig = await kube.serviceAccountKubeconfig(ns, "infera-scheduler");
  }, 240_000);

  it("with the chart's Role and ClusterRole the whole lifecycle works, and the Role is what it holds", async () => {
    expect(role.rules).toEqual([
      { apiGroups: ["apps"], resources: ["deployments"], verbs: ["get", "create", "patch", "delete"] },
      { apiGroups: ["policy"], resources: ["poddisruptionbudgets"], verbs: ["get", "create", "patch", "delete"] },
      { apiGroups: [""], resources: ["pods"], verbs: ["list"] },
      { apiGroups: [""], resources: ["pods/log"], verbs: ["get"] },
      // The infera-hf-<deploymentId> token Secrets; never list/watch (no enumerating Secrets).
      { apiGroups: [""], resources: ["secrets"], verbs: ["get", "create", "patch", "delete"] },
      { apiGroups: [""], resources: ["configmaps"], resourceNames: ["infera-engine-owner"], verbs: ["get"] },
    ]);
    expect(clusterRole.rules).toEqual([{ apiGroups: [""], resources: ["nodes"], verbs: ["list"] }]);
    await lifecycle();
    // And nothing beyond: it cannot list Secrets or touch another namespace.
    expect(await allowed("list", { apiGroups: [""], resources: ["secrets"], verbs: [] })).toBe(false);
  }, 60_000);

  it("writes by server-side apply: another writer changing the engine Deployment all the while never makes a write fail, and keeps its fields", async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const driver = new KubernetesRuntimeDriver({ namespace: ns, template, gpuTypes, kubeConfig: kc });
    const id = `ssa-${++seq}`;
    const spec = llama(id, "H100-80GB");
    await driver.apply(spec, 1);
    const path = `/apis/apps/v1/namespaces/${ns}/deployments/${engineDeploymentName(id)}`;
    // Two writers besides the deployment controller (which writes status on every change), as an
    // operator's tooling or another controller would: each write bumps the resourceVersion.
    let writes = 0;
    let done = false;
    const writer = async (who: string) => {
      while (!done) {
        const r = await kube.api("PATCH", path, { metadata: { annotations: { [`example.com/${who}`]: String(writes) } } }, "application/merge-patch+json");
        if (r.status !== 200) throw new Error(`${who}: HTTP ${r.status} ${r.text}`);
        writes++;
      }
    };
    const writers = [writer("a"), writer("b")];
    let replicas = 1;
    try {
      for (let i = 0; i < 12; i++) {
        replicas = (i % 3) + 1;
        await driver.apply(spec, replicas);
      }
    } finally {
      done = true;
      await Promise.all(writers);
    }
    expect(writes, "the other writers ran while the driver wrote").toBeGreaterThan(12);
    const live = (
      await kube.api<{
        spec: { replicas: number };
        metadata: { annotations?: Record<string, string>; managedFields?: { manager: string; operation: string }[] };
      }>("GET", path)
    ).body;
    expect(live.spec.replicas).toBe(replicas);
    // The other managers' fields survive the driver's writes; the driver's own are its manager's.
    expect(live.metadata.annotations).toMatchObject({ "example.com/a": expect.any(String), "example.com/b": expect.any(String) });
    expect(live.metadata.managedFields).toContainEqual(expect.objectContaining({ manager: "infera-scheduler", operation: "Apply" }));
    await driver.remove(id);
  }, 60_000);

  const cases = () => [
    ...(role.rules ?? []).flatMap((rule, i) => rule.verbs.map((verb) => ({ kind: "roles" as const, base: role, i, rule, verb }))),
    ...(clusterRole.rules ?? []).flatMap((rule, i) => rule.verbs.map((verb) => ({ kind: "clusterroles" as const, base: clusterRole, i, rule, verb }))),
  ];

  it("without any one verb of any rule, the driver fails with the API server's 403 naming it", async () => {
    const all = cases();
    expect(all).toHaveLength(16);
    for (const { kind, base, i, rule, verb } of all) {
      const rules = structuredClone(base.rules ?? []);
      rules[i]!.verbs = rules[i]!.verbs.filter((v) => v !== verb);
      await setRules(
        kind,
        base,
        rules.filter((r) => r.verbs.length > 0),
      );
      await waitFor(`${verb} ${rule.resources[0]} denied`, async () => !(await allowed(verb, rule)), { timeoutMs: 10_000, intervalMs: KUBE_POLL_MS });
      const label = `${kind}: ${verb} ${rule.resources[0]}`;
      await expect(lifecycle(), label).rejects.toThrow(new RegExp(`HTTP 403: .*cannot ${verb} resource "${rule.resources[0]}"`));
      await setRules(kind, base, base.rules ?? []);
      await waitFor(`${verb} ${rule.resources[0]} allowed again`, () => allowed(verb, rule), { timeoutMs: 10_000, intervalMs: KUBE_POLL_MS });
      await cleanUp();
    }
  }, 240_000);

  afterAll(async () => {
    await kube?.helm(["uninstall", "infera", "-n", ns, "--wait", "--timeout", "60s"]);
  }, 90_000);
});
