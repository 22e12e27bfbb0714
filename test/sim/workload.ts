/**
 * Workloads: a request list sorted by arrival, held as struct-of-arrays, from a generator or
 * a JSON Lines file of
 *   {t_ms, tenant, prompt_tokens, output_tokens, prefix_id?, prefix_tokens?, conversation?}
 * `prefix_id`/`prefix_tokens`: the shared system prompt the prompt starts with.
 * `conversation`: the request is a turn of that conversation; its prompt starts with the
 * previous turn's prompt and answer (the history), then the new user message.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { capacityRps, type CostModel } from "./cost-model.ts";
import { Rng, Zipf } from "./rng.ts";

export interface Workload {
  name: string;
  n: number;
  t: Float64Array;
  tenant: Int32Array;
  tenantNames: string[];
  prompt: Int32Array;
  output: Int32Array;
  /** Index of the system prompt, -1 for none. */
  prefix: Int32Array;
  prefixTokens: Int32Array;
  /** Index of the conversation, -1 for none. */
  conv: Int32Array;
  numPrefixes: number;
  numConvs: number;
  /** How it was generated, for the results file. */
  params: Record<string, number | string>;
}

export interface RequestRecord {
  t_ms: number;
  tenant: string;
  prompt_tokens: number;
  output_tokens: number;
  prefix_id?: string | number;
  prefix_tokens?: number;
  conversation?: string | number;
}

/** Builds a Workload from plain records (sorted here by t_ms, stable). */
export function fromRecords(name: string, records: readonly RequestRecord[], params: Record<string, number | string> = {}): Workload {
  const order = Array.from(records.keys()).sort((a, b) => records[a]!.t_ms - records[b]!.t_ms || a - b);
  const n = records.length;
  const w: Workload = {
    name,
    n,
    t: new Float64Array(n),
    tenant: new Int32Array(n),
    tenantNames: [],
    prompt: new Int32Array(n),
    output: new Int32Array(n),
    prefix: new Int32Array(n),
    prefixTokens: new Int32Array(n),
    conv: new Int32Array(n),
    numPrefixes: 0,
    numConvs: 0,
    params,
  };
  const tenants = new Map<string, number>();
  const prefixes = new Map<string, number>();
  const convs = new Map<string, number>();
  const idOf = (m: Map<string, number>, k: string): number => {
    let v = m.get(k);
    if (v === undefined) {
      v = m.size;
      m.set(k, v);
    }
    return v;
  };
  for (let i = 0; i < n; i++) {
    const r = records[order[i]!]!;
    w.t[i] = r.t_ms;
    w.tenant[i] = idOf(tenants, r.tenant);
    w.prompt[i] = Math.max(1, Math.round(r.prompt_tokens));
    w.output[i] = Math.max(1, Math.round(r.output_tokens));
    w.prefix[i] = r.prefix_id === undefined ? -1 : idOf(prefixes, String(r.prefix_id));
    w.prefixTokens[i] = r.prefix_id === undefined ? 0 : Math.min(w.prompt[i]!, Math.round(r.prefix_tokens ?? 0));
    w.conv[i] = r.conversation === undefined ? -1 : idOf(convs, String(r.conversation));
  }
  w.tenantNames = [...tenants.keys()];
  w.numPrefixes = prefixes.size;
  w.numConvs = convs.size;
  return w;
}

export function readJsonl(path: string): Workload {
  const lines = readFileSync(path, "utf8").split("\n");
  const records: RequestRecord[] = [];
  for (const line of lines) if (line.trim() !== "") records.push(JSON.parse(line) as RequestRecord);
  return fromRecords(path, records, { file: path });
}

export function writeJsonl(w: Workload, path: string): void {
  const out: string[] = [];
  for (let i = 0; i < w.n; i++) {
    const r: RequestRecord = {
      t_ms: Math.round(w.t[i]! * 1000) / 1000,
      tenant: w.tenantNames[w.tenant[i]!]!,
      prompt_tokens: w.prompt[i]!,
      output_tokens: w.output[i]!,
    };
    if (w.prefix[i]! >= 0) {
      r.prefix_id = `sys-${w.prefix[i]!}`;
      r.prefix_tokens = w.prefixTokens[i]!;
    }
    if (w.conv[i]! >= 0) r.conversation = `c-${w.conv[i]!}`;
    out.push(JSON.stringify(r));
  }
  writeFileSync(path, out.join("\n") + "\n");
}

/** Only one tenant's requests, same times (the "alone" baseline). */
export function onlyTenant(w: Workload, tenantName: string): Workload {
  const t = w.tenantNames.indexOf(tenantName);
  const keep: number[] = [];
  for (let i = 0; i < w.n; i++) if (w.tenant[i] === t) keep.push(i);
  const pick = <A extends Float64Array | Int32Array>(a: A, make: (n: number) => A): A => {
    const b = make(keep.length);
    for (const [dst, src] of keep.entries()) b[dst] = a[src]!;
    return b;
  };
  return {
    ...w,
    name: `${w.name}:${tenantName}-alone`,
    n: keep.length,
    t: pick(w.t, (n) => new Float64Array(n)),
    tenant: pick(w.tenant, (n) => new Int32Array(n)),
    prompt: pick(w.prompt, (n) => new Int32Array(n)),
    output: pick(w.output, (n) => new Int32Array(n)),
    prefix: pick(w.prefix, (n) => new Int32Array(n)),
    prefixTokens: pick(w.prefixTokens, (n) => new Int32Array(n)),
    conv: pick(w.conv, (n) => new Int32Array(n)),
  };
}

export interface SharedPrefixOptions {
  requests: number;
  replicas: number;
  seed: number;
  cost: CostModel;
  /** Offered load as a multiple of the cold (no cache hit) capacity. Default 1.5. */
  load?: number;
  prefixes?: number;
  tenants?: number;
}

