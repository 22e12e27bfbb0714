/**
 * `pnpm start` — the whole platform on one machine, as separate processes like in
 * production: Postgres and Redis (found or started), migrations, the demo catalog,
 * a scheduler with the `local` runtime (which starts engine-sim + agent replicas for
 * each deployment) and a gateway on PORT. Ctrl-C stops everything it started.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createDb, DEMO_CATALOG, migrateToLatest, seedCatalog } from "@infera/registry";
import { ensurePostgres, ensureRedis, type Service } from "./services.ts";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const env = process.env;
const port = Number(env.PORT ?? 8080);
const dataDir = env.LOCAL_DATA_DIR ?? join(ROOT, ".data");
const log = (m: string) => console.log(`[infera] ${m}`);

const services: Service[] = [];
const children: { name: string; proc: ChildProcess }[] = [];
let stopping = false;

async function stopAll(code: number): Promise<never> {
  if (stopping) return new Promise<never>(() => {});
  stopping = true;
  log("stopping…");
  // Gateway first (drains), then the scheduler (stops its replicas), then the stores.
  for (const { proc } of [...children].reverse()) {
    if (proc.exitCode !== null || proc.signalCode !== null) continue;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    const t = setTimeout(() => proc.kill("SIGKILL"), 20_000);
    await exited;
    clearTimeout(t);
  }
  for (const s of services.reverse()) await s.stop().catch(() => {});
  log("stopped");
  process.exit(code);
}
process.once("SIGINT", () => void stopAll(0));
process.once("SIGTERM", () => void stopAll(0));

function start(name: string, main: string, extra: NodeJS.ProcessEnv): ChildProcess {
  const proc = spawn(process.execPath, ["--import", "tsx", join(ROOT, main)], {
    cwd: ROOT,
    env: { ...env, ...extra, INFERA_PARENT_PID: String(process.pid) },
    stdio: ["ignore", "inherit", "inherit"],
  });
  proc.once("exit", (code, signal) => {
    if (!stopping) {
      log(`${name} exited (${signal ?? code}); stopping the platform`);
      void stopAll(1);
    }
  });
  children.push({ name, proc });
  return proc;
}

try {
  const postgres = await ensurePostgres(env, dataDir, log);
  services.push(postgres);
  const redis = await ensureRedis(env, join(dataDir, "redis"), log);
  services.push(redis);

  const db = createDb(postgres.url, { max: 2 });
  await migrateToLatest(db);
  const wanted = (env.CATALOG ?? "all").split(",").map((s) => s.trim());
  const catalog = DEMO_CATALOG.filter((e) => wanted.includes("all") || wanted.some((w) => e.name === w || e.task === w));
  await seedCatalog(db, catalog);
  await db.destroy();

  const common = {
    DATABASE_URL: postgres.url,
    REDIS_URL: redis.url,
    REDIS_PREFIX: env.REDIS_PREFIX ?? "infera",
    HEARTBEAT_MS: env.HEARTBEAT_MS ?? "500",
    LOG_LEVEL: env.LOG_LEVEL ?? "info",
  };
  start("scheduler", "services/scheduler/src/main.ts", { ...common, RUNTIME: "local", METRICS_PORT: env.SCHEDULER_METRICS_PORT ?? "0", METRICS_HOST: "127.0.0.1", LOCAL_LOG_DIR: env.LOCAL_LOG_DIR ?? join(dataDir, "logs") });
  start("gateway", "services/gateway/src/main.ts", { ...common, PORT: String(port), HOST: env.HOST ?? "127.0.0.1", READY_REQUIRES_CATALOG: "true" });

  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; !stopping; i++) {
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (i === 600) log("still waiting for the catalog to serve (see .data/logs)…");
    await new Promise((r) => setTimeout(r, 200));
  }
  log(`ready: OpenAI-compatible API at ${base}/v1/openai  (models: ${catalog.map((c) => c.name).join(", ")})`);
  if (!env.BOOTSTRAP_ADMIN_KEY) log("tip: set BOOTSTRAP_ADMIN_KEY=sk-… to create an admin key with that secret");
} catch (err) {
  console.error(`[infera] could not start: ${(err as Error).message}`);
  await stopAll(1);
}
