/**
 * Vitest global setup: fails the run (never skips) when Postgres or Redis cannot be
 * reached, and prepares the migrated template database each test file copies.
 */
import { prepareTemplateDatabase } from "./postgres.ts";
import { assertRedisReachable } from "./redis.ts";

export default async function setup(): Promise<void> {
  await assertRedisReachable();
  await prepareTemplateDatabase();
}
