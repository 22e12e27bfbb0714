/**
 * The kubernetes runtime driver: the manifest it builds (field by field, and strictly
 * decoded into the real Kubernetes Go types by tools/k8s-validate), how pods map to replica
 * phases, and its API calls at the HTTP boundary against a fake API server.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { KubeConfig, type V1Container, type V1Deployment, type V1EnvVar, type V1Pod, type V1Secret } from "@kubernetes/client-node";
import { PlatformError } from "@infera/core";
import type { ReplicaSpec } from "./driver.ts";
import {
  buildEngineDeployment,
  buildHfTokenSecret,
  engineDeploymentName,
  hfTokenSecretName,
  KubernetesRuntimeDriver,
  observePod,
  parseEnginePodTemplate,
  parseGpuTypes,
  type EnginePodTemplate,
} from "./kubernetes.ts";

const REPO_ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
const VALIDATOR = join(REPO_ROOT, "tools/k8s-validate/bin/k8s-validate");

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

/** Strictly decodes wire JSON into the Kubernetes Go types (unknown fields/wrong types fail). */
function validateStrict(objects: readonly unknown[]): { ok: boolean; output: string } {
  if (!existsSync(VALIDATOR)) {
    throw new Error(
      `${VALIDATOR} is missing: run deploy/chart-check.sh once (it builds the validator), ` + "or: cd tools/k8s-validate && go build -o bin/k8s-validate .",
    );
  }
  const input = objects.map((o) => JSON.stringify(o)).join("\n---\n");
  const r = spawnSync(VALIDATOR, [], { input, encoding: "utf8" });
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
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

  it("runs vLLM with the model, revision, served name, batch size, TP size, drain timeout, then extraArgs", () => {
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
    const r = validateStrict([secret]);
    expect(r.ok, r.output).toBe(true);
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

  it("is accepted by strict decoding into the Kubernetes Go types", () => {
    const r = validateStrict([dep]);
    expect(r.output).toContain("Deployment=1");
    expect(r.ok, r.output).toBe(true);
  });

  it("and the strict validator does catch a wrong field (the check can fail)", () => {
    const broken = structuredClone(dep) as unknown as { spec: { template: { spec: Record<string, unknown> } } };
    broken.spec.template.spec.nodeSelectors = { a: "b" };
    const r = validateStrict([broken]);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/Deployment "infera-engine-dep-7f3a9c".*unknown field "spec.template.spec.nodeSelectors"/);
  });

  it("builds TGI with its own image and flags", () => {
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
    ]);
    expect(c.resources?.limits?.["nvidia.com/gpu"]).toBe("2");
    expect(validateStrict([tgi]).ok).toBe(true);
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
    expect(validateStrict([d]).ok).toBe(true);
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
    expect(env(c, "HOST")?.value).toBe("0.0.0.0");
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
});

// ---------------------------------------------------------------------------------------
// The driver against a fake API server.

interface Recorded {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage["headers"];
  body: unknown;
}

