/**
 * Redis and Postgres restarted under steady streaming load. The machine's shared
 * servers are never touched: the platform runs on a private redis-server (append-only
 * file, as production runs it) and a private Postgres cluster, each on a free port.
 * While Postgres is down the gateway keeps serving keys and models it has cached and
 * holds usage records until it is back; a Redis restart must not wedge the gateway's
 * subscriber, the queue or the scheduler's workers.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPrivatePostgres, startPrivateRedis, type Platform, type PrivateStore } from "@infera/testkit";
import {
  EngineWatch,
  expectEveryRequestEnded,
  expectNothingOpen,
  expectServesNormally,
  expectUsageMatchesClients,
  expectUsageMatchesEngines,
  sleep,
  startFaultPlatform,
  startLoad,
  summary,
  waitForHealthyReplicas,
  type RequestRecord,
  type UsageRow,
} from "./harness.ts";

let platform: Platform;
let watch: EngineWatch;
let redis: PrivateStore;
let postgres: PrivateStore;

beforeAll(async () => {
  redis = await startPrivateRedis();
  postgres = await startPrivatePostgres();
  platform = await startFaultPlatform("fault-store", 2, { redisUrl: redis.url, databaseUrl: postgres.url });
  watch = new EngineWatch(platform).start();
}, 300_000);
afterAll(async () => {
  watch?.stop();
  await platform?.stop();
  await redis?.stop();
  await postgres?.stop();
}, 120_000);

function storeSuite(name: string, label: string, restart: () => Promise<void>) {
  describe(`fault: ${name}`, () => {
    let records: RequestRecord[] = [];
    let rows: UsageRow[] = [];

    it("injects the fault under steady streaming load", async () => {
      await waitForHealthyReplicas(platform, 2);
      await watch.baseline();
      const load = startLoad({ baseURL: platform.baseURL, key: platform.adminKey, label, concurrency: 6 });
      try {
        await sleep(1200);
        await restart();
        await sleep(3000);
      } finally {
        records = await load.stop();
      }
      console.log(`[${name}] outcomes`, summary(records));
      expect(records.filter((r) => r.outcome.kind === "completed").length).toBeGreaterThan(0);
    }, 240_000);

    it("invariant: every request completed or got an OpenAI-shaped error within its deadline", () => {
      expectEveryRequestEnded(records);
    });

    it("invariant: no request served twice; usage rows (written once the store is back) equal what the clients received", async () => {
      rows = await expectUsageMatchesClients(platform, records, `flt-${label}-%`);
    });

    it("invariant: no stream left open", async () => {
      await expectNothingOpen(platform, watch);
    });

    it("invariant: usage in Postgres equals the engines' completed work", async () => {
      await watch.poll();
      expectUsageMatchesEngines(rows, watch, 0);
    });

    it("invariant: the platform serves normally afterwards, with no manual step", async () => {
      await waitForHealthyReplicas(platform, 2, 30_000);
      await expectServesNormally(platform, label);
    });
  });
}

storeSuite("Redis restarted", "redisrestart", () => redis.restart(1500));
storeSuite("Postgres restarted (cached keys and models keep serving; usage waits)", "pgrestart", () => postgres.restart(3000));
