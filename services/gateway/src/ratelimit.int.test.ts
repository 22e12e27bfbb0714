/**
 * The rate limiter against a real Redis: token buckets for rpm and tpm (reserve, settle),
 * concurrency slots with leases, the tenant cap per model, revocation, the headers, and
 * the cost of one admission (one round trip).
 */
import type { Redis } from "ioredis";
import { describe, expect } from "vitest";
import { createLogger, PlatformError } from "@infera/core";
import { test } from "@infera/testkit/fixtures";
import type { Principal } from "./auth.ts";
import { formatReset, RateLimited, RateLimiter } from "./ratelimit.ts";

let prefix: string;
let redis: Redis;
let limiter: RateLimiter;
let n = 0;

function key(limits: Partial<Pick<Principal, "rpm" | "tpm" | "maxConcurrent" | "expiresAt" | "monthlyTokenBudget">>, tenantId = `ten_${++n}`): Principal {
  return { keyId: `key_${++n}`, tenantId, scopes: ["inference"], tier: "standard", rpm: null, tpm: null, maxConcurrent: null, ...limits };
}

async function refused(p: Promise<unknown>): Promise<RateLimited> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(RateLimited);
  return e as RateLimited;
}

test.beforeAll(({ redis: r, redisPrefix }) => {
  redis = r;
  prefix = redisPrefix;
  limiter = new RateLimiter({ redis, prefix, tenantModelConcurrency: 5, leaseMs: 60_000, logger: createLogger({ service: "test", level: "silent" }) });
});

