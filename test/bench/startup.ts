/**
 * tsx or compiled JavaScript in the images: each service started both ways, alternating, on
 * this machine's Node.js — from TypeScript source through tsx (`node --import tsx main.ts`,
 * with a cold transform cache as a fresh container has, and with a warm one), and from its
 * esbuild bundle (`node dist/<image>/main.mjs`, what the images run). Time from spawn to
 * the service answering its readiness endpoint, and the RSS of the service with every child
 * it started (tsx runs an esbuild process beside node), once ready and idle for 1 s.
 *
 *   pnpm bench:startup [--runs 10]     # JSON to BENCH_OUT (default test/bench/results/startup-latest.json)
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { childrenOf, createTestDatabase, freePort, prepareTemplateDatabase, sampleProcess, TEST_REDIS_URL, testRedisPrefix } from "@infera/testkit";
import { r3, summarize } from "./stats.ts";

const { values } = parseArgs({ options: { runs: { type: "string", default: "10" } } });
const RUNS = Number(values.runs);
const ROOT = new URL("../../", import.meta.url).pathname;

interface Service {
  name: string;
  source: string;
  bundle: string;
  /** Env for one start, and the URL that answers 200 once it is ready. */
  start(port: number): { env: Record<string, string>; ready: string };
}

await prepareTemplateDatabase();
const db = await createTestDatabase("startup");
const prefix = testRedisPrefix("startup");
const SERVICES: Service[] = [
  {
    name: "gateway",
    source: "services/gateway/src/main.ts",
    bundle: "dist/gateway/main.mjs",
    start: (port) => ({ env: { PORT: String(port), HOST: "127.0.0.1", DATABASE_URL: db.url }, ready: `http://127.0.0.1:${port}/readyz` }),
  },
  {
    name: "scheduler",
    source: "services/scheduler/src/main.ts",
    bundle: "dist/scheduler/main.mjs",
    start: (port) => ({
      env: { METRICS_PORT: String(port), METRICS_HOST: "127.0.0.1", DATABASE_URL: db.url, RUNTIME: "local" },
      ready: `http://127.0.0.1:${port}/healthz`,
    }),
  },
  {
    name: "worker-agent",
    source: "services/worker-agent/src/main.ts",
    bundle: "dist/worker-agent/main.mjs",
    start: (port) => ({
      env: {
        AGENT_PORT: "0",
        METRICS_PORT: String(port),
        DEPLOYMENT_ID: "dep_startup",
        REPLICA_ID: "startup",
        SERVED_MODEL_NAME: "m",
        ENGINE_URL: "http://127.0.0.1:9",
      },
      ready: `http://127.0.0.1:${port}/metrics`,
    }),
  },
  {
    name: "engine-sim",
    source: "services/engine-sim/src/main.ts",
    bundle: "dist/engine-sim/main.mjs",
    start: (port) => ({ env: { PORT: String(port), HOST: "127.0.0.1", SIM_MODEL: "m" }, ready: `http://127.0.0.1:${port}/health` }),
  },
];
type Mode = "tsx (cold cache)" | "tsx (warm cache)" | "compiled";
const MODES: Mode[] = ["tsx (cold cache)", "tsx (warm cache)", "compiled"];

function treeRssKb(pid: number): number {
  return (sampleProcess(pid)?.rssKb ?? 0) + childrenOf(pid).reduce((n, c) => n + treeRssKb(c), 0);
}

async function once(s: Service, mode: Mode, warmTmp: string): Promise<{ readyMs: number; rssMb: number }> {
  const port = await freePort();
  const { env, ready } = s.start(port);
  // tsx keeps its transform cache in $TMPDIR: a fresh one per start is what a new container sees.
  const tmp = mode === "tsx (cold cache)" ? mkdtempSync(join(tmpdir(), "infera-startup-")) : warmTmp;
  const args = mode === "compiled" ? [s.bundle] : ["--import", "tsx", s.source];
  const t0 = performance.now();
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: {
      ...process.env,
      AGENT_AUTH_TOKEN: "startup-bench-agent-token-0123456789abcdef",
      ...env,
      NODE_ENV: "production",
      TMPDIR: tmp,
      REDIS_URL: TEST_REDIS_URL,
      REDIS_PREFIX: prefix,
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${s.name} (${mode}) exited ${child.exitCode}: ${err.slice(-2000)}`);
      const ok = await fetch(ready).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      if (performance.now() - t0 > 60_000) throw new Error(`${s.name} (${mode}) not ready in 60 s: ${err.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const readyMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 1000));
    return { readyMs, rssMb: treeRssKb(child.pid!) / 1024 };
  } finally {
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(t);
    if (tmp !== warmTmp) rmSync(tmp, { recursive: true, force: true });
  }
}

const bundled = spawnSync(process.execPath, ["deploy/docker/bundle.mjs", ...SERVICES.map((s) => s.name)], { cwd: ROOT, encoding: "utf8" });
if (bundled.status !== 0) throw new Error(`bundling failed: ${bundled.stderr}`);
const warmTmp = mkdtempSync(join(tmpdir(), "infera-startup-warm-"));
const samples = new Map<string, { readyMs: number[]; rssMb: number[] }>();
try {
  for (const s of SERVICES) await once(s, "tsx (warm cache)", warmTmp); // fills the warm cache
  for (let run = 0; run < RUNS; run++) {
    for (const s of SERVICES) {
      for (const mode of run % 2 ? [...MODES].reverse() : MODES) {
        const r = await once(s, mode, warmTmp);
        const key = `${s.name}\t${mode}`;
        const xs = samples.get(key) ?? { readyMs: [], rssMb: [] };
        xs.readyMs.push(r.readyMs);
        xs.rssMb.push(r.rssMb);
        samples.set(key, xs);
      }
    }
  }
} finally {
  rmSync(warmTmp, { recursive: true, force: true });
  await db.drop();
}

const rows = [...samples].map(([key, xs]) => {
  const [service, mode] = key.split("\t");
  const ready = summarize(xs.readyMs);
  const rss = summarize(xs.rssMb);
  return { service, mode, runs: ready.n, readyMs: { p50: r3(ready.p50), p99: r3(ready.p99) }, rssMb: { p50: r3(rss.p50), p99: r3(rss.p99) } };
});
const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
console.log(`\nstartup to ready and RSS when idle, ${RUNS} runs each, alternating (load average ${load})`);
console.log("service        mode               ready p50   p99 ms   RSS p50   p99 MiB");
for (const r of rows) {
  console.log(
    `${r.service!.padEnd(14)} ${r.mode!.padEnd(18)} ${r.readyMs.p50.toFixed(0).padStart(9)} ${r.readyMs.p99.toFixed(0).padStart(8)} ${r.rssMb.p50.toFixed(0).padStart(9)} ${r.rssMb.p99.toFixed(0).padStart(7)}`,
  );
}
const out = process.env.BENCH_OUT ?? join(ROOT, "test/bench/results/startup-latest.json");
writeFileSync(out, `${JSON.stringify({ at: new Date().toISOString(), node: process.version, loadAverage: load, runs: RUNS, rows }, null, 2)}\n`);
console.log(`\n${out}`);
