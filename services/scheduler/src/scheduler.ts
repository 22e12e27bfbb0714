/**
 * Wires one scheduler process: a dispatcher per live deployment, the replica
 * directory fed by agents' heartbeats, releases from gateways, and the reconciler
 * (which acts only while this instance holds the leader lease).
 */
import { startTracing } from "@infera/telemetry";
import { Redis } from "ioredis";
import type { Kysely } from "kysely";
import { type Logger, type Readiness, type Stoppable, startMetricsServer, stopInOrder } from "@infera/core";
import { sql } from "kysely";
import { redisKeys } from "@infera/contracts";
import { createPlacementPolicy } from "@infera/policy";
import { assertRedisAccess, parseReleases, queuedCount, queueKeys, RedisLease, StreamConsumer } from "@infera/queue";
import { createDb, listDeployments, resealSecrets, secretsKeyFrom, type DB } from "@infera/registry";
import type { SchedulerConfig } from "./config.ts";
import { DeploymentDispatcher } from "./dispatcher.ts";
import { createSchedulerMetrics } from "./metrics.ts";
import { Reconciler } from "./reconciler.ts";
import { LogRelay } from "./log-relay.ts";
import { ReplicaDirectory } from "./replicas.ts";
import { SlotLender } from "./slot-lender.ts";
import type { RuntimeDriver } from "./runtime/driver.ts";
import { createBlobStore } from "@infera/storage";
import { startChores } from "./jobs/chores.ts";

const DISPATCHING = new Set(["initializing", "downloading", "deploying", "running"]);

export interface RunningScheduler {
  metricsPort: number;
  /** Its replicas as its dispatchers see them (what the tests check capacity against). */
  directory: ReplicaDirectory;
  /** What stops, in order (for main.ts's shutdown helper). */
  stoppers: readonly Stoppable[];
  /** All of `stoppers`, in order. */
  stop(): Promise<void>;
}

