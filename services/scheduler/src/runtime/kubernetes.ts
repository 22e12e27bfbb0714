/**
 * The kubernetes runtime driver: one apps/v1 Deployment `infera-engine-<deploymentId>` per
 * platform deployment in K8S_NAMESPACE (engine container + worker-agent sidecar), made
 * from the chart's engine pod template, with a PodDisruptionBudget of the same name, all
 * written by server-side apply (field manager `infera-scheduler`). Needs exactly the RBAC of
 * the chart's scheduler Role: apps/deployments and policy/poddisruptionbudgets
 * get/create/patch/delete, pods list, pods/log get, secrets get/create/patch/delete (the
 * `infera-hf-<id>` token Secrets only; no list/watch), get on the owner ConfigMap; and, in
 * gpu mode, nodes list (ClusterRole: GPU capacity). Everything it makes is owned by the
 * template's ownerConfigMap, so deleting that (helm uninstall) removes
 * it all. A deployment's Hugging Face token arrives in `ReplicaSpec.hfToken` (opened by the
 * reconciler) and goes into its own Secret before the engine Deployment is written; the
 * Deployment only references it (secretKeyRef), and `remove` deletes both.
 */
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  PolicyV1Api,
  setHeaderOptions,
  type V1ConfigMap,
  type V1ContainerStatus,
  type V1Deployment,
  type V1Node,
  type V1ObjectMeta,
  type V1OwnerReference,
  type V1Pod,
  type V1Taint,
} from "@kubernetes/client-node";
import { ConfigError, PlatformError, type Logger } from "@infera/core";
import type { GpuCapacity } from "@infera/contracts";
import type { SchedulerConfig } from "../config.ts";
import type { LogLine, LogQuery, ReplicaObservation, ReplicaSpec, RuntimeDriver } from "./driver.ts";
import { readPodLogs } from "./kubernetes-logs.ts";
import {
  buildEngineDeployment,
  buildEnginePdb,
  buildHfTokenSecret,
  DEPLOYMENT_ID_ANNOTATION,
  engineDeploymentName,
  engineLabelSelector,
  hfTokenSecretName,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
} from "./kubernetes-manifest.ts";
import { loadEnginePodTemplate, loadGpuTypes, type EnginePodTemplate, type GpuType } from "./kubernetes-template.ts";

export interface KubernetesDriverOptions {
  namespace: string;
  template: EnginePodTemplate;
  gpuTypes: readonly GpuType[];
  /** Defaults to KubeConfig.loadFromDefault() (in-cluster service account, or ~/.kube/config). */
  kubeConfig?: KubeConfig;
}

/** Waiting reasons that will not fix themselves: the replica is failed, with this reason. */
const FATAL_WAITING = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "ErrImageNeverPull",
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
]);

