/**
 * Interactive latency beside a draining batch (issue 19's target: interactive p99 during a
 * batch ≤ 1.5× alone). Starts the platform as the bench does (2 chat replicas × 64 slots,
 * engine-sim TTFT 25 ms, ITL 10 ms), then at the same open-loop rate of streamed chat requests
 * (16 tokens): engine-sim direct alone (the same-run baseline), the platform alone, then a
 * `--lines` chat-completions batch is uploaded and started, and once its lines flow the same
 * interactive load runs through the platform and then straight to engine-sim again, both while
 * the batch drains on the same replicas. Then waits for the batch to end (at most `--wait`
 * seconds) and reports its duration and lines/s. JSON to BENCH_OUT
 * (default test/bench/results/batch-<date>.json).
 *
 *   pnpm bench:batch [--lines 10000] [--rate 8] [--seconds 15] [--wait 300]
 *   (BATCH_MAX_INFLIGHT, BATCH_RESERVE_FRACTION, BATCH_BACKOFF_*, BATCH_CHUNK_LINES, BATCH_WORKER_CONCURRENCY, BATCH_NICE from the env: the platform's;
 *    LOCAL_BATCH_GATEWAY=false: the baseline layout, batch lines in the one gateway that serves the interactive requests)
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import OpenAI, { toFile } from "openai";
import { type CallResult, call, openLoop, type Target } from "./load.ts";
import { CHAT_MODEL, chatTargets, processesOf, startBenchPlatform } from "./platform.ts";
import { cpuMicros, machineLoad } from "./procs.ts";
import { r3, summarize } from "./stats.ts";

const { values } = parseArgs({
  options: {
    lines: { type: "string", default: "10000" },
    rate: { type: "string", default: "8" },
    seconds: { type: "string", default: "15" },
    wait: { type: "string", default: "300" },
  },
});
const LINES = Number(values.lines);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const WAIT_S = Number(values.wait);
const OUT = process.env.BENCH_OUT ?? `test/bench/results/batch-${new Date().toISOString().slice(0, 10)}.json`;
const PASSED = [
  "BATCH_MAX_INFLIGHT",
  "BATCH_RESERVE_FRACTION",
  "BATCH_BACKOFF_LATENESS_MS",
  "BATCH_BACKOFF_INTERVAL_MS",
  "BATCH_CHUNK_LINES",
  "BATCH_WORKER_CONCURRENCY",
  "FAST_PATH",
  "LOCAL_BATCH_GATEWAY",
  "BATCH_NICE",
];

const env: Record<string, string> = { SIM_TTFT_MS: "25", SIM_ITL_MS: "10", BATCH_RECONCILE_MS: "2000" };
for (const k of PASSED) if (process.env[k]) env[k] = process.env[k]!;
const load0 = machineLoad();
const p = await startBenchPlatform({ deployments: [{ catalog: "chat", replicas: 2, maxBatchSize: 64 }], env });
const { platform, direct, replicas, close } = chatTargets(p, 128);
const client = new OpenAI({ apiKey: p.apiKey, baseURL: `${p.baseURL}/v1/openai`, maxRetries: 3 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// CPU by process while the interactive load runs beside the batch.
const procs = processesOf(p, replicas);
const cpuSince = (c0: number[], seconds: number) => Object.fromEntries(procs.map((x, i) => [x.name, r3((cpuMicros(x.pid) - c0[i]!) / 1e4 / seconds)]));

try {
  const body = (i: number, engine: boolean) =>
    JSON.stringify({
      model: CHAT_MODEL,
      messages: [{ role: "user", content: `Interactive ${i % 500}: describe a city you would like to visit.` }],
      max_tokens: 16,
      stream: true,
      ...(engine ? { stream_options: { include_usage: true } } : {}),
    });
  const run = async (targets: Target[], engine: boolean, seconds: number) => {
    const r = await openLoop({
      rate: RATE,
      count: Math.round(RATE * seconds),
      maxInFlight: 500,
      fire: (i) => call(targets[i % targets.length]!, body(i, engine), { stream: true }),
    });
    return figures(r.results);
  };

  await run(direct, true, 2); // warm-up (JIT, connections)
  await run([platform], false, 3);
  const directAlone = await run(direct, true, SECONDS);
  const alone = await run([platform], false, SECONDS);
  console.log("alone      ", JSON.stringify({ direct: directAlone, platform: alone }));

  // One JSONL line per request: the same body, its prompt varied (engine-sim's answers stay 16 tokens).
  let jsonl = "";
  for (let n = 0; n < LINES; n++) {
    const request = { model: CHAT_MODEL, messages: [{ role: "user", content: `Batch ${n % 1000}: summarise a short story.` }], max_tokens: 16 };
    jsonl += `${JSON.stringify({ custom_id: `b${n}`, method: "POST", url: "/v1/chat/completions", body: request })}\n`;
  }
  const file = await client.files.create({ file: await toFile(Buffer.from(jsonl), "bench.jsonl"), purpose: "batch" });
  const createdAt = performance.now();
  const batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
  const counts = async () => {
    const b = await client.batches.retrieve(batch.id);
    return { status: b.status, done: (b.request_counts?.completed ?? 0) + (b.request_counts?.failed ?? 0), b };
  };
  // The interactive load starts once lines flow (a few per cent answered).
  for (;;) {
    const c = await counts();
    if (c.status !== "validating" && c.status !== "in_progress") break;
    if (c.done >= Math.min(200, LINES / 20)) break;
    if (performance.now() - createdAt > WAIT_S * 1000) break;
    await sleep(200);
  }
  const before = await counts();
  const c0 = procs.map((x) => cpuMicros(x.pid));
  const during = await run([platform], false, SECONDS);
  const cpuDuring = cpuSince(c0, SECONDS);
  const mid = await counts();
  const directDuring = await run(direct, true, SECONDS);
  const after = await counts();
  console.log("during     ", JSON.stringify({ direct: directDuring, platform: during, batch_lines_answered: [before.done, mid.done, after.done] }));

  let end = after;
  while (["validating", "in_progress", "finalizing"].includes(end.status) && performance.now() - createdAt < WAIT_S * 1000) {
    await sleep(500);
    end = await counts();
  }
  const b = end.b;
  const ran = b.in_progress_at && (b.completed_at ?? b.finalizing_at) ? (b.finalizing_at ?? b.completed_at)! - b.in_progress_at : undefined;
  const elapsedS = (performance.now() - createdAt) / 1000;
  const batchResult = {
    lines: LINES,
    status: b.status,
    request_counts: b.request_counts,
    // Created to ended as the client saw it (validation, fan-out, lines, output files).
    duration_s: r3(elapsedS),
    // in_progress to finalizing, from the batch's own timestamps (whole seconds).
    lines_duration_s: ran,
    lines_per_s: r3(end.done / elapsedS),
    // The batch was draining all through the platform "during" window.
    running_through_platform_window: mid.status === "in_progress" && mid.done < LINES,
    running_through_direct_window: after.status === "in_progress" && after.done < LINES,
  };
  const ratio = (a: number, b2: number) => r3(a / b2);
  const result = {
    bench: "batch",
    date: new Date().toISOString(),
    machine: { cores: (await import("node:os")).cpus().length, load1_at_start: r3(load0.load1), load1_at_end: r3(machineLoad().load1) },
    setup: {
      replicas: replicas.length,
      slots_per_replica: 64,
      sim_ttft_ms: 25,
      sim_itl_ms: 10,
      interactive: { rate_per_s: RATE, seconds: SECONDS, stream: true, max_tokens: 16 },
      // Local mode's default: batch lines in a gateway of their own at BATCH_NICE (10); LOCAL_BATCH_GATEWAY=false: in the one gateway.
      layout: p.batchGatewayPid ? `batch gateway, nice ${env.BATCH_NICE ?? 10}` : "one gateway",
      batch_env: Object.fromEntries(PASSED.filter((k) => env[k]).map((k) => [k, env[k]])),
    },
    interactive: {
      direct_alone: directAlone,
      platform_alone: alone,
      platform_during_batch: during,
      direct_during_batch: directDuring,
      ttft_p99_ratio: ratio(during.ttft.p99, alone.ttft.p99),
      total_p99_ratio: ratio(during.total.p99, alone.total.p99),
      ttft_p50_ratio: ratio(during.ttft.p50, alone.ttft.p50),
      target_p99_ratio: 1.5,
      // CPU (% of one core) by process over the platform-during-batch window.
      cpu_percent_during_batch: cpuDuring,
      target_holds: during.ttft.p99 <= 1.5 * alone.ttft.p99 && during.total.p99 <= 1.5 * alone.total.p99,
    },
    batch: batchResult,
  };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result.interactive, null, 1));
  console.log(JSON.stringify(batchResult));
  console.log(`written to ${OUT}`);
} finally {
  await close();
  await p.stop();
}

/** TTFT and total (ms) p50/p99 of the answered requests, and how many failed. */
function figures(rs: readonly CallResult[]) {
  const ok = rs.filter((r) => r.ok);
  const s = (xs: number[]) => {
    const x = summarize(xs);
    return { p50: r3(x.p50), p99: r3(x.p99), max: r3(x.max) };
  };
  return { n: ok.length, errors: rs.length - ok.length, ttft: s(ok.map((r) => r.firstMs)), total: s(ok.map((r) => r.totalMs)) };
}
