/**
 * The kubernetes runtime driver: one apps/v1 Deployment `infera-engine-<deploymentId>` per
 * platform deployment in K8S_NAMESPACE (engine container + worker-agent sidecar), made
 * from the chart's engine pod template. Needs exactly the RBAC of the chart's scheduler
 * Role: apps/deployments get/create/update/delete (list/watch/patch granted for tooling),
 * pods list, secrets get/create/update/delete (the `infera-hf-<id>` token Secrets only; no
 * list/watch). A deployment's Hugging Face token arrives in `ReplicaSpec.hfToken` (opened by
 * the reconciler) and goes into its own Secret before the engine Deployment is written; the
 * Deployment only references it (secretKeyRef), and `remove` deletes both.
 */
import { ApiException, AppsV1Api, CoreV1Api, KubeConfig, type V1ContainerStatus, type V1Deployment, type V1Pod, type V1Secret } from "@kubernetes/client-node";
import { ConfigError, PlatformError, type Logger } from "@infera/core";
import type { SchedulerConfig } from "../config.ts";
import type { ReplicaObservation, ReplicaSpec, RuntimeDriver } from "./driver.ts";
import {
  buildEngineDeployment,
  buildHfTokenSecret,
  DEPLOYMENT_ID_ANNOTATION,
  engineDeploymentName,
  engineLabelSelector,
  hfTokenSecretName,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
} from "./kubernetes-manifest.ts";
import { loadEnginePodTemplate, loadGpuTypes, type EnginePodTemplate, type GpuType } from "./kubernetes-template.ts";

export { buildEngineDeployment, buildHfTokenSecret, engineDeploymentName, engineLabelSelector, hfTokenSecretName } from "./kubernetes-manifest.ts";
export type { EngineDeploymentOptions } from "./kubernetes-manifest.ts";
export {
  loadEnginePodTemplate,
  loadGpuTypes,
  parseEnginePodTemplate,
  parseGpuTypes,
  type EnginePodTemplate,
  type GpuType,
} from "./kubernetes-template.ts";

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

/** Maps one engine pod to what the reconciler needs to know. Exported for tests. */
export function observePod(pod: V1Pod): ReplicaObservation {
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

export class KubernetesRuntimeDriver implements RuntimeDriver {
  readonly name = "kubernetes" as const;
  private readonly apps: AppsV1Api;
  private readonly core: CoreV1Api;
  private readonly namespace: string;
  private readonly template: EnginePodTemplate;
  private readonly gpuTypes: readonly GpuType[];

  constructor(options: KubernetesDriverOptions) {
    const kc = options.kubeConfig ?? defaultKubeConfig();
    this.apps = kc.makeApiClient(AppsV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
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
    const desired = buildEngineDeployment(spec, replicas, this.template, {
      namespace: this.namespace,
      gpuTypes: this.gpuTypes,
    });
    // The token Secret first: the Deployment's pods reference it and would not start without it.
    // Sim-mode engines take no token, so none is written for them.
    if (spec.hfToken !== undefined && this.template.mode === "gpu") await this.writeHfTokenSecret(spec.deploymentId, spec.hfToken);
    const name = engineDeploymentName(spec.deploymentId);
    // get → create on 404, else replace with the live resourceVersion; one retry on a
    // conflict (someone else wrote in between).
    for (let attempt = 0; ; attempt++) {
      let current: V1Deployment | undefined;
      try {
        current = await this.apps.readNamespacedDeployment({ name, namespace: this.namespace });
      } catch (err) {
        if (httpStatus(err) !== 404) throw this.error(`reading Deployment ${name}`, err);
      }
      try {
        if (!current) {
          await this.apps.createNamespacedDeployment({ namespace: this.namespace, body: desired });
        } else {
          const owner = current.metadata?.annotations?.[DEPLOYMENT_ID_ANNOTATION];
          if (owner !== undefined && owner !== spec.deploymentId) {
            throw new PlatformError("conflict", `Deployment ${name} belongs to deployment ${owner}, not ${spec.deploymentId}`);
          }
          const body: V1Deployment = {
            ...desired,
            metadata: { ...desired.metadata, resourceVersion: current.metadata?.resourceVersion },
          };
          await this.apps.replaceNamespacedDeployment({ name, namespace: this.namespace, body });
        }
        return;
      } catch (err) {
        const status = httpStatus(err);
        if ((status === 409 || status === 404) && attempt === 0) continue;
        throw this.error(`writing Deployment ${name}`, err);
      }
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
    return pods
      .map(observePod)
      .filter((o) => o.replicaId !== "")
      .sort((a, b) => a.replicaId.localeCompare(b.replicaId));
  }

  async remove(deploymentId: string): Promise<void> {
    const name = engineDeploymentName(deploymentId);
    try {
      // Background: the Deployment goes now; its pods drain (preStop + grace) on their own.
      await this.apps.deleteNamespacedDeployment({ name, namespace: this.namespace, propagationPolicy: "Background" });
    } catch (err) {
      if (httpStatus(err) !== 404) throw this.error(`deleting Deployment ${name}`, err);
    }
    // Then the token Secret (running pods already hold the value in their env). Not owned by
    // the Deployment (written before it exists), so deleted here; most deployments have none.
    const secret = hfTokenSecretName(deploymentId);
    try {
      await this.core.deleteNamespacedSecret({ name: secret, namespace: this.namespace });
    } catch (err) {
      if (httpStatus(err) !== 404) throw this.error(`deleting Secret ${secret}`, err);
    }
  }

  /** Create or replace `infera-hf-<id>` (get → create on 404, else replace; one retry on a conflict). */
  private async writeHfTokenSecret(deploymentId: string, token: string): Promise<void> {
    const desired = buildHfTokenSecret(deploymentId, token, this.template, this.namespace);
    const name = hfTokenSecretName(deploymentId);
    for (let attempt = 0; ; attempt++) {
      let current: V1Secret | undefined;
      try {
        current = await this.core.readNamespacedSecret({ name, namespace: this.namespace });
      } catch (err) {
        if (httpStatus(err) !== 404) throw this.error(`reading Secret ${name}`, err);
      }
      try {
        if (!current) {
          await this.core.createNamespacedSecret({ namespace: this.namespace, body: desired });
        } else {
          // Never overwrite a Secret this platform did not write for this deployment.
          const owner = current.metadata?.annotations?.[DEPLOYMENT_ID_ANNOTATION];
          if (current.metadata?.labels?.[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE || owner !== deploymentId) {
            throw new PlatformError("conflict", `Secret ${name} exists and is not the platform's token Secret of deployment ${deploymentId}`);
          }
          const body: V1Secret = { ...desired, metadata: { ...desired.metadata, resourceVersion: current.metadata?.resourceVersion } };
          await this.core.replaceNamespacedSecret({ name, namespace: this.namespace, body });
        }
        return;
      } catch (err) {
        const status = httpStatus(err);
        if ((status === 409 || status === 404) && attempt === 0) continue;
        throw this.error(`writing Secret ${name}`, err);
      }
    }
  }

  async stop(): Promise<void> {
    // Nothing to release: the driver holds no watches and engine pods outlive the scheduler.
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
