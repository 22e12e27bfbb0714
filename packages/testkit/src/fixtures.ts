/**
 * Test fixtures (vitest `test.extend`), each made once per test file and cleaned up after
 * it: `database` (a fresh migrated database of the file's own: its URL and a kysely
 * handle), `redisPrefix` (a key prefix of the file's own, flushed after), `redis` (a
 * connection to the test Redis), and, from `platformTest(options)`, `platform` (the whole
 * platform as `pnpm start` runs it, on a database and prefix of its own).
 *
 *   import { test } from "@infera/testkit/fixtures";   // (its own entry: it needs the vitest runner)
 *   test("…", async ({ database, redis }) => { … });
 *
 * Suite hooks get them too: `test.beforeAll(async ({ platform }) => …, timeout)` is where a
 * slow fixture (the platform) starts, under the hook's timeout rather than a test's.
 */
import { createDb, type DB } from "@infera/registry";
import { Redis } from "ioredis";
import type { Kysely } from "kysely";
import { test as base } from "vitest";
import { type Platform, type PlatformOptions, startPlatform } from "./platform.ts";
import { createTestDatabase } from "./postgres.ts";
import { flushPrefix, TEST_REDIS_URL, testRedisPrefix } from "./redis.ts";

export interface TestDatabaseHandle {
  url: string;
  db: Kysely<DB>;
}

export const test = base
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern (none)
  .extend("database", { scope: "file" }, async ({}, { onCleanup }): Promise<TestDatabaseHandle> => {
    const t = await createTestDatabase("file");
    const db = createDb(t.url, { max: 4 });
    onCleanup(async () => {
      await db.destroy();
      await t.drop();
    });
    return { url: t.url, db };
  })
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern (none)
  .extend("redisPrefix", { scope: "file" }, async ({}, { onCleanup }) => {
    const prefix = testRedisPrefix("file");
    onCleanup(() => flushPrefix(prefix));
    return prefix;
  })
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern (none)
  .extend("redis", { scope: "file" }, async ({}, { onCleanup }) => {
    const redis = new Redis(TEST_REDIS_URL);
    onCleanup(() => redis.disconnect());
    return redis;
  });

/** `test` with `platform`: the whole platform started with these options, once for the file. */
export function platformTest(options: PlatformOptions) {
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern (none)
  return test.extend("platform", { scope: "file" }, async ({}, { onCleanup }): Promise<Platform> => {
    const platform = await startPlatform(options);
    onCleanup(() => platform.stop());
    return platform;
  });
}
