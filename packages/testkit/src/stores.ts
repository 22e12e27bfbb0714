/**
 * Private Redis and Postgres servers for tests that restart them. The machine's shared
 * servers are used by every test at once and must never be restarted; these run on a
 * free port in a temp directory, persist their data across a restart (Redis with an
 * append-only file, as production runs it), and are removed at stop.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { createDb, migrateToLatest } from "@infera/registry";
import { freePort } from "./ports.ts";
import { waitFor } from "./wait.ts";

export interface PrivateStore {
  url: string;
  /** Stop the server (SIGTERM, as an operator's restart does) and start it again on the same port and data. */
  restart(downMs?: number): Promise<void>;
  /** Stop it and leave it stopped until `start()`. */
  down(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `password`: started with `--requirepass` and protected mode on (as the chart's Redis runs);
 * `url` then carries no password: a client must bring it.
 */
export async function startPrivateRedis(options: { password?: string } = {}): Promise<PrivateStore> {
  const dir = mkdtempSync(join(tmpdir(), "infera-redis-"));
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const auth = options.password === undefined ? [] : ["--requirepass", options.password, "--protected-mode", "yes"];
  let child: ChildProcess | undefined;
  const answers = async () => {
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500, password: options.password });
    r.on("error", () => {});
    try {
      await r.connect();
      return (await r.ping()) === "PONG";
    } finally {
      r.disconnect();
    }
  };
  const start = async () => {
    child = spawn(
      "redis-server",
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir,
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--maxmemory-policy",
        "noeviction",
        ...auth,
      ],
      { stdio: "ignore" },
    );
    await waitFor("redis-server to come up", answers, { timeoutMs: 10_000, intervalMs: 100 });
  };
  const down = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill("SIGTERM");
    await exited;
  };
  await start();
  return storeHandle(url, dir, start, down);
}

const PG_BIN = "/usr/lib/postgresql/15/bin";

/** A private Postgres cluster (initdb + pg_ctl, run as `postgres` when we are root) with a migrated `infera` database. */
export async function startPrivatePostgres(): Promise<PrivateStore> {
  const dir = mkdtempSync(join(tmpdir(), "infera-pg-"));
  const data = join(dir, "data");
  const port = await freePort();
  const asRoot = userInfo().uid === 0;
  if (asRoot) chownSync(dir, uidOf("postgres"), -1);
  const run = (args: string[]) => {
    const cmd = asRoot ? "runuser" : args[0]!;
    const argv = asRoot ? ["-u", "postgres", "--", ...args] : args.slice(1);
    const r = spawnSync(cmd, argv, { encoding: "utf8", timeout: 60_000 });
    if (r.status !== 0) throw new Error(`${args.join(" ")} failed: ${r.stderr || r.stdout}`);
  };
  run([`${PG_BIN}/initdb`, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
  const url = `postgres://postgres@127.0.0.1:${port}/infera`;
  const answers = async () => {
    const c = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`, connectionTimeoutMillis: 1000 });
    c.on("error", () => {});
    try {
      await c.connect();
      await c.query("select 1");
      return true;
    } finally {
      await c.end().catch(() => {});
    }
  };
  const start = async () => {
    run([
      `${PG_BIN}/pg_ctl`,
      "-D",
      data,
      "-l",
      join(dir, "log"),
      "-w",
      "-t",
      "30",
      "-o",
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
      "start",
    ]);
    await waitFor("postgres to come up", answers, { timeoutMs: 30_000, intervalMs: 100 });
  };
  const down = async () => {
    // -m fast: what an operator's restart does (connections are cut, work in flight rolls back).
    spawnSync(
      asRoot ? "runuser" : `${PG_BIN}/pg_ctl`,
      asRoot ? ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", data, "-m", "fast", "-w", "stop"] : ["-D", data, "-m", "fast", "-w", "stop"],
      {
        timeout: 60_000,
      },
    );
  };
  await start();
  const admin = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` });
  await admin.connect();
  await admin.query("CREATE DATABASE infera");
  await admin.end();
  const db = createDb(url, { max: 1 });
  try {
    await migrateToLatest(db);
  } finally {
    await db.destroy();
  }
  return storeHandle(url, dir, start, down);
}

function uidOf(user: string): number {
  const r = spawnSync("id", ["-u", user], { encoding: "utf8" });
  return Number(r.stdout.trim());
}

/** The handle both private stores share: restart with a pause, stop and remove the data. */
function storeHandle(url: string, dir: string, start: () => Promise<void>, down: () => Promise<void>): PrivateStore {
  return {
    url,
    start,
    down,
    async restart(downMs = 1000) {
      await down();
      await new Promise((r) => setTimeout(r, downMs));
      await start();
    },
    async stop() {
      await down();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
