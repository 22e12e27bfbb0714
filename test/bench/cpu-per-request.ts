/**
 * CPU per request by process at a fixed, modest rate: the A/B figure for per-request work
 * (it depends far less on what else the machine runs than latency does). Starts the platform
 * as the bench does (engine-sim answering at once), warms up, then sends `--rate` requests/s
 * for `--seconds`, non-streamed and then streamed (16 tokens each), straight to the same
 * engine-sims first (their own CPU per request is the same-run baseline), and reads each
 * process's CPU time from /proc: gateway, scheduler, agents, Redis.
 *
 *   pnpm bench:cpu [--rate 150] [--seconds 6] [--profile]   (FAST_PATH=false in the env: that platform)
 */
import { mkdirSync } from "node:fs";
import { parseArgs } from "node:util";
import { call, openLoop, type Target } from "./load.ts";
import { CHAT_MODEL, chatTargets, processesOf, startBenchPlatform } from "./platform.ts";
import { cpuMicros, machineLoad, profilerNodeOptions, restartProfiles } from "./procs.ts";
import { r3 } from "./stats.ts";

const { values } = parseArgs({
  options: { rate: { type: "string", default: "150" }, seconds: { type: "string", default: "6" }, profile: { type: "boolean", default: false } },
});
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR ?? "/tmp/infera-bench-prof";

const env: Record<string, string> = { SIM_TTFT_MS: "0", SIM_ITL_MS: "0" };
if (process.env.FAST_PATH) env.FAST_PATH = process.env.FAST_PATH;
if (values.profile) {
  mkdirSync(PROFILE_DIR, { recursive: true });
  env.NODE_OPTIONS = profilerNodeOptions(PROFILE_DIR);
}
const load0 = machineLoad();
const p = await startBenchPlatform({ deployments: [{ catalog: "chat", replicas: 2, maxBatchSize: 1100 }], env });
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
  const result: Record<string, unknown> = { rate: RATE, seconds: SECONDS, load1_at_start: load0.load1 };
  for (const stream of [false, true]) {
    const e0 = engines.reduce((a, pid) => a + cpuMicros(pid), 0);
    const d = await run(direct, stream, true, SECONDS);
    const engineUs = (engines.reduce((a, pid) => a + cpuMicros(pid), 0) - e0) / Math.max(1, d.results.filter((x) => x.ok).length);
    const c0 = procs.map((x) => cpuMicros(x.pid));
    const g = await run([platform], stream, false, SECONDS);
    const ok = g.results.filter((x) => x.ok).length;
    const by = Object.fromEntries(procs.map((x, i) => [x.name, Math.round((cpuMicros(x.pid) - c0[i]!) / Math.max(1, ok))]));
    const total = Object.values(by).reduce((a, b) => a + b, 0);
    const kind = stream ? "streamed" : "non_streamed";
    result[kind] = {
      cpu_us_per_request: by,
      cpu_us_per_request_total: total,
      direct_engine_cpu_us_per_request: Math.round(engineUs),
      errors: g.results.length - ok,
    };
    console.log(
      `${kind.padEnd(13)} platform CPU per request ${String(total).padStart(5)} µs ${JSON.stringify(by)}  (engine-sim direct ${Math.round(engineUs)} µs; errors ${g.results.length - ok})`,
    );
  }
  result.load1_at_end = r3(machineLoad().load1);
  console.log(JSON.stringify(result));
} finally {
  await close();
  await p.stop();
}
