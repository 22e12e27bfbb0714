import { test } from "@infera/testkit/fixtures";
import type { Redis } from "ioredis";
import { describe, expect } from "vitest";
import { RedisLease } from "./lease.ts";

let prefix: string;
let redis: Redis;
let n = 0;
const pair = (ttlMs = 60_000) => {
  const key = `${prefix}:lease-${n++}`;
  return [new RedisLease({ redis, key, holder: "a", ttlMs }), new RedisLease({ redis, key, holder: "b", ttlMs }), key] as const;
};

test.beforeAll(({ redis: r, redisPrefix }) => {
  redis = r;
  prefix = redisPrefix;
});

describe("RedisLease", () => {
  test("has one holder at a time: the second cannot take, renew or drop it", async () => {
    const [a, b, key] = pair();
    expect(await a.acquire()).toBe(true);
    expect(await b.acquire()).toBe(false);
    expect(await b.hold()).toBe(false);
    expect(await b.renew()).toBe(false);
    await b.release();
    expect(await redis.get(key)).toBe("a");
    expect(await a.renew()).toBe(true);
    expect(await a.hold()).toBe(true);
  });

  test("goes to the next holder once dropped", async () => {
    const [a, b, key] = pair();
    expect(await a.hold()).toBe(true);
    await a.release();
    expect(await redis.exists(key)).toBe(0);
    expect(await b.hold()).toBe(true);
    expect(await a.renew()).toBe(false);
  });

  test("lapses when not renewed, and renewing extends it", async () => {
    const [a, b, key] = pair(5_000);
    expect(await a.acquire()).toBe(true);
    expect(await redis.pttl(key)).toBeGreaterThan(0);
    // As if 5 s went by without a renewal.
    await redis.pexpire(key, 1);
    await expect.poll(() => redis.exists(key)).toBe(0);
    expect(await a.renew()).toBe(false);
    expect(await b.acquire()).toBe(true);
    await redis.pexpire(key, 10);
    expect(await b.renew()).toBe(true);
    expect(await redis.pttl(key)).toBeGreaterThan(1_000);
  });
});
