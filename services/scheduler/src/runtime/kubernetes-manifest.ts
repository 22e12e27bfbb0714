/**
 * The pure part of the kubernetes runtime: one platform deployment → one apps/v1
 * Deployment `infera-engine-<deploymentId>`, built from the chart's engine pod template
 * and the deployment's ReplicaSpec. No I/O; the driver (kubernetes.ts) sends the result.
 */
import { createHash } from "node:crypto";
import type {
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1OwnerReference,
  V1PodDisruptionBudget,
  V1PodTemplateSpec,
  V1Secret,
  V1Toleration,
} from "@kubernetes/client-node";
import { PlatformError } from "@infera/core";
import type { ReplicaSpec } from "./driver.ts";
import { ENGINE_HOST, engineBindArgs, lockDownEnginePod, upsertEnv } from "./kubernetes-lockdown.ts";
import type { EnginePodTemplate, GpuType } from "./kubernetes-template.ts";

export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
export const MANAGED_BY_VALUE = "infera";
export const DEPLOYMENT_ID_LABEL = "infera.dev/deployment-id";
export const DEPLOYMENT_ID_ANNOTATION = "infera.dev/deployment-id";
const SERVED_MODEL_ANNOTATION = "infera.dev/served-model-name";

export interface EngineDeploymentOptions {
  namespace: string;
  gpuTypes: readonly GpuType[];
  /** The template's ownerConfigMap, resolved (its uid): every object made gets it as owner. */
  owner?: V1OwnerReference;
}

const NAME_PREFIX = "infera-engine-";
const HF_SECRET_PREFIX = "infera-hf-";
// Pod names get "-<hash>-<hash>" (17 chars) appended to the Deployment name, and must stay
// a DNS label (63): keep the Deployment name at 46 chars at most.
const MAX_NAME = 46;

function shortHash(s: string): string {
  return createHash("sha256").update(s).digest("hex").slice(0, 8);
}

/** The label value for a deployment id: the id itself when it is a valid label value. */
export function deploymentIdLabel(deploymentId: string): string {
  if (/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(deploymentId)) return deploymentId;
  const cleaned = deploymentId.replace(/[^A-Za-z0-9_.-]/g, "-").replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
  return `${cleaned.slice(0, 54)}-${shortHash(deploymentId)}`.replace(/^-/, "x-");
}

/** `<prefix><id>`, made DNS-1123 (lowercase, `-`, at most `max` chars) with a hash when it must change. */
function dnsName(prefix: string, deploymentId: string, max: number): string {
  const room = max - prefix.length;
  if (/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(deploymentId) && deploymentId.length <= room) {
    return prefix + deploymentId;
  }
  const cleaned = deploymentId
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, "-")
    .replace(/-+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, room - 9)
    .replace(/-+$/, "");
  return `${prefix}${cleaned ? `${cleaned}-` : ""}${shortHash(deploymentId)}`;
}

/** `infera-engine-<id>`, made DNS-1123 (lowercase, `-`, bounded) with a hash when it must change. */
export function engineDeploymentName(deploymentId: string): string {
  return dnsName(NAME_PREFIX, deploymentId, MAX_NAME);
}

/**
 * `infera-hf-<id>`: the Secret holding a deployment's Hugging Face token, written by the
 * driver from the sealed copy in the registry. DNS-1123 like the Deployment name (ids such
 * as `dep_…` are not), so `dep_7k2m…` becomes `infera-hf-dep-7k2m…-<hash>`.
 */
export function hfTokenSecretName(deploymentId: string): string {
  return dnsName(HF_SECRET_PREFIX, deploymentId, 63);
}

/** The label selector (for list calls) of one deployment's engine pods. */
export function engineLabelSelector(deploymentId: string): string {
  return `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${DEPLOYMENT_ID_LABEL}=${deploymentIdLabel(deploymentId)}`;
}

function engineImage(spec: ReplicaSpec, tpl: EnginePodTemplate): string {
  // Trial (sim) installs run engine-sim whatever the deployment asks for.
  if (tpl.mode === "gpu" && spec.containerImage) return spec.containerImage;
  const image = tpl.engines[spec.engine]?.image;
  if (!image) {
    throw new PlatformError(
      "invalid_request",
      `no image for engine "${spec.engine}": set containerImage on the deployment or engine.images.${spec.engine} in the chart`,
      { param: "containerImage" },
    );
  }
  return image;
}

/**
 * Command-line arguments of the engine container, per engine kind. The listen address comes
 * last, after the deployment's extra args: none of them moves the engine off 127.0.0.1.
 */
export function engineArgs(spec: ReplicaSpec, tpl: EnginePodTemplate): string[] {
  if (tpl.mode === "sim") return []; // engine-sim is configured by env (SIM_*)
  const args = kindArgs(spec, tpl);
  return [...args, ...engineBindArgs(spec.engine)];
}

