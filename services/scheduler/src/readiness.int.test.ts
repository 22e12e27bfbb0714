/**
 * The scheduler's /readyz says whether it can do its work: Postgres and Redis answer, its
 * Redis subscription is up, its loops run; it is not ready while stopping. Against a private
 * redis-server the test stops and starts.
 */
import { startPrivateRedis, testRedisPrefix, waitFor } from "@infera/testkit";
import { test } from "@infera/testkit/fixtures";
import { expect } from "vitest";
import { loadConfig } from "./config.ts";
import { startScheduler } from "./scheduler.ts";
import { silentLogger, staticDriver } from "./testing/cluster.ts";

interface Ready {
  status: number;
  body: { status: string; reason?: string };
}

test("/readyz: ready with Postgres and Redis reachable and the loops running; 503 naming Redis while it is down; ready again after", async ({ database }) => {
  const redis = await startPrivateRedis();
  const config = loadConfig({
    DATABASE_URL: database.url,
    REDIS_URL: redis.url,
    REDIS_PREFIX: testRedisPrefix("ready"),
    SCHEDULER_ID: "sched-ready",
    METRICS_PORT: "0",
    METRICS_HOST: "127.0.0.1",
    HEARTBEAT_MS: "200",
    RECONCILE_MS: "500",
  });
  const scheduler = await startScheduler(config, silentLogger, staticDriver, database.db);
  const readyz = async (): Promise<Ready> => {
    const r = await fetch(`http://127.0.0.1:${scheduler.metricsPort}/readyz`);
    return { status: r.status, body: (await r.json()) as Ready["body"] };
  };
  let stopped = false;
  try {
    const up = await waitFor("ready", async () => ((r) => (r.status === 200 ? r : undefined))(await readyz()));
    expect(up.body).toEqual({ status: "ready" });

    await redis.down();
    const down = await waitFor("not ready", async () => ((r) => (r.status === 503 ? r : undefined))(await readyz()));
    expect(down.body.status).toBe("unavailable");
    expect(down.body.reason).toMatch(/redis/i);

    await redis.start();
    await waitFor("ready again", async () => (await readyz()).status === 200);

    // Stopping: not ready from the first step on (the metrics port closes later in the list).
    const first = scheduler.stoppers[0]!;
    await first.stop();
    expect(await readyz()).toEqual({ status: 503, body: { status: "unavailable", reason: "stopping" } });
    await scheduler.stop();
    stopped = true;
  } finally {
    if (!stopped) await scheduler.stop();
    await redis.stop();
  }
}, 120_000);
