/** Runs the policies on one workload and gathers the numbers the results files report. */
import type { PolicyName } from "../../packages/policy/src/index.ts";
import type { CostModel } from "./cost-model.ts";
import { percentile, simulate, type SimResult } from "./simulator.ts";
import { onlyTenant, type Workload } from "./workload.ts";

export type PolicyReport = Record<string, number | undefined | Record<string, number>>;

export interface ExperimentResult {
  workload: string;
  replicas: number;
  requests: number;
  seed: number;
  wall_s: number;
  vtc_bound_tokens: number;
  vtc_bound_formula: string;
  workload_params: Record<string, number | string>;
  cost_model: CostModel;
  policies: Record<string, PolicyReport>;
}

export interface ExperimentOptions {
  replicas: number;
  cost: CostModel;
  policies: PolicyName[];
  reportLagMs: number;
  seed: number;
  /** noisy-neighbour: also run the light tenant alone and a FIFO queue for contrast. */
  contrast: boolean;
  weights?: { input: number; output: number };
  /** The fast path (slot leases) with this many gateways; absent: every request through the queue. */
  fastPath?: { gateways: number };
  onPolicy?: (name: string, report: { sim_wall_s: number }) => void;
}

const LIGHT = "light";

/**
 * Latency percentiles are over requests that arrive after a warm-up (the first 10% of the
 * arrival horizon), when caches are cold and a flood's first wave fills every replica's
 * prefill queue at once; the `_incl_warmup` figures count every request.
 */
export const WARMUP_FRACTION = 0.1;

function warmupMs(w: Workload): number {
  return w.n > 0 ? w.t[0]! + WARMUP_FRACTION * (w.t[w.n - 1]! - w.t[0]!) : 0;
}

function summary(w: Workload, r: SimResult): PolicyReport {
  const s = r.makespanS > 0 ? r.makespanS : 1;
  const warm = warmupMs(w);
  const steady = (i: number): boolean => w.t[i]! >= warm;
  return {
    throughput_tokens_per_s: r.totalTokens / s,
    output_tokens_per_s: r.outputTokens / s,
    ttft_ms_p50: percentile(r.ttftMs, 50, steady),
    ttft_ms_p99: percentile(r.ttftMs, 99, steady),
    ttft_ms_p99_incl_warmup: percentile(r.ttftMs, 99),
    queue_wait_ms_p99: percentile(r.queueWaitMs, 99, steady),
    prefix_hit_rate: r.promptTokens > 0 ? r.cachedTokens / r.promptTokens : 0,
    max_service_gap_tokens: r.maxServiceGap,
    makespan_s: r.makespanS,
    sim_wall_s: r.wallS,
    fast_path_fraction: r.requests > 0 ? r.fastPlacements / r.requests : 0,
    max_counted_per_replica: r.maxCounted,
    placed_twice: r.placedTwice,
    ...(r.placements !== null ? { placements: r.placements } : {}),
  };
}

export function runExperiment(kind: string, w: Workload, o: ExperimentOptions): ExperimentResult {
  const started = performance.now();
  const weights = o.weights ?? { input: 1, output: 2 };
  const policies: Record<string, PolicyReport> = {};
  const light = w.tenantNames.indexOf(LIGHT);
  const alone = light >= 0 && o.contrast ? onlyTenant(w, LIGHT) : undefined;
  for (const policy of o.policies) {
    const base = { replicas: o.replicas, policy, cost: o.cost, weights, reportLagMs: o.reportLagMs, seed: o.seed, fastPath: o.fastPath };
    const r = simulate(w, { ...base, queue: "fair" });
    const rep = summary(w, r);
    if (light >= 0) {
      const warm = warmupMs(w);
      const lightSteady = (i: number): boolean => w.tenant[i] === light && w.t[i]! >= warm;
      rep.light_tenant_ttft_ms_p50 = percentile(r.ttftMs, 50, lightSteady);
      rep.light_tenant_ttft_ms_p99 = percentile(r.ttftMs, 99, lightSteady);
      rep.light_tenant_ttft_ms_p99_incl_warmup = percentile(r.ttftMs, 99, (i) => w.tenant[i] === light);
      if (alone !== undefined) {
        // Same arrival times, so the same warm-up cut.
        const a = simulate(alone, { ...base, queue: "fair" });
        rep.light_tenant_alone_ttft_ms_p50 = percentile(a.ttftMs, 50, (i) => alone.t[i]! >= warm);
        rep.light_tenant_alone_ttft_ms_p99 = percentile(a.ttftMs, 99, (i) => alone.t[i]! >= warm);
        const f = simulate(w, { ...base, queue: "fifo", fastPath: undefined });
        rep.light_tenant_ttft_ms_p99_fifo = percentile(f.ttftMs, 99, lightSteady);
      }
    }
    policies[policy] = rep;
    o.onPolicy?.(policy, { sim_wall_s: r.wallS });
  }
  // VTC bound (see README): 2·(w_in·L_in + w_out·M), L_in the longest prompt, M the output
  // tokens that requests in flight may still be charged: replicas × batch × longest output.
  let maxPrompt = 0;
  let maxOutput = 0;
  for (let i = 0; i < w.n; i++) {
    if (w.prompt[i]! > maxPrompt) maxPrompt = w.prompt[i]!;
    if (w.output[i]! > maxOutput) maxOutput = w.output[i]!;
  }
  const M = o.replicas * o.cost.maxBatchSize * maxOutput;
  const bound = 2 * (weights.input * maxPrompt + weights.output * M);
  return {
    workload: kind,
    replicas: o.replicas,
    requests: w.n,
    seed: o.seed,
    wall_s: (performance.now() - started) / 1000,
    vtc_bound_tokens: bound,
    vtc_bound_formula: `2·(w_in·L_in + w_out·M) with w_in=${weights.input}, w_out=${weights.output}, L_in=${maxPrompt} (longest prompt), M=${o.replicas}·${o.cost.maxBatchSize}·${maxOutput} (replicas·max_batch·longest output)`,
    workload_params: w.params,
    cost_model: o.cost,
    policies,
  };
}
