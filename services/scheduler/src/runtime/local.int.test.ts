/**
 * The local runtime with real child processes (engine-sim + worker agent per replica)
 * and real Redis/Postgres: a replica that crashes is restarted with growing backoff,
 * one that keeps crashing is reported failed (and the reconciler fails its deployment
 * with the reason), and removing replicas leaves no process behind.
 */
import { readdirSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { Writable } from "node:stream";
import type { Redis } from "ioredis";
import type { Kysely } from "kysely";
import { describe, expect } from "vitest";
import { createLogger } from "@infera/core";
import { type RedisKeys, redisKeys, type ReplicaReport } from "@infera/contracts";
import { createDeployment, ensureModelVersion, getDeployment, listDeploymentEvents, type DB } from "@infera/registry";
import { keepsHolding, TEST_REDIS_URL, waitFor } from "@infera/testkit";
import { test } from "@infera/testkit/fixtures";
import { createSchedulerMetrics } from "../metrics.ts";
import { queuedCount, queueKeys } from "@infera/queue";
import { Reconciler } from "../reconciler.ts";
import { ReplicaDirectory } from "../replicas.ts";
import type { ReplicaSpec } from "./driver.ts";
import { LocalDriver } from "./local.ts";

let prefix: string;
let keys: RedisKeys;
let redis: Redis;
let db: Kysely<DB>;

/** Log lines the driver writes, parsed, for assertions on restarts. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split("\n")) if (l.startsWith("{")) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: createLogger({ service: "test", level: "info", destination }), lines };
}

function driverWith(simEnv: Record<string, string>, logger = capturingLogger().logger, maxRestarts = 3): LocalDriver {
  return new LocalDriver({
    logger,
    redisUrl: TEST_REDIS_URL,
    redisPrefix: prefix,
    heartbeatMs: 200,
    agentAuthToken: "local-int-test-agent-token-0123456789abcdef",
    simEnv: { SIM_TTFT_MS: "0", SIM_ITL_MS: "0", ...simEnv },
    maxRestarts,
  });
}

function spec(deploymentId: string): ReplicaSpec {
  return { deploymentId, servedModelName: "acme/crashy", task: "chat", engine: "vllm", gpu: "A100-80GB", numGpus: 1, maxBatchSize: 4, extraArgs: [] };
}

/** Processes whose environment names this deployment (its engines and agents). */
function processesOf(deploymentId: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, "utf8").split("\0").includes(`INFERA_DEPLOYMENT_ID=${deploymentId}`)) pids.push(Number(entry));
    } catch {
      // gone, or not readable
    }
  }
  return pids;
}

function answers(address: string): Promise<boolean> {
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.slice(address.lastIndexOf(":") + 1))];
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

test.beforeAll(({ database, redis: r, redisPrefix }) => {
  redis = r;
  db = database.db;
  prefix = redisPrefix;
  keys = redisKeys(prefix);
});

