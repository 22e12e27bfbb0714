/**
 * What travels between gateways and schedulers through Redis: the queued request
 * (`InferJob`), the assignment and release messages, and the key/channel names every
 * process agrees on.
 *
 * The queue of a deployment is one Redis stream per priority class, read by the
 * schedulers as one consumer group: a scheduler takes as many entries as it has room for
 * in one XREADGROUP, an entry stays in its pending list until it is dispatched (at-least-once:
 * a dead scheduler's entries are claimed by another), and an entry is dispatched by deleting
 * it from the stream in the same script that publishes the assignment, so it is dispatched once.
 */

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
  /** Prompt tokens (estimated): the prefill work placement adds to the replica it picks. */
  promptTokens?: number;
  /** Epoch ms after which the gateway has given up on it. */
  deadline: number;
  enqueuedAt: number;
  /** Dispatch order class: 0 = re-queued after a replica failed it (front), then PRIORITY. */
  priority: number;
  /** Replicas that already failed this request before its first byte. */
  excludeReplicas?: string[];
  /** 0 for the first try; each re-queue adds one. */
  attempt: number;
}

/** Priority classes: lower goes first; each has its own stream per deployment. */
export const PRIORITY = { requeued: 0, priority: 1, standard: 5, batch: 10 } as const;
export type Priority = (typeof PRIORITY)[keyof typeof PRIORITY];

/** The classes in the order a scheduler reads them. */
export const PRIORITY_ORDER: readonly Priority[] = [PRIORITY.requeued, PRIORITY.priority, PRIORITY.standard, PRIORITY.batch];

/** The schedulers' consumer group on every queue stream, and the field an entry's job is in. */
export const QUEUE_GROUP = "schedulers";
export const QUEUE_FIELD = "job";

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

/** Why a deployment's replicas are not all up, as the runtime says it (a pod's PodScheduled condition …). */
export interface DeploymentStatusNote {
  message: string;
  /** Epoch ms the reconciler last saw it. */
  at: number;
}

/** Redis key names, all under one prefix so tests can share a Redis. */
export function redisKeys(prefix: string) {
  return {
    /** Stream of one priority class of a deployment's queue (entries: `job` → JSON InferJob). */
    queue: (deploymentId: string, priority: number) => `${prefix}:queue:${deploymentId}:${priority}`,
    /** All of a deployment's queue streams, in the order they are read. */
    queues: (deploymentId: string) => PRIORITY_ORDER.map((p) => `${prefix}:queue:${deploymentId}:${p}`),
    /** Hash replicaId → JSON ReplicaReport, one per deployment. */
    replicas: (deploymentId: string) => `${prefix}:replicas:${deploymentId}`,
    /** Set of deployment ids that have replicas registered. */
    deploymentsWithReplicas: `${prefix}:replica-deployments`,
    /** Pub/sub: assignments for one gateway instance (JSON Assignment[]). */
    gatewayChannel: (gatewayId: string) => `${prefix}:gw:${gatewayId}`,
    /** Pub/sub: releases for one scheduler instance (JSON Release[]). */
    schedulerChannel: (schedulerId: string) => `${prefix}:sched:${schedulerId}`,
    /** Pub/sub: a deployment's queue got work (wakes a scheduler for it / the reconciler). */
    wakeChannel: `${prefix}:wake`,
    /** Pub/sub: lifecycle changes (gateways drop cached resolutions). */
    registryChannel: `${prefix}:registry`,
    /** Hash gatewayId → "<requests waiting for a replica>:<epoch ms>", per deployment (the queue bound). */
    queuedByGateway: (deploymentId: string) => `${prefix}:queued:${deploymentId}`,
    /** Hash deploymentId → replicas the reconciler last asked the runtime for (the deploy API's `pending`). */
    desiredReplicas: `${prefix}:desired-replicas`,
    /** Hash deploymentId → JSON DeploymentStatusNote: why its replicas wait, in the runtime's words (the deploy API's `status_message`). */
    deploymentStatus: `${prefix}:deployment-status`,
    /** Hash GPU type → JSON GpuCapacity: what the cluster's nodes hold (kubernetes runtime, gpu mode), read by the deploy API. */
    gpuCapacity: `${prefix}:gpu-capacity`,
    /** Lease on dispatching one deployment (the scheduler id that holds it). */
    dispatchLease: (deploymentId: string) => `${prefix}:dispatch-lease:${deploymentId}`,
    /** Leader lock for the reconciler. */
    leader: `${prefix}:reconciler-leader`,
  };
}
export type RedisKeys = ReturnType<typeof redisKeys>;
