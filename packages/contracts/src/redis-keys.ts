/**
 * Redis key names outside the queue (whose layout is `@infera/queue`'s `queueKeys`), all
 * under one prefix so tests can share a Redis.
 */
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
    /** Leader lease for the reconciler. */
    leader: `${prefix}:reconciler-leader`,
  };
}
export type RedisKeys = ReturnType<typeof redisKeys>;