describe("local runtime driver", () => {
  test("restarts a crashing replica with growing backoff, reports it failed after repeated crashes, and leaves no process", async () => {
    const { logger, lines } = capturingLogger();
    // An engine config engine-sim refuses: it exits 1 at every start.
    const driver = driverWith({ SIM_JITTER: "5" }, logger, 3);
    const id = "dep_crashloop";
    try {
      await driver.apply(spec(id), 1);
      const failed = await waitFor("the replica to fail", async () => (await driver.observe(id)).find((r) => r.phase === "failed"), { timeoutMs: 180_000 });
      expect(failed.restarts).toBe(3);
      expect(failed.reason).toContain("engine exited (code 1)");
      expect(failed.reason).toContain("SIM_JITTER");
      expect(failed.reason).toContain("crashed 3 times in a row");

      const exits = lines.filter((l) => l.msg === "replica process exited" && l.role === "engine");
      expect(exits.map((l) => l.restarts)).toEqual([1, 2, 3]);
      const started = lines.filter((l) => l.msg === "replica started").map((l) => Date.parse(String(l.time)));
      const exited = exits.map((l) => Date.parse(String(l.time)));
      expect(started.length).toBe(3);
      // Each restart came at least its backoff after the crash before it: 250 ms, then 500 ms.
      expect(started[1]! - exited[0]!).toBeGreaterThanOrEqual(250);
      expect(started[2]! - exited[1]!).toBeGreaterThanOrEqual(500);

      await waitFor("no process left", () => processesOf(id).length === 0, { timeoutMs: 60_000 });
      // Failed stays failed: nothing restarts it behind the reconciler's back.
      await keepsHolding("no process of a failed replica", () => processesOf(id).length === 0, { forMs: 1500 });
      expect(lines.filter((l) => l.msg === "replica started").length).toBe(3);
    } finally {
      await driver.stop();
    }
  }, 240_000);

  test("removing a healthy replica stops its engine and agent: no process left, the agent's port closed, deregistered", async () => {
    const driver = driverWith({});
    const id = "dep_healthy";
    try {
      await driver.apply(spec(id), 1);
      const report = await waitFor(
        "a healthy report",
        async () => {
          const all = Object.values(await redis.hgetall(keys.replicas(id))).map((j) => JSON.parse(j) as ReplicaReport);
          return all.find((r) => r.healthy);
        },
        { timeoutMs: 60_000 },
      );
      expect(processesOf(id).length).toBe(2);
      expect(await answers(report.address)).toBe(true);

      await driver.remove(id);
      expect(processesOf(id)).toEqual([]);
      expect(await answers(report.address)).toBe(false);
      expect(await driver.observe(id)).toEqual([]);
      expect(await redis.hget(keys.replicas(id), report.replicaId)).toBeNull();
    } finally {
      await driver.stop();
    }
  }, 90_000);

  test("removing a replica while it starts leaves nothing behind either", async () => {
    const driver = driverWith({});
    const id = "dep_racing";
    try {
      const applying = driver.apply(spec(id), 2);
      await driver.remove(id);
      await applying;
      await driver.remove(id);
      await keepsHolding("no process of a removed replica", () => processesOf(id).length === 0, { forMs: 500 });
    } finally {
      await driver.stop();
    }
  }, 60_000);
});

describe("reconciler with the local runtime", () => {
  test("moves a deployment whose replica keeps crashing to failed with the reason, and removes it", async () => {
    const { versionId } = await ensureModelVersion(db, { tenantId: null, name: "acme/crashy", task: "chat", version: "1" });
    const d = await createDeployment(db, {
      tenantId: null,
      modelVersionId: versionId,
      config: { gpu: "A100-80GB", num_gpus: 1, max_batch_size: 4, engine: "vllm", hf: null, container_image: null, extra_args: [], placement: "least-loaded" },
      settings: { min_instances: 1, max_instances: 1 },
    });
    const driver = driverWith({ SIM_JITTER: "5" }, capturingLogger().logger, 2);
    const reconciler = new Reconciler({
      db,
      redis,
      keys,
      driver,
      directory: new ReplicaDirectory({ redis, keys, heartbeatMs: 200 }),
      metrics: createSchedulerMetrics(),
      logger: capturingLogger().logger,
      schedulerId: "test-scheduler",
      intervalMs: 100,
      scaleToZeroIdleMs: 600_000,
      queued: (id) => queuedCount(redis, queueKeys(prefix), id),
    });
    reconciler.start();
    try {
      const failed = await waitFor(
        "the deployment to fail",
        async () => {
          const now = await getDeployment(db, d.id);
          return now?.status === "failed" ? now : undefined;
        },
        { timeoutMs: 60_000 },
      );
      expect(failed.fail_reason).toContain("SIM_JITTER");
      expect(failed.fail_reason).toContain("crashed 2 times in a row");
      const events = await listDeploymentEvents(db, d.id);
      expect(events.map((e) => `${e.from_status ?? "-"}>${e.to_status}`)).toEqual([
        "->initializing",
        "initializing>downloading",
        "downloading>deploying",
        "deploying>failed",
      ]);
      expect(events.at(-1)?.reason).toBe(failed.fail_reason);
      await waitFor("its replicas removed", async () => (await driver.observe(d.id)).length === 0 && processesOf(d.id).length === 0, { timeoutMs: 60_000 });
      expect(await redis.hget(keys.desiredReplicas, d.id)).toBeNull();
    } finally {
      await reconciler.stop();
      await driver.stop();
    }
  }, 90_000);
});