export async function startScheduler(config: SchedulerConfig, logger: Logger, driver: RuntimeDriver, dbOverride?: Kysely<DB>): Promise<RunningScheduler> {
  const keys = redisKeys(config.redisPrefix);
  const qkeys = queueKeys(config.redisPrefix);
  const metrics = createSchedulerMetrics();
  const tracing = await startTracing(config.tracing, logger);
  const db = dbOverride ?? createDb(config.databaseUrl);
  await assertRedisAccess(config.redisUrl);
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 3 });
  // Connected before it subscribes: ioredis' ready check (INFO) must not race the SUBSCRIBE.
  const sub = new Redis(config.redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
  for (const r of [redis, sub]) r.on("error", (err) => logger.warn({ err }, "redis error"));
  // Each dispatcher reads its queue with blocking calls: a connection of its own.
  const blockingConnection = () => {
    const c = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
    c.on("error", (err) => logger.warn({ err, connection: "queue" }, "redis error"));
    return c;
  };
  const prefillTokensPerMs = config.prefillTokensPerS / 1000;
  const directory = new ReplicaDirectory({ redis, keys, heartbeatMs: config.heartbeatMs, prefillTokensPerMs });
  const dispatchers = new Map<string, DeploymentDispatcher>();

  const secretsKey = config.secretsKey ? secretsKeyFrom(config.secretsKey) : undefined;
  const previousSecretsKey = config.secretsKeyPrevious ? secretsKeyFrom(config.secretsKeyPrevious) : undefined;
  if (secretsKey && previousSecretsKey) {
    // After a rotation: everything sealed under the previous key is re-sealed under the new one now.
    const { resealed, unreadable } = await resealSecrets(db, [secretsKey, previousSecretsKey]);
    logger.info({ resealed, unreadable }, "re-sealed Hugging Face tokens under the current SECRETS_KEY (SECRETS_KEY_PREVIOUS is set)");
  }
  const reconciler = new Reconciler({
    db,
    redis,
    keys,
    secretsKey,
    previousSecretsKey,
    driver,
    directory,
    metrics,
    logger: logger.child({ component: "reconciler" }),
    schedulerId: config.schedulerId,
    intervalMs: config.reconcileMs,
    scaleToZeroIdleMs: config.scaleToZeroIdleMs,
    queued: (id) => queuedCount(redis, qkeys, id),
  });

  let lastWake = new Map<string, number>();
  const wake = (id: string) => {
    const now = Date.now();
    if ((lastWake.get(id) ?? 0) > now - 250) return;
    lastWake.set(id, now);
    void redis.publish(qkeys.wakeChannel, id).catch(() => {});
  };

  async function syncDeployments(): Promise<void> {
    const all = await listDeployments(db, {});
    const live = new Set<string>();
    for (const d of all) {
      if (!DISPATCHING.has(d.status)) continue;
      live.add(d.id);
      let disp = dispatchers.get(d.id);
      if (!disp) {
        const log = logger.child({ component: "dispatcher", deploymentId: d.id });
        const { schedulerId } = config;
        const placement = d.config.placement ?? "least-loaded";
        disp = new DeploymentDispatcher({
          deploymentId: d.id,
          capacity: d.config.max_batch_size,
          policy: createPlacementPolicy(placement, { now: Date.now, random: Math.random }, { prefillTokensPerMs }),
          lender: config.fastPath
            ? new SlotLender({
                redis,
                keys: qkeys,
                deploymentId: d.id,
                schedulerId,
                capacity: d.config.max_batch_size,
                policy: placement,
                directory,
                metrics,
                logger: log,
                // A few heartbeats: a dead gateway's slots are back this long after its last report.
                ttlMs: config.heartbeatMs * 3,
              })
            : undefined,
          consumer: new StreamConsumer({
            redis,
            blocking: blockingConnection(),
            keys: qkeys,
            deploymentId: d.id,
            consumer: schedulerId,
            lockMs: config.jobLockMs,
            logger: log,
          }),
          lease: new RedisLease({ redis, key: qkeys.dispatchLease(d.id), holder: schedulerId, ttlMs: config.dispatchLeaseMs }),
          keys: qkeys,
          directory,
          metrics,
          logger: log,
          schedulerId,
          maxQueued: config.maxQueuedPerDeployment,
          leaseMs: config.dispatchLeaseMs,
          tracing,
          wake,
        });
        dispatchers.set(d.id, disp);
        disp.start();
      }
    }
    for (const [id, disp] of dispatchers) {
      if (live.has(id)) continue;
      dispatchers.delete(id);
      const d = all.find((x) => x.id === id);
      const deleted = d === undefined || d.status === "deleted";
      await disp.rejectAll(deleted ? "not_found" : "unavailable", `deployment ${id} is ${d?.status ?? "gone"}`);
      await disp.stop();
      // A deleted deployment's queue is gone for good (a stopped one keeps it for its restart).
      if (deleted) await redis.del(...qkeys.queues(id)).catch(() => {});
    }
  }

  await syncDeployments();

  await sub.connect();
  const logs = new LogRelay({
    redis,
    keys,
    driver,
    isLeader: () => reconciler.isLeader,
    schedulerId: config.schedulerId,
    logger: logger.child({ component: "log-relay" }),
  });
  await sub.subscribe(qkeys.schedulerChannel(config.schedulerId), qkeys.wakeChannel, keys.registryChannel, keys.logRequests);
  sub.on("message", (channel, message) => {
    if (channel === keys.logRequests) {
      logs.onRequest(message);
    } else if (channel === qkeys.wakeChannel) {
      void reconciler.kick();
    } else if (channel === keys.registryChannel) {
      void syncDeployments()
        .catch((err) => logger.warn({ err }, "could not sync deployments"))
        .then(() => reconciler.kick());
    } else {
      const { items: releases, dropped } = parseReleases(message);
      if (dropped) logger.warn({ dropped }, "dropped releases that do not match the schema");
      const touched = new Set<string>();
      for (const r of releases) {
        const disp = dispatchers.get(r.deploymentId);
        // A fast-path release frees no queue slot: the lease's count comes from what the gateway runs.
        if (r.lease) {
          if (r.failed) directory.released(r.deploymentId, r.replicaId, 0, true);
          disp?.leaseReleased(r);
        } else {
          directory.released(r.deploymentId, r.replicaId, r.count, r.failed);
          touched.add(r.deploymentId);
        }
        // Fairness by tokens served: output tokens are charged when the request ends.
        // A fast-path request was never charged at dispatch (the fair queue never held it): its whole prompt now.
        for (const u of r.usage ?? []) disp?.charge(u.tenantId, r.lease ? u.promptTokens : u.promptTokens - u.estimatedTokens, u.completionTokens);
      }
      for (const id of touched) dispatchers.get(id)?.pump();
    }
  });

  // Agents' reports: read often enough that a dead agent is out within a heartbeat interval.
  const pollMs = Math.max(25, Math.floor(config.heartbeatMs / 4));
  let polling = false;
  let polledAt = Date.now();
  const poll = setInterval(() => {
    if (polling) return;
    polling = true;
    void Promise.all(
      [...dispatchers.entries()].map(async ([id, disp]) => {
        await directory.refresh(id);
        const states = directory.states(id);
        for (const state of ["ready", "unhealthy", "draining", "stale"] as const) metrics.replicas.set({ deployment: id, state }, states[state]);
        disp.pump();
        await disp.lend();
      }),
    )
      .catch((err) => logger.warn({ err }, "could not read replica reports"))
      .finally(() => {
        polling = false;
        polledAt = Date.now();
      });
  }, pollMs);
  const resync = setInterval(() => void syncDeployments().catch(() => {}), Math.max(config.reconcileMs, 2000));

  reconciler.start();
  // Background work on BullMQ: batch orchestration, the batch sweep, stored-response retention.
  const chores = await startChores({
    db,
    blobs: createBlobStore(config.storage),
    connection: { redisUrl: config.redisUrl, prefix: config.redisPrefix },
    logger,
    chunkLines: config.batchChunkLines,
    reconcileMs: config.batchReconcileMs,
    responsesPurgeMs: config.responsesPurgeMs,
  });

  // Ready: Postgres and Redis answer, the subscription is up, and the loops run (the replica
  // poll within a few of its intervals, the reconciler within a few passes).
  let stopping = false;
  const loopsStalledAfterMs = Math.max(5_000, pollMs * 20);
  const reconcileStalledAfterMs = Math.max(30_000, config.reconcileMs * 5);
  const startedAt = Date.now();
  const ready = async (): Promise<Readiness> => {
    if (stopping) return { ready: false, reason: "stopping" };
    if (sub.status !== "ready") return { ready: false, reason: `the Redis subscription is ${sub.status}` };
    await redis.ping().catch((err: unknown) => Promise.reject(new Error(`Redis: ${(err as Error).message}`)));
    await sql`select 1`.execute(db).catch((err: unknown) => Promise.reject(new Error(`Postgres: ${(err as Error).message}`)));
    const now = Date.now();
    if (now - polledAt > loopsStalledAfterMs) return { ready: false, reason: `the replica poll has not run for ${now - polledAt} ms` };
    const passAt = reconciler.lastPassAt || startedAt;
    if (now - passAt > reconcileStalledAfterMs) return { ready: false, reason: `no reconcile pass for ${now - passAt} ms` };
    return { ready: true };
  };
  const http = await startMetricsServer(metrics.registry, config.metricsHost, config.metricsPort, ready);
  const metricsPort = http.port;
  logger.info({ schedulerId: config.schedulerId, metricsPort, runtime: driver.name }, "scheduler started");

  // The stop order: not ready, timers → the reconciler → the dispatchers (each hands back what
  // it holds and its lease) → the runtime → the metrics port → Redis → the pool.
  const stoppers: Stoppable[] = [
    {
      name: "timers",
      stop: () => {
        stopping = true;
        clearInterval(poll);
        clearInterval(resync);
        logs.stop();
      },
    },
    { name: "reconciler", stop: () => reconciler.stop() },
    chores,
    { name: "dispatchers", stop: () => Promise.all([...dispatchers.values()].map((d) => d.stop())).then(() => undefined) },
    { name: "runtime", stop: () => driver.stop() },
    { name: "metrics", stop: () => http.close() },
    {
      name: "redis",
      stop: () => {
        sub.disconnect();
        redis.disconnect();
        lastWake = new Map();
      },
    },
    { name: "postgres", stop: () => (dbOverride ? undefined : db.destroy()) },
    { name: "tracing", stop: () => tracing.stop() },
  ];
  return { metricsPort, directory, stoppers, stop: () => stopInOrder(logger, stoppers) };
}
