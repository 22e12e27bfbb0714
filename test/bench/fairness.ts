/**
 * The noisy neighbour through the platform's request path as it is configured (the fast path
 * when it is on): a light tenant sends one short stream at a time, first alone, then beside a flood
 * tenant that keeps more streams open than the replicas have slots (the rest wait in the fair
 * queue). The bound is the one the simulator holds (README, "Scheduling"): the light tenant's
 * p99 TTFT beside the flood at most 2× its p99 alone. engine-sim direct is measured the same
 * way in the same run (alone and beside the flood), so a machine slowed by the flood's CPU
 * shows in the baseline too.
 */
import type { Pool } from "undici";
import { call, pool, type CallResult, type Target } from "./load.ts";
import type { BenchPlatform } from "./platform.ts";
import { percentile, r3, summarize } from "./stats.ts";

export interface FairnessPlan {
  /** Seconds of light-tenant streams in each half (alone, beside the flood). */
  seconds: number;
  /** Streams the flood tenant keeps open (closed loop): more than the replicas' slots. */
  flood: number;
  /** Tokens per flood stream. */
  maxTokens: number;
  /** Slots of the deployment (replicas × batch), for the report. */
  slots: number;
  /**
   * How long the flood runs before the light tenant is measured beside it: at least one flood
   * stream's life. The flood's first requests reach an idle deployment with nothing of theirs
   * queued, so they may take the reserved slots too; those free only when those streams end.
   */
  settleMs: number;
}

async function adminCall<T>(p: BenchPlatform, path: string, body: unknown): Promise<T> {
  const res = await fetch(`${p.baseURL}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${p.apiKey}` },
    body: JSON.stringify(body),
  });
  if (res.status !== 201) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/**
 * A tenant of its own with a standard-tier inference key (the bench's bootstrap key is
 * priority tier, a strict class ahead of standard: the flood must not use it).
 */
async function tenantKey(p: BenchPlatform, name: string): Promise<string> {
  const t = await adminCall<{ id: string }>(p, "/admin/tenants", { name: `bench-${name}-${process.pid}` });
  const k = await adminCall<{ secret: string }>(p, "/admin/api-keys", { tenant_id: t.id, name, scopes: ["inference"], tier: "standard" });
  return k.secret;
}

/**
 * Tokens of each light stream: its TTFT is what is measured, and one token ends the stream at
 * its first (no inter-token wait), so a light call takes about one TTFT and a half of ten
 * seconds gives well over 100 samples: the p99 is not the maximum.
 */
const LIGHT_TOKENS = 1;

/** n, p50, p90, p99 and max of one half's TTFTs (ms). */
function ttfts(prefix: string, samples: number[]): Record<string, number> {
  const s = summarize(samples);
  const p90 = percentile(
    [...samples].sort((a, b) => a - b),
    90,
  );
  return {
    [`${prefix}n`]: s.n,
    [`${prefix}ttft_p50_ms`]: r3(s.p50),
    [`${prefix}ttft_p90_ms`]: r3(p90),
    [`${prefix}ttft_p99_ms`]: r3(s.p99),
    [`${prefix}ttft_max_ms`]: r3(s.max),
  };
}

/**
 * The most requests each engine held at once (running + waiting, its /metrics every 50 ms) from
 * the flood's start to its end: more than the replica's batch means something placed past its
 * capacity (engine-sim direct's light calls add at most one).
 */
