/**
 * For the gateway's integration tests: a gateway in this process on a port of its own, with
 * its own database and Redis key prefix; `stop` shuts it down and removes both.
 */
import { createLogger } from "@infera/core";
import { createTestDatabase, flushPrefix, TEST_REDIS_URL, testRedisPrefix, type TestDatabase } from "@infera/testkit";
import { startGateway, type RunningGateway } from "./app.ts";
import { loadConfig } from "./config.ts";

export interface TestGateway {
  gateway: RunningGateway;
  db: TestDatabase;
  stop(): Promise<void>;
}

/** `name` names the database and the prefix; `env` adds to (or overrides) the gateway's config. */
export async function startTestGateway(name: string, env: Record<string, string> = {}): Promise<TestGateway> {
  const db = await createTestDatabase(name);
  const prefix = testRedisPrefix(name);
  const config = loadConfig({ DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL, REDIS_PREFIX: prefix, PORT: "0", HOST: "127.0.0.1", ...env });
  const gateway = await startGateway(config, createLogger({ service: "test", level: "silent" }));
  return {
    gateway,
    db,
    async stop() {
      await gateway.stop();
      await flushPrefix(prefix);
      await db.drop();
    },
  };
}
