/**
 * Placement micro-benchmark: ns per decision (p50/p99) for each policy, on 16 and 1,000
 * replicas, with shared-prefix-like requests (prefix hashes of ~2k-token prompts).
 *   pnpm sim:bench [--decisions N]
 */
import { parseArgs } from "node:util";
import { createPlacementPolicy, POLICY_NAMES, type PlacementRequest, type ReplicaView } from "../../packages/policy/src/index.ts";
import { Rng, Zipf } from "./rng.ts";

const { values } = parseArgs({ options: { decisions: { type: "string", default: "200000" } } });
const decisions = Number(values.decisions);

function bench(policyName: (typeof POLICY_NAMES)[number], replicaCount: number): { p50: number; p99: number; perSec: number } {
  const rng = new Rng(7);
  const policy = createPlacementPolicy(policyName, { now: () => clock, random: () => rng.next() });
  let clock = 0;
  const replicas: ReplicaView[] = Array.from({ length: replicaCount }, (_, i) => ({
    id: `replica-${i}`,
    capacity: 128,
    running: 0,
    waiting: 0,
    inflight: 0,
    kvCacheUsage: 0,
  }));
  // 200 system prompts (Zipf), conversations of up to 8 turns, 14–40 hash blocks each.
  const zipf = new Zipf(200, 0.9);
  const reqs: PlacementRequest[] = [];
  for (let i = 0; i < 10_000; i++) {
    const sys = zipf.sample(rng);
    const sysBlocks = 4 + (sys % 12);
    const conv = rng.int(0, 3000);
    const blocks = sysBlocks + rng.int(1, 24);
    const hashes: string[] = [];
    for (let j = 0; j < blocks; j++) hashes.push(j < sysBlocks ? `s${sys}.${j}` : `c${conv}.${j}`);
    reqs.push({ requestId: String(i), tenantId: `t${sys % 20}`, prefixHashes: hashes, estimatedTokens: 2000 });
  }
  const samples = new Float64Array(decisions);
  const t0 = performance.now();
  for (let i = 0; i < decisions; i++) {
    const req = reqs[i % reqs.length]!;
    // Random load between decisions, ~70% busy, as the scheduler would see it.
    const v = replicas[i % replicaCount]!;
    v.running = rng.int(60, 127);
    v.kvCacheUsage = v.running / 128;
    clock += 0.1;
    const s = process.hrtime.bigint();
    policy.place(req, replicas);
    samples[i] = Number(process.hrtime.bigint() - s);
  }
  const wall = performance.now() - t0;
  samples.sort();
  return { p50: samples[Math.floor(decisions * 0.5)]!, p99: samples[Math.floor(decisions * 0.99)]!, perSec: decisions / (wall / 1000) };
}

console.log("policy            replicas   p50 ns   p99 ns   decisions/s (incl. timing overhead)");
for (const replicas of [16, 1000]) {
  for (const name of POLICY_NAMES) {
    bench(name, replicas); // warm up the JIT
    const r = bench(name, replicas);
    console.log(
      `${name.padEnd(16)}  ${String(replicas).padStart(8)} ${Math.round(r.p50).toString().padStart(8)} ${Math.round(r.p99).toString().padStart(8)}   ${Math.round(r.perSec).toLocaleString("en-US").padStart(10)}`,
    );
  }
}
