export { startScheduler, type RunningScheduler } from "./scheduler.ts";
export { loadConfig, type SchedulerConfig } from "./config.ts";
export { createDriver } from "./runtime/index.ts";
export type { RuntimeDriver, ReplicaSpec, ReplicaObservation } from "./runtime/driver.ts";
export { createSchedulerMetrics } from "./metrics.ts";
