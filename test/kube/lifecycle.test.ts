/**
 * A custom LLM's whole lifecycle on a real Kubernetes control plane (etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler of the pinned release; kwok nodes with GPUs): the
 * chart installed with `helm install --wait` (production profile), the scheduler and the
 * gateway run on this host from the chart's own Deployments (env from the real Secrets and
 * ConfigMaps, migrations by their init container, the scheduler with a token of the chart's
 * ServiceAccount, so the chart's Role is what the API server enforces), engine-sim + agent
 * processes standing in for the containers of each engine pod kwok runs.
 *
 * POST /deploy/llm → engine Deployment, PDB and token Secret made → pod placed by the real
 * kube-scheduler on the GPU type's nodes → running → chat; its engine's and agent's logs
 * through the API server's pods/log (tail, one replica, follow); settings and the autoscaler
 * change replicas; stop → 0; start; too few GPUs: deploying with the scheduler's own words;
 * a pod that cannot pull its image or crash-loops → failed with the reason; a GPU type no
 * node has or num_gpus above any node's → 400 naming the field, nothing created; DELETE →
 * every object gone; `helm test` passes against the gateway; `helm uninstall` leaves no
 * engine behind.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import OpenAI from "openai";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ADMIN_URL,
  freePort,
  runHostEngines,
  runHostPods,
  startFromDeployment,
  startKube,
  testRedisPrefix,
  flushPrefix,
  TEST_REDIS_URL,
  type HostEngines,
  type HostPods,
  type HostProcess,
  type KubeCluster,
  keepsHolding,
  waitFor,
} from "@infera/testkit";
import { engineDeploymentName } from "../../services/scheduler/src/runtime/kubernetes-manifest.ts";
import { CHART, PRODUCTION_SECRETS, applyPrometheusCrds, gpuNodes, installGpuRuntimeClass, KUBE_POLL_MS, namespaceReport } from "./kit.ts";

const NS = "infera";
const HF_TOKEN = "hf_kubeLifecycleTokenNeverShown";
/** The weights a vLLM engine loads (it downloads them at start; kwok runs no engine). */
const HF = { repo: "meta-llama/Meta-Llama-3-8B-Instruct" };

let kube: KubeCluster;
let hostPods: HostPods;
let engines: HostEngines;
let scheduler: HostProcess;
let gateway: HostProcess;
let gatewayUrl = "";
let adminKey = "";
let dbName = "";
let redisPrefix = "";

interface DeploymentOut {
  deploy_id: string;
  model_name: string;
  status: string;
  fail_reason: string | null;
  status_message: string | null;
  instances: { running: number; pending: number };
}
interface ErrorOut {
  error: { message: string; param: string | null };
}

interface ReplicasOut {
  runtime: string | null;
  data: { replica_id: string; phase: string; ready: boolean; reason: string | null; node: string | null; gpu: string | null; num_gpus: number | null }[];
}

