/**
 * The GPU types a cluster offers: the `GPU_TYPES` JSON file the chart mounts into the
 * gateway (what `/deploy/llm` accepts and `gpu_availability` counts) and the scheduler
 * (node selectors and tolerations for engine pods):
 * `[{ name, count?, nodeSelector?, tolerations? }]`. One parser for both.
 */
import { readFile } from "node:fs/promises";
import { ConfigError } from "@infera/core";

export interface GpuType {
  name: string;
  /** GPUs of this type in the cluster; undefined: not counted. */
  count?: number;
  nodeSelector?: Record<string, string>;
  /** Kubernetes tolerations, passed through to engine pods as they are. */
  tolerations?: Record<string, unknown>[];
}

/**
 * What the cluster's nodes hold of one GPU type (nodes matching its nodeSelector whose taints
 * its tolerations allow, not cordoned), as the scheduler last read them from the API server.
 */
export interface GpuCapacity {
  /** Nodes of this type. */
  nodes: number;
  /** The most GPUs one of them can give a pod (allocatable): a replica needs num_gpus on one node. */
  maxPerNode: number;
  /** Allocatable GPUs on all of them. */
  allocatable: number;
  /** Epoch ms of the reading. */
  at: number;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Parses a GPU_TYPES document; `source` names it in errors. */
export function parseGpuTypes(text: string, source: string, options: { allowEmpty?: boolean } = {}): GpuType[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${source}: not valid JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(raw)) throw new ConfigError(`${source}: expected a JSON array of GPU types`);
  if (raw.length === 0 && !options.allowEmpty) throw new ConfigError(`${source}: expected a non-empty JSON array of GPU types`);
  const seen = new Set<string>();
  return raw.map((entry: unknown, i): GpuType => {
    const fail = (msg: string): never => {
      throw new ConfigError(`${source}: [${i}] ${msg}`);
    };
    if (!isRecord(entry)) return fail("must be an object");
    const name = entry.name;
    if (typeof name !== "string" || name === "") return fail("name is required");
    if (seen.has(name)) fail(`duplicate GPU type ${JSON.stringify(name)}`);
    seen.add(name);
    const { count, nodeSelector, tolerations } = entry;
    if (count !== undefined && !(typeof count === "number" && Number.isInteger(count) && count >= 0)) fail("count must be a non-negative integer");
    if (nodeSelector !== undefined && (!isRecord(nodeSelector) || Object.values(nodeSelector).some((v) => typeof v !== "string"))) {
      fail("nodeSelector must map strings to strings");
    }
    if (tolerations !== undefined && (!Array.isArray(tolerations) || !tolerations.every(isRecord))) fail("tolerations must be a list of objects");
    return entry as unknown as GpuType;
  });
}

/** Reads and parses the file a GPU_TYPES variable names. */
export async function loadGpuTypesFile(path: string, options: { allowEmpty?: boolean } = {}): Promise<GpuType[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError(`GPU_TYPES: cannot read ${path}: ${(err as Error).message}`);
  }
  return parseGpuTypes(text, `GPU_TYPES (${path})`, options);
}

/** Local mode (no GPU_TYPES): what engine-sim replicas pretend to run on, the common data-centre GPUs. */
export const LOCAL_GPU_TYPES: readonly GpuType[] = [
  { name: "A100-80GB", count: 8 },
  { name: "H100-80GB", count: 8 },
  { name: "L4", count: 8 },
];

/** The GPU types a deployment may ask for: `path` is the GPU_TYPES variable's value; without one, the local list. */
export async function gpuTypesFrom(path: string | undefined): Promise<readonly GpuType[]> {
  return path ? loadGpuTypesFile(path) : LOCAL_GPU_TYPES;
}