function kindArgs(spec: ReplicaSpec, tpl: EnginePodTemplate): string[] {
  const port = String(tpl.enginePort);
  const repo = spec.hf?.repo;
  const revision = spec.hf?.revision;
  switch (spec.engine) {
    case "vllm": {
      if (!repo) throw new PlatformError("invalid_request", "a vllm deployment needs hf.repo", { param: "hf.repo" });
      return [
        "--model",
        repo,
        ...(revision ? ["--revision", revision] : []),
        "--served-model-name",
        spec.servedModelName,
        "--max-num-seqs",
        String(spec.maxBatchSize),
        "--tensor-parallel-size",
        String(Math.max(1, spec.numGpus)),
        "--port",
        port,
        "--shutdown-timeout",
        String(tpl.drain.engineShutdownTimeoutSeconds),
        ...spec.extraArgs,
      ];
    }
    case "tgi": {
      if (!repo) throw new PlatformError("invalid_request", "a tgi deployment needs hf.repo", { param: "hf.repo" });
      return [
        "--model-id",
        repo,
        ...(revision ? ["--revision", revision] : []),
        "--port",
        port,
        "--num-shard",
        String(Math.max(1, spec.numGpus)),
        "--max-concurrent-requests",
        String(spec.maxBatchSize),
        ...spec.extraArgs,
      ];
    }
    case "tei": {
      if (!repo) throw new PlatformError("invalid_request", "a tei deployment needs hf.repo", { param: "hf.repo" });
      return [
        "--model-id",
        repo,
        ...(revision ? ["--revision", revision] : []),
        "--port",
        port,
        "--max-concurrent-requests",
        String(spec.maxBatchSize),
        ...spec.extraArgs,
      ];
    }
    case "image":
      return [...spec.extraArgs];
  }
}

function findContainer(containers: V1Container[], name: string): V1Container {
  const c = containers.find((x) => x.name === name);
  if (!c) throw new PlatformError("internal", `engine pod template has no container named "${name}"`);
  return c;
}

/**
 * Builds the apps/v1 Deployment for `replicas` replicas of `spec`. The result is wire-shaped
 * JSON (what the API server receives) and never shares objects with `template`.
 */
export function buildEngineDeployment(spec: ReplicaSpec, replicas: number, template: EnginePodTemplate, options: EngineDeploymentOptions): V1Deployment {
  if (!Number.isInteger(replicas) || replicas < 0) {
    throw new PlatformError("invalid_request", `replicas must be a non-negative integer, got ${replicas}`);
  }
  const pod = structuredClone(template.template) as V1PodTemplateSpec;
  const podSpec = pod.spec;
  if (!podSpec) throw new PlatformError("internal", "engine pod template has no spec");
  const name = engineDeploymentName(spec.deploymentId);
  const idLabel = deploymentIdLabel(spec.deploymentId);
  const ownLabels = { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [DEPLOYMENT_ID_LABEL]: idLabel };
  const annotations = { [DEPLOYMENT_ID_ANNOTATION]: spec.deploymentId, [SERVED_MODEL_ANNOTATION]: spec.servedModelName };

  pod.metadata = {
    ...pod.metadata,
    labels: { ...pod.metadata?.labels, ...ownLabels },
    annotations: { ...pod.metadata?.annotations, ...annotations },
  };

  // GPU type → node placement. In sim mode a GPU type is optional and only adds placement.
  const gpuType = options.gpuTypes.find((g) => g.name === spec.gpu);
  if (template.mode === "gpu" && spec.numGpus > 0 && !gpuType) {
    throw new PlatformError(
      "invalid_request",
      `unknown GPU type "${spec.gpu}"; this cluster offers: ${options.gpuTypes.map((g) => g.name).join(", ") || "none"}`,
      { param: "gpu" },
    );
  }
  if (gpuType?.nodeSelector && Object.keys(gpuType.nodeSelector).length > 0) {
    podSpec.nodeSelector = { ...podSpec.nodeSelector, ...gpuType.nodeSelector };
  }
  if (gpuType?.tolerations && gpuType.tolerations.length > 0) {
    podSpec.tolerations = [...(podSpec.tolerations ?? []), ...(structuredClone(gpuType.tolerations) as V1Toleration[])];
  }

  // Engine container.
  const engine = findContainer(podSpec.containers, "engine");
  engine.image = engineImage(spec, template);
  const args = engineArgs(spec, template);
  if (args.length > 0) engine.args = args;
  const engineEnv: V1EnvVar[] = [];
  if (template.mode === "sim") {
    engineEnv.push(
      { name: "HOST", value: ENGINE_HOST },
      { name: "PORT", value: String(template.enginePort) },
      { name: "SIM_MODEL", value: spec.servedModelName },
      { name: "SIM_MODE", value: spec.engine },
    );
  }
  // A token the driver writes lives in the deployment's own Secret, whatever name the spec carries.
  const tokenSecret = spec.hfToken !== undefined ? hfTokenSecretName(spec.deploymentId) : (spec.hf?.tokenSecretName ?? template.defaultHfTokenSecret);
  if (tokenSecret && template.mode === "gpu") {
    engineEnv.push({
      name: "HF_TOKEN",
      valueFrom: { secretKeyRef: { name: tokenSecret, key: template.hfTokenSecretKey } },
    });
  }
  engine.env = upsertEnv(engine.env ?? [], engineEnv);
  if (template.mode === "gpu" && spec.numGpus > 0) {
    const gpus = String(spec.numGpus);
    engine.resources = {
      ...engine.resources,
      limits: { ...engine.resources?.limits, [template.gpuResourceName]: gpus },
      requests: { ...engine.resources?.requests, [template.gpuResourceName]: gpus },
    };
  }

  // Agent sidecar: who it is (downward API) and what it serves.
  const agent = findContainer(podSpec.containers, "agent");
  agent.env = upsertEnv(agent.env ?? [], [
    { name: "AGENT_HOST", value: "0.0.0.0" },
    { name: "AGENT_PORT", value: String(template.agentPort) },
    { name: "ENGINE_URL", value: `http://127.0.0.1:${template.enginePort}` },
    { name: "ENGINE_KIND", value: spec.engine },
    { name: "DEPLOYMENT_ID", value: spec.deploymentId },
    { name: "SERVED_MODEL_NAME", value: spec.servedModelName },
    { name: "MAX_BATCH_SIZE", value: String(spec.maxBatchSize) },
    { name: "SHUTDOWN_GRACE_MS", value: String(template.drain.agentShutdownGraceSeconds * 1000) },
    { name: "REPLICA_ID", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
    { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
    // $(POD_IP) is expanded by the kubelet: POD_IP is defined just above.
    { name: "ADVERTISE_ADDRESS", value: `$(POD_IP):${template.agentPort}` },
  ]);
  lockDownEnginePod(podSpec);

  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      name,
      namespace: options.namespace,
      labels: { ...ownLabels, "app.kubernetes.io/component": "engine", "app.kubernetes.io/part-of": "infera" },
      annotations,
      ...(options.owner ? { ownerReferences: [options.owner] } : {}),
    },
    spec: {
      replicas,
      revisionHistoryLimit: 2,
      // Model download + load can take long; the reconciler judges failure from pod states.
      progressDeadlineSeconds: 7200,
      selector: { matchLabels: ownLabels },
      // GPUs are scarce: replace pods in place instead of surging an extra replica.
      strategy:
        template.mode === "gpu"
          ? { type: "RollingUpdate", rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } }
          : { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: pod,
    },
  };
}

