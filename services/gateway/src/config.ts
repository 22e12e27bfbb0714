import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { bool, ConfigError, int, num, optionalStr, redisUrl, str } from "@infera/core";
import { type TracingConfig, tracingConfig } from "@infera/telemetry";
import { type StorageConfig, storageConfig } from "@infera/storage";
import { parseDeployPolicy, type DeployPolicyConfig } from "./deploy-policy.ts";

export interface GatewayConfig {
  port: number;
  host: string;
  databaseUrl: string;
  redisUrl: string;
  redisPrefix: string;
  gatewayId: string;
  logLevel: string;
  bodyLimitBytes: number;
  /** How long a request may wait in the queue for a replica before a 503. */
  queueWaitMs: number;
  /** Most requests waiting for a replica per deployment (across gateways) before a 429. */
  queueMaxPerDeployment: number;
  /** FAST_PATH: place a request on a slot the scheduler lent this gateway while nothing waits; false: every request through the queue. */
  fastPath: boolean;
  shutdownGraceMs: number;
  bootstrapAdminKey: string | undefined;
  /** Re-queues of one request after replicas failed it before its first byte. */
  maxAttempts: number;
  /** Key and model cache lifetime; revocations and lifecycle changes also arrive by pub/sub. */
  cacheTtlMs: number;
  gpuTypes: string | undefined;
  /** Open requests one tenant may have on one deployment (all keys, all gateways); 0 = no cap. */
  tenantModelConcurrency: number;
  /** How long an open request may hold a concurrency slot if its gateway dies without settling. */
  rateLimitLeaseMs: number;
  /** How often usage records are written to Postgres (in batches). */
  usageFlushMs: number;
  /** Seals deployments' Hugging Face tokens at rest (any string; a 32-byte key is derived from it). */
  secretsKey: string | undefined;
  /** The bearer token worker agents require on every gRPC call (the release's AGENT_AUTH_TOKEN). */
  agentAuthToken: string | undefined;
  /** TLS to the agents: AGENT_TLS_CA_FILE (and the name their certificate carries, AGENT_TLS_SERVER_NAME); a client certificate for mutual TLS. */
  agentTls?: { caFile: string; serverName: string; certFile?: string; keyFile?: string };
  /** A replica that sends nothing for this long (first byte or between events) is given up on. */
  agentIdleTimeoutMs: number;
  /** A non-streamed request's whole agent call is given up on after this. */
  agentCallTimeoutMs: number;
  /** Time to receive a whole request (headers and body): slow-loris clients are cut off. */
  requestTimeoutMs: number;
  /** The web console's static build, served at /console/ (none: /console answers 404). */
  consoleDir: string | undefined;
  /** Traces: the standard OTEL_* variables (`@infera/telemetry`). */
  tracing: TracingConfig;
  /** Share of successful requests the access log writes a line for (0..1; failed ones always). */
  accessLogSample: number;
  /** Days the Responses API keeps a stored response (RESPONSES_RETENTION_DAYS, default 30). */
  responsesRetentionDays: number;
  /** Where file bodies live (STORAGE_BACKEND, STORAGE_DIR, S3_*: `@infera/storage`). */
  storage: StorageConfig;
  /** Largest file a tenant may upload (FILES_MAX_BYTES, default 200 MB: OpenAI's batch input limit). */
  filesMaxBytes: number;
  /** Most lines a batch input file may hold (FILES_MAX_LINES, default 50,000: OpenAI's). */
  filesMaxLines: number;
  /** Most batch lines this gateway keeps in flight per deployment (BATCH_MAX_INFLIGHT, default 64). */
  batchMaxInflight: number;
  /** Fraction of each replica's capacity batch lines leave to interactive traffic (BATCH_RESERVE_FRACTION, default 0.25). */
  batchReserveFraction: number;
  /** Event-loop lateness (p90 over an interval, ms) above which the batch limit halves (BATCH_BACKOFF_LATENESS_MS, default 20; 0: off, slots only). */
  batchBackoffLatenessMs: number;
  /** How often the lateness is sampled and the limit steps (BATCH_BACKOFF_INTERVAL_MS, default 250). */
  batchBackoffIntervalMs: number;
  /** Batch chunk jobs this gateway works at once (BATCH_WORKER_CONCURRENCY, default 4; 0: it runs no batch lines). */
  batchWorkerConcurrency: number;
  /**
   * BATCH_NICE (0..19, default 0): how much lower than it started this process's OS CPU priority is set
   * (`nice`). For a batch gateway, one that runs only batch lines, beside interactive gateways run with
   * BATCH_WORKER_CONCURRENCY=0: on shared cores interactive work then gets the CPU first, and the batch
   * gateway's own event loop runs late, which the AIMD back-off reads. 0: unchanged.
   */
  batchNice: number;
  /** Engine profiles seeded at start and the default tenant GPU quota (DEPLOY_POLICY, JSON; Helm's deployPolicy). */
  deployPolicy: DeployPolicyConfig;
}

