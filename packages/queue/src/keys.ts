/**
 * The queue's Redis layout, all under one prefix so tests can share a Redis.
 *
 * A deployment's queue is one stream per priority class, read by the schedulers as one
 * consumer group: a scheduler takes as many entries as it has room for in one XREADGROUP,
 * an entry stays in its pending list until it is dispatched (at-least-once: a dead
 * scheduler's entries are claimed by another), and an entry is dispatched by deleting it
 * from its stream in the same script that publishes the assignment, so it is dispatched once.
 */

/** Priority classes: lower goes first; each has its own stream per deployment. */
export const PRIORITY = { requeued: 0, priority: 1, standard: 5, batch: 10 } as const;
export type Priority = (typeof PRIORITY)[keyof typeof PRIORITY];

/** The classes in the order a scheduler reads them. */
export const PRIORITY_ORDER: readonly Priority[] = [PRIORITY.requeued, PRIORITY.priority, PRIORITY.standard, PRIORITY.batch];

/** The schedulers' consumer group on every queue stream, and the field an entry's job is in. */
export const QUEUE_GROUP = "schedulers";
export const QUEUE_FIELD = "job";

export function queueKeys(prefix: string) {
  return {
    /** Stream of one priority class of a deployment's queue (entries: `job` → JSON InferJob). */
    queue: (deploymentId: string, priority: number) => `${prefix}:queue:${deploymentId}:${priority}`,
    /** All of a deployment's queue streams, in the order they are read. */
    queues: (deploymentId: string) => PRIORITY_ORDER.map((p) => `${prefix}:queue:${deploymentId}:${p}`),
    /** Pub/sub: assignments for one gateway instance (JSON Assignment[]). */
    gatewayChannel: (gatewayId: string) => `${prefix}:gw:${gatewayId}`,
    /** Pub/sub: releases for one scheduler instance (JSON Release[]). */
    schedulerChannel: (schedulerId: string) => `${prefix}:sched:${schedulerId}`,
    /** Pub/sub: a deployment's queue got work it has no replica for (wakes the reconciler). */
    wakeChannel: `${prefix}:wake`,
    /** Hash gatewayId → "<requests waiting for a replica>:<epoch ms>", per deployment (the queue bound). */
    queuedByGateway: (deploymentId: string) => `${prefix}:queued:${deploymentId}`,
    /** Lease on dispatching one deployment (the scheduler id that holds it). */
    dispatchLease: (deploymentId: string) => `${prefix}:dispatch-lease:${deploymentId}`,
    /** Hash: the slots the dispatching scheduler lends one gateway on a deployment's replicas (the fast path; `slots.ts`). */
    slots: (deploymentId: string, gatewayId: string) => `${prefix}:slots:${deploymentId}:${gatewayId}`,
    /** Hash gatewayId → JSON SlotReport: what each gateway runs on its leased slots (the fast path). */
    slotReports: (deploymentId: string) => `${prefix}:slot-reports:${deploymentId}`,
    /** Counter: the slot-lease epoch of a deployment, bumped by each new dispatch-lease holder. */
    slotEpoch: (deploymentId: string) => `${prefix}:slot-epoch:${deploymentId}`,
  };
}
export type QueueKeys = ReturnType<typeof queueKeys>;
