/**
 * The GPU types a deployment may ask for. From `GPU_TYPES` (a JSON file, the same one
 * the scheduler's kubernetes driver reads: `[{name, count?, nodeSelector?, tolerations?}]`),
 * or, without it (local mode), a default list of the common data-centre GPUs.
 */
import { readFile } from "node:fs/promises";
import { ConfigError } from "@infera/core";

export interface GpuType {
  name: string;
  /** GPUs of this type the cluster has; undefined: not counted (no availability limit known). */
  count?: number;
}

/** Local mode: what engine-sim replicas pretend to run on. */
export const LOCAL_GPU_TYPES: readonly GpuType[] = [
  { name: "A100-80GB", count: 8 },
  { name: "H100-80GB", count: 8 },
  { name: "L4", count: 8 },
];

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Parses the GPU_TYPES document; `source` names it in errors. Scheduling fields are the driver's business. */
export function parseGpuTypes(text: string, source: string): GpuType[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${source}: not valid JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(raw) || raw.length === 0) throw new ConfigError(`${source}: expected a non-empty JSON array of GPU types`);
  const seen = new Set<string>();
  return raw.map((entry: unknown, i): GpuType => {
    if (!isRecord(entry) || typeof entry.name !== "string" || entry.name === "") throw new ConfigError(`${source}: [${i}] name is required`);
    if (seen.has(entry.name)) throw new ConfigError(`${source}: [${i}] duplicate GPU type ${JSON.stringify(entry.name)}`);
    seen.add(entry.name);
    const count = entry.count;
    if (count !== undefined && !(typeof count === "number" && Number.isInteger(count) && count >= 0)) {
      throw new ConfigError(`${source}: [${i}] count must be a non-negative integer`);
    }
    return count === undefined ? { name: entry.name } : { name: entry.name, count };
  });
}

/** `path` is the GPU_TYPES variable's value; without one, the local defaults. */
export async function loadGpuTypes(path: string | undefined): Promise<readonly GpuType[]> {
  if (!path) return LOCAL_GPU_TYPES;
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError(`GPU_TYPES: cannot read ${path}: ${(err as Error).message}`);
  }
  return parseGpuTypes(text, `GPU_TYPES (${path})`);
}