export function loadConfig(env: Record<string, string | undefined>): GatewayConfig {
  return {
    port: int(env, "PORT", 8080, 0, 65535),
    host: str(env, "HOST", "0.0.0.0"),
    databaseUrl: str(env, "DATABASE_URL"),
    redisUrl: redisUrl(env),
    redisPrefix: str(env, "REDIS_PREFIX", "infera"),
    gatewayId: str(env, "GATEWAY_ID", `${hostname()}-${randomBytes(3).toString("hex")}`),
    logLevel: str(env, "LOG_LEVEL", "info"),
    bodyLimitBytes: int(env, "BODY_LIMIT_BYTES", 4 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    queueWaitMs: int(env, "QUEUE_WAIT_MS", 120_000, 100, 3_600_000),
    queueMaxPerDeployment: int(env, "QUEUE_MAX_PER_DEPLOYMENT", 10_000, 1, 10_000_000),
    fastPath: bool(env, "FAST_PATH", true),
    shutdownGraceMs: int(env, "SHUTDOWN_GRACE_MS", 30_000, 0, 600_000),
    bootstrapAdminKey: optionalStr(env, "BOOTSTRAP_ADMIN_KEY"),
    maxAttempts: int(env, "MAX_ATTEMPTS", 3, 1, 10),
    cacheTtlMs: int(env, "CACHE_TTL_MS", 30_000, 0, 3_600_000),
    gpuTypes: optionalStr(env, "GPU_TYPES"),
    tenantModelConcurrency: int(env, "TENANT_MODEL_CONCURRENCY", 200, 0, 1_000_000),
    rateLimitLeaseMs: int(env, "RATE_LIMIT_LEASE_MS", 900_000, 1000, 86_400_000),
    usageFlushMs: int(env, "USAGE_FLUSH_MS", 250, 10, 3_600_000),
    secretsKey: optionalStr(env, "SECRETS_KEY"),
    agentAuthToken: optionalStr(env, "AGENT_AUTH_TOKEN"),
    agentTls: agentTls(env),
    agentIdleTimeoutMs: int(env, "AGENT_IDLE_TIMEOUT_MS", 60_000, 100, 3_600_000),
    agentCallTimeoutMs: int(env, "AGENT_CALL_TIMEOUT_MS", 600_000, 100, 3_600_000),
    requestTimeoutMs: int(env, "REQUEST_TIMEOUT_MS", 30_000, 100, 600_000),
    responsesRetentionDays: int(env, "RESPONSES_RETENTION_DAYS", 30, 1, 3650),
    consoleDir: optionalStr(env, "CONSOLE_DIR"),
    tracing: tracingConfig(env, "gateway"),
    accessLogSample: num(env, "ACCESS_LOG_SAMPLE", 1, 0, 1),
    storage: storageConfig(env),
    filesMaxBytes: int(env, "FILES_MAX_BYTES", 200 * 1024 * 1024, 1, 1024 * 1024 * 1024 * 1024),
    filesMaxLines: int(env, "FILES_MAX_LINES", 50_000, 1, 10_000_000),
    batchMaxInflight: int(env, "BATCH_MAX_INFLIGHT", 64, 1, 100_000),
    batchReserveFraction: num(env, "BATCH_RESERVE_FRACTION", 0.25, 0, 1),
    batchWorkerConcurrency: int(env, "BATCH_WORKER_CONCURRENCY", 4, 0, 1000),
    batchNice: int(env, "BATCH_NICE", 0, 0, 19),
    batchBackoffLatenessMs: int(env, "BATCH_BACKOFF_LATENESS_MS", 20, 0, 10_000),
    batchBackoffIntervalMs: int(env, "BATCH_BACKOFF_INTERVAL_MS", 250, 50, 60_000),
    deployPolicy: parseDeployPolicy(env.DEPLOY_POLICY),
  };
}

function agentTls(env: Record<string, string | undefined>): GatewayConfig["agentTls"] {
  const caFile = optionalStr(env, "AGENT_TLS_CA_FILE");
  const certFile = optionalStr(env, "AGENT_TLS_CLIENT_CERT_FILE");
  const keyFile = optionalStr(env, "AGENT_TLS_CLIENT_KEY_FILE");
  if ((certFile === undefined) !== (keyFile === undefined))
    throw new ConfigError("AGENT_TLS_CLIENT_CERT_FILE and AGENT_TLS_CLIENT_KEY_FILE go together: set both, or neither");
  if (!caFile) {
    if (certFile) throw new ConfigError("AGENT_TLS_CLIENT_CERT_FILE needs AGENT_TLS_CA_FILE (client certificates are sent over TLS)");
    return undefined;
  }
  return { caFile, serverName: str(env, "AGENT_TLS_SERVER_NAME", "infera-agent"), certFile, keyFile };
}
