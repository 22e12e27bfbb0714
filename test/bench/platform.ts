/**
 * Starts the platform for the benchmark as local mode does (`deploy/local/src/main.ts`:
 * scheduler with the local runtime → engine-sim + worker-agent per replica, gateway),
 * on a database and Redis prefix of its own, with the catalog deployments pre-created
 * with more replicas and a larger batch than the demo catalog (the launcher's seeding
 * finds them and leaves them alone). Then finds every process it started and each
 * engine-sim's port, so the bench can call the very same engines directly.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { Redis } from "ioredis";
import { catalogDeploymentConfig, createDb, createDeployment, DEMO_CATALOG, ensureModelVersion, migrateToLatest } from "@infera/registry";
import { ADMIN_URL, flushPrefix, freePort, metricByLabel, metricSum, parseMetrics, stopChild, TEST_REDIS_URL } from "@infera/testkit";
import { pool, type Target } from "./load.ts";
import { descendants, environOf } from "./procs.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface BenchDeployment {
  /** A DEMO_CATALOG name or task (chat, embeddings). */
  catalog: string;
  replicas: number;
  maxBatchSize: number;
}

export interface PlatformSpec {
  deployments: BenchDeployment[];
  /** engine-sim and service env (SIM_TTFT_MS, EMBEDDING_BATCHING, NODE_OPTIONS, …). */
  env: Record<string, string>;
}

export interface Replica {
  agentPid: number;
  enginePid: number;
  /** http://127.0.0.1:<port> of the engine-sim behind this agent. */
  engineUrl: string;
  deploymentId: string;
  /** The served model name (SERVED_MODEL_NAME). */
  model: string;
  /** host:port of the worker agent's gRPC server. */
  agentAddress: string;
}

export interface BenchPlatform {
  baseURL: string;
  apiKey: string;
  /** The token local mode made for this run: what the gateway sends its agents. */
  agentAuthToken: string | undefined;
  launcherPid: number;
  gatewayPid: number;
  /** The gateway that runs the batch lines at a lower CPU priority, when local mode started one. */
  batchGatewayPid?: number;
  schedulerPid: number;
  replicas: Replica[];
  /** The bench's own redis-server, when it started one. */
  redisPid?: number;
  logFile: string;
  stop(): Promise<void>;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/**
 * A redis-server of the bench's own (as local mode starts one when none is given): the
 * shared development Redis also carries other work, whose latency would be measured as
 * ours. Falls back to TEST_REDIS_URL when redis-server is not installed.
 */
async function startRedis(): Promise<{ url: string; pid?: number; stop(): Promise<void> }> {
  const bin = spawnSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).stdout.trim();
  if (!bin) return { url: TEST_REDIS_URL, stop: async () => {} };
  const port = await freePort();
  const child = spawn(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction"], {
    stdio: "ignore",
  });
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on("error", () => {}); // not listening yet
    const up = await r.connect().then(
      () => r.ping().then(() => true),
      () => false,
    );
    r.disconnect();
    if (up) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  return {
    url,
    pid: child.pid,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      await new Promise((res) => child.once("exit", res));
    },
  };
}

