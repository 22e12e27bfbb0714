/**
 * CPU per request by process at a fixed, modest rate: the A/B figure for per-request work
 * (it depends far less on what else the machine runs than latency does). Starts the platform
 * as the bench does (engine-sim answering at once), warms up, then sends `--rate` requests/s
 * for `--seconds`, non-streamed and then streamed (16 tokens each), straight to the same
 * engine-sims first (their own CPU per request is the same-run baseline), and reads each
 * process's CPU time from /proc: gateway, scheduler, agents, Redis. Beside each figure: how
 * the gateway placed the requests (`gateway_placements_total{path}`: fast path or queue) and
 * how many new slot-lease versions the scheduler wrote (`scheduler_slot_lease_versions_total`:
 * the fast path's lease churn), and read/write system calls per request by process (/proc/<pid>/io,
 * steadier than CPU time on a shared machine). A rate above what the machine carries measures overload.
 *
 *   pnpm bench:cpu [--rate 150] [--seconds 6] [--batch 1100] [--profile]   (FAST_PATH=false in the env: that platform)
 */
import { mkdirSync } from "node:fs";
import { freePort, metricSum } from "@infera/testkit";
import { parseArgs } from "node:util";
import { call, openLoop, type Target } from "./load.ts";
import { CHAT_MODEL, chatTargets, placements, placementsSince, processesOf, scrape, startBenchPlatform } from "./platform.ts";
import { cpuMicros, ioSyscalls, machineLoad, profilerNodeOptions, restartProfiles } from "./procs.ts";
import { r3 } from "./stats.ts";

const { values } = parseArgs({
  options: {
    rate: { type: "string", default: "150" },
    seconds: { type: "string", default: "6" },
    batch: { type: "string", default: "1100" },
    profile: { type: "boolean", default: false },
  },
});
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
/** Slots per replica (max_batch_size): with few, a rate above what they turn over queues. */
const BATCH = Number(values.batch);
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR ?? "/tmp/infera-bench-prof";

const schedulerMetricsPort = await freePort();
const env: Record<string, string> = { SIM_TTFT_MS: "0", SIM_ITL_MS: "0", SCHEDULER_METRICS_PORT: String(schedulerMetricsPort) };
if (process.env.FAST_PATH) env.FAST_PATH = process.env.FAST_PATH;
if (values.profile) {
  mkdirSync(PROFILE_DIR, { recursive: true });
  env.NODE_OPTIONS = profilerNodeOptions(PROFILE_DIR);
}
const load0 = machineLoad();
const p = await startBenchPlatform({ deployments: [{ catalog: "chat", replicas: 2, maxBatchSize: BATCH }], env });
const { platform, direct, replicas, close } = chatTargets(p, 256);
try {
  const body = (i: number, stream: boolean, engine: boolean) =>
    JSON.stringify({
      model: CHAT_MODEL,
      messages: [{ role: "user", content: `CPU per request ${i % 500}: describe a city you would like to visit.` }],
      max_tokens: 16,
      stream,
      ...(stream && engine ? { stream_options: { include_usage: true } } : {}),
    });
  // Local mode's batch gateway idles here (no batch runs), but its CPU is the platform's too.
  const procs = processesOf(p, replicas);
  const engines = replicas.map((r) => r.enginePid);
  const churn = async () => ({
    ...(await placements(p.baseURL)),
    versions: metricSum(await scrape(`http://127.0.0.1:${schedulerMetricsPort}`), "scheduler_slot_lease_versions_total"),
  });
  const run = (targets: Target[], stream: boolean, engine: boolean, seconds: number) =>
    openLoop({
      rate: RATE,
      count: Math.round(RATE * seconds),
      maxInFlight: 1000,
      fire: (i) => call(targets[i % targets.length]!, body(i, stream, engine), { stream }),
    });
  for (const stream of [false, true]) {
    await run(direct, stream, true, 1);
    await run([platform], stream, false, 2); // warm-up
  }
  if (values.profile) restartProfiles(procs.filter((x) => x.name !== "redis").map((x) => x.pid));
  const result: Record<string, unknown> = { rate: RATE, seconds: SECONDS, batch: BATCH, load1_at_start: load0.load1 };
  for (const stream of [false, true]) {
    const e0 = engines.reduce((a, pid) => a + cpuMicros(pid), 0);
    const d = await run(direct, stream, true, SECONDS);
    const engineUs = (engines.reduce((a, pid) => a + cpuMicros(pid), 0) - e0) / Math.max(1, d.results.filter((x) => x.ok).length);
    const m0 = await churn();
    const c0 = procs.map((x) => cpuMicros(x.pid));
    const s0 = procs.map((x) => ioSyscalls(x.pid));
    const g = await run([platform], stream, false, SECONDS);
    const ok = g.results.filter((x) => x.ok).length;
    const c1 = procs.map((x) => cpuMicros(x.pid));
    const s1 = procs.map((x) => ioSyscalls(x.pid));
    const sys = Object.fromEntries(procs.map((x, i) => [x.name, Math.round(((s1[i]! - s0[i]!) / Math.max(1, ok)) * 10) / 10]));
    const m1 = await churn();
    const placed = { ...placementsSince(m0, m1), lease_versions: m1.versions - m0.versions };
    const by = Object.fromEntries(procs.map((x, i) => [x.name, Math.round((c1[i]! - c0[i]!) / Math.max(1, ok))]));
    const total = Object.values(by).reduce((a, b) => a + b, 0);
    const kind = stream ? "streamed" : "non_streamed";
    result[kind] = {
      cpu_us_per_request: by,
      cpu_us_per_request_total: total,
      direct_engine_cpu_us_per_request: Math.round(engineUs),
      io_syscalls_per_request: sys,
      errors: g.results.length - ok,
      ...placed,
    };
    console.log(
      `${kind.padEnd(13)} platform CPU per request ${String(total).padStart(5)} µs ${JSON.stringify(by)}  (engine-sim direct ${Math.round(engineUs)} µs; errors ${g.results.length - ok}; ${JSON.stringify(placed)}; read/write syscalls ${JSON.stringify(sys)})`,
    );
  }
  result.load1_at_end = r3(machineLoad().load1);
  console.log(JSON.stringify(result));
} finally {
  await close();
  await p.stop();
}