class FakeApiServer {
  readonly requests: Recorded[] = [];
  readonly deployments = new Map<string, V1Deployment>();
  readonly secrets = new Map<string, V1Secret>();
  pods: V1Pod[] = [];
  /** Status codes to answer the next matching "METHOD kind" requests with, once each. */
  failNext = new Map<string, { code: number; reason: string; message: string }>();
  private version = 1;
  private server: Server | undefined;
  url = "";

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    const addr = this.server.address();
    if (addr === null || typeof addr === "string") throw new Error("no address");
    this.url = `http://127.0.0.1:${addr.port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  reset(): void {
    this.requests.length = 0;
    this.deployments.clear();
    this.secrets.clear();
    this.pods = [];
    this.failNext.clear();
  }

  private send(res: ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  }

  private status(res: ServerResponse, code: number, reason: string, message: string): void {
    this.send(res, code, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url ?? "/", "http://x");
    const body: unknown = text ? JSON.parse(text) : undefined;
    const method = req.method ?? "GET";
    this.requests.push({ method, path: url.pathname, query: url.searchParams, headers: req.headers, body });

    const depMatch = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/deployments(?:\/([^/]+))?$/.exec(url.pathname);
    const podMatch = /^\/api\/v1\/namespaces\/([^/]+)\/pods$/.exec(url.pathname);
    const secretMatch = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/.exec(url.pathname);
    const kind = depMatch ? "deployments" : podMatch ? "pods" : secretMatch ? "secrets" : "other";
    const injected = this.failNext.get(`${method} ${kind}`);
    if (injected) {
      this.failNext.delete(`${method} ${kind}`);
      return this.status(res, injected.code, injected.reason, injected.message);
    }
    if (depMatch) {
      const name = depMatch[2];
      const existing = name ? this.deployments.get(name) : undefined;
      if (method === "GET" && name) {
        return existing ? this.send(res, 200, existing) : this.status(res, 404, "NotFound", `deployments.apps "${name}" not found`);
      }
      if (method === "POST" && !name) {
        const dep = body as V1Deployment;
        const n = dep.metadata?.name ?? "";
        if (this.deployments.has(n)) return this.status(res, 409, "AlreadyExists", `deployments.apps "${n}" already exists`);
        const stored = { ...dep, metadata: { ...dep.metadata, resourceVersion: String(this.version++), uid: `uid-${n}` } };
        this.deployments.set(n, stored);
        return this.send(res, 201, stored);
      }
      if (method === "PUT" && name) {
        if (!existing) return this.status(res, 404, "NotFound", `deployments.apps "${name}" not found`);
        const dep = body as V1Deployment;
        if (dep.metadata?.resourceVersion !== existing.metadata?.resourceVersion) {
          return this.status(res, 409, "Conflict", "the object has been modified; please apply your changes to the latest version");
        }
        const stored = { ...dep, metadata: { ...dep.metadata, resourceVersion: String(this.version++) } };
        this.deployments.set(name, stored);
        return this.send(res, 200, stored);
      }
      if (method === "DELETE" && name) {
        if (!existing) return this.status(res, 404, "NotFound", `deployments.apps "${name}" not found`);
        this.deployments.delete(name);
        return this.send(res, 200, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success" });
      }
    }
    if (secretMatch) {
      const name = secretMatch[2];
      const existing = name ? this.secrets.get(name) : undefined;
      if (method === "GET" && name) {
        return existing ? this.send(res, 200, existing) : this.status(res, 404, "NotFound", `secrets "${name}" not found`);
      }
      if (method === "POST" && !name) {
        const sec = body as V1Secret;
        const n = sec.metadata?.name ?? "";
        if (this.secrets.has(n)) return this.status(res, 409, "AlreadyExists", `secrets "${n}" already exists`);
        const stored = { ...sec, metadata: { ...sec.metadata, resourceVersion: String(this.version++) } };
        this.secrets.set(n, stored);
        return this.send(res, 201, stored);
      }
      if (method === "PUT" && name) {
        if (!existing) return this.status(res, 404, "NotFound", `secrets "${name}" not found`);
        const sec = body as V1Secret;
        if (sec.metadata?.resourceVersion !== existing.metadata?.resourceVersion) {
          return this.status(res, 409, "Conflict", "the object has been modified; please apply your changes to the latest version");
        }
        const stored = { ...sec, metadata: { ...sec.metadata, resourceVersion: String(this.version++) } };
        this.secrets.set(name, stored);
        return this.send(res, 200, stored);
      }
      if (method === "DELETE" && name) {
        if (!existing) return this.status(res, 404, "NotFound", `secrets "${name}" not found`);
        this.secrets.delete(name);
        return this.send(res, 200, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success" });
      }
    }
    if (podMatch && method === "GET") {
      const selector = url.searchParams.get("labelSelector") ?? "";
      const wanted = selector
        .split(",")
        .filter(Boolean)
        .map((kv) => kv.split("=") as [string, string]);
      const items = this.pods.filter((p) => wanted.every(([k, v]) => p.metadata?.labels?.[k] === v));
      return this.send(res, 200, { kind: "PodList", apiVersion: "v1", metadata: { resourceVersion: "9" }, items });
    }
    return this.status(res, 404, "NotFound", `no route for ${method} ${url.pathname}`);
  }
}

describe("KubernetesRuntimeDriver against a fake API server", () => {
  const api = new FakeApiServer();
  let dir = "";
  let driver: KubernetesRuntimeDriver;

  beforeAll(async () => {
    await api.start();
    dir = mkdtempSync(join(tmpdir(), "infera-k8s-"));
    const kubeconfigPath = join(dir, "kubeconfig");
    writeFileSync(
      kubeconfigPath,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        // client-node refuses plain http unless TLS verification is "skipped".
        clusters: [{ name: "fake", cluster: { server: api.url, "insecure-skip-tls-verify": true } }],
        users: [{ name: "scheduler", user: { token: "test-token" } }],
        contexts: [{ name: "fake", context: { cluster: "fake", user: "scheduler", namespace: NS } }],
        "current-context": "fake",
      }),
    );
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(kubeconfigPath);
    driver = new KubernetesRuntimeDriver({ namespace: NS, template, gpuTypes, kubeConfig });
  });

  afterAll(async () => {
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => api.reset());

  const depPath = `/apis/apps/v1/namespaces/${NS}/deployments`;
  const secretPath = `/api/v1/namespaces/${NS}/secrets`;
  const TOKEN = "hf_wireSecretToken42";
  const withToken: ReplicaSpec = { ...llama, hfToken: TOKEN };
  const decoded = (s: V1Secret | undefined) => Buffer.from(s?.data?.token ?? "", "base64").toString("utf8");

  it("apply with a token writes the Secret before the Deployment, which only references it", async () => {
    await driver.apply(withToken, 1);
    expect(api.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET ${secretPath}/infera-hf-dep-7f3a9c`,
      `POST ${secretPath}`,
      `GET ${depPath}/infera-engine-dep-7f3a9c`,
      `POST ${depPath}`,
    ]);
    const secret = api.requests[1]?.body as V1Secret;
    expect(secret.type).toBe("Opaque");
    expect(secret.metadata?.name).toBe("infera-hf-dep-7f3a9c");
    expect(secret.metadata?.labels).toMatchObject({ "app.kubernetes.io/managed-by": "infera", "infera.dev/deployment-id": "dep-7f3a9c" });
    expect(decoded(secret)).toBe(TOKEN);
    expect(validateStrict([secret]).ok).toBe(true);
    const dep = api.requests[3]?.body as V1Deployment;
    expect(env(container(dep, "engine"), "HF_TOKEN")?.valueFrom?.secretKeyRef).toEqual({ name: "infera-hf-dep-7f3a9c", key: "token" });
    for (const r of [api.requests[2], api.requests[3]]) {
      const wire = JSON.stringify(r?.body ?? "");
      expect(wire).not.toContain(TOKEN);
      expect(wire).not.toContain(Buffer.from(TOKEN).toString("base64"));
    }
  });

  it("apply again replaces the Secret (live resourceVersion), then the Deployment", async () => {
    await driver.apply(withToken, 1);
    api.requests.length = 0;
    const live = api.secrets.get("infera-hf-dep-7f3a9c")?.metadata?.resourceVersion;
    await driver.apply({ ...withToken, hfToken: "hf_rotated" }, 2);
    expect(api.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET ${secretPath}/infera-hf-dep-7f3a9c`,
      `PUT ${secretPath}/infera-hf-dep-7f3a9c`,
      `GET ${depPath}/infera-engine-dep-7f3a9c`,
      `PUT ${depPath}/infera-engine-dep-7f3a9c`,
    ]);
    expect((api.requests[1]!.body as V1Secret).metadata?.resourceVersion).toBe(live);
    expect(decoded(api.secrets.get("infera-hf-dep-7f3a9c"))).toBe("hf_rotated");
    expect(api.deployments.get("infera-engine-dep-7f3a9c")?.spec?.replicas).toBe(2);
    expect(JSON.stringify([...api.deployments.values()])).not.toContain("hf_rotated");
  });

  it("remove deletes the token Secret with the Deployment", async () => {
    await driver.apply(withToken, 1);
    expect(api.secrets.size).toBe(1);
    api.requests.length = 0;
    await driver.remove("dep-7f3a9c");
    expect(api.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      `DELETE ${depPath}/infera-engine-dep-7f3a9c`,
      `DELETE ${secretPath}/infera-hf-dep-7f3a9c`,
    ]);
    expect(api.secrets.size).toBe(0);
    expect(api.deployments.size).toBe(0);
  });

  it("apply refuses to overwrite a Secret of that name it did not write, and writes no Deployment", async () => {
    api.secrets.set("infera-hf-dep-7f3a9c", {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "infera-hf-dep-7f3a9c", resourceVersion: "1" },
      data: { token: Buffer.from("operator's").toString("base64") },
    });
    const err: unknown = await driver.apply(withToken, 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PlatformError);
    expect((err as PlatformError).message).toMatch(/Secret infera-hf-dep-7f3a9c exists and is not the platform's/);
    expect((err as PlatformError).message).not.toContain(TOKEN);
    expect(api.requests.map((r) => r.method)).toEqual(["GET"]);
    expect(decoded(api.secrets.get("infera-hf-dep-7f3a9c"))).toBe("operator's");
  });

  it("apply on a fresh cluster: GET 404, then POST the built Deployment", async () => {
    await driver.apply(llama, 1);
    expect(api.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`GET ${depPath}/infera-engine-dep-7f3a9c`, `POST ${depPath}`]);
    const post = api.requests[1];
    expect(post?.headers.authorization).toBe("Bearer test-token");
    // What went over the wire is exactly the built manifest (nothing dropped by the client's serializer).
    const expected: unknown = JSON.parse(JSON.stringify(buildEngineDeployment(llama, 1, template, { namespace: NS, gpuTypes })));
    expect(post?.body).toEqual(expected);
    const r = validateStrict([post?.body]);
    expect(r.ok, r.output).toBe(true);
  });

  it("apply again scales with a PUT carrying the live resourceVersion", async () => {
    await driver.apply(llama, 1);
    api.requests.length = 0;
    const live = api.deployments.get("infera-engine-dep-7f3a9c")?.metadata?.resourceVersion;
    expect(live).toBeDefined();
    await driver.apply(llama, 3);
    expect(api.requests.map((r) => r.method)).toEqual(["GET", "PUT"]);
    const put = api.requests[1]?.body as V1Deployment;
    expect(put.spec?.replicas).toBe(3);
    expect(put.metadata?.resourceVersion).toBe(live);
    expect(api.deployments.get("infera-engine-dep-7f3a9c")?.spec?.replicas).toBe(3);
  });

  it("apply retries once on a write conflict", async () => {
    await driver.apply(llama, 1);
    api.requests.length = 0;
    api.failNext.set("PUT deployments", { code: 409, reason: "Conflict", message: "the object has been modified" });
    await driver.apply(llama, 2);
    expect(api.requests.map((r) => r.method)).toEqual(["GET", "PUT", "GET", "PUT"]);
    expect(api.deployments.get("infera-engine-dep-7f3a9c")?.spec?.replicas).toBe(2);
  });

  it("apply surfaces a forbidden create as a non-retryable PlatformError with the API's message", async () => {
    api.failNext.set("POST deployments", {
      code: 403,
      reason: "Forbidden",
      message: 'deployments.apps is forbidden: User "system:serviceaccount:infera:x" cannot create resource',
    });
    const err: unknown = await driver.apply(llama, 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PlatformError);
    expect((err as PlatformError).retryable).toBe(false);
    expect((err as PlatformError).message).toMatch(/HTTP 403: deployments.apps is forbidden/);
  });

  it("observe lists the deployment's pods by label and maps their states", async () => {
    const labels = { "app.kubernetes.io/managed-by": "infera", "infera.dev/deployment-id": "dep-7f3a9c" };
    const mine = ["running", "pull", "crash", "unschedulable"].map((k) => {
      const p = structuredClone(POD_FIXTURES[k]) as V1Pod;
      p.metadata = { ...p.metadata, labels };
      return p;
    });
    const other = structuredClone(POD_FIXTURES.running) as V1Pod;
    other.metadata = { name: "someone-else", labels: { ...labels, "infera.dev/deployment-id": "dep-other" } };
    api.pods = [...mine, other];

    const obs = await driver.observe("dep-7f3a9c");
    const req = api.requests[0];
    expect(`${req?.method} ${req?.path}`).toBe(`GET /api/v1/namespaces/${NS}/pods`);
    expect(req?.query.get("labelSelector")).toBe("app.kubernetes.io/managed-by=infera,infera.dev/deployment-id=dep-7f3a9c");
    expect(obs).toEqual([
      { replicaId: "p-crash", phase: "failed", restarts: 5, reason: "engine: CrashLoopBackOff after 5 restarts (last exit code 1, Error)" },
      { replicaId: "p-pull", phase: "failed", restarts: 0, reason: 'engine: ImagePullBackOff: Back-off pulling image "vllm/vllm-openai:nope"' },
      { replicaId: "p-running", phase: "running", restarts: 1 },
      { replicaId: "p-unsched", phase: "pending", restarts: 0, reason: "Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu." },
    ]);
  });

  it("remove deletes the Deployment in the background, then the token Secret, and is idempotent", async () => {
    await driver.apply(llama, 1);
    api.requests.length = 0;
    await driver.remove("dep-7f3a9c");
    await driver.remove("dep-7f3a9c");
    // No Secret was written (llama has no token): its 404 is fine, as is the second Deployment 404.
    expect(api.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      `DELETE ${depPath}/infera-engine-dep-7f3a9c`,
      `DELETE ${secretPath}/infera-hf-dep-7f3a9c`,
      `DELETE ${depPath}/infera-engine-dep-7f3a9c`,
      `DELETE ${secretPath}/infera-hf-dep-7f3a9c`,
    ]);
    const del = api.requests[0];
    const policy = del?.query.get("propagationPolicy") ?? (del?.body as { propagationPolicy?: string } | undefined)?.propagationPolicy;
    expect(policy).toBe("Background");
    expect(api.deployments.size).toBe(0);
  });
});