describe("RateLimiter", () => {
  test("lets a key with no limits through with no headers", async () => {
    const a = await limiter.admit(key({}), "dep_1", "r1", 1000);
    expect(a.headers).toEqual({});
    a.settle(10);
  });

  test("rpm: a bucket of the minute's requests, then one every 60/rpm s, with headers", async () => {
    const p = key({ rpm: 3 });
    const first = await limiter.admit(p, "dep_1", "a", 1);
    expect(first.headers).toMatchObject({ "x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "2" });
    expect(first.headers["x-ratelimit-reset-requests"]).toMatch(/^(\d+ms|[\d.]+s)$/);
    await limiter.admit(p, "dep_1", "b", 1);
    await limiter.admit(p, "dep_1", "c", 1);
    const e = await refused(limiter.admit(p, "dep_1", "d", 1));
    expect(e.code).toBe("rate_limited");
    expect(e.headers["x-ratelimit-remaining-requests"]).toBe("0");
    const ms = Number(e.headers["retry-after-ms"]);
    expect(ms).toBeGreaterThan(15_000); // one request frees every 20 s
    expect(ms).toBeLessThanOrEqual(20_000);
    expect(e.headers["retry-after"]).toBe(String(Math.ceil(ms / 1000)));
  });

  test("tpm: reserves the estimate at admission and settles to the real count", async () => {
    const p = key({ tpm: 1000 });
    const a = await limiter.admit(p, "dep_1", "t1", 700);
    expect(Number(a.headers["x-ratelimit-remaining-tokens"])).toBeLessThanOrEqual(300);
    const e = await refused(limiter.admit(p, "dep_1", "t2", 500));
    expect(e.headers["x-ratelimit-limit-tokens"]).toBe("1000");
    expect(Number(e.headers["retry-after-ms"])).toBeGreaterThan(0);
    await a.settle(100); // used 100 of the 700 reserved: 600 come back
    const b = await limiter.admit(p, "dep_1", "t3", 500);
    expect(Number(b.headers["x-ratelimit-remaining-tokens"])).toBeGreaterThanOrEqual(390);
    // A request bigger than the whole minute is admitted only on a full bucket, then owes it.
    const big = key({ tpm: 100 });
    await (await limiter.admit(big, "dep_1", "t4", 250)).settle(250);
    const e2 = await refused(limiter.admit(big, "dep_1", "t5", 10));
    expect(Number(e2.headers["retry-after-ms"])).toBeGreaterThan(60_000);
  });

  test("max_concurrent: slots are taken at admission and freed when settled", async () => {
    const p = key({ maxConcurrent: 2 });
    const a = await limiter.admit(p, "dep_1", "c1", 1);
    await limiter.admit(p, "dep_1", "c2", 1);
    const e = await refused(limiter.admit(p, "dep_1", "c3", 1));
    expect(e.message).toContain("concurrent");
    expect(e.headers["retry-after"]).toBe("1");
    await a.settle(0);
    await limiter.admit(p, "dep_1", "c4", 1);
  });

  test("caps a tenant's open requests per model across all its keys; other models and tenants are unaffected", async () => {
    const tenant = "ten_capped";
    const admitted = [];
    for (let i = 0; i < 5; i++) admitted.push(await limiter.admit(key({}, tenant), "dep_cap", `cap${i}`, 1));
    const e = await refused(limiter.admit(key({}, tenant), "dep_cap", "cap5", 1));
    expect(e.message).toContain("organization");
    await limiter.admit(key({}, tenant), "dep_other", "cap6", 1);
    await limiter.admit(key({}, "ten_else"), "dep_cap", "cap7", 1);
    await admitted[0]!.settle(0);
    await limiter.admit(key({}, tenant), "dep_cap", "cap8", 1);
  });

  test("settles of one turn go out together, each one applied: every slot freed, every token refunded", async () => {
    const p = key({ maxConcurrent: 4, tpm: 1000 });
    const open = await Promise.all([0, 1, 2, 3].map((i) => limiter.admit(p, "dep_1", `s${i}`, 250)));
    await refused(limiter.admit(p, "dep_1", "s4", 1));
    await Promise.all(open.map((a) => a.settle(50)));
    const again = await Promise.all([5, 6, 7, 8].map((i) => limiter.admit(p, "dep_1", `s${i}`, 150)));
    // Unsettled, the slots would be taken and the bucket empty: these four would be refused.
    expect(Number(again.at(-1)!.headers["x-ratelimit-remaining-tokens"])).toBeGreaterThanOrEqual(1000 - 4 * 50 - 4 * 150);
  });

  test("holds under concurrent admission from many clients (atomic script)", async () => {
    const p = key({ rpm: 25 });
    // Three gateways: three connections of their own.
    const conns = Array.from({ length: 3 }, () => redis.duplicate());
    const others = conns.map(
      (c) => new RateLimiter({ redis: c, prefix, tenantModelConcurrency: 0, leaseMs: 60_000, logger: createLogger({ service: "t", level: "silent" }) }),
    );
    try {
      const results = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => others[i % 3]!.admit(p, "dep_1", `x${i}`, 1)));
      expect(results.filter((r) => r.status === "fulfilled").length).toBe(25);
    } finally {
      for (const c of conns) c.disconnect();
    }
  });

  test("refuses a revoked key as an invalid key", async () => {
    const p = key({});
    await redis.sadd(limiter.revokedKeysKey, p.keyId);
    const e = await limiter.admit(p, "dep_1", "rv", 1).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(PlatformError);
    expect((e as PlatformError).code).toBe("invalid_api_key");
  });

  test("monthly token budget: reservations and settled counts add up; once spent, 429 insufficient_quota on every gateway", async () => {
    const p = key({ monthlyTokenBudget: 100 });
    const conn = redis.duplicate();
    const other = new RateLimiter({ redis: conn, prefix, tenantModelConcurrency: 0, leaseMs: 60_000, logger: createLogger({ service: "t", level: "silent" }) });
    await (await limiter.admit(p, "dep_1", "b1", 80)).settle(30); // 30 used
    expect(await limiter.monthUsed(p.keyId)).toBe(30);
    const open = await other.admit(p, "dep_1", "b2", 60); // 90 held while it runs
    await (await limiter.admit(p, "dep_1", "b3", 5)).settle(5); // 95
    await open.settle(70); // 105: over, by what the engine really produced
    expect(await limiter.monthUsed(p.keyId)).toBe(105);
    for (const l of [limiter, other]) {
      const e = (await l.admit(p, "dep_1", "b4", 1).catch((err: unknown) => err)) as PlatformError;
      expect(e.code).toBe("insufficient_quota");
    }
    // The admin API raising the budget (state hash) lets it through at once, whatever the principal says.
    await redis.hset(limiter.keyStateKey(p.keyId), "exp", 0, "budget", 1000);
    await (await other.admit(p, "dep_1", "b5", 1)).settle(1);
    conn.disconnect();
  });

  test("expiry: a key past it is refused as expired; the admin API's state wins over the cached principal", async () => {
    const p = key({ expiresAt: Date.now() + 60_000 });
    await (await limiter.admit(p, "dep_1", "e1", 1)).settle(1);
    await redis.hset(limiter.keyStateKey(p.keyId), "exp", Date.now() - 1, "budget", 0);
    const e = (await limiter.admit(p, "dep_1", "e2", 1).catch((err: unknown) => err)) as PlatformError;
    expect(e.code).toBe("invalid_api_key");
    expect(e.message).toBe("This API key has expired.");
    const gone = key({ expiresAt: Date.now() - 1 });
    expect(((await limiter.admit(gone, "dep_1", "e3", 1).catch((err: unknown) => err)) as PlatformError).message).toMatch(/expired/);
  });

  test("a rotated-out secret is refused once its grace ends, whatever a gateway's cache holds", async () => {
    const p = { ...key({}), secretHash: "old" };
    const state = (ph: string, pu: number) => redis.hset(limiter.keyStateKey(p.keyId), "exp", 0, "budget", 0, "h", "new", "ph", ph, "pu", pu);
    await state("old", Date.now() + 60_000);
    await (await limiter.admit(p, "dep_1", "r1", 1)).settle(1);
    await (await limiter.admit({ ...p, secretHash: "new" }, "dep_1", "r2", 1)).settle(1);
    await state("old", Date.now() - 1);
    expect(((await limiter.admit(p, "dep_1", "r3", 1).catch((err: unknown) => err)) as PlatformError).code).toBe("invalid_api_key");
    await state("", 0);
    expect(((await limiter.admit(p, "dep_1", "r4", 1).catch((err: unknown) => err)) as PlatformError).code).toBe("invalid_api_key");
    await (await limiter.admit({ ...p, secretHash: "new" }, "dep_1", "r5", 1)).settle(1);
  });

  test("costs one round trip per admission (reported; bound generous on a shared machine)", async () => {
    const p = key({ rpm: 1_000_000, tpm: 1_000_000_000, maxConcurrent: 1_000_000 });
    for (let i = 0; i < 50; i++) (await limiter.admit(p, "dep_bench", `w${i}`, 10)).settle(5);
    const times: number[] = [];
    for (let i = 0; i < 500; i++) {
      const t = performance.now();
      const a = await limiter.admit(p, "dep_bench", `b${i}`, 10);
      times.push(performance.now() - t);
      a.settle(5);
    }
    times.sort((x, y) => x - y);
    const median = times[Math.floor(times.length / 2)]!;
    console.log(`admission: median ${median.toFixed(3)} ms, p99 ${times[Math.floor(times.length * 0.99)]!.toFixed(3)} ms`);
    expect(median).toBeLessThan(10);
  });

  test("formats resets the way the hosted API does", () => {
    expect(formatReset(20)).toBe("20ms");
    expect(formatReset(1500)).toBe("1.5s");
    expect(formatReset(360_000)).toBe("6m0s");
  });
});