/**
 * Chat traffic on shared system prompts.
 * - 100 system prompts ("apps"), 500–2,000 tokens (uniform), popularity Zipf(0.9); app k
 *   belongs to tenant k mod 20.
 * - Sessions arrive as a Poisson process; a session has 1 + Geometric turns (mean 2.5,
 *   at most 12). Turn k's prompt = system prompt + all earlier turns (messages and answers)
 *   + a new user message (log-normal, median 150 tokens); answers are log-normal, median 180
 *   tokens (cap 2,048). The next turn comes a think time (exponential, mean 20 s) after the
 *   previous one would be answered (~5 s).
 * - The rate is `load` × the cluster's cold capacity (every prompt token prefilled), from the
 *   cost model; 1.5 means the cluster needs its prefix cache to keep up, as production
 *   clusters sized for cached workloads do.
 */
export function sharedPrefix(o: SharedPrefixOptions): Workload {
  const rng = new Rng(o.seed);
  const numPrefixes = o.prefixes ?? 100;
  const numTenants = o.tenants ?? 20;
  const load = o.load ?? 1.5;
  const sysLen = Array.from({ length: numPrefixes }, () => rng.int(500, 2000));
  const zipf = new Zipf(numPrefixes, 0.9);
  const meanTurns = 2.5;
  // Mean prompt ≈ system 1,250 + message ~185 + history; measured on the generated set below.
  const approxPrompt = 1250 + 185 + 0.9 * 415;
  const approxOutput = 215;
  const rps = load * o.replicas * capacityRps(o.cost, approxPrompt, approxOutput);
  const sessionRateMs = rps / meanTurns / 1000;
  const records: RequestRecord[] = [];
  let t = 0;
  let session = 0;
  // Sessions keep starting until the horizon, so every request before it is generated (a
  // stationary stream after a ~1 min ramp-up); the first `requests` arrivals are kept.
  let horizon = (o.requests / rps) * 1000 + 120_000;
  const before = (): number => records.reduce((n, r) => n + (r.t_ms < horizon ? 1 : 0), 0);
  for (;;) {
    while (t < horizon) {
      t += rng.exp(1 / sessionRateMs);
      const app = zipf.sample(rng);
      const turns = Math.min(12, rng.geometric(1 / meanTurns));
      const conv = turns > 1 ? session : undefined;
      session++;
      let history = sysLen[app]!;
      let at = t;
      for (let k = 0; k < turns; k++) {
        const msg = rng.lognormalInt(150, 0.8, 8, 4000);
        const out = rng.lognormalInt(180, 0.7, 8, 2048);
        const prompt = history + msg;
        const r: RequestRecord = {
          t_ms: at,
          tenant: `tenant-${app % numTenants}`,
          prompt_tokens: prompt,
          output_tokens: out,
          prefix_id: app,
          prefix_tokens: sysLen[app]!,
        };
        if (conv !== undefined) r.conversation = conv;
        records.push(r);
        history = prompt + out;
        at += 5_000 + rng.exp(20_000);
      }
    }
    if (before() >= o.requests) break;
    horizon += 60_000;
  }
  records.sort((a, b) => a.t_ms - b.t_ms);
  records.length = o.requests;
  return fromRecords("shared-prefix", records, {
    load,
    rps: Math.round(rps),
    prefixes: numPrefixes,
    tenants: numTenants,
    mean_turns: meanTurns,
    think_ms: 20_000,
  });
}

export interface NoisyNeighbourOptions {
  requests: number;
  replicas: number;
  seed: number;
  cost: CostModel;
  /** Rates as multiples of the cluster's capacity. */
  heavy?: number;
  steady?: number;
  light?: number;
}

/**
 * One tenant floods; others keep going.
 * - `heavy` sends 3× the cluster's capacity; `steady` 0.7× (more than its fair share, so it is
 *   backlogged too: the service gap between two backlogged tenants is measured on this pair);
 *   `light` a steady 5% of capacity. Poisson arrivals, no shared prefixes.
 * - Prompts log-normal (median 500 tokens, σ 0.6, 16–4,096), outputs log-normal (median 150,
 *   σ 0.6, 8–1,024), the same for every tenant.
 */
export function noisyNeighbour(o: NoisyNeighbourOptions): Workload {
  const rng = new Rng(o.seed);
  const rates = { heavy: o.heavy ?? 3, steady: o.steady ?? 0.7, light: o.light ?? 0.05 };
  const meanPrompt = 500 * Math.exp(0.18);
  const meanOutput = 150 * Math.exp(0.18);
  const cap = o.replicas * capacityRps(o.cost, meanPrompt, meanOutput);
  const total = rates.heavy + rates.steady + rates.light;
  const names = Object.keys(rates) as (keyof typeof rates)[];
  const records: RequestRecord[] = [];
  let t = 0;
  for (let i = 0; i < o.requests; i++) {
    // A merged Poisson process; each arrival belongs to a tenant in proportion to its rate.
    t += rng.exp(1000 / (cap * total));
    let u = rng.next() * total;
    let tenant: keyof typeof rates = "light";
    for (const name of names) {
      if (u < rates[name]) {
        tenant = name;
        break;
      }
      u -= rates[name];
    }
    records.push({ t_ms: t, tenant, prompt_tokens: rng.lognormalInt(500, 0.6, 16, 4096), output_tokens: rng.lognormalInt(150, 0.6, 8, 1024) });
  }
  return fromRecords("noisy-neighbour", records, {
    heavy_x_capacity: rates.heavy,
    steady_x_capacity: rates.steady,
    light_x_capacity: rates.light,
    capacity_rps: Math.round(cap),
  });
}