async function api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(`${gatewayUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminKey}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as T };
}

async function k8s<T>(path: string): Promise<{ status: number; body: T }> {
  const r = await kube.api<T>("GET", path);
  return { status: r.status, body: r.body };
}

interface Obj {
  metadata: { name: string; uid: string; ownerReferences?: { kind: string; name: string; uid: string }[]; deletionTimestamp?: string };
}
interface DeploymentObj extends Obj {
  spec: { replicas: number; template: { spec: { priorityClassName?: string; tolerations?: { key?: string }[]; nodeSelector?: Record<string, string> } } };
  status?: { readyReplicas?: number };
}
interface PodObj extends Obj {
  spec: {
    nodeName?: string;
    priority?: number;
    priorityClassName?: string;
    containers: { name: string; resources?: { limits?: Record<string, string> }; env?: { name: string; valueFrom?: { secretKeyRef?: { name: string } } }[] }[];
  };
  status: { phase?: string; conditions?: { type: string; status: string; message?: string }[] };
}

/** The engine objects of one deployment (found by its label), pods included. */
async function engineObjects(id: string) {
  const sel = `labelSelector=${encodeURIComponent(`app.kubernetes.io/managed-by=infera,infera.dev/deployment-id=${id}`)}`;
  const [deps, pdbs, secrets, pods] = await Promise.all([
    k8s<{ items: DeploymentObj[] }>(`/apis/apps/v1/namespaces/${NS}/deployments?${sel}`),
    k8s<{ items: Obj[] }>(`/apis/policy/v1/namespaces/${NS}/poddisruptionbudgets?${sel}`),
    k8s<{ items: Obj[] }>(`/api/v1/namespaces/${NS}/secrets?${sel}`),
    k8s<{ items: PodObj[] }>(`/api/v1/namespaces/${NS}/pods?${sel}`),
  ]);
  return {
    deployments: deps.body.items,
    pdbs: pdbs.body.items,
    secrets: secrets.body.items,
    pods: pods.body.items.filter((p) => !p.metadata.deletionTimestamp),
  };
}

/** The namespace's objects and events, the scheduler's and the engines' last lines. */
async function why(): Promise<string> {
  return `${await namespaceReport(kube, NS)}\n--- scheduler\n${scheduler.output().slice(-4000)}\n--- host engines\n${engines.output().slice(-2000)}`;
}

async function waitStatus(id: string, status: string, timeoutMs = 60_000): Promise<DeploymentOut> {
  let last: DeploymentOut | undefined;
  await waitFor(
    `deployment ${id} ${status}`,
    async () => {
      last = (await api<DeploymentOut>("GET", `/deploy/${id}`)).json;
      return last.status === status;
    },
    { timeoutMs, intervalMs: KUBE_POLL_MS, diagnose: async () => `${JSON.stringify(last)}\n${await why()}` },
  );
  return last!;
}

/** A deployment that waits for its pods, saying why (status_message). */
async function waitDeployingWithMessage(id: string): Promise<DeploymentOut> {
  let d: DeploymentOut | undefined;
  await waitFor(
    `deployment ${id} deploying, with a status message`,
    async () => {
      d = (await api<DeploymentOut>("GET", `/deploy/${id}`)).json;
      return d.status === "deploying" && d.status_message !== null;
    },
    { timeoutMs: 60_000, intervalMs: KUBE_POLL_MS, diagnose: async () => `${JSON.stringify(d)}\n${await why()}` },
  );
  return d!;
}

async function deploy(body: Record<string, unknown>): Promise<string> {
  const r = await api<{ deploy_id: string } & ErrorOut>("POST", "/deploy/llm", body);
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  return r.json.deploy_id;
}

beforeAll(async () => {
  kube = await startKube({ label: "lifecycle", nodes: gpuNodes() });
  hostPods = runHostPods(kube, { namespaces: [NS] });
  await applyPrometheusCrds(kube);
  await installGpuRuntimeClass(kube);
  // An empty database: the migrate init container is what makes the schema.
  dbName = `infera_kube_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.end();
  const dbUrl = new URL(ADMIN_URL);
  dbUrl.pathname = `/${dbName}`;
  redisPrefix = testRedisPrefix("kube");
  adminKey = `sk-infera-${randomBytes(16).toString("hex")}`;
  expect((await kube.kubectl(["create", "namespace", NS])).status).toBe(0);
  // What values-gpu-production.yaml expects to exist: here they point at this machine's Postgres and Redis.
  for (const [name, kv] of Object.entries(PRODUCTION_SECRETS({ databaseUrl: dbUrl.toString(), redisUrl: TEST_REDIS_URL, adminKey }))) {
    const r = await kube.kubectl(["-n", NS, "create", "secret", "generic", name, ...Object.entries(kv).map(([k, v]) => `--from-literal=${k}=${v}`)]);
    expect(r.status, r.stderr).toBe(0);
  }
  const install = await kube.helm(
    [
      "install",
      "infera",
      CHART,
      "-n",
      NS,
      "--wait",
      "--timeout",
      "120s",
      "-f",
      `${CHART}/values-gpu-production.yaml`,
      "--set",
      `global.redisPrefix=${redisPrefix}`,
      // The agent logs each request it serves at debug: the /logs test follows one.
      "--set",
      "agent.logLevel=debug",
      // A GPU type the cluster has no node for (the deploy API must refuse it).
      "--set-json",
      `gpuTypes=${JSON.stringify([
        {
          name: "H100-80GB",
          count: 16,
          nodeSelector: { "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "node-pool": "gpu-h100" },
          tolerations: [
            { key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" },
            { key: "node-pool", operator: "Equal", value: "gpu-h100", effect: "NoSchedule" },
          ],
        },
        {
          name: "A100-80GB",
          count: 8,
          nodeSelector: { "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "node-pool": "gpu-a100" },
          tolerations: [
            { key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" },
            { key: "node-pool", operator: "Equal", value: "gpu-a100", effect: "NoSchedule" },
          ],
        },
        { name: "L4", count: 8, nodeSelector: { "nvidia.com/gpu.product": "NVIDIA-L4" } },
      ])}`,
    ],
    { timeoutMs: 180_000 },
  );
  expect(install.status, install.stderr).toBe(0);
  const port = await freePort();
  gatewayUrl = `http://127.0.0.1:${port}`;
  // Both from the chart's Deployments; only their listening addresses change.
  scheduler = await startFromDeployment(kube, {
    namespace: NS,
    deployment: "infera-scheduler",
    container: "scheduler",
    overrides: { METRICS_HOST: "127.0.0.1", METRICS_PORT: String(await freePort()), RECONCILE_MS: "500", SCHEDULER_ID: "host-scheduler-0" },
  });
  gateway = await startFromDeployment(kube, {
    namespace: NS,
    deployment: "infera-gateway",
    container: "gateway",
    overrides: { HOST: "127.0.0.1", PORT: String(port) },
  });
  engines = runHostEngines(kube, { namespace: NS });
  hostPods.serve("infera-gateway:80", `127.0.0.1:${port}`);
  await waitFor("the gateway /healthz", async () => (await fetch(`${gatewayUrl}/healthz`)).ok, {
    timeoutMs: 60_000,
    intervalMs: KUBE_POLL_MS,
    diagnose: () => gateway.output().slice(-3000),
  });
  // The scheduler has read the GPU nodes (its ClusterRole) once the deploy API counts them.
  await waitFor(
    "GPU capacity from the nodes",
    async () => {
      const r = await api<{ gpus: { gpu: string; total: number | null }[] }>("GET", "/deploy/llm/gpu_availability");
      return r.json.gpus.find((g) => g.gpu === "A100-80GB")?.total === 8 && r.json.gpus.find((g) => g.gpu === "L4")?.total === 0;
    },
    { timeoutMs: 60_000, intervalMs: KUBE_POLL_MS, diagnose: () => scheduler.output().slice(-3000) },
  );
}, 2_700_000); // a first run on a machine builds the control plane (tools/kube/build.sh)

