import { bool, ConfigError, int, oneOf, optionalStr, redisUrl, str } from "@infera/core";
import { ENGINE_KINDS, MIN_AGENT_TOKEN_LENGTH, type EngineKind } from "@infera/contracts";
import { type TracingConfig, tracingConfig } from "@infera/telemetry";

export interface AgentConfig {
  port: number;
  host: string;
  /** host:port the gateway dials; defaults to host:port. */
  advertiseAddress: string;
  metricsPort: number;
  engineUrl: string;
  engineKind: EngineKind;
  deploymentId: string;
  replicaId: string;
  servedModelName: string;
  maxBatchSize: number;
  redisUrl: string;
  redisPrefix: string;
  /** The bearer token the gateway sends on every call (per release); others are refused. */
  authToken: string;
  /** TLS for the gRPC port (AGENT_TLS_CERT_FILE + AGENT_TLS_KEY_FILE; AGENT_TLS_CLIENT_CA_FILE: require client certificates). */
  tls?: { certFile: string; keyFile: string; clientCaFile?: string };
  heartbeatMs: number;
  shutdownGraceMs: number;
  logLevel: string;
  /** Traces: the standard OTEL_* variables (`@infera/telemetry`). */
  tracing: TracingConfig;
  /** Coalesce concurrent embedding requests into one engine call. */
  embeddingBatching: boolean;
  embeddingBatchMax: number;
  /** Most embedding engine calls at once; requests beyond wait and join the next batch. */
  embeddingMaxInflight: number;
}

export function loadConfig(env: Record<string, string | undefined>): AgentConfig {
  const port = int(env, "AGENT_PORT", 50051, 0, 65535);
  const host = str(env, "AGENT_HOST", "127.0.0.1");
  const replicaId = str(env, "REPLICA_ID");
  const authToken = str(env, "AGENT_AUTH_TOKEN");
  if (authToken.length < MIN_AGENT_TOKEN_LENGTH) throw new ConfigError(`AGENT_AUTH_TOKEN must be at least ${MIN_AGENT_TOKEN_LENGTH} characters`);
  const certFile = optionalStr(env, "AGENT_TLS_CERT_FILE");
  const keyFile = optionalStr(env, "AGENT_TLS_KEY_FILE");
  if ((certFile === undefined) !== (keyFile === undefined))
    throw new ConfigError("AGENT_TLS_CERT_FILE and AGENT_TLS_KEY_FILE go together: set both, or neither");
  const clientCaFile = optionalStr(env, "AGENT_TLS_CLIENT_CA_FILE");
  if (clientCaFile && !certFile)
    throw new ConfigError("AGENT_TLS_CLIENT_CA_FILE needs AGENT_TLS_CERT_FILE and AGENT_TLS_KEY_FILE (client certificates are checked over TLS)");
  return {
    port,
    host,
    advertiseAddress: optionalStr(env, "ADVERTISE_ADDRESS") ?? `${host}:${port}`,
    metricsPort: int(env, "METRICS_PORT", 9092, 0, 65535),
    engineUrl: str(env, "ENGINE_URL", "http://127.0.0.1:8000"),
    engineKind: oneOf(env, "ENGINE_KIND", ENGINE_KINDS, "vllm"),
    deploymentId: str(env, "DEPLOYMENT_ID"),
    replicaId,
    servedModelName: str(env, "SERVED_MODEL_NAME"),
    maxBatchSize: int(env, "MAX_BATCH_SIZE", 96, 1, 100_000),
    redisUrl: redisUrl(env),
    redisPrefix: str(env, "REDIS_PREFIX", "infera"),
    authToken,
    tls: certFile && keyFile ? { certFile, keyFile, clientCaFile } : undefined,
    heartbeatMs: int(env, "HEARTBEAT_MS", 1000, 50, 60_000),
    shutdownGraceMs: int(env, "SHUTDOWN_GRACE_MS", 30_000, 0, 600_000),
    logLevel: str(env, "LOG_LEVEL", "info"),
    tracing: tracingConfig(env, "worker-agent"),
    embeddingBatching: bool(env, "EMBEDDING_BATCHING", true),
    embeddingBatchMax: int(env, "EMBEDDING_BATCH_MAX", 64, 1, 4096),
    embeddingMaxInflight: int(env, "EMBEDDING_MAX_INFLIGHT", 4, 1, 1024),
  };
}
