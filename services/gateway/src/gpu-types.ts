/**
 * The GPU types a deployment may ask for. From `GPU_TYPES` (a JSON file, the same one
 * the scheduler's kubernetes driver reads: `[{name, count?, nodeSelector?, tolerations?}]`),
 * or, without it (local mode), a default list of the common data-centre GPUs.
 */
import { loadGpuTypesFile, type GpuType } from "@infera/contracts";

export { parseGpuTypes, type GpuType } from "@infera/contracts";

/** Local mode: what engine-sim replicas pretend to run on. */
export const LOCAL_GPU_TYPES: readonly GpuType[] = [
  { name: "A100-80GB", count: 8 },
  { name: "H100-80GB", count: 8 },
  { name: "L4", count: 8 },
];

/** `path` is the GPU_TYPES variable's value; without one, the local defaults. */
export async function loadGpuTypes(path: string | undefined): Promise<readonly GpuType[]> {
  return path ? loadGpuTypesFile(path) : LOCAL_GPU_TYPES;
}