afterAll(async () => {
  await Promise.allSettled([engines?.stop(), hostPods?.stop()]);
  await Promise.allSettled([gateway?.stop(), scheduler?.stop()]);
  await kube?.stop();
  if (dbName) {
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
  }
  if (redisPrefix) await flushPrefix(redisPrefix);
}, 120_000);

describe("a custom LLM on Kubernetes, driven by the scheduler with the chart's RBAC", () => {
  let llama = "";

  it("POST /deploy/llm: the engine Deployment, its PDB and token Secret are made, owned by the release; the pod lands on an H100 node", async () => {
    llama = await deploy({
      model_name: "llama-h100",
      gpu: "H100-80GB",
      num_gpus: 2,
      hf: { ...HF, token: HF_TOKEN },
      settings: { min_instances: 1, max_instances: 2 },
    });
    let objs = await engineObjects(llama);
    await waitFor(
      "engine objects",
      async () => {
        objs = await engineObjects(llama);
        return objs.deployments.length === 1 && objs.pdbs.length === 1 && objs.secrets.length === 1 && objs.pods.some((p) => p.spec.nodeName);
      },
      { timeoutMs: 30_000, intervalMs: KUBE_POLL_MS, diagnose: why },
    );
    const owner = (await k8s<Obj>(`/api/v1/namespaces/${NS}/configmaps/infera-engine-owner`)).body;
    for (const o of [...objs.deployments, ...objs.pdbs, ...objs.secrets]) {
      expect(o.metadata.ownerReferences, o.metadata.name).toEqual([
        expect.objectContaining({ kind: "ConfigMap", name: "infera-engine-owner", uid: owner.metadata.uid }),
      ]);
    }
    const pod = objs.pods.find((p) => p.spec.nodeName)!;
    // Placed by kube-scheduler on the GPU type's pool, with the GPUs asked for and the priority class resolved by admission.
    expect(["h100-0", "h100-1"]).toContain(pod.spec.nodeName);
    const engine = pod.spec.containers.find((c) => c.name === "engine")!;
    expect(engine.resources?.limits?.["nvidia.com/gpu"]).toBe("2");
    expect(pod.spec.priorityClassName).toBe(`${NS}-infera-engine`);
    expect(pod.spec.priority).toBe(1_000_000);
    // The token lives only in its Secret; the pod references it.
    expect(engine.env?.find((e) => e.name === "HF_TOKEN")?.valueFrom?.secretKeyRef?.name).toBe(objs.secrets[0]?.metadata.name);
    const secret = (await k8s<{ data: Record<string, string> }>(`/api/v1/namespaces/${NS}/secrets/${objs.secrets[0]!.metadata.name}`)).body;
    expect(Buffer.from(secret.data.token ?? "", "base64").toString()).toBe(HF_TOKEN);
    expect(JSON.stringify(objs.deployments[0])).not.toContain(HF_TOKEN);
  }, 90_000);

  it("reaches running (the agent beside the engine reports healthy) and answers a chat completion through the gateway", async () => {
    const d = await waitStatus(llama, "running", 90_000);
    expect(d.instances.running).toBe(1);
    expect(d.status_message).toBeNull();
    const openai = new OpenAI({ apiKey: adminKey, baseURL: `${gatewayUrl}/v1/openai`, maxRetries: 0, timeout: 30_000 });
    const chat = await openai.chat.completions.create({ model: "admin/llama-h100", messages: [{ role: "user", content: "Hello" }], max_tokens: 8 });
    expect(chat.object).toBe("chat.completion");
    expect(chat.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(chat.usage?.completion_tokens).toBeGreaterThan(0);
  }, 120_000);

  it("GET /deploy/{id}/logs: its pod's engine and agent lines, read by the scheduler through the API server's pods/log (kwok serves the containers' output)", async () => {
    const pod = (await engineObjects(llama)).pods[0]!.metadata.name;
    const get = (query: string) => fetch(`${gatewayUrl}/deploy/${llama}/logs?${query}`, { headers: { authorization: `Bearer ${adminKey}` } });
    type Line = { replica_id: string; source: string; line: string };
    let lines: Line[] = [];
    // The host engine writes its first lines as it starts; kwok's kubelet server reads them from its files.
    await waitFor(
      "the engine's and agent's start-up lines",
      async () => {
        const r = await get("tail=50");
        lines =
          r.status === 200
            ? (await r.text())
                .trim()
                .split("\n")
                .filter(Boolean)
                .map((l) => JSON.parse(l) as Line)
            : [];
        return (
          lines.some((l) => l.source === "engine" && l.line.includes("engine-sim listening")) &&
          lines.some((l) => l.source === "agent" && l.line.includes("agent listening"))
        );
      },
      {
        timeoutMs: 30_000,
        intervalMs: KUBE_POLL_MS,
        diagnose: async () => `${JSON.stringify(lines)}\n${scheduler.output().slice(-3000)}\n--- kwok\n${kube.logTail("kwok")}`,
      },
    );
    // Each line is the pod's (its name is the replica id /replicas shows), as the container wrote it.
    expect(new Set(lines.map((l) => l.replica_id))).toEqual(new Set([pod]));
    expect(JSON.parse(lines.find((l) => l.source === "agent" && l.line.includes("agent listening"))!.line)).toMatchObject({ msg: "agent listening" });
    // tail is per container.
    const two = (await (await get("tail=2&format=text")).text()).trim().split("\n");
    expect(two.filter((l) => l.startsWith(`${pod} engine `)).length).toBeLessThanOrEqual(2);
    expect(two.filter((l) => l.startsWith(`${pod} agent `))).toHaveLength(2);
    // One replica by name; an unknown one is a 404 naming the parameter.
    expect((await get(`replica=${pod}&tail=1`)).status).toBe(200);
    const unknown = await get("replica=no-such-pod");
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as ErrorOut).error.param).toBe("replica");

    // Following: a chat completion sent now shows up in the agent's log as the agent writes it.
    const abort = new AbortController();
    const follow = await fetch(`${gatewayUrl}/deploy/${llama}/logs?tail=0&follow=true&format=text`, {
      headers: { authorization: `Bearer ${adminKey}` },
      signal: abort.signal,
    });
    expect(follow.status).toBe(200);
    let text = "";
    const reader = follow.body!.getReader();
    const pump = (async () => {
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) return;
        text += new TextDecoder().decode(chunk.value);
      }
    })().catch(() => {});
    const openai = new OpenAI({ apiKey: adminKey, baseURL: `${gatewayUrl}/v1/openai`, maxRetries: 0, timeout: 30_000 });
    const { response } = await openai.chat.completions
      .create({ model: "admin/llama-h100", messages: [{ role: "user", content: "follow me" }], max_tokens: 2 })
      .withResponse();
    const requestId = response.headers.get("x-request-id")!;
    try {
      await waitFor("the request's line in the followed log", () => text.includes(requestId), {
        timeoutMs: 30_000,
        intervalMs: 100,
        diagnose: () =>
          `followed so far:\n${text}\n--- the agent's log file\n${readFileSync(engines.logFile(pod, "agent"), "utf8").slice(-2000)}\n--- scheduler\n${scheduler.output().slice(-3000)}\n--- kwok\n${kube.logTail("kwok", 20)}`,
      });
    } finally {
      abort.abort();
      await pump;
    }
    expect(text.split("\n").find((l) => l.includes(requestId))).toMatch(new RegExp(`^${pod} agent `));
  }, 120_000);

  it("PUT settings (min 2): the autoscaler takes the Deployment to 2 replicas, both serving", async () => {
    const r = await api<DeploymentOut>("PUT", `/deploy/${llama}`, { settings: { min_instances: 2, max_instances: 2 } });
    expect(r.status).toBe(200);
    await waitFor(
      "2 replicas running",
      async () => {
        const dep = (await k8s<DeploymentObj>(`/apis/apps/v1/namespaces/${NS}/deployments/${engineDeploymentName(llama)}`)).body;
        const d = (await api<DeploymentOut>("GET", `/deploy/${llama}`)).json;
        return dep.spec.replicas === 2 && (dep.status?.readyReplicas ?? 0) === 2 && d.instances.running === 2;
      },
      { timeoutMs: 90_000, intervalMs: KUBE_POLL_MS, diagnose: why },
    );
    // Two pods, each with its 2 GPUs on an H100 node.
    const pods = (await engineObjects(llama)).pods;
    expect(pods).toHaveLength(2);
    for (const p of pods) expect(["h100-0", "h100-1"]).toContain(p.spec.nodeName);
  }, 120_000);

  it("stop: the Deployment goes to 0 replicas (kept, with its Secret); start: it runs again", async () => {
    expect((await api<DeploymentOut>("POST", `/deploy/${llama}/stop`)).json.status).toBe("stopped");
    await waitFor(
      "0 replicas, no pods",
      async () => {
        const dep = (await k8s<DeploymentObj>(`/apis/apps/v1/namespaces/${NS}/deployments/${engineDeploymentName(llama)}`)).body;
        return dep.spec.replicas === 0 && (await engineObjects(llama)).pods.length === 0;
      },
      { timeoutMs: 60_000, intervalMs: KUBE_POLL_MS, diagnose: why },
    );
    const stopped = await engineObjects(llama);
    expect(stopped.deployments).toHaveLength(1);
    expect(stopped.secrets).toHaveLength(1);
    expect((await api<DeploymentOut>("POST", `/deploy/${llama}/start`)).json.status).toBe("deploying");
    const d = await waitStatus(llama, "running", 90_000);
    // Running means a new replica serves (not the reports the stopped ones left behind).
    expect(d.instances.running).toBeGreaterThan(0);
    const openai = new OpenAI({ apiKey: adminKey, baseURL: `${gatewayUrl}/v1/openai`, maxRetries: 0, timeout: 30_000 });
    const chat = await openai.chat.completions.create({ model: "admin/llama-h100", messages: [{ role: "user", content: "Hello again" }], max_tokens: 4 });
    expect(chat.choices[0]?.message.content?.length).toBeGreaterThan(0);
  }, 180_000);

  it("too few GPUs: the deployment stays deploying and shows why, in kube-scheduler's words; it runs once GPUs free up", async () => {
    // Both A100 nodes (4 GPUs each) taken by one deployment's two replicas …
    const big = await deploy({ model_name: "a100-big", gpu: "A100-80GB", num_gpus: 4, hf: HF, settings: { min_instances: 2, max_instances: 2 } });
    await waitStatus(big, "running", 90_000);
    // /replicas: its pods, the nodes kube-scheduler put them on, their GPUs.
    let serving: ReplicasOut | undefined;
    await waitFor(
      "both replicas ready in /replicas",
      async () => {
        serving = (await api<ReplicasOut>("GET", `/deploy/${big}/replicas`)).json;
        return serving.data.filter((r) => r.ready).length === 2;
      },
      { timeoutMs: 30_000, intervalMs: KUBE_POLL_MS, diagnose: async () => JSON.stringify(serving) },
    );
    expect(serving?.runtime).toBe("kubernetes");
    const bigPods = (await engineObjects(big)).pods;
    for (const r of serving?.data ?? []) {
      expect(r).toMatchObject({ phase: "ready", gpu: "A100-80GB", num_gpus: 4, reason: null });
      expect(r.node).toBe(bigPods.find((p) => p.metadata.name === r.replica_id)?.spec?.nodeName);
    }
    // … so the next one's pod cannot be placed.
    const waiting = await deploy({ model_name: "a100-waits", gpu: "A100-80GB", num_gpus: 4, hf: HF });
    const d = await waitDeployingWithMessage(waiting);
    expect(d.status).toBe("deploying");
    expect(d.status_message).toMatch(/^Unschedulable: 0\/\d+ nodes are available: .*2 Insufficient nvidia\.com\/gpu/);
    const pod = (await engineObjects(waiting)).pods[0];
    const cond = pod?.status.conditions?.find((c) => c.type === "PodScheduled");
    expect(cond?.status).toBe("False");
    expect(d.status_message).toContain(cond?.message);
    // /replicas says the same of its pod: pending, on no node, with the scheduler's message.
    const waitingReplica = (await api<ReplicasOut>("GET", `/deploy/${waiting}/replicas`)).json.data[0];
    expect(waitingReplica).toMatchObject({ phase: "pending", ready: false, node: null });
    expect(waitingReplica?.reason).toContain(cond?.message);
    // Still waiting a while later: it is not failed (watched throughout, not slept through).
    await keepsHolding(
      "the waiting deployment stays deploying",
      async () => (await api<DeploymentOut>("GET", `/deploy/${waiting}`)).json.status === "deploying",
      {
        forMs: 3000,
        intervalMs: KUBE_POLL_MS,
      },
    );
    // Deleting the big one frees an A100 node: the waiting one is placed and runs.
    expect((await api<DeploymentOut>("DELETE", `/deploy/${big}`)).status).toBe(200);
    const ran = await waitStatus(waiting, "running", 120_000);
    expect(ran.status_message).toBeNull();
    expect((await api<DeploymentOut>("DELETE", `/deploy/${waiting}`)).status).toBe(200);
  }, 300_000);

  it("a vLLM deployment without weights (no hf.repo) fails with the reason instead of retrying", async () => {
    const id = await deploy({ model_name: "no-weights", gpu: "H100-80GB", num_gpus: 1 });
    const d = await waitStatus(id, "failed", 30_000);
    expect(d.fail_reason).toBe("a vllm deployment needs hf.repo");
    expect((await engineObjects(id)).deployments).toEqual([]);
  });

  it("a pod whose image cannot be pulled, or that crash-loops, fails the deployment with the reason", async () => {
    const pull = await deploy({ model_name: "bad-image", gpu: "H100-80GB", num_gpus: 1, hf: HF, container_image: "kwok.invalid/pull-error:1" });
    const crash = await deploy({ model_name: "crashes", gpu: "H100-80GB", num_gpus: 1, hf: HF, container_image: "kwok.invalid/crash-loop:1" });
    const a = await waitStatus(pull, "failed", 60_000);
    expect(a.fail_reason).toMatch(/^engine: ErrImagePull: failed to pull and unpack image "kwok\.invalid\/pull-error:1"/);
    const b = await waitStatus(crash, "failed", 60_000);
    expect(b.fail_reason).toMatch(/^engine: CrashLoopBackOff after 4 restarts \(last exit code 1, Error\)/);
    // /replicas keeps the failed view, each replica with why.
    expect((await api<ReplicasOut>("GET", `/deploy/${pull}/replicas`)).json.data[0]).toMatchObject({
      phase: "failed",
      reason: expect.stringContaining("ErrImagePull"),
    });
    expect((await api<ReplicasOut>("GET", `/deploy/${crash}/replicas`)).json.data[0]).toMatchObject({
      phase: "failed",
      reason: expect.stringContaining("exit code 1"),
    });
    // A failed deployment keeps no GPUs: its objects are removed.
    await waitFor(
      "failed deployments' objects gone",
      async () => {
        const [x, y] = [await engineObjects(pull), await engineObjects(crash)];
        return x.deployments.length + y.deployments.length + x.pods.length + y.pods.length === 0;
      },
      { timeoutMs: 30_000, intervalMs: KUBE_POLL_MS, diagnose: why },
    );
  }, 120_000);

  it("a GPU type no node has, or num_gpus above any node's, is a 400 naming the field, and nothing is made", async () => {
    const before = (await api<DeploymentOut[]>("GET", "/deploy/list")).json.length;
    const enginesBefore = (await k8s<{ items: Obj[] }>(`/apis/apps/v1/namespaces/${NS}/deployments?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dinfera`)).body
      .items.length;
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ model_name: "l4", gpu: "L4", num_gpus: 1 }, "gpu", /no node with 'L4' GPUs/],
      [{ model_name: "wide", gpu: "A100-80GB", num_gpus: 8 }, "num_gpus", /8 is more than any 'A100-80GB' node holds \(at most 4\)/],
      [{ model_name: "t4", gpu: "T4", num_gpus: 1 }, "gpu", /not a GPU type this cluster offers/],
    ];
    for (const [body, param, message] of cases) {
      const r = await api<ErrorOut>("POST", "/deploy/llm", body);
      expect(r.status, JSON.stringify(r.json)).toBe(400);
      expect(r.json.error.param).toBe(param);
      expect(r.json.error.message).toMatch(message);
    }
    expect((await api<DeploymentOut[]>("GET", "/deploy/list")).json).toHaveLength(before);
    // Nor does an engine Deployment appear later (the reconciler runs every 500 ms here).
    await keepsHolding(
      "no engine Deployment made",
      async () =>
        (await k8s<{ items: Obj[] }>(`/apis/apps/v1/namespaces/${NS}/deployments?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dinfera`)).body.items.length ===
        enginesBefore,
      { forMs: 1500, intervalMs: KUBE_POLL_MS },
    );
  });

  it('pods the API server refuses to create (no RuntimeClass "nvidia") leave it deploying, saying why', async () => {
    expect((await kube.api("DELETE", "/apis/node.k8s.io/v1/runtimeclasses/nvidia")).status).toBe(200);
    try {
      const id = await deploy({ model_name: "no-runtime", gpu: "H100-80GB", num_gpus: 1, hf: HF });
      const d = await waitDeployingWithMessage(id);
      expect(d.status).toBe("deploying");
      expect(d.status_message).toMatch(/^FailedCreate: pods ".*" is forbidden: pod rejected: RuntimeClass "nvidia" not found/);
      expect((await api<DeploymentOut>("DELETE", `/deploy/${id}`)).status).toBe(200);
    } finally {
      await installGpuRuntimeClass(kube);
    }
  }, 90_000);

  it("helm test passes: its pods call the gateway with the chart's admin key (models list, 401 without a key, a chat completion)", async () => {
    const up = await kube.helm(
      ["upgrade", "infera", CHART, "-n", NS, "--reuse-values", "--set", "tests.chatModel=admin/llama-h100", "--wait", "--timeout", "120s"],
      { timeoutMs: 180_000 },
    );
    expect(up.status, up.stderr).toBe(0);
    const t = await kube.helm(["test", "infera", "-n", NS, "--timeout", "120s"], { timeoutMs: 180_000 });
    const runs = hostPods.runs.filter((r) => r.pod.includes("-test-"));
    expect(t.status, `${t.stdout}\n${t.stderr}\n${JSON.stringify(runs)}`).toBe(0);
    expect(runs.map((r) => r.pod).sort()).toEqual(["infera-test-chat", "infera-test-models"]);
    for (const r of runs) {
      expect(r.exitCode, r.output).toBe(0);
      expect(r.output).toContain("PASS");
    }
  }, 240_000);

  it("DELETE: every object it made is gone (Deployment, PDB, token Secret, pods)", async () => {
    expect((await api<DeploymentOut>("DELETE", `/deploy/${llama}`)).json.status).toBe("deleted");
    await waitFor(
      "no engine objects",
      async () => {
        const o = await engineObjects(llama);
        return o.deployments.length + o.pdbs.length + o.secrets.length + o.pods.length === 0;
      },
      { timeoutMs: 60_000, intervalMs: KUBE_POLL_MS, diagnose: why },
    );
  }, 90_000);

  it("helm uninstall: the garbage collector removes the engines still deployed (their owner ConfigMap is gone)", async () => {
    const left = await deploy({ model_name: "left-behind", gpu: "H100-80GB", num_gpus: 1, hf: HF });
    await waitFor("its Deployment", async () => (await engineObjects(left)).deployments.length === 1, {
      timeoutMs: 30_000,
      intervalMs: KUBE_POLL_MS,
      diagnose: why,
    });
    await scheduler.stop();
    const un = await kube.helm(["uninstall", "infera", "-n", NS, "--wait", "--timeout", "120s"], { timeoutMs: 180_000 });
    expect(un.status, un.stderr).toBe(0);
    await waitFor(
      "the engine Deployment garbage-collected",
      async () => {
        const o = await engineObjects(left);
        return o.deployments.length + o.pdbs.length + o.pods.length === 0;
      },
      { timeoutMs: 60_000, intervalMs: KUBE_POLL_MS, diagnose: why },
    );
  }, 240_000);
});
