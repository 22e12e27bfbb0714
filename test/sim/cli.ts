/**
 * pnpm sim --workload shared-prefix|noisy-neighbour [--replicas N] [--requests N] [--seed S]
 *          [--out FILE] [--policies a,b] [--load X] [--report-lag-ms MS]
 *          [--workload-file FILE.jsonl] [--write-workload FILE.jsonl] [--fast-path-gateways G]
 *
 * Runs every placement policy on the same workload and prints a table; --out writes JSON.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { isPolicyName, POLICY_NAMES, type PolicyName } from "../../packages/policy/src/index.ts";
import { DEFAULT_COST } from "./cost-model.ts";
import { runExperiment, type ExperimentResult } from "./experiment.ts";
import { noisyNeighbour, readJsonl, sharedPrefix, writeJsonl, type Workload } from "./workload.ts";

const { values } = parseArgs({
  options: {
    workload: { type: "string", default: "shared-prefix" },
    replicas: { type: "string", default: "100" },
    requests: { type: "string", default: "200000" },
    seed: { type: "string", default: "1" },
    out: { type: "string" },
    policies: { type: "string", default: POLICY_NAMES.join(",") },
    load: { type: "string" },
    "report-lag-ms": { type: "string", default: "0" },
    "workload-file": { type: "string" },
    "write-workload": { type: "string" },
    "no-contrast": { type: "boolean", default: false },
    // The fast path (slot leases) with G gateways; 0: every request through the queue.
    "fast-path-gateways": { type: "string", default: "0" },
  },
});

const replicas = Number(values.replicas);
const requests = Number(values.requests);
const seed = Number(values.seed);
const policies = values.policies.split(",").map((s) => s.trim());
for (const p of policies) if (!isPolicyName(p)) throw new Error(`--policies: unknown policy ${p} (known: ${POLICY_NAMES.join(", ")})`);
const kind = values.workload;
if (kind !== "shared-prefix" && kind !== "noisy-neighbour") throw new Error(`--workload must be shared-prefix or noisy-neighbour, got ${kind}`);

const cost = DEFAULT_COST;
const genStart = performance.now();
let workload: Workload;
if (values["workload-file"] !== undefined) workload = readJsonl(values["workload-file"]);
else if (kind === "shared-prefix")
  workload = sharedPrefix({ requests, replicas, seed, cost, ...(values.load !== undefined ? { load: Number(values.load) } : {}) });
else workload = noisyNeighbour({ requests, replicas, seed, cost, ...(values.load !== undefined ? { heavy: Number(values.load) } : {}) });
const genS = (performance.now() - genStart) / 1000;
if (values["write-workload"] !== undefined) writeJsonl(workload, values["write-workload"]);

const result: ExperimentResult = runExperiment(kind, workload, {
  replicas,
  cost,
  policies: policies as PolicyName[],
  reportLagMs: Number(values["report-lag-ms"]),
  seed,
  contrast: !values["no-contrast"],
  fastPath: Number(values["fast-path-gateways"]) > 0 ? { gateways: Number(values["fast-path-gateways"]) } : undefined,
  onPolicy: (name, r) => console.error(`  ${name}: simulated in ${r.sim_wall_s.toFixed(1)} s`),
});

console.log(`\n${kind}: ${replicas} replicas, ${workload.n} requests (workload generated in ${genS.toFixed(1)} s, total ${result.wall_s.toFixed(1)} s)`);
const cols: [string, string][] = [
  ["throughput_tokens_per_s", "tok/s"],
  ["ttft_ms_p50", "TTFT p50 ms"],
  ["ttft_ms_p99", "TTFT p99 ms"],
  ["prefix_hit_rate", "prefix hit"],
  ["max_service_gap_tokens", "max gap tok"],
  ["light_tenant_ttft_ms_p99", "light p99"],
  ["light_tenant_alone_ttft_ms_p99", "alone p99"],
  ["light_tenant_ttft_ms_p99_fifo", "light p99 FIFO"],
  ["fast_path_fraction", "fast"],
  ["max_counted_per_replica", "max counted"],
  ["sim_wall_s", "sim s"],
];
const present = cols.filter(([k]) => Object.values(result.policies).some((p) => p[k] !== undefined));
const fmt = (v: unknown): string => (typeof v === "number" ? (Math.abs(v) >= 100 ? Math.round(v).toLocaleString("en-US") : v.toFixed(v < 1 ? 3 : 1)) : "");
const rows = [["policy", ...present.map(([, h]) => h)], ...Object.entries(result.policies).map(([name, p]) => [name, ...present.map(([k]) => fmt(p[k]))])];
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "));
console.log(`VTC bound: ${fmt(result.vtc_bound_tokens)} tokens = ${result.vtc_bound_formula}`);
if (values.out !== undefined) {
  writeFileSync(values.out, JSON.stringify(result, null, 2) + "\n");
  console.log(`wrote ${values.out}`);
}