function httpStatus(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

function describe(err: unknown): string {
  if (err instanceof ApiException) {
    const body: unknown = err.body;
    let message = "";
    if (typeof body === "string") {
      try {
        const parsed: unknown = JSON.parse(body);
        if (typeof parsed === "object" && parsed !== null && "message" in parsed) message = String(parsed.message);
      } catch {
        message = body.slice(0, 200);
      }
    }
    return `HTTP ${err.code}${message ? `: ${message}` : ""}`;
  }
  return err instanceof Error ? err.message : String(err);
}

function containerProblem(s: V1ContainerStatus): { fatal: boolean; reason: string } | undefined {
  const waiting = s.state?.waiting;
  if (waiting?.reason && FATAL_WAITING.has(waiting.reason)) {
    return { fatal: true, reason: `${s.name}: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}` };
  }
  if (waiting?.reason === "CrashLoopBackOff") {
    const last = s.lastState?.terminated;
    const exit = last ? ` (last exit code ${last.exitCode}${last.reason ? `, ${last.reason}` : ""})` : "";
    return { fatal: true, reason: `${s.name}: CrashLoopBackOff after ${s.restartCount} restarts${exit}` };
  }
  return undefined;
}

/**
 * Maps one engine pod to what the reconciler needs to know, with the node it runs on and since
 * when it has been as it is (its conditions' latest transition; else its creation). Exported for tests.
 */
export function observePod(pod: V1Pod): ReplicaObservation {
  const o = podPhase(pod);
  const times = (pod.status?.conditions ?? []).map((c) => (c.lastTransitionTime ? new Date(c.lastTransitionTime).getTime() : Number.NaN));
  const created = pod.metadata?.creationTimestamp ? new Date(pod.metadata.creationTimestamp).getTime() : Number.NaN;
  const since = Math.max(...times.filter((t) => !Number.isNaN(t)), Number.isNaN(created) ? 0 : created);
  return { ...o, ...(pod.spec?.nodeName ? { node: pod.spec.nodeName } : {}), ...(since > 0 ? { since } : {}) };
}

function podPhase(pod: V1Pod): ReplicaObservation {
  const replicaId = pod.metadata?.name ?? "";
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  const restarts = statuses.reduce((n, s) => n + (s.restartCount ?? 0), 0);
  if (pod.metadata?.deletionTimestamp) return { replicaId, phase: "stopping", restarts };

  const phase = pod.status?.phase;
  if (phase === "Failed" || phase === "Succeeded") {
    const term = statuses.map((s) => s.state?.terminated).find((t) => t !== undefined);
    const why = pod.status?.reason ?? (term ? `exited with code ${term.exitCode}${term.reason ? ` (${term.reason})` : ""}` : `pod ${phase}`);
    return { replicaId, phase: "failed", reason: pod.status?.message ? `${why}: ${pod.status.message}` : why, restarts };
  }
  for (const s of statuses) {
    const problem = containerProblem(s);
    if (problem) return { replicaId, phase: "failed", reason: problem.reason, restarts };
  }
  const conditions = pod.status?.conditions ?? [];
  const scheduled = conditions.find((c) => c.type === "PodScheduled");
  if (phase === "Pending" || phase === undefined) {
    if (scheduled?.status === "False") {
      return {
        replicaId,
        phase: "pending",
        reason: `${scheduled.reason ?? "Unschedulable"}${scheduled.message ? `: ${scheduled.message}` : ""}`,
        restarts,
      };
    }
    return scheduled?.status === "True" ? { replicaId, phase: "starting", restarts } : { replicaId, phase: "pending", restarts };
  }
  const ready = conditions.find((c) => c.type === "Ready")?.status === "True";
  return { replicaId, phase: ready ? "running" : "starting", restarts };
}

/** Whether `toleration` lets a pod onto a node with `taint` (the Kubernetes rule). */
export function tolerates(toleration: Record<string, unknown>, taint: V1Taint): boolean {
  const effect = toleration.effect as string | undefined;
  if (effect && effect !== taint.effect) return false;
  const key = toleration.key as string | undefined;
  const operator = (toleration.operator as string | undefined) ?? "Equal";
  if (!key) return operator === "Exists";
  if (key !== taint.key) return false;
  return operator === "Exists" || (toleration.value ?? "") === (taint.value ?? "");
}

/**
 * Per GPU type, what the nodes hold: those matching its nodeSelector whose NoSchedule and
 * NoExecute taints the type's and the template's tolerations allow, not cordoned.
 */
export function gpuCapacityOf(nodes: readonly V1Node[], gpuTypes: readonly GpuType[], template: EnginePodTemplate, now: number): Map<string, GpuCapacity> {
  const out = new Map<string, GpuCapacity>();
  const base = (template.template.spec?.tolerations ?? []) as unknown as Record<string, unknown>[];
  for (const type of gpuTypes) {
    const tolerations = [...base, ...(type.tolerations ?? [])];
    const cap: GpuCapacity = { nodes: 0, maxPerNode: 0, allocatable: 0, at: now };
    for (const node of nodes) {
      if (node.spec?.unschedulable) continue;
      const labels = node.metadata?.labels ?? {};
      if (!Object.entries(type.nodeSelector ?? {}).every(([k, v]) => labels[k] === v)) continue;
      const blocking = (node.spec?.taints ?? []).filter((t) => t.effect === "NoSchedule" || t.effect === "NoExecute");
      if (!blocking.every((t) => tolerations.some((tol) => tolerates(tol, t)))) continue;
      const gpus = Number.parseInt(node.status?.allocatable?.[template.gpuResourceName] ?? "0", 10) || 0;
      if (gpus <= 0) continue;
      cap.nodes++;
      cap.allocatable += gpus;
      cap.maxPerNode = Math.max(cap.maxPerNode, gpus);
    }
    out.set(type.name, cap);
  }
  return out;
}

interface Named {
  metadata?: V1ObjectMeta;
}

/** The field manager of everything the driver writes (`managedFields`, `kubectl get --show-managed-fields`). */
const FIELD_MANAGER = "infera-scheduler";

/** A server-side apply's query (field manager, force: the platform's fields are its own) and its Content-Type. */
const APPLY = {
  query: { fieldManager: FIELD_MANAGER, force: true },
  headers: setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply),
};
type ApplyOptions = typeof APPLY;

