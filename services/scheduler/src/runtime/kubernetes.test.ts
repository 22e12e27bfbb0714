/**
 * The kubernetes runtime driver's pure parts: the manifest it builds (field by field), how
 * pods map to replica phases, and which nodes count for a GPU type. What the API server
 * makes of them (admission, validation, RBAC, the scheduler's placement) is tested against
 * a real control plane in test/kube.
 */
import { describe, expect, it } from "vitest";
import type { V1Container, V1Deployment, V1EnvVar, V1Node, V1Pod } from "@kubernetes/client-node";
import { PlatformError } from "@infera/core";
import type { ReplicaSpec } from "./driver.ts";
import { gpuCapacityOf, observePod } from "./kubernetes.ts";
import { buildEngineDeployment, buildEnginePdb, buildHfTokenSecret, engineDeploymentName, hfTokenSecretName } from "./kubernetes-manifest.ts";
import { parseEnginePodTemplate, parseGpuTypes, type EnginePodTemplate } from "./kubernetes-template.ts";

/** The shape the chart renders (helm/infera/templates/_engine-pod-template.tpl), trimmed. */
const TEMPLATE_YAML = `
apiVersion: infera.dev/v1alpha1
kind: EnginePodTemplate
mode: gpu
engines:
  vllm: { image: "vllm/vllm-openai:v0.11.0" }
  tgi: { image: "ghcr.io/huggingface/text-generation-inference:3.3.4" }
gpuResourceName: nvidia.com/gpu
hfTokenSecretKey: token
defaultHfTokenSecret: hf-default
enginePort: 8000
agentPort: 50051
drain: { preStopSleepSeconds: 15, engineShutdownTimeoutSeconds: 45, agentShutdownGraceSeconds: 45 }
template:
  metadata:
    labels: { app.kubernetes.io/name: infera, app.kubernetes.io/component: engine }
  spec:
    runtimeClassName: nvidia
    terminationGracePeriodSeconds: 75
    nodeSelector: { kubernetes.io/os: linux }
    tolerations:
      - { key: dedicated, operator: Equal, value: inference, effect: NoSchedule }
    containers:
      - name: engine
        image: "vllm/vllm-openai:v0.11.0"
        ports: [{ name: http, containerPort: 8000 }]
        env: [{ name: HF_HOME, value: /root/.cache/huggingface }]
        startupProbe: { httpGet: { path: /health, port: http }, periodSeconds: 10, failureThreshold: 360 }
        readinessProbe: { httpGet: { path: /health, port: http }, periodSeconds: 5 }
        livenessProbe: { httpGet: { path: /health, port: http }, periodSeconds: 15 }
        lifecycle: { preStop: { exec: { command: ["sleep", "15"] } } }
        resources: { requests: { cpu: "4", memory: 32Gi }, limits: { memory: 128Gi } }
        volumeMounts:
          - { name: model-cache, mountPath: /root/.cache/huggingface }
          - { name: dshm, mountPath: /dev/shm }
      - name: agent
        image: "ghcr.io/infera/worker-agent:0.1.0"
        ports: [{ name: grpc, containerPort: 50051 }, { name: metrics, containerPort: 9092 }]
        env:
          - { name: REDIS_URL, valueFrom: { secretKeyRef: { name: infera-redis, key: redis-url } } }
          - { name: ADVERTISE_ADDRESS, value: "stale" }
        lifecycle: { preStop: { exec: { command: ["sleep", "15"] } } }
    volumes:
      - { name: model-cache, emptyDir: {} }
      - { name: dshm, emptyDir: { medium: Memory, sizeLimit: 16Gi } }
`;

const GPU_TYPES_JSON = JSON.stringify([
  {
    name: "H100-80GB",
    count: 16,
    nodeSelector: { "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3" },
    tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
  },
  { name: "A100-80GB", count: 8, nodeSelector: { "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB" } },
]);

const template = parseEnginePodTemplate(TEMPLATE_YAML, "test template");
const gpuTypes = parseGpuTypes(GPU_TYPES_JSON, "test gpu types");
const NS = "inference";