/**
 * The Opaque Secret `infera-hf-<id>` holding a deployment's Hugging Face token under the
 * template's `hfTokenSecretKey` (what the engine's `HF_TOKEN` secretKeyRef reads). Labelled
 * like the engine Deployment; the driver writes it before the Deployment and deletes it in
 * `remove` (an ownerReference to the Deployment needs its uid, which does not exist yet; the
 * template's owner ConfigMap owns both).
 */
export function buildHfTokenSecret(deploymentId: string, token: string, template: EnginePodTemplate, namespace: string, owner?: V1OwnerReference): V1Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: hfTokenSecretName(deploymentId),
      namespace,
      ...(owner ? { ownerReferences: [owner] } : {}),
      labels: {
        [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
        [DEPLOYMENT_ID_LABEL]: deploymentIdLabel(deploymentId),
        "app.kubernetes.io/component": "hf-token",
        "app.kubernetes.io/part-of": "infera",
      },
      annotations: { [DEPLOYMENT_ID_ANNOTATION]: deploymentId },
    },
    type: "Opaque",
    data: { [template.hfTokenSecretKey]: Buffer.from(token, "utf8").toString("base64") },
  };
}

/**
 * The PodDisruptionBudget `infera-engine-<id>` of an engine Deployment (same name and pod
 * selector): a node drain evicts at most `maxUnavailable` of its replicas at a time.
 */
export function buildEnginePdb(
  deploymentId: string,
  template: EnginePodTemplate,
  namespace: string,
  owner?: V1OwnerReference,
): V1PodDisruptionBudget | undefined {
  const pdb = template.podDisruptionBudget;
  if (!pdb) return undefined;
  const ownLabels = { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [DEPLOYMENT_ID_LABEL]: deploymentIdLabel(deploymentId) };
  return {
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: {
      name: engineDeploymentName(deploymentId),
      namespace,
      labels: { ...ownLabels, "app.kubernetes.io/component": "engine", "app.kubernetes.io/part-of": "infera" },
      annotations: { [DEPLOYMENT_ID_ANNOTATION]: deploymentId },
      ...(owner ? { ownerReferences: [owner] } : {}),
    },
    spec: { maxUnavailable: pdb.maxUnavailable, selector: { matchLabels: ownLabels } },
  };
}
