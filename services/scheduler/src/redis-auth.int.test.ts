/**
 * Redis with a password, as the chart runs it (`--requirepass`, protected mode on): a real
 * redis-server on a free loopback port. The platform's Redis config (REDIS_URL, with the
 * password in it or in REDIS_PASSWORD) connects and the scheduler is ready; without the
 * password, or with another, the server refuses every command and the scheduler does not
 * start, saying so in Redis's words and where the password goes.
 */
import { Redis } from "ioredis";
import { describe, expect } from "vitest";
import { startPrivateRedis, testRedisPrefix, waitFor, type PrivateStore } from "@infera/testkit";
import { test } from "@infera/testkit/fixtures";
import { loadConfig } from "./config.ts";
import { startScheduler } from "./scheduler.ts";
import { silentLogger, staticDriver } from "./testing/cluster.ts";

// Characters a URL must escape, as a generated or operator-chosen password may hold.
const PASSWORD = "p@ss:w/rd#1?%&x";

async function withRedis(fn: (redis: PrivateStore) => Promise<void>): Promise<void> {
  const redis = await startPrivateRedis({ password: PASSWORD });
  try {
    await fn(redis);
  } finally {
    await redis.stop();
  }
}

/** What the scheduler started with `env` says: its /readyz, or the error it could not start with. */
async function schedulerWith(databaseUrl: string, env: Record<string, string>): Promise<{ status: number; reason?: string }> {
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    REDIS_PREFIX: testRedisPrefix("redis-auth"),
    METRICS_PORT: "0",
    METRICS_HOST: "127.0.0.1",
    HEARTBEAT_MS: "200",
    RECONCILE_MS: "500",
    ...env,
  });
  let scheduler: Awaited<ReturnType<typeof startScheduler>>;
  try {
    scheduler = await startScheduler(config, silentLogger, staticDriver);
  } catch (err) {
    return { status: 0, reason: (err as Error).message };
  }
  try {
    return await waitFor("a settled /readyz", async () => {
      const r = await fetch(`http://127.0.0.1:${scheduler.metricsPort}/readyz`);
      const body = (await r.json()) as { reason?: string };
      // Not ready for a moment while it connects; a refusal names itself.
      if (r.status === 200 || /NOAUTH|WRONGPASS/.test(body.reason ?? "")) return { status: r.status, reason: body.reason };
      return undefined;
    });
  } finally {
    await scheduler.stop();
  }
}

describe("Redis with requirepass", () => {
  test("REDIS_URL with the password in it: the scheduler is ready; REDIS_PASSWORD beside a bare URL works the same", async ({ database }) => {
    await withRedis(async (redis) => {
      const withPassword = new URL(redis.url);
      withPassword.password = encodeURIComponent(PASSWORD);
      expect(await schedulerWith(database.url, { REDIS_URL: withPassword.toString() })).toEqual({ status: 200, reason: undefined });
      expect(await schedulerWith(database.url, { REDIS_URL: redis.url, REDIS_PASSWORD: PASSWORD })).toEqual({ status: 200, reason: undefined });
      // What the config hands every client is one URL a plain ioredis client also works with.
      const r = new Redis(loadConfig({ DATABASE_URL: database.url, REDIS_URL: redis.url, REDIS_PASSWORD: PASSWORD }).redisUrl, { maxRetriesPerRequest: 0 });
      try {
        expect(await r.set("infera:auth-probe", "1")).toBe("OK");
      } finally {
        r.disconnect();
      }
    });
  }, 60_000);

  test("without the password, or with another, Redis refuses and the scheduler does not start, saying why", async ({ database }) => {
    await withRedis(async (redis) => {
      const where = `Redis at ${new URL(redis.url).protocol}//${new URL(redis.url).host} refused this service`;
      const bare = await schedulerWith(database.url, { REDIS_URL: redis.url });
      expect(bare.status).toBe(0);
      expect(bare.reason).toContain(`${where}: NOAUTH Authentication required`);
      expect(bare.reason).toContain("REDIS_PASSWORD");
      const wrong = await schedulerWith(database.url, { REDIS_URL: redis.url, REDIS_PASSWORD: `${PASSWORD}-old` });
      expect(wrong.status).toBe(0);
      expect(wrong.reason).toContain(`${where}: WRONGPASS invalid username-password pair`);
      // The message never carries the password it was given.
      expect(wrong.reason).not.toContain(PASSWORD);
      // And a client without it can neither read nor write the queues.
      const r = new Redis(redis.url, { maxRetriesPerRequest: 0, lazyConnect: true });
      r.on("error", () => {});
      try {
        await expect(r.xadd("infera:queue:x:5", "*", "job", "{}")).rejects.toThrow(/NOAUTH/);
      } finally {
        r.disconnect();
      }
    });
  }, 60_000);
});
