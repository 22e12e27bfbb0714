import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { int, optionalStr, str } from "@infera/core";

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
  shutdownGraceMs: number;
  bootstrapAdminKey: string | undefined;
  /** Re-queues of one request after replicas failed it before its first byte. */
  maxAttempts: number;
  /** Key and model cache lifetime; revocations and lifecycle changes also arrive by pub/sub. */
  cacheTtlMs: number;
  gpuTypes: string | undefined;
}

export function loadConfig(env: Record<string, string | undefined>): GatewayConfig {
  return {
    port: int(env, "PORT", 8080, 0, 65535),
    host: str(env, "HOST", "0.0.0.0"),
    databaseUrl: str(env, "DATABASE_URL"),
    redisUrl: str(env, "REDIS_URL", "redis://127.0.0.1:6379"),
    redisPrefix: str(env, "REDIS_PREFIX", "infera"),
    gatewayId: str(env, "GATEWAY_ID", `${hostname()}-${randomBytes(3).toString("hex")}`),
    logLevel: str(env, "LOG_LEVEL", "info"),
    bodyLimitBytes: int(env, "BODY_LIMIT_BYTES", 4 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    queueWaitMs: int(env, "QUEUE_WAIT_MS", 120_000, 100, 3_600_000),
    shutdownGraceMs: int(env, "SHUTDOWN_GRACE_MS", 30_000, 0, 600_000),
    bootstrapAdminKey: optionalStr(env, "BOOTSTRAP_ADMIN_KEY"),
    maxAttempts: int(env, "MAX_ATTEMPTS", 3, 1, 10),
    cacheTtlMs: int(env, "CACHE_TTL_MS", 30_000, 0, 3_600_000),
    gpuTypes: optionalStr(env, "GPU_TYPES"),
  };
}
