import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { bool, int, oneOf, optionalStr, redisUrl, str } from "@infera/core";
import { DEFAULT_PREFILL_TOKENS_PER_MS } from "@infera/policy";
import { type TracingConfig, tracingConfig } from "@infera/telemetry";
import { type StorageConfig, storageConfig } from "@infera/storage";

export interface SchedulerConfig {
  databaseUrl: string;
  redisUrl: string;
  redisPrefix: string;
  schedulerId: string;
  metricsPort: number;
  metricsHost: string;
  runtime: "local" | "kubernetes";
  heartbeatMs: number;
  /** How often the reconciler compares desired with running state. */
  reconcileMs: number;
  /** Most requests one scheduler holds per deployment while they wait for room. */
  maxQueuedPerDeployment: number;
  /** Claim on a held queue entry: a scheduler that dies leaves its entries to others after this. */
  jobLockMs: number;
  /** Lease on dispatching one deployment: one scheduler dispatches it; another takes over this long after it dies. */
  dispatchLeaseMs: number;
  /** Prompt tokens per second one replica prefills: how fast placement's estimate of pending prefill drains. */
  prefillTokensPerS: number;
  /** FAST_PATH: lend gateways slots while nothing waits (slot leases); false: every request through the queue. */
  fastPath: boolean;
  logLevel: string;
  /** Traces: the standard OTEL_* variables (`@infera/telemetry`). */
  tracing: TracingConfig;
  shutdownGraceMs: number;
  /** Scale a min_instances=0 deployment to zero after this long idle. */
  scaleToZeroIdleMs: number;
  /**
   * SECRETS_KEY (the gateway's): opens deployments' sealed Hugging Face tokens for the
   * kubernetes runtime. Without it a kubernetes deployment with a token fails.
   */
  secretsKey: string | undefined;
  /** SECRETS_KEY_PREVIOUS: the key before a rotation; what it sealed still opens, and is re-sealed under SECRETS_KEY. */
  secretsKeyPrevious: string | undefined;
  /** AGENT_AUTH_TOKEN: the local runtime gives it to the agents it starts (the gateway sends the same). */
  agentAuthToken: string | undefined;
  /** Lines per batch chunk job (BATCH_CHUNK_LINES, default 20). */
  batchChunkLines: number;
  /** How often the batch reconcile sweep runs (BATCH_RECONCILE_MS, default 10 s). */
  batchReconcileMs: number;
  /** How often stored responses past their retention are deleted (RESPONSES_PURGE_MS, default 1 h). */
  responsesPurgeMs: number;
  /** Where file bodies live (batch input and output files; STORAGE_BACKEND, STORAGE_DIR, S3_*). */
  storage: StorageConfig;
  local: {
    /** Directory for replica logs. */
    logDir: string | undefined;
    /** engine-sim latency for local replicas (ms). */
    simTtftMs: string | undefined;
    simItlMs: string | undefined;
    simStartupDelayMs: string | undefined;
    /** A replica that crashes this many times in a row fails its deployment. */
    maxRestarts: number;
    /** engine-sim and worker-agent entry points (the scheduler image's compiled bundles); default: the sources, run with tsx. */
    engineMain: string | undefined;
    agentMain: string | undefined;
  };
  kubernetes: {
    namespace: string;
    enginePodTemplate: string | undefined;
    gpuTypes: string | undefined;
  };
}

export function loadConfig(env: Record<string, string | undefined>): SchedulerConfig {
  return {
    databaseUrl: str(env, "DATABASE_URL"),
    redisUrl: redisUrl(env),
    redisPrefix: str(env, "REDIS_PREFIX", "infera"),
    schedulerId: str(env, "SCHEDULER_ID", `${hostname()}-${randomBytes(3).toString("hex")}`),
    metricsPort: int(env, "METRICS_PORT", 9091, 0, 65535),
    metricsHost: str(env, "METRICS_HOST", "0.0.0.0"),
    runtime: oneOf(env, "RUNTIME", ["local", "kubernetes"] as const, "local"),
    heartbeatMs: int(env, "HEARTBEAT_MS", 1000, 50, 60_000),
    reconcileMs: int(env, "RECONCILE_MS", 1000, 50, 600_000),
    maxQueuedPerDeployment: int(env, "MAX_QUEUED_PER_DEPLOYMENT", 10_000, 1, 1_000_000),
    jobLockMs: int(env, "JOB_LOCK_MS", 15_000, 1_000, 600_000),
    dispatchLeaseMs: int(env, "DISPATCH_LEASE_MS", 2_000, 300, 600_000),
    prefillTokensPerS: int(env, "PREFILL_TOKENS_PER_S", DEFAULT_PREFILL_TOKENS_PER_MS * 1000, 100, 10_000_000),
    fastPath: bool(env, "FAST_PATH", true),
    logLevel: str(env, "LOG_LEVEL", "info"),
    tracing: tracingConfig(env, "scheduler"),
    shutdownGraceMs: int(env, "SHUTDOWN_GRACE_MS", 30_000, 0, 600_000),
    scaleToZeroIdleMs: int(env, "SCALE_TO_ZERO_IDLE_MS", 300_000, 0, 86_400_000),
    secretsKey: optionalStr(env, "SECRETS_KEY"),
    secretsKeyPrevious: optionalStr(env, "SECRETS_KEY_PREVIOUS"),
    agentAuthToken: optionalStr(env, "AGENT_AUTH_TOKEN"),
    batchChunkLines: int(env, "BATCH_CHUNK_LINES", 20, 1, 10_000),
    batchReconcileMs: int(env, "BATCH_RECONCILE_MS", 10_000, 200, 3_600_000),
    responsesPurgeMs: int(env, "RESPONSES_PURGE_MS", 3_600_000, 1_000, 86_400_000),
    storage: storageConfig(env),
    local: {
      logDir: optionalStr(env, "LOCAL_LOG_DIR"),
      simTtftMs: optionalStr(env, "SIM_TTFT_MS"),
      simItlMs: optionalStr(env, "SIM_ITL_MS"),
      simStartupDelayMs: optionalStr(env, "SIM_STARTUP_DELAY_MS"),
      maxRestarts: int(env, "LOCAL_MAX_RESTARTS", 5, 1, 1000),
      engineMain: optionalStr(env, "LOCAL_ENGINE_MAIN"),
      agentMain: optionalStr(env, "LOCAL_AGENT_MAIN"),
    },
    kubernetes: {
      namespace: str(env, "K8S_NAMESPACE", "default"),
      enginePodTemplate: optionalStr(env, "ENGINE_POD_TEMPLATE"),
      gpuTypes: optionalStr(env, "GPU_TYPES"),
    },
  };
}
