/**
 * Dispatch throughput through Redis: the real scheduler (`startScheduler`, in-process)
 * placing requests that the gateway's real `Dispatch` enqueues on the queue streams as fast as it
 * can, onto N fake replicas that release at once. Reports requests/s dispatched and the
 * scheduler-measured queue time (enqueue → dispatch) p50/p99; prints a table and JSON.
 *
 *   pnpm bench:dispatch [--requests N] [--concurrency N] [--replicas N] [--schedulers N] [--out FILE]
 *
 * Needs Postgres (TEST_DATABASE_URL or postgres://postgres@127.0.0.1:5432/postgres; a
 * database of its own is created and dropped) and Redis (TEST_REDIS_URL).
 */
import { writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import pg from "pg";
import { createDb, migrateToLatest } from "@infera/registry";
import { ADMIN_URL, TEST_REDIS_URL } from "@infera/testkit";
import { TestCluster } from "../../services/scheduler/src/testing/cluster.ts";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "50000" },
    concurrency: { type: "string", default: "2000" },
    replicas: { type: "string", default: "8" },
    schedulers: { type: "string", default: "1" },
    out: { type: "string" },
  },
});
const REQUESTS = Number(values.requests);
const CONCURRENCY = Number(values.concurrency);
const REPLICAS = Number(values.replicas);
const SCHEDULERS = Number(values.schedulers);

async function admin(q: string): Promise<void> {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    await c.query(q);
  } finally {
    await c.end();
  }
}

function pct(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : 0;
}

const dbName = `infera_bench_${randomBytes(4).toString("hex")}`;
await admin(`CREATE DATABASE ${dbName}`);
const url = new URL(ADMIN_URL);
url.pathname = `/${dbName}`;
const db = createDb(url.toString(), { max: 4 });
await migrateToLatest(db);

// Capacity is no limit here: every replica has room for the whole concurrency.
const cluster = new TestCluster({
  db,
  databaseUrl: url.toString(),
  redisUrl: TEST_REDIS_URL,
  capacity: CONCURRENCY,
  schedulers: SCHEDULERS,
  observe: false,
  heartbeatMs: 1000,
});
try {
  await cluster.start();
  for (let i = 0; i < REPLICAS; i++) await cluster.addReplica(`r${i}`, 0);

  // Warm-up: connections, scripts loaded, the worker's first fetch.
  await Promise.all(Array.from({ length: 200 }, (_, i) => cluster.request({ tenantId: `t${i % 10}` })));

  const queued: number[] = [];
  let errors = 0;
  let next = 0;
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < REQUESTS) {
        next++;
        const r = await cluster.request({ tenantId: `t${next % 10}` });
        if (r.error) errors++;
        else queued.push(r.queuedMs);
      }
    }),
  );
  const wallS = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  queued.sort((a, b) => a - b);
  const result = {
    requests: REQUESTS,
    concurrency: CONCURRENCY,
    replicas: REPLICAS,
    schedulers: SCHEDULERS,
    wall_s: Number(wallS.toFixed(2)),
    dispatched_per_s: Math.round(queued.length / wallS),
    queue_time_ms_p50: pct(queued, 50),
    queue_time_ms_p99: pct(queued, 99),
    errors,
    cpu_us_per_request: Math.round((cpu.user + cpu.system) / REQUESTS),
  };
  console.log("");
  console.log("dispatch-bench (real scheduler + Redis stream queue, fake replicas releasing at once)");
  console.log(`  requests        ${result.requests}   concurrency ${result.concurrency}   replicas ${result.replicas}   schedulers ${result.schedulers}`);
  console.log(`  wall            ${result.wall_s} s`);
  console.log(`  dispatched/s    ${result.dispatched_per_s}`);
  console.log(`  queue time p50  ${result.queue_time_ms_p50} ms`);
  console.log(`  queue time p99  ${result.queue_time_ms_p99} ms`);
  console.log(`  errors          ${result.errors}`);
  console.log(JSON.stringify(result));
  if (values.out) writeFileSync(values.out, JSON.stringify(result, null, 2) + "\n");
} finally {
  await cluster.stop();
  await db.destroy();
  await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
}
