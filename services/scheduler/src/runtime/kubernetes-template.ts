/**
 * The two files the Helm chart mounts into the scheduler for the kubernetes runtime:
 * ENGINE_POD_TEMPLATE (an `infera.dev/v1alpha1 EnginePodTemplate`, YAML or JSON: the pod
 * every engine replica starts from) and GPU_TYPES (a JSON array of the GPU types the
 * cluster offers). Parsed and checked once at start; a bad file fails with its path.
 *
 * Keep the shape in sync with helm/infera/templates/_engine-pod-template.tpl (test/kube
 * parses the chart's rendered ConfigMap with this and sends what it builds to a real API server).
 */
import { readFile } from "node:fs/promises";
import { loadYaml, type V1PodTemplateSpec } from "@kubernetes/client-node";
import { ConfigError } from "@infera/core";
import { ENGINE_KINDS, loadGpuTypesFile, type GpuType } from "@infera/contracts";

export { parseGpuTypes, type GpuType } from "@infera/contracts";
import type { EngineKind } from "./driver.ts";

export interface EngineDrain {
  /** `preStop` sleep of both containers: the pod shows as terminating, no new work. */
  preStopSleepSeconds: number;
  /** vLLM `--shutdown-timeout`: how long running requests may finish after SIGTERM. */
  engineShutdownTimeoutSeconds: number;
  /** The agent's SHUTDOWN_GRACE_MS, in seconds. */
  agentShutdownGraceSeconds: number;
}

export interface EnginePodTemplate {
  apiVersion: "infera.dev/v1alpha1";
  kind: "EnginePodTemplate";
  /** gpu: real engines with GPU limits; sim: engine-sim on CPU (trial installs). */
  mode: "gpu" | "sim";
  /** Default image per engine kind (a deployment's containerImage overrides it in gpu mode). */
  engines: Partial<Record<EngineKind, { image: string }>>;
  gpuResourceName: string;
  hfTokenSecretKey: string;
  defaultHfTokenSecret?: string;
  enginePort: number;
  agentPort: number;
  drain: EngineDrain;
  /** A PodDisruptionBudget per engine Deployment (node drains take at most this many replicas at a time). */
  podDisruptionBudget?: { maxUnavailable: number | string };
  /**
   * The ConfigMap (in the engine namespace) that owns what the driver makes: engine
   * Deployments, their PDBs and token Secrets carry an ownerReference to it, so deleting it
   * (helm uninstall) has the garbage collector delete them all.
   */
  ownerConfigMap?: string;
  /** Pod template with containers named `engine` and `agent`. */
  template: V1PodTemplateSpec;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function nonNegativeInt(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0;
}

/** Parses and checks an EnginePodTemplate document. `source` names it in errors. */
export function parseEnginePodTemplate(text: string, source: string): EnginePodTemplate {
  let raw: unknown;
  try {
    // loadYaml reads JSON too; round-trip through JSON to get plain objects.
    raw = JSON.parse(JSON.stringify(loadYaml<unknown>(text)));
  } catch (err) {
    throw new ConfigError(`${source}: not valid YAML/JSON: ${(err as Error).message}`);
  }
  const fail = (msg: string): never => {
    throw new ConfigError(`${source}: ${msg}`);
  };
  if (!isRecord(raw)) return fail("expected an EnginePodTemplate object");
  if (raw.apiVersion !== "infera.dev/v1alpha1" || raw.kind !== "EnginePodTemplate") {
    fail(`expected apiVersion infera.dev/v1alpha1, kind EnginePodTemplate; got ${String(raw.apiVersion)}/${String(raw.kind)}`);
  }
  if (raw.mode !== "gpu" && raw.mode !== "sim") fail(`mode must be gpu or sim, got ${JSON.stringify(raw.mode)}`);
  if (!isRecord(raw.engines)) return fail("engines must be an object");
  for (const [kind, entry] of Object.entries(raw.engines)) {
    if (!(ENGINE_KINDS as readonly string[]).includes(kind)) fail(`engines.${kind}: unknown engine kind`);
    if (!isRecord(entry) || typeof entry.image !== "string" || entry.image === "") fail(`engines.${kind}.image is required`);
  }
  for (const key of ["gpuResourceName", "hfTokenSecretKey"] as const) {
    if (typeof raw[key] !== "string" || raw[key] === "") fail(`${key} must be a non-empty string`);
  }
  if (raw.defaultHfTokenSecret !== undefined && typeof raw.defaultHfTokenSecret !== "string") {
    fail("defaultHfTokenSecret must be a string");
  }
  for (const key of ["enginePort", "agentPort"] as const) {
    const v = raw[key];
    if (!nonNegativeInt(v) || v < 1 || v > 65535) fail(`${key} must be a port number`);
  }
  if (!isRecord(raw.drain)) return fail("drain must be an object");
  for (const key of ["preStopSleepSeconds", "engineShutdownTimeoutSeconds", "agentShutdownGraceSeconds"] as const) {
    if (!nonNegativeInt(raw.drain[key])) fail(`drain.${key} must be a non-negative integer`);
  }
  if (raw.podDisruptionBudget !== undefined) {
    const mu = isRecord(raw.podDisruptionBudget) ? raw.podDisruptionBudget.maxUnavailable : undefined;
    if (!(nonNegativeInt(mu) || (typeof mu === "string" && /^[0-9]+%$/.test(mu))))
      fail("podDisruptionBudget.maxUnavailable must be a non-negative integer or a percentage");
  }
  if (raw.ownerConfigMap !== undefined && (typeof raw.ownerConfigMap !== "string" || raw.ownerConfigMap === ""))
    fail("ownerConfigMap must be a ConfigMap name");
  if (!isRecord(raw.template) || !isRecord(raw.template.spec)) return fail("template.spec is required");
  const containers = raw.template.spec.containers;
  if (!Array.isArray(containers)) return fail("template.spec.containers must be a list");
  for (const name of ["engine", "agent"]) {
    if (!containers.some((c) => isRecord(c) && c.name === name)) fail(`template.spec.containers needs a container named "${name}"`);
  }
  const tpl = raw as unknown as EnginePodTemplate;
  const grace = tpl.template.spec?.terminationGracePeriodSeconds ?? 30;
  const d = tpl.drain;
  const drainS = d.preStopSleepSeconds + Math.max(d.engineShutdownTimeoutSeconds, d.agentShutdownGraceSeconds);
  if (drainS >= grace) {
    fail(
      `drain (preStop ${d.preStopSleepSeconds}s + shutdown ${drainS - d.preStopSleepSeconds}s) must be shorter than terminationGracePeriodSeconds (${grace}s)`,
    );
  }
  return tpl;
}

export async function loadEnginePodTemplate(path: string): Promise<EnginePodTemplate> {
  return parseEnginePodTemplate(await readFileOrFail(path, "ENGINE_POD_TEMPLATE"), `ENGINE_POD_TEMPLATE (${path})`);
}

/** Empty is allowed: a CPU trial install (sim mode) offers no GPU types. */
export async function loadGpuTypes(path: string): Promise<GpuType[]> {
  return loadGpuTypesFile(path, { allowEmpty: true });
}

async function readFileOrFail(path: string, variable: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError(`${variable}: cannot read ${path}: ${(err as Error).message}`);
  }
}