async function sampleEngines(urls: string[], done: () => boolean): Promise<number[]> {
  const max = urls.map(() => 0);
  const gauge = (text: string, name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} ([0-9.]+)`, "m").exec(text)?.[1] ?? 0);
  while (!done()) {
    await Promise.all(
      urls.map(async (u, i) => {
        const text = await (await fetch(`${u}/metrics`)).text().catch(() => "");
        max[i] = Math.max(max[i]!, gauge(text, "vllm:num_requests_running") + gauge(text, "vllm:num_requests_waiting"));
      }),
    ).catch(() => {});
    await new Promise((r) => setTimeout(r, 50));
  }
  return max;
}

export async function noisyNeighbour(
  p: BenchPlatform,
  model: string,
  prompts: string[],
  plan: FairnessPlan,
  chatBody: (prompt: string, maxTokens: number, stream: boolean, direct: boolean) => string,
): Promise<Record<string, unknown>> {
  const pools: Pool[] = [];
  const mk = (origin: string, n: number) => {
    const pl = pool(origin, n);
    pools.push(pl);
    return pl;
  };
  const headers = (key: string) => ({ "content-type": "application/json", authorization: `Bearer ${key}` });
  const light: Target = { label: "light", pool: mk(p.baseURL, 4), path: "/v1/openai/chat/completions", headers: headers(await tenantKey(p, "light")) };
  const flood: Target = {
    label: "flood",
    pool: mk(p.baseURL, plan.flood + 10),
    path: "/v1/openai/chat/completions",
    headers: headers(await tenantKey(p, "flood")),
  };
  const engines = p.replicas.filter((r) => r.model === model);
  const direct: Target[] = engines.map((r) => ({
    label: "direct",
    pool: mk(r.engineUrl, 4),
    path: "/v1/chat/completions",
    headers: { "content-type": "application/json" },
  }));
  try {
    /** One light stream at a time for `seconds`, alternating platform and engine-sim direct. */
    const lightRun = async () => {
      const platform: number[] = [];
      const eng: number[] = [];
      let errors = 0;
      const end = performance.now() + plan.seconds * 1000;
      for (let i = 0; performance.now() < end; i++) {
        const prompt = prompts[i % prompts.length]!;
        const g = await call(light, chatBody(prompt, LIGHT_TOKENS, true, false), { stream: true });
        if (g.ok) platform.push(g.firstMs);
        else errors++;
        const d = await call(direct[i % direct.length]!, chatBody(prompt, LIGHT_TOKENS, true, true), { stream: true });
        if (d.ok) eng.push(d.firstMs);
      }
      const half: Record<string, number> = { requests: platform.length, errors, ...ttfts("", platform), ...ttfts("direct_", eng) };
      return half;
    };
    for (let i = 0; i < 10; i++) await call(light, chatBody(prompts[i % prompts.length]!, LIGHT_TOKENS, true, false), { stream: true });
    const alone = await lightRun();

    // The flood: `plan.flood` callers, each opening its next stream when the last ends.
    let stopFlood = false;
    const sampled = sampleEngines(
      engines.map((r) => r.engineUrl),
      () => stopFlood,
    );
    const floodResults: CallResult[] = [];
    const floodLoop = Promise.all(
      Array.from({ length: plan.flood }, async (_, k) => {
        for (let i = k; !stopFlood; i += plan.flood)
          floodResults.push(await call(flood, chatBody(prompts[i % prompts.length]!, plan.maxTokens, true, false), { stream: true }));
      }),
    );
    // Let the flood fill every slot, queue the rest, and hand back the reserved slots its first streams took.
    await new Promise((r) => setTimeout(r, plan.settleMs));
    const beside = await lightRun();
    stopFlood = true;
    await floodLoop;
    const engineMax = await sampled;
    const floodOk = floodResults.filter((r) => r.ok);
    const ratio = beside.ttft_p99_ms! / Math.max(alone.ttft_p99_ms!, 0.001);
    return {
      flood_streams: plan.flood,
      slots: plan.slots,
      max_tokens: plan.maxTokens,
      light_max_tokens: LIGHT_TOKENS,
      flood_settle_ms: plan.settleMs,
      alone,
      beside_flood: beside,
      flood: { requests: floodResults.length, errors: floodResults.length - floodOk.length, ttft_p50_ms: r3(summarize(floodOk.map((r) => r.firstMs)).p50) },
      light_p99_ratio: r3(ratio),
      engine_max_running_waiting: engineMax,
      bound: "light p99 TTFT beside the flood ≤ 2× alone",
      bound_holds: beside.errors === 0 && ratio <= 2,
    };
  } finally {
    await Promise.all(pools.map((pl) => pl.close().catch(() => {})));
  }
}