export async function startBenchPlatform(spec: PlatformSpec): Promise<BenchPlatform> {
  const tag = randomBytes(4).toString("hex");
  const redisServer = await startRedis();
  const redisUrl = redisServer.url;
  const dbName = `infera_bench_${tag}`;
  await admin((c) => c.query(`CREATE DATABASE ${dbName}`));
  const u = new URL(ADMIN_URL);
  u.pathname = `/${dbName}`;
  const databaseUrl = u.toString();
  const redisPrefix = `bench-${tag}`;
  const dropAll = async () => {
    if (redisUrl === TEST_REDIS_URL) await flushPrefix(redisPrefix).catch(() => {});
    await redisServer.stop();
    await admin((c) => c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`)).catch(() => {});
  };

  const wanted = new Map<string, number>();
  const db = createDb(databaseUrl, { max: 1 });
  try {
    await migrateToLatest(db);
    for (const d of spec.deployments) {
      const e = DEMO_CATALOG.find((c) => c.name === d.catalog || c.task === d.catalog);
      if (!e) throw new Error(`no catalog entry ${d.catalog}`);
      const { versionId } = await ensureModelVersion(db, { tenantId: null, name: e.name, task: e.task, version: e.version, prices: e.prices });
      const dep = await createDeployment(db, {
        tenantId: null,
        modelVersionId: versionId,
        config: catalogDeploymentConfig(e, d.maxBatchSize),
        settings: { min_instances: d.replicas, max_instances: d.replicas },
      });
      wanted.set(dep.id, d.replicas);
    }
  } catch (err) {
    await db.destroy();
    await dropAll();
    throw err;
  }
  await db.destroy();

  const port = await freePort();
  const apiKey = `sk-bench-${randomBytes(16).toString("hex")}`;
  const logFile = `/tmp/infera-bench-${tag}.log`;
  const log = createWriteStream(logFile);
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "deploy/local/src/main.ts"], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_ENV: "production",
      PORT: String(port),
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: redisPrefix,
      BOOTSTRAP_ADMIN_KEY: apiKey,
      CATALOG: spec.deployments.map((d) => d.catalog).join(","),
      SIM_JITTER: "0",
      SIM_PREFILL_US_PER_TOKEN: "0",
      SIM_LOAD_FACTOR: "1",
      SIM_MAX_WAITING: "100000",
      // One tenant drives every stream: lift the per-tenant cap (the check itself still runs).
      TENANT_MODEL_CONCURRENCY: "1000000",
      LOG_LEVEL: "info",
      LOCAL_LOG_DIR: `/tmp/infera-bench-${tag}-logs`,
      ...spec.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const baseURL = `http://127.0.0.1:${port}`;

  const stop = async () => {
    await stopChild(child);
    log.end();
    await dropAll();
  };

  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 2 });
  try {
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the platform exited before it was ready (log: ${logFile})`);
      if (Date.now() > deadline) throw new Error(`the platform was not ready in time (log: ${logFile})`);
      let ready = false;
      try {
        ready = (await fetch(`${baseURL}/readyz`)).status === 200;
      } catch {
        // not listening yet
      }
      if (ready) {
        // Every replica, not just the first, must report healthy.
        let all = true;
        for (const [id, n] of wanted) {
          const reports = Object.values(await redis.hgetall(`${redisPrefix}:replicas:${id}`)).map((j) => JSON.parse(j) as { healthy: boolean });
          if (reports.filter((r) => r.healthy).length < n) all = false;
        }
        if (all) break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (err) {
    redis.disconnect();
    await stop();
    throw err;
  }
  redis.disconnect();

  const procs = descendants(child.pid!);
  const find = (needle: string) => procs.filter((p) => p.cmdline.includes(needle));
  // Local mode may also start a batch gateway (LOCAL_BATCH_GATEWAY): the gateway is the one on PORT.
  const gateways = find("services/gateway/src/main.ts");
  const gateway = gateways.find((g) => environOf(g.pid).INFERA_LOCAL_ROLE !== "batch-gateway");
  const batchGateway = gateways.find((g) => g !== gateway);
  const scheduler = find("services/scheduler/src/main.ts")[0];
  if (!gateway || !scheduler) {
    await stop();
    throw new Error("could not find the gateway and scheduler processes");
  }
  const engines = new Map(find("services/engine-sim/src/main.ts").map((p) => [`http://127.0.0.1:${environOf(p.pid).PORT}`, p.pid]));
  const replicas: Replica[] = [];
  for (const a of find("services/worker-agent/src/main.ts")) {
    const env = environOf(a.pid);
    const engineUrl = env.ENGINE_URL ?? "";
    const enginePid = engines.get(engineUrl);
    if (enginePid)
      replicas.push({
        agentPid: a.pid,
        enginePid,
        engineUrl,
        deploymentId: env.DEPLOYMENT_ID ?? "",
        model: env.SERVED_MODEL_NAME ?? "",
        agentAddress: env.ADVERTISE_ADDRESS ?? `127.0.0.1:${env.AGENT_PORT}`,
      });
  }
  const agentAuthToken = environOf(gateway.pid).AGENT_AUTH_TOKEN;
  return {
    baseURL,
    apiKey,
    agentAuthToken,
    launcherPid: child.pid!,
    gatewayPid: gateway.pid,
    batchGatewayPid: batchGateway?.pid,
    schedulerPid: scheduler.pid,
    replicas,
    redisPid: redisServer.pid,
    logFile,
    stop,
  };
}

/** The chat model the bench's chat deployment serves. */
export const CHAT_MODEL = "meta-llama/Meta-Llama-3-8B-Instruct";

/**
 * The chat endpoints a bench calls: the platform's (through the gateway on PORT, with the run's
 * key) and each chat replica's engine-sim directly (the same-run baseline), a connection pool
 * each; `close` ends the pools.
 */
export function chatTargets(p: BenchPlatform, connections: number): { platform: Target; direct: Target[]; replicas: Replica[]; close(): Promise<void> } {
  const replicas = p.replicas.filter((r) => r.model === CHAT_MODEL);
  const pools = [pool(p.baseURL, connections), ...replicas.map((r) => pool(r.engineUrl, connections))];
  return {
    platform: {
      label: "platform",
      pool: pools[0]!,
      path: "/v1/openai/chat/completions",
      headers: { "content-type": "application/json", authorization: `Bearer ${p.apiKey}` },
    },
    direct: pools.slice(1).map((pl) => ({ label: "direct", pool: pl, path: "/v1/chat/completions", headers: { "content-type": "application/json" } })),
    replicas,
    close: async () => {
      await Promise.all(pools.map((x) => x.close().catch(() => {})));
    },
  };
}

/**
 * The platform's processes by name, for CPU by process: the gateway, the batch gateway (when
 * local mode started one), the scheduler, the given replicas' agents and the bench's own Redis.
 */
export function processesOf(p: BenchPlatform, replicas: readonly Replica[]): { name: string; pid: number }[] {
  return [
    { name: "gateway", pid: p.gatewayPid },
    ...(p.batchGatewayPid ? [{ name: "batch-gateway", pid: p.batchGatewayPid }] : []),
    { name: "scheduler", pid: p.schedulerPid },
    ...replicas.map((r, i) => ({ name: `agent-${i + 1}`, pid: r.agentPid })),
    ...(p.redisPid ? [{ name: "redis", pid: p.redisPid }] : []),
  ];
}

/** A process's /metrics, parsed: `base` is its URL without the path. */
export async function scrape(base: string): Promise<Map<string, number>> {
  return parseMetrics(await (await fetch(`${base}/metrics`)).text());
}

/** The gateway's V8 heap as its own /metrics reports it (prom-client's default metrics), MB: what of its RSS is JavaScript's. */
export async function heapMb(baseURL: string): Promise<{ total: number; used: number; external: number }> {
  const m = await scrape(baseURL);
  const mb = (name: string) => Math.round(metricSum(m, `gateway_nodejs_${name}_bytes`) / 2 ** 20);
  return { total: mb("heap_size_total"), used: mb("heap_size_used"), external: mb("external_memory") };
}

/** The gateway's placement counters (`gateway_placements_total`): first attempts on leased slots (fast) or through the queue, by reason. */
export async function placements(baseURL: string): Promise<{ fast: number; queue: number; queue_reasons: Record<string, number> }> {
  const m = await scrape(baseURL);
  return {
    fast: metricSum(m, "gateway_placements_total", { path: "fast" }),
    queue: metricSum(m, "gateway_placements_total", { path: "queue" }),
    queue_reasons: metricByLabel(m, "gateway_placements_total", "reason", { path: "queue" }),
  };
}

type Placements = Awaited<ReturnType<typeof placements>>;

/** What was placed between two `placements` reads (reasons that did not move left out). */
export function placementsSince(a: Placements, b: Placements): Placements {
  const reasons = Object.entries(b.queue_reasons)
    .map(([r, n]) => [r, n - (a.queue_reasons[r] ?? 0)] as const)
    .filter(([, n]) => n > 0);
  return { fast: b.fast - a.fast, queue: b.queue - a.queue, queue_reasons: Object.fromEntries(reasons) };
}

/** `n on leased slots, m through the queue (reason k, …)`. */
export function describePlacements(x: Placements): string {
  const why = Object.entries(x.queue_reasons).map(([r, n]) => `${r} ${n}`);
  return `${x.fast} on leased slots (fast path), ${x.queue} through the queue${why.length ? ` (${why.join(", ")})` : ""}`;
}
