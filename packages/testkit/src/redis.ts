import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export async function assertRedisReachable(): Promise<void> {
  const r = new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  try {
    await r.connect();
    await r.ping();
  } catch (err) {
    throw new Error(`Redis is not reachable at ${TEST_REDIS_URL} (${(err as Error).message}). Start redis-server or set TEST_REDIS_URL.`);
  } finally {
    r.disconnect();
  }
}

/** A key prefix of its own for one test file. */
export function testRedisPrefix(label = "t"): string {
  return `test-${label
    .replace(/[^a-z0-9]/gi, "")
    .toLowerCase()
    .slice(0, 16)}-${randomBytes(4).toString("hex")}`;
}

/** Deletes every key under a prefix (SCAN, not KEYS). */
export async function flushPrefix(prefix: string): Promise<void> {
  const r = new Redis(TEST_REDIS_URL);
  try {
    let cursor = "0";
    do {
      const [next, keys] = await r.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      if (keys.length) await r.del(...keys);
    } while (cursor !== "0");
  } finally {
    r.disconnect();
  }
}
