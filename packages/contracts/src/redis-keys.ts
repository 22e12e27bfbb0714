/**
 * Redis key names outside the queue (whose layout is `@infera/queue`'s `queueKeys`), all
 * under one prefix so tests can share a Redis.
 */
/** Why a deployment's replicas are not all up, as the runtime says it (a pod's PodScheduled condition …). */
export interface DeploymentStatusNote {
  message: string;
  /** Epoch ms the reconciler last saw it. */
  at: number;
}

export function redisKeys(prefix: string) {
  return {
    /** Hash replicaId → JSON ReplicaReport, one per deployment. */
    replicas: (deploymentId: string) => `${prefix}:replicas:${deploymentId}`,
    /** Set of deployment ids that have replicas registered. */
    deploymentsWithReplicas: `${prefix}:replica-deployments`,
    /** Pub/sub: lifecycle changes (gateways drop cached resolutions, schedulers resync). */
    registryChannel: `${prefix}:registry`,
    /** Hash deploymentId → replicas the reconciler last asked the runtime for (the deploy API's `pending`). */
    desiredReplicas: `${prefix}:desired-replicas`,
    /** Hash deploymentId → JSON DeploymentStatusNote: why its replicas wait, in the runtime's words (the deploy API's `status_message`). */
    deploymentStatus: `${prefix}:deployment-status`,
    /** Hash GPU type → JSON GpuCapacity: what the cluster's nodes hold (kubernetes runtime, gpu mode), read by the deploy API. */
    gpuCapacity: `${prefix}:gpu-capacity`,
    /** Leader lease for the reconciler. */
    leader: `${prefix}:reconciler-leader`,
    /** JSON ObservedDeployment: the runtime's last view of a deployment's replicas (runtime-view.ts). */
    runtimeObserved: (deploymentId: string) => `${prefix}:observed:${deploymentId}`,
    /** Pub/sub: JSON LogRequest, answered by the reconciler leader. */
    logRequests: `${prefix}:logs`,
    /** Stream of one log request's LogEntry values, and the lease its gateway renews. */
    logStream: (sid: string) => `${prefix}:logs:${sid}`,
    logLease: (sid: string) => `${prefix}:logs:${sid}:lease`,
  };
}
export type RedisKeys = ReturnType<typeof redisKeys>;
