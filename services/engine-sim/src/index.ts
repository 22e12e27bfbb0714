/** engine-sim: an HTTP stand-in for vLLM, TGI, TEI and an image server, for tests and local mode. */
export { createEngineSim, type EngineSim } from "./server.ts";
export {
  type EngineSimOptions,
  type SimConfig,
  type Mode,
  type Task,
  defaultConfig,
  loadConfig,
  DEFAULT_MODEL,
  DEFAULT_EMBEDDING_MODEL,
  DEFAULT_IMAGE_MODEL,
} from "./config.ts";
export { FAULT_KINDS, type FaultKind, type FaultConfig } from "./faults.ts";
export { IMAGE_SIZES } from "./images.ts";
export { createEngineMetrics } from "./metrics.ts";