const llama: ReplicaSpec = {
  deploymentId: "dep-7f3a9c",
  servedModelName: "llama-3-70b",
  task: "chat",
  engine: "vllm",
  gpu: "H100-80GB",
  numGpus: 4,
  maxBatchSize: 128,
  hf: { repo: "meta-llama/Meta-Llama-3-70B-Instruct", revision: "abc123", tokenSecretName: "hf-llama" },
  extraArgs: ["--max-model-len", "8192"],
};

function container(dep: V1Deployment, name: string): V1Container {
  const c = dep.spec?.template.spec?.containers.find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name}`);
  return c;
}

function env(c: V1Container, name: string): V1EnvVar | undefined {
  return c.env?.find((e) => e.name === name);
}

describe("engine pod template and GPU types files", () => {
  it("rejects a template whose drain does not fit in the grace period", () => {
    const bad = TEMPLATE_YAML.replace("engineShutdownTimeoutSeconds: 45", "engineShutdownTimeoutSeconds: 60");
    expect(() => parseEnginePodTemplate(bad, "ENGINE_POD_TEMPLATE (/x)")).toThrow(/terminationGracePeriodSeconds \(75s\)/);
  });

  it("rejects a template without the agent container, naming the file", () => {
    const bad = TEMPLATE_YAML.replace("- name: agent", "- name: sidecar");
    expect(() => parseEnginePodTemplate(bad, "ENGINE_POD_TEMPLATE (/etc/t.yaml)")).toThrow(/ENGINE_POD_TEMPLATE \(\/etc\/t.yaml\).*"agent"/);
  });

  it("rejects GPU types without a name or with duplicates", () => {
    expect(() => parseGpuTypes('[{"count": 1}]', "GPU_TYPES (/g.json)")).toThrow(/\[0\] name is required/);
    expect(() => parseGpuTypes('[{"name":"a","count":1},{"name":"a","count":2}]', "GPU_TYPES")).toThrow(/duplicate/);
    expect(() => parseGpuTypes('{"name":"a"}', "GPU_TYPES")).toThrow(/array/);
  });
});

describe("buildEngineDeployment", () => {
  const dep = buildEngineDeployment(llama, 2, template, { namespace: NS, gpuTypes });
  const engine = container(dep, "engine");
  const agent = container(dep, "agent");
  const podSpec = dep.spec?.template.spec;

  it("names and labels the Deployment for the platform deployment", () => {
    expect(dep.apiVersion).toBe("apps/v1");
    expect(dep.kind).toBe("Deployment");
    expect(dep.metadata?.name).toBe("infera-engine-dep-7f3a9c");
    expect(dep.metadata?.namespace).toBe(NS);
    expect(dep.metadata?.labels).toMatchObject({
      "app.kubernetes.io/managed-by": "infera",
      "infera.dev/deployment-id": "dep-7f3a9c",
    });
    expect(dep.spec?.replicas).toBe(2);
    expect(dep.spec?.selector.matchLabels).toEqual({
      "app.kubernetes.io/managed-by": "infera",
      "infera.dev/deployment-id": "dep-7f3a9c",
    });
    // The pods carry the selector labels plus the template's own.
    expect(dep.spec?.template.metadata?.labels).toEqual({
      "app.kubernetes.io/name": "infera",
      "app.kubernetes.io/component": "engine",
      "app.kubernetes.io/managed-by": "infera",
      "infera.dev/deployment-id": "dep-7f3a9c",
    });
  });

  it("runs vLLM with the model, revision, served name, batch size, TP size, drain timeout, extraArgs, then its 127.0.0.1 address", () => {
    expect(engine.image).toBe("vllm/vllm-openai:v0.11.0");
    expect(engine.args).toEqual([
      "--model",
      "meta-llama/Meta-Llama-3-70B-Instruct",
      "--revision",
      "abc123",
      "--served-model-name",
      "llama-3-70b",
      "--max-num-seqs",
      "128",
      "--tensor-parallel-size",
      "4",
      "--port",
      "8000",
      "--shutdown-timeout",
      "45",
      "--max-model-len",
      "8192",
      "--host",
      "127.0.0.1",
    ]);
  });

  it("asks for numGpus GPUs and keeps the template's CPU/memory", () => {
    expect(engine.resources?.limits).toEqual({ memory: "128Gi", "nvidia.com/gpu": "4" });
    expect(engine.resources?.requests).toEqual({ cpu: "4", memory: "32Gi", "nvidia.com/gpu": "4" });
    expect(podSpec?.runtimeClassName).toBe("nvidia");
  });

  it("places pods on the GPU type's nodes, keeping the template's selector and tolerations", () => {
    expect(podSpec?.nodeSelector).toEqual({
      "kubernetes.io/os": "linux",
      "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
    });
    expect(podSpec?.tolerations).toEqual([
      { key: "dedicated", operator: "Equal", value: "inference", effect: "NoSchedule" },
      { key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" },
    ]);
  });

  it("takes the HF token from the deployment's Secret, else the chart's default", () => {
    expect(env(engine, "HF_TOKEN")).toEqual({
      name: "HF_TOKEN",
      valueFrom: { secretKeyRef: { name: "hf-llama", key: "token" } },
    });
    const { hf, ...noToken } = llama;
    const d2 = buildEngineDeployment({ ...noToken, hf: { repo: hf?.repo ?? "" } }, 1, template, { namespace: NS, gpuTypes });
    expect(env(container(d2, "engine"), "HF_TOKEN")?.valueFrom?.secretKeyRef?.name).toBe("hf-default");
    expect(env(container(d2, "engine"), "HF_HOME")?.value).toBe("/root/.cache/huggingface");
  });

  it("with a token to write, HF_TOKEN reads the deployment's own Secret and the token is nowhere in the manifest", () => {
    const token = "hf_manifestSecret123";
    const d = buildEngineDeployment({ ...llama, hfToken: token }, 1, template, { namespace: NS, gpuTypes });
    expect(env(container(d, "engine"), "HF_TOKEN")).toEqual({
      name: "HF_TOKEN",
      valueFrom: { secretKeyRef: { name: "infera-hf-dep-7f3a9c", key: "token" } },
    });
    const wire = JSON.stringify(d);
    expect(wire).not.toContain(token);
    expect(wire).not.toContain(Buffer.from(token).toString("base64"));
  });

  it("builds the token Secret: Opaque, the template's key, platform labels, DNS-safe name", () => {
    const secret = buildHfTokenSecret("dep_7k2mq", "hf_abc", template, NS);
    expect(secret).toMatchObject({
      apiVersion: "v1",
      kind: "Secret",
      type: "Opaque",
      metadata: {
        name: hfTokenSecretName("dep_7k2mq"),
        namespace: NS,
        labels: { "app.kubernetes.io/managed-by": "infera", "infera.dev/deployment-id": "dep_7k2mq" },
        annotations: { "infera.dev/deployment-id": "dep_7k2mq" },
      },
    });
    expect(Object.keys(secret.data ?? {})).toEqual(["token"]);
    expect(Buffer.from(secret.data?.token ?? "", "base64").toString("utf8")).toBe("hf_abc");
    // Registry ids carry "_": not a valid object name, so it is cleaned and hashed.
    expect(secret.metadata?.name).toMatch(/^infera-hf-dep-7k2mq-[0-9a-f]{8}$/);
    expect(hfTokenSecretName("dep-7f3a9c")).toBe("infera-hf-dep-7f3a9c");
    expect(hfTokenSecretName("x".repeat(100)).length).toBeLessThanOrEqual(63);
  });

  it("gives the agent its identity from the downward API and the deployment's settings", () => {
    expect(env(agent, "REPLICA_ID")?.valueFrom?.fieldRef?.fieldPath).toBe("metadata.name");
    expect(env(agent, "POD_IP")?.valueFrom?.fieldRef?.fieldPath).toBe("status.podIP");
    expect(env(agent, "ADVERTISE_ADDRESS")?.value).toBe("$(POD_IP):50051");
    expect(env(agent, "DEPLOYMENT_ID")?.value).toBe("dep-7f3a9c");
    expect(env(agent, "SERVED_MODEL_NAME")?.value).toBe("llama-3-70b");
    expect(env(agent, "ENGINE_KIND")?.value).toBe("vllm");
    expect(env(agent, "MAX_BATCH_SIZE")?.value).toBe("128");
    expect(env(agent, "ENGINE_URL")?.value).toBe("http://127.0.0.1:8000");
    expect(env(agent, "AGENT_HOST")?.value).toBe("0.0.0.0");
    expect(env(agent, "SHUTDOWN_GRACE_MS")?.value).toBe("45000");
    // The template's REDIS_URL stays; the stale ADVERTISE_ADDRESS is replaced, once.
    expect(env(agent, "REDIS_URL")?.valueFrom?.secretKeyRef?.name).toBe("infera-redis");
    const names = (agent.env ?? []).map((e) => e.name);
    expect(names.filter((n) => n === "ADVERTISE_ADDRESS")).toHaveLength(1);
    // $(POD_IP) only expands when POD_IP is defined earlier in the list.
    expect(names.indexOf("POD_IP")).toBeLessThan(names.indexOf("ADVERTISE_ADDRESS"));
  });

  it("keeps probes on /health and drain timings inside the grace period", () => {
    expect(engine.startupProbe?.httpGet?.path).toBe("/health");
    expect(engine.readinessProbe?.httpGet?.path).toBe("/health");
    expect(engine.livenessProbe?.httpGet?.path).toBe("/health");
    expect(engine.lifecycle?.preStop?.exec?.command).toEqual(["sleep", "15"]);
    expect(podSpec?.terminationGracePeriodSeconds).toBe(75);
  });

  it("does not mutate the template", () => {
    const again = parseEnginePodTemplate(TEMPLATE_YAML, "t");
    expect(template).toEqual(again);
  });

  it("builds TGI with its own image and flags, bound to 127.0.0.1 after the extra args", () => {
    const tgi = buildEngineDeployment({ ...llama, engine: "tgi", numGpus: 2 }, 1, template, { namespace: NS, gpuTypes });
    const c = container(tgi, "engine");
    expect(c.image).toBe("ghcr.io/huggingface/text-generation-inference:3.3.4");
    expect(c.args).toEqual([
      "--model-id",
      "meta-llama/Meta-Llama-3-70B-Instruct",
      "--revision",
      "abc123",
      "--port",
      "8000",
      "--num-shard",
      "2",
      "--max-concurrent-requests",
      "128",
      "--max-model-len",
      "8192",
      "--hostname",
      "127.0.0.1",
    ]);
    expect(c.resources?.limits?.["nvidia.com/gpu"]).toBe("2");
  });

  it("uses a deployment's containerImage over the engine default", () => {
    const d = buildEngineDeployment({ ...llama, containerImage: "registry.example.com/vllm:patched" }, 1, template, {
      namespace: NS,
      gpuTypes,
    });
    expect(container(d, "engine").image).toBe("registry.example.com/vllm:patched");
  });

  it("refuses an unknown GPU type and an engine without an image", () => {
    expect(() => buildEngineDeployment({ ...llama, gpu: "B200" }, 1, template, { namespace: NS, gpuTypes })).toThrow(
      /unknown GPU type "B200".*H100-80GB, A100-80GB/,
    );
    expect(() => buildEngineDeployment({ ...llama, engine: "tei" }, 1, template, { namespace: NS, gpuTypes })).toThrow(PlatformError);
  });

  it("makes a DNS-safe, stable name for ids that are not", () => {
    const name = engineDeploymentName("Dep_ABC/123");
    expect(name).toMatch(/^infera-engine-dep-abc-123-[0-9a-f]{8}$/);
    expect(engineDeploymentName("Dep_ABC/123")).toBe(name);
    expect(engineDeploymentName("x".repeat(100)).length).toBeLessThanOrEqual(46);
    const d = buildEngineDeployment({ ...llama, deploymentId: "Dep_ABC/123" }, 1, template, { namespace: NS, gpuTypes });
    expect(d.metadata?.annotations?.["infera.dev/deployment-id"]).toBe("Dep_ABC/123");
  });

  it("in sim mode runs engine-sim without GPUs, configured by env", () => {
    const sim: EnginePodTemplate = {
      ...structuredClone(template),
      mode: "sim",
      engines: { vllm: { image: "ghcr.io/infera/engine-sim:0.1.0" }, tei: { image: "ghcr.io/infera/engine-sim:0.1.0" } },
    };
    const d = buildEngineDeployment({ ...llama, engine: "tei", task: "embeddings", gpu: "none" }, 1, sim, {
      namespace: NS,
      gpuTypes,
    });
    const c = container(d, "engine");
    expect(c.image).toBe("ghcr.io/infera/engine-sim:0.1.0");
    expect(c.args).toBeUndefined();
    expect(c.resources?.limits?.["nvidia.com/gpu"]).toBeUndefined();
    expect(env(c, "SIM_MODE")?.value).toBe("tei");
    expect(env(c, "SIM_MODEL")?.value).toBe("llama-3-70b");
    // engine-sim too listens where only its agent reaches it.
    expect(env(c, "HOST")?.value).toBe("127.0.0.1");
    expect(env(c, "HF_TOKEN")).toBeUndefined();
  });
});

function pod(name: string, status: V1Pod["status"], extra: Partial<V1Pod["metadata"]> = {}): V1Pod {
  return { apiVersion: "v1", kind: "Pod", metadata: { name, ...extra }, status };
}

const POD_FIXTURES: Record<string, V1Pod> = {
  running: pod("p-running", {
    phase: "Running",
    conditions: [
      { type: "PodScheduled", status: "True" },
      { type: "Ready", status: "True" },
    ],
    containerStatuses: [
      { name: "engine", ready: true, restartCount: 1, image: "x", imageID: "", state: { running: {} } },
      { name: "agent", ready: true, restartCount: 0, image: "x", imageID: "", state: { running: {} } },
    ],
  }),
  loading: pod("p-loading", {
    phase: "Running",
    conditions: [
      { type: "PodScheduled", status: "True" },
      { type: "Ready", status: "False" },
    ],
    containerStatuses: [{ name: "engine", ready: false, restartCount: 0, image: "x", imageID: "", state: { running: {} } }],
  }),
  pull: pod("p-pull", {
    phase: "Pending",
    conditions: [{ type: "PodScheduled", status: "True" }],
    containerStatuses: [
      {
        name: "engine",
        ready: false,
        restartCount: 0,
        image: "vllm/vllm-openai:nope",
        imageID: "",
        state: { waiting: { reason: "ImagePullBackOff", message: 'Back-off pulling image "vllm/vllm-openai:nope"' } },
      },
    ],
  }),
  crash: pod("p-crash", {
    phase: "Running",
    conditions: [{ type: "PodScheduled", status: "True" }],
    containerStatuses: [
      {
        name: "engine",
        ready: false,
        restartCount: 5,
        image: "x",
        imageID: "",
        state: { waiting: { reason: "CrashLoopBackOff" } },
        lastState: { terminated: { exitCode: 1, reason: "Error" } },
      },
    ],
  }),
  unschedulable: pod("p-unsched", {
    phase: "Pending",
    conditions: [
      {
        type: "PodScheduled",
        status: "False",
        reason: "Unschedulable",
        message: "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
      },
    ],
  }),
  creating: pod("p-creating", {
    phase: "Pending",
    conditions: [{ type: "PodScheduled", status: "True" }],
    containerStatuses: [{ name: "engine", ready: false, restartCount: 0, image: "x", imageID: "", state: { waiting: { reason: "ContainerCreating" } } }],
  }),
  terminating: pod("p-term", { phase: "Running", conditions: [{ type: "Ready", status: "True" }] }, { deletionTimestamp: new Date("2026-01-01T00:00:00Z") }),
  evicted: pod("p-evicted", { phase: "Failed", reason: "Evicted", message: "The node was low on resource: memory." }),
};

describe("observePod", () => {
  it.each([
    ["running", { phase: "running", restarts: 1 }],
    ["loading", { phase: "starting", restarts: 0 }],
    ["pull", { phase: "failed", reason: 'engine: ImagePullBackOff: Back-off pulling image "vllm/vllm-openai:nope"' }],
    ["crash", { phase: "failed", restarts: 5, reason: "engine: CrashLoopBackOff after 5 restarts (last exit code 1, Error)" }],
    ["unschedulable", { phase: "pending", reason: "Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu." }],
    ["creating", { phase: "starting" }],
    ["terminating", { phase: "stopping" }],
    ["evicted", { phase: "failed", reason: "Evicted: The node was low on resource: memory." }],
  ] as const)("%s pod → %o", (fixture, expected) => {
    const p = POD_FIXTURES[fixture];
    if (!p) throw new Error(fixture);
    expect(observePod(p)).toMatchObject({ replicaId: p.metadata?.name, ...expected });
  });

  it("names the node it runs on, and since when it is as it is (its latest condition change)", () => {
    const p = pod(
      "p-node",
      {
        phase: "Running",
        conditions: [
          { type: "PodScheduled", status: "True", lastTransitionTime: new Date("2026-01-01T00:00:00Z") },
          { type: "Ready", status: "True", lastTransitionTime: new Date("2026-01-01T00:05:00Z") },
        ],
      },
      { creationTimestamp: new Date("2025-12-31T23:59:00Z") },
    );
    p.spec = { containers: [], nodeName: "gpu-node-7" };
    expect(observePod(p)).toMatchObject({ phase: "running", node: "gpu-node-7", since: Date.parse("2026-01-01T00:05:00Z") });
    // Not scheduled yet: no node; since its creation.
    const pending = pod("p-new", { phase: "Pending" }, { creationTimestamp: new Date("2026-01-02T00:00:00Z") });
    expect(observePod(pending)).toMatchObject({ phase: "pending", since: Date.parse("2026-01-02T00:00:00Z") });
    expect(observePod(pending).node).toBeUndefined();
  });
});

describe("what the driver makes is owned by the template's owner ConfigMap", () => {
  const owner = { apiVersion: "v1", kind: "ConfigMap", name: "infera-engine-owner", uid: "0b1c" };
  const withPdb = parseEnginePodTemplate(`${TEMPLATE_YAML}\npodDisruptionBudget: { maxUnavailable: 1 }\nownerConfigMap: infera-engine-owner\n`, "t");

  it("the Deployment, its PodDisruptionBudget and the token Secret carry the ownerReference", () => {
    const dep = buildEngineDeployment(llama, 1, withPdb, { namespace: NS, gpuTypes, owner });
    expect(dep.metadata?.ownerReferences).toEqual([owner]);
    expect(buildHfTokenSecret(llama.deploymentId, "hf_x", withPdb, NS, owner).metadata?.ownerReferences).toEqual([owner]);
    const pdb = buildEnginePdb(llama.deploymentId, withPdb, NS, owner);
    expect(pdb?.metadata?.ownerReferences).toEqual([owner]);
    // Same name and the same pod selector as the Deployment.
    expect(pdb?.metadata?.name).toBe(dep.metadata?.name);
    expect(pdb?.spec?.selector?.matchLabels).toEqual(dep.spec?.selector.matchLabels);
    expect(pdb?.spec?.maxUnavailable).toBe(1);
  });

  it("no PodDisruptionBudget when the template asks for none", () => {
    expect(buildEnginePdb(llama.deploymentId, template, NS)).toBeUndefined();
  });
});

describe("gpuCapacityOf: which nodes hold a GPU type", () => {
  const node = (
    name: string,
    labels: Record<string, string>,
    gpus: string,
    extra: { taints?: V1Node["spec"] extends infer S ? (S extends { taints?: infer T } ? T : never) : never; unschedulable?: boolean } = {},
  ): V1Node => ({
    metadata: { name, labels },
    spec: { taints: extra.taints, unschedulable: extra.unschedulable },
    status: { allocatable: { cpu: "96", "nvidia.com/gpu": gpus } },
  });
  const h100 = { "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3" };
  const gpuTaint = { key: "nvidia.com/gpu", effect: "NoSchedule" };

  it("counts nodes matching the nodeSelector whose taints the type tolerates, and the most GPUs on one", () => {
    const cap = gpuCapacityOf(
      [
        node("h100-0", h100, "8", { taints: [gpuTaint] }),
        node("h100-1", h100, "4", { taints: [gpuTaint] }),
        node("h100-cordoned", h100, "8", { unschedulable: true }),
        node("h100-reserved", h100, "8", { taints: [gpuTaint, { key: "reserved", value: "team-a", effect: "NoSchedule" }] }),
        node("cpu-0", {}, "0"),
        node("a100-0", { "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB" }, "8"),
      ],
      gpuTypes,
      template,
      1000,
    );
    expect(cap.get("H100-80GB")).toEqual({ nodes: 2, maxPerNode: 8, allocatable: 12, at: 1000 });
    expect(cap.get("A100-80GB")).toEqual({ nodes: 1, maxPerNode: 8, allocatable: 8, at: 1000 });
  });

  it("a type no node matches has none", () => {
    expect(gpuCapacityOf([node("cpu-0", {}, "0")], gpuTypes, template, 0).get("H100-80GB")).toEqual({ nodes: 0, maxPerNode: 0, allocatable: 0, at: 0 });
  });
});

describe("engine pods are locked down, whatever the template or the deployment asks", () => {
  // A template an operator loosened, and a deployment that tries to move the engine off localhost.
  const loose = parseEnginePodTemplate(
    TEMPLATE_YAML.replace(
      "    runtimeClassName: nvidia",
      "    runtimeClassName: nvidia\n    automountServiceAccountToken: true\n    hostNetwork: true",
    ).replace(
      '        image: "vllm/vllm-openai:v0.11.0"\n',
      '        image: "vllm/vllm-openai:v0.11.0"\n        securityContext: { runAsUser: 0, privileged: true, allowPrivilegeEscalation: true, capabilities: { add: [SYS_ADMIN] } }\n',
    ),
    "loose template",
  );
  const dep = buildEngineDeployment({ ...llama, extraArgs: ["--host", "0.0.0.0"] }, 1, loose, { namespace: NS, gpuTypes });
  const pod = dep.spec?.template.spec;

  it("no service-account token, no host namespaces, RuntimeDefault seccomp, non-root pod", () => {
    // (The template did ask for them.)
    expect(loose.template.spec).toMatchObject({ automountServiceAccountToken: true, hostNetwork: true });
    expect(loose.template.spec?.containers[0]?.securityContext).toMatchObject({ runAsUser: 0, privileged: true });
    expect(pod?.automountServiceAccountToken).toBe(false);
    expect(pod?.hostNetwork).toBe(false);
    expect(pod?.securityContext).toEqual({ runAsNonRoot: true, fsGroup: 1000, seccompProfile: { type: "RuntimeDefault" } });
  });

  it("every container: non-root (engine as 1000), no privilege escalation, every capability dropped", () => {
    for (const c of pod?.containers ?? []) {
      expect(c.securityContext, c.name).toMatchObject({
        runAsNonRoot: true,
        allowPrivilegeEscalation: false,
        privileged: false,
        capabilities: { drop: ["ALL"] },
        seccompProfile: { type: "RuntimeDefault" },
      });
      expect(c.securityContext?.runAsUser, c.name).toBeGreaterThan(0);
    }
    expect(container(dep, "engine").securityContext?.runAsUser).toBe(1000);
    expect(container(dep, "engine").securityContext?.capabilities?.add).toBeUndefined();
  });

  it("the engine's address is 127.0.0.1 even when extra args ask for another (the last flag wins)", () => {
    const args = container(dep, "engine").args ?? [];
    expect(args.slice(-2)).toEqual(["--host", "127.0.0.1"]);
    expect(args.lastIndexOf("--host")).toBe(args.length - 2);
  });

  it("HOME and the caches are writable volumes for a non-root engine: HOME an emptyDir, the hub cache on the model cache", () => {
    const engine = container(dep, "engine");
    expect(env(engine, "HOME")?.value).toBe("/home/engine");
    expect(env(engine, "HF_HUB_CACHE")?.value).toBe("/root/.cache/huggingface/hub");
    expect(env(engine, "HUGGINGFACE_HUB_CACHE")?.value).toBe("/root/.cache/huggingface/hub");
    expect(env(engine, "USER")?.value).toBe("engine");
    expect(engine.volumeMounts).toContainEqual({ name: "engine-home", mountPath: "/home/engine" });
    expect(pod?.volumes).toContainEqual({ name: "engine-home", emptyDir: {} });
  });
});
