/**
 * Starts the whole platform for a test exactly as `pnpm start` does (the local-mode
 * launcher, every service its own process), on a database and Redis prefix of the
 * test's own, and stops it with nothing left running.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { createTestDatabase, type TestDatabase } from "./postgres.ts";
import { flushPrefix, TEST_REDIS_URL, testRedisPrefix } from "./redis.ts";
import { freePort } from "./ports.ts";
import { stopChild } from "./processes.ts";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

export interface PlatformOptions {
  label: string;
  /** Catalog entries to serve: names or tasks (chat, embeddings, images); default chat. */
  catalog?: string[];
  env?: Record<string, string>;
  readyTimeoutMs?: number;
  /** Use this database instead of a fresh one on the shared server (a private Postgres); not dropped at stop. */
  databaseUrl?: string;
  /** Use this Redis instead of the shared one (a private redis-server). */
  redisUrl?: string;
}

export interface Platform {
  baseURL: string;
  /** The OpenAI base URL: `${baseURL}/v1/openai`. */
  openaiURL: string;
  adminKey: string;
  databaseUrl: string;
  redisPrefix: string;
  redisUrl: string;
  /** The token its gateway sends its worker agents (what a second gateway needs too). */
  agentAuthToken: string;
  /** The launcher's pid (its children: scheduler and gateway). */
  pid: number;
  /** Where file bodies go (the local blob store). */
  storageDir: string;
  /** Where the replicas' logs go. */
  logDir: string;
  /** Everything the platform printed (JSON log lines), for assertions. */
  output(): string;
  stop(): Promise<void>;
}

export async function startPlatform(options: PlatformOptions): Promise<Platform> {
  const db: TestDatabase = options.databaseUrl
    ? { url: options.databaseUrl, name: new URL(options.databaseUrl).pathname.slice(1), drop: async () => {} }
    : await createTestDatabase(options.label);
  const redisUrl = options.redisUrl ?? TEST_REDIS_URL;
  const redisPrefix = testRedisPrefix(options.label);
  const port = await freePort();
  const adminKey = `sk-admin-${randomBytes(16).toString("hex")}`;
  const agentAuthToken = options.env?.AGENT_AUTH_TOKEN ?? randomBytes(32).toString("base64url");
  // File bodies of this platform's own (local backend), removed at stop.
  const storageDir = `/tmp/infera-test-files/${redisPrefix}`;
  let out = "";
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "deploy/local/src/main.ts"], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_ENV: "test",
      PORT: String(port),
      DATABASE_URL: db.url,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: redisPrefix,
      BOOTSTRAP_ADMIN_KEY: adminKey,
      CATALOG: (options.catalog ?? ["chat"]).join(","),
      SIM_TTFT_MS: "0",
      SIM_ITL_MS: "0",
      SIM_JITTER: "0",
      SIM_PREFILL_US_PER_TOKEN: "0",
      SIM_IMAGE_MS: "0",
      HEARTBEAT_MS: "200",
      RECONCILE_MS: "200",
      LOG_LEVEL: "info",
      LOCAL_LOG_DIR: `/tmp/infera-test-logs/${redisPrefix}`,
      AGENT_AUTH_TOKEN: agentAuthToken,
      STORAGE_DIR: storageDir,
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const baseURL = `http://127.0.0.1:${port}`;

  const stop = async () => {
    await stopChild(child);
    if (!options.redisUrl) await flushPrefix(redisPrefix).catch(() => {});
    await db.drop().catch(() => {});
    await rm(storageDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 240_000);
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`the platform exited before it was ready:\n${out.slice(-4000)}`);
    }
    try {
      const r = await fetch(`${baseURL}/readyz`);
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the platform was not ready in time:\n${out.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const logDir = options.env?.LOCAL_LOG_DIR ?? `/tmp/infera-test-logs/${redisPrefix}`;
  return {
    baseURL,
    openaiURL: `${baseURL}/v1/openai`,
    adminKey,
    databaseUrl: db.url,
    redisPrefix,
    redisUrl,
    agentAuthToken,
    pid: child.pid ?? 0,
    storageDir: options.env?.STORAGE_DIR ?? storageDir,
    logDir,
    output: () => out,
    stop,
  };
}

/** Reads a Prometheus text exposition into `name{labels}` → value. */
/** The JSON log lines in a process's output (other lines skipped). */
export function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export function parseMetrics(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

/** Sum of every series of a metric whose labels contain all of `match`. */
export function metricSum(metrics: Map<string, number>, name: string, match: Record<string, string> = {}): number {
  let sum = 0;
  for (const [k, v] of metrics) {
    if (k !== name && !k.startsWith(`${name}{`)) continue;
    if (Object.entries(match).every(([lk, lv]) => k.includes(`${lk}="${lv}"`))) sum += v;
  }
  return sum;
}

/** The same sums, one per value of `label` (series without it left out). */
export function metricByLabel(metrics: Map<string, number>, name: string, label: string, match: Record<string, string> = {}): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of metrics.keys()) {
    const value = k.startsWith(`${name}{`) ? new RegExp(`[{,]${label}="([^"]*)"`).exec(k)?.[1] : undefined;
    if (value !== undefined && out[value] === undefined) out[value] = metricSum(metrics, name, { ...match, [label]: value });
  }
  return out;
}

/**
 * The engine-sim of each served model (its replica's engine URL, from the agents' logs),
 * by the model name the sim serves: tests read what reached the engine at `/sim/last-request`.
 */
export async function engineUrls(platform: Platform): Promise<Map<string, { url: string; deploymentId: string }>> {
  const engines = new Map<string, { url: string; deploymentId: string }>();
  for (const f of readdirSync(platform.logDir).filter((x) => x.endsWith("-agent.log"))) {
    // The newest start of this replica's agent (a replica restarted under load logs again).
    const line = readFileSync(`${platform.logDir}/${f}`, "utf8")
      .split("\n")
      .filter((l) => l.includes('"agent listening"'))
      .at(-1);
    if (!line) continue;
    const url = (JSON.parse(line) as { engineUrl: string }).engineUrl;
    const res = await fetch(`${url}/sim/stats`).catch(() => undefined);
    if (res?.status !== 200) continue;
    const stats = (await res.json()) as { model: string };
    engines.set(stats.model, { url, deploymentId: f.replace(/-r\d+-agent\.log$/, "") });
  }
  return engines;
}