export class KubernetesRuntimeDriver implements RuntimeDriver {
  readonly name = "kubernetes" as const;
  private readonly apps: AppsV1Api;
  private readonly core: CoreV1Api;
  private readonly policy: PolicyV1Api;
  private readonly kubeConfig: KubeConfig;
  private readonly namespace: string;
  private readonly template: EnginePodTemplate;
  private readonly gpuTypes: readonly GpuType[];
  private owner: V1OwnerReference | undefined;

  constructor(options: KubernetesDriverOptions) {
    const kc = options.kubeConfig ?? defaultKubeConfig();
    this.kubeConfig = kc;
    this.apps = kc.makeApiClient(AppsV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
    this.policy = kc.makeApiClient(PolicyV1Api);
    this.namespace = options.namespace;
    this.template = options.template;
    this.gpuTypes = options.gpuTypes;
  }

  /** Reads ENGINE_POD_TEMPLATE and GPU_TYPES files (called from main.ts with config values). */
  static async fromFiles(options: {
    namespace: string;
    enginePodTemplatePath: string;
    gpuTypesPath: string;
    kubeConfig?: KubeConfig;
  }): Promise<KubernetesRuntimeDriver> {
    const [template, gpuTypes] = await Promise.all([loadEnginePodTemplate(options.enginePodTemplatePath), loadGpuTypes(options.gpuTypesPath)]);
    return new KubernetesRuntimeDriver({ namespace: options.namespace, template, gpuTypes, kubeConfig: options.kubeConfig });
  }

  async apply(spec: ReplicaSpec, replicas: number): Promise<void> {
    const owner = await this.ownerReference();
    const desired = buildEngineDeployment(spec, replicas, this.template, {
      namespace: this.namespace,
      gpuTypes: this.gpuTypes,
      owner,
    });
    // The token Secret first: the Deployment's pods reference it and would not start without it.
    // Sim-mode engines take no token, so none is written for them.
    if (spec.hfToken !== undefined && this.template.mode === "gpu") {
      const secret = buildHfTokenSecret(spec.deploymentId, spec.hfToken, this.template, this.namespace, owner);
      await this.write("Secret", secret, {
        read: (name) => this.core.readNamespacedSecret({ name, namespace: this.namespace }),
        apply: (name, body, o) => this.core.patchNamespacedSecret({ name, namespace: this.namespace, body, ...o.query }, o.headers),
        // Never overwrite a Secret this platform did not write for this deployment.
        mine: (current) =>
          current.metadata?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE && current.metadata?.annotations?.[DEPLOYMENT_ID_ANNOTATION] === spec.deploymentId,
      });
    }
    await this.write("Deployment", desired, {
      read: (name) => this.apps.readNamespacedDeployment({ name, namespace: this.namespace }),
      apply: (name, body, o) => this.apps.patchNamespacedDeployment({ name, namespace: this.namespace, body, ...o.query }, o.headers),
      mine: (current) => (current.metadata?.annotations?.[DEPLOYMENT_ID_ANNOTATION] ?? spec.deploymentId) === spec.deploymentId,
    });
    const pdb = buildEnginePdb(spec.deploymentId, this.template, this.namespace, owner);
    if (pdb) {
      await this.write("PodDisruptionBudget", pdb, {
        read: (name) => this.policy.readNamespacedPodDisruptionBudget({ name, namespace: this.namespace }),
        apply: (name, body, o) => this.policy.patchNamespacedPodDisruptionBudget({ name, namespace: this.namespace, body, ...o.query }, o.headers),
        mine: (current) => (current.metadata?.annotations?.[DEPLOYMENT_ID_ANNOTATION] ?? spec.deploymentId) === spec.deploymentId,
      });
    }
  }

  async observe(deploymentId: string): Promise<ReplicaObservation[]> {
    let pods: V1Pod[];
    try {
      const list = await this.core.listNamespacedPod({
        namespace: this.namespace,
        labelSelector: engineLabelSelector(deploymentId),
      });
      pods = list.items;
    } catch (err) {
      throw this.error(`listing pods of deployment ${deploymentId}`, err);
    }
    const observed = pods
      .map(observePod)
      .filter((o) => o.replicaId !== "")
      .sort((a, b) => a.replicaId.localeCompare(b.replicaId));
    if (observed.length > 0) return observed;
    // No pod at all: the API server may be refusing to create them (admission: a missing
    // RuntimeClass or PriorityClass, a quota, PodSecurity). The Deployment says so.
    const refused = await this.podsRefused(deploymentId);
    return refused ? [{ replicaId: engineDeploymentName(deploymentId), phase: "pending", reason: refused, restarts: 0 }] : [];
  }

  /** The Deployment's ReplicaFailure condition (its ReplicaSet cannot create pods), if any. */
  private async podsRefused(deploymentId: string): Promise<string | undefined> {
    const name = engineDeploymentName(deploymentId);
    let dep: V1Deployment;
    try {
      dep = await this.apps.readNamespacedDeployment({ name, namespace: this.namespace });
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw this.error(`reading Deployment ${name}`, err);
    }
    const failure = dep.status?.conditions?.find((c) => c.type === "ReplicaFailure" && c.status === "True");
    return failure ? `${failure.reason ?? "FailedCreate"}: ${failure.message ?? "pods cannot be created"}` : undefined;
  }

  async remove(deploymentId: string): Promise<void> {
    const name = engineDeploymentName(deploymentId);
    // Background: the Deployment goes now; its pods drain (preStop + grace) on their own.
    await this.deleteIgnoringMissing(`Deployment ${name}`, () =>
      this.apps.deleteNamespacedDeployment({ name, namespace: this.namespace, propagationPolicy: "Background" }),
    );
    if (this.template.podDisruptionBudget) {
      await this.deleteIgnoringMissing(`PodDisruptionBudget ${name}`, () =>
        this.policy.deleteNamespacedPodDisruptionBudget({ name, namespace: this.namespace }),
      );
    }
    // Then the token Secret (running pods already hold the value in their env); most
    // deployments have none.
    const secret = hfTokenSecretName(deploymentId);
    await this.deleteIgnoringMissing(`Secret ${secret}`, () => this.core.deleteNamespacedSecret({ name: secret, namespace: this.namespace }));
  }

  /** Per GPU type, what the cluster's nodes hold (gpu mode; sim mode asks for no GPUs). */
  async capacity(): Promise<Map<string, GpuCapacity> | undefined> {
    if (this.template.mode !== "gpu") return undefined;
    let nodes: V1Node[];
    try {
      nodes = (await this.core.listNode({})).items;
    } catch (err) {
      throw this.error("listing nodes", err);
    }
    return gpuCapacityOf(nodes, this.gpuTypes, this.template, Date.now());
  }

  /**
   * The `engine` and `agent` container logs of the deployment's pods (one pod's, by its name
   * as `/replicas` shows it), through the API server's `pods/log` (kubernetes-logs.ts).
   */
  async *logs(deploymentId: string, query: LogQuery): AsyncGenerator<LogLine> {
    const pods = async () => {
      let list: V1Pod[];
      try {
        list = (await this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: engineLabelSelector(deploymentId) })).items;
      } catch (err) {
        throw this.error(`listing pods of deployment ${deploymentId}`, err);
      }
      return list
        .map((p) => p.metadata?.name ?? "")
        .filter((n) => n !== "" && (query.replicaId === undefined || n === query.replicaId))
        .sort();
    };
    if (query.replicaId !== undefined && (await pods()).length === 0) {
      throw new PlatformError("not_found", `The deployment has no replica '${query.replicaId}'.`, { param: "replica" });
    }
    yield* readPodLogs({ kubeConfig: this.kubeConfig, namespace: this.namespace, pods, query, error: (what, err) => this.error(what, err) });
  }

  async stop(): Promise<void> {
    // Nothing to release: the driver holds no watches and engine pods outlive the scheduler.
  }

  /** The template's owner ConfigMap as an ownerReference (read once; undefined without one). */
  private async ownerReference(): Promise<V1OwnerReference | undefined> {
    const name = this.template.ownerConfigMap;
    if (!name) return undefined;
    if (this.owner) return this.owner;
    let cm: V1ConfigMap;
    try {
      cm = await this.core.readNamespacedConfigMap({ name, namespace: this.namespace });
    } catch (err) {
      throw this.error(`reading ConfigMap ${name} (the owner of engine Deployments)`, err);
    }
    const uid = cm.metadata?.uid;
    if (!uid) throw new PlatformError("internal", `ConfigMap ${name} has no uid`);
    this.owner = { apiVersion: "v1", kind: "ConfigMap", name, uid };
    return this.owner;
  }

  /**
   * Server-side apply (PATCH `application/apply-patch+yaml`, field manager
   * `infera-scheduler`, force): the API server merges `desired` into the live object with no
   * resourceVersion, so a controller writing the object meanwhile (the deployment
   * controller's status, another manager's annotation) never makes it conflict, and fields
   * other managers own are kept. Fields this manager set before and no longer sets are removed.
   * First a get, to refuse an object of that name the platform did not write for this
   * deployment (a 404 is fine: the apply creates it, which RBAC authorizes as `create`).
   */
  private async write<T extends Named>(
    kind: string,
    desired: T,
    ops: {
      read: (name: string) => Promise<T>;
      apply: (name: string, body: T, options: ApplyOptions) => Promise<unknown>;
      mine: (current: T) => boolean;
    },
  ): Promise<void> {
    const name = desired.metadata?.name ?? "";
    let current: T | undefined;
    try {
      current = await ops.read(name);
    } catch (err) {
      if (httpStatus(err) !== 404) throw this.error(`reading ${kind} ${name}`, err);
    }
    if (current && !ops.mine(current)) {
      const owner = current.metadata?.annotations?.[DEPLOYMENT_ID_ANNOTATION];
      throw new PlatformError(
        "conflict",
        `${kind} ${name} exists and is not the platform's ${kind} of deployment ${desired.metadata?.annotations?.[DEPLOYMENT_ID_ANNOTATION] ?? "?"}${owner ? ` (it belongs to ${owner})` : ""}`,
      );
    }
    try {
      await ops.apply(name, desired, APPLY);
    } catch (err) {
      throw this.error(`applying ${kind} ${name}`, err);
    }
  }

  private async deleteIgnoringMissing(what: string, del: () => Promise<unknown>): Promise<void> {
    try {
      await del();
    } catch (err) {
      if (httpStatus(err) !== 404) throw this.error(`deleting ${what}`, err);
    }
  }

  private error(what: string, err: unknown): PlatformError {
    if (err instanceof PlatformError) return err;
    const status = httpStatus(err);
    // 4xx other than conflicts/throttling mean the request itself is wrong (RBAC, invalid spec).
    const retryable = status === undefined || status === 409 || status === 429 || status >= 500;
    return new PlatformError(retryable ? "unavailable" : "internal", `kubernetes: ${what}: ${describe(err)}`, {
      retryable,
      cause: err,
    });
  }
}

/** Wiring for runtime/index.ts: RUNTIME=kubernetes needs ENGINE_POD_TEMPLATE and GPU_TYPES. */
export async function createKubernetesDriver(config: SchedulerConfig, logger: Logger): Promise<KubernetesRuntimeDriver> {
  const { namespace, enginePodTemplate, gpuTypes } = config.kubernetes;
  if (!enginePodTemplate) throw new ConfigError("ENGINE_POD_TEMPLATE is required when RUNTIME=kubernetes (the chart mounts it)");
  if (!gpuTypes) throw new ConfigError("GPU_TYPES is required when RUNTIME=kubernetes (the chart mounts it)");
  const driver = await KubernetesRuntimeDriver.fromFiles({ namespace, enginePodTemplatePath: enginePodTemplate, gpuTypesPath: gpuTypes });
  logger.info({ namespace, enginePodTemplate, gpuTypes }, "kubernetes runtime ready");
  return driver;
}

function defaultKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}
