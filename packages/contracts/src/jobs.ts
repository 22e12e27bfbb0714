/**
 * The BullMQ job catalog: one map from job name to its payload type and options,
 * shared by the producer (gateway) and the consumer (scheduler), and the Redis
 * key/channel names every process agrees on.
 */
import type { JobsOptions } from "bullmq";

/** A request waiting for a replica. The body stays in the gateway; only what placement needs travels. */
export interface InferJob {
  requestId: string;
  /** The gateway instance to tell where to send it (its reply channel). */
  gatewayId: string;
  tenantId: string;
  keyId: string;
  endpoint: "chat" | "completion" | "embedding" | "image";
  /** Hashes of the prompt's leading blocks, for prefix-affine placement. */
  prefixHashes: string[];
  /** Prompt tokens (estimated) plus max output tokens: what fairness charges up front. */
  estimatedTokens: number;
  /** Epoch ms after which the gateway has given up on it. */
  deadline: number;
  enqueuedAt: number;
  /** Dispatch order class: 0 = re-queued after a replica failed it (front), then PRIORITY. */
  priority: number;
  /** Replicas that already failed this request before its first byte. */
  excludeReplicas?: string[];
  /** 0 for the first try; each re-queue adds one (job ids are `${requestId}.${attempt}`). */
  attempt: number;
}

export const JOBS = {
  infer: {
    name: "infer" as const,
    options: { removeOnComplete: true, removeOnFail: true, attempts: 1 } satisfies JobsOptions,
  },
};

/** Priority levels (BullMQ: lower runs first; a job without priority runs before all of them). */
export const PRIORITY = { requeued: 0, priority: 1, standard: 5, batch: 10 } as const;

export function jobId(requestId: string, attempt: number): string {
  return `${requestId}.${attempt}`;
}

/** What the scheduler tells a gateway: which replica serves a request. */
export type Assignment =
  | { type: "assigned"; requestId: string; replicaId: string; address: string; queuedMs: number; schedulerId: string; deploymentId: string }
  | { type: "rejected"; requestId: string; code: "unavailable" | "timeout" | "not_found"; message: string; retryAfterS?: number };

/** What a gateway tells the scheduler that placed a request once the request ends on its replica. */
export interface Release {
  deploymentId: string;
  replicaId: string;
  count: number;
  /** The replica could not be reached before the first byte. */
  failed: boolean;
  /**
   * Tokens the released requests actually used, per tenant, so the scheduler's fair queue can
   * charge output tokens at completion (and correct the estimate it charged at dispatch).
   */
  usage?: ReleaseUsage[];
}

/** One tenant's usage in a release (sums over the released requests). */
export interface ReleaseUsage {
  tenantId: string;
  /** What the jobs carried as `estimatedTokens` (charged as input at dispatch). */
  estimatedTokens: number;
  promptTokens: number;
  completionTokens: number;
}

/** What an agent reports about its replica, every heartbeat. */
export interface ReplicaReport {
  replicaId: string;
  deploymentId: string;
  /** host:port of the agent's gRPC server. */
  address: string;
  /** Requests running in the engine (from its metrics) — or the agent's own count when higher. */
  running: number;
  /** Requests waiting inside the engine. */
  waiting: number;
  /** KV-cache use, 0..1. */
  kvCacheUsage: number;
  healthy: boolean;
  /** Draining: finishing what it has, taking nothing new. */
  draining: boolean;
  /** Epoch ms of this report. */
  at: number;
}

/** Redis key names, all under one prefix so tests can share a Redis. */
export function redisKeys(prefix: string) {
  return {
    /** BullMQ prefix (BullMQ adds `:<queue>:…`). */
    bullPrefix: `${prefix}:bull`,
    queueName: (deploymentId: string) => `deploy-${deploymentId}`,
    /** Hash replicaId → JSON ReplicaReport, one per deployment. */
    replicas: (deploymentId: string) => `${prefix}:replicas:${deploymentId}`,
    /** Set of deployment ids that have replicas registered. */
    deploymentsWithReplicas: `${prefix}:replica-deployments`,
    /** Pub/sub: assignments for one gateway instance. */
    gatewayChannel: (gatewayId: string) => `${prefix}:gw:${gatewayId}`,
    /** Pub/sub: releases for one scheduler instance (JSON Release[]). */
    schedulerChannel: (schedulerId: string) => `${prefix}:sched:${schedulerId}`,
    /** Pub/sub: a deployment's queue got work (wakes a scheduler for it / the reconciler). */
    wakeChannel: `${prefix}:wake`,
    /** Pub/sub: lifecycle changes (gateways drop cached resolutions). */
    registryChannel: `${prefix}:registry`,
    /** Set once per job id when it is dispatched: makes dispatch once-only across schedulers. */
    dispatched: (jobId: string) => `${prefix}:dispatched:${jobId}`,
    /** Hash gatewayId → "<requests waiting for a replica>:<epoch ms>", per deployment (the queue bound). */
    queuedByGateway: (deploymentId: string) => `${prefix}:queued:${deploymentId}`,
    /** Hash deploymentId → replicas the reconciler last asked the runtime for (the deploy API's `pending`). */
    desiredReplicas: `${prefix}:desired-replicas`,
    /** Leader lock for the reconciler. */
    leader: `${prefix}:reconciler-leader`,
  };
}
export type RedisKeys = ReturnType<typeof redisKeys>;
