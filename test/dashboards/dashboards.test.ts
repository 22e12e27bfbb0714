/**
 * The dashboards the chart installs (helm/infera/dashboards) chart only what exists: every
 * series a panel or variable queries is one the platform's services export (their real
 * Prometheus registries, built here) or one of vLLM's `vllm:` series as engine-sim, which
 * mirrors vLLM V1's names, exports them; every label a selector names is one that series has
 * (or one Prometheus adds when it scrapes).
 */
import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { createEngineMetrics } from "@infera/engine-sim";
import { createGatewayMetrics } from "@infera/gateway";
import { createSchedulerMetrics } from "@infera/scheduler";
import { createAgentMetrics } from "@infera/worker-agent";
import { describe, expect, test } from "vitest";

const DIR = resolve(import.meta.dirname, "../../helm/infera/dashboards");
/** Labels the scrape adds (ServiceMonitor / PodMonitor targets). */
const SCRAPE_LABELS = ["job", "instance", "namespace", "pod", "container", "service", "endpoint"];
const KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless", "le"]);

/** Every series the platform exports, with its label names. */
async function exported(): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  const add = (name: string, labels: Iterable<string>) => out.set(name, new Set([...labels, ...SCRAPE_LABELS]));
  const registries: ReturnType<typeof createGatewayMetrics>["registry"][] = [
    createGatewayMetrics().registry,
    createSchedulerMetrics().registry,
    createAgentMetrics().registry,
  ];
  for (const r of registries)
    for (const m of await r.getMetricsAsJSON()) {
      const metric = r.getSingleMetric(m.name) as unknown as { labelNames?: string[] };
      const labels = [...(metric.labelNames ?? []), "service"];
      if (String(m.type) === "histogram") {
        add(`${m.name}_bucket`, [...labels, "le"]);
        add(`${m.name}_sum`, labels);
        add(`${m.name}_count`, labels);
      } else add(m.name, labels);
    }
  // engine-sim's vLLM families, with one observation each so every series is rendered.
  const engine = createEngineMetrics({ model: "m", tgi: false, gauges: { running: () => 1, waiting: () => 0, kvUsage: () => 0.5 } });
  engine.admitted({ queueMs: 1, promptTokens: 3, cachedTokens: 1 });
  engine.firstToken(5);
  engine.interToken(2, 1);
  engine.finished({ e2eMs: 9, queueMs: 1, reasons: ["stop"], generatedTokens: 2 });
  for (const line of engine.render().split("\n")) {
    const m = /^(vllm:[a-zA-Z0-9_:]+)(?:\{([^}]*)\})?\s/.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? "").matchAll(/([a-zA-Z_]\w*)="/g)].map((x) => x[1]!);
    const known = out.get(m[1]!);
    add(m[1]!, [...labels, ...(known ?? [])]);
  }
  return out;
}

interface Use {
  series: string;
  labels: string[];
}

/** The series a PromQL expression reads, and the labels its selector on each names. */
export function seriesIn(expr: string): Use[] {
  const uses: Use[] = [];
  // A selector: name{matchers}; the matchers' labels are checked, their values are not.
  let rest = expr.replace(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}/g, (_m, name: string, matchers: string) => {
    uses.push({ series: name, labels: [...matchers.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((x) => x[1]!) });
    return " ";
  });
  rest = rest
    .replace(/"[^"]*"/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    .replace(/\b\d+(\.\d+)?(e[-+]?\d+)?\b/gi, " ");
  for (const m of rest.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?/g)) {
    if (m[2] || KEYWORDS.has(m[1]!)) continue; // a function, or a keyword
    uses.push({ series: m[1]!, labels: [] });
  }
  return uses;
}

interface Panel {
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

function queries(file: string): { where: string; expr: string }[] {
  const d = JSON.parse(readFileSync(`${DIR}/${file}`, "utf8")) as { panels: Panel[]; templating?: { list: { name: string; definition?: string }[] } };
  const out: { where: string; expr: string }[] = [];
  const walk = (ps: Panel[]) => {
    for (const p of ps) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ where: `${file}: ${p.title}`, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(d.panels);
  for (const v of d.templating?.list ?? []) {
    const m = /^label_values\(\s*([^,]+),\s*(\w+)\s*\)$/.exec(v.definition ?? "");
    if (m) out.push({ where: `${file}: variable ${v.name}`, expr: `${m[1]}{${m[2]}=""}` });
  }
  return out;
}

describe("the chart's dashboards", () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith(".json"));

  test("the platform's and vLLM's dashboards are there", () => {
    expect(files.sort()).toEqual(["infera.json", "vllm.json"]);
  });

  test("every series a panel or variable queries is exported, with the labels its selectors name", async () => {
    const have = await exported();
    const problems: string[] = [];
    let checked = 0;
    for (const f of files)
      for (const q of queries(f))
        for (const u of seriesIn(q.expr)) {
          checked++;
          const labels = have.get(u.series);
          if (!labels) problems.push(`${q.where}: ${u.series} is not exported`);
          else for (const l of u.labels) if (!labels.has(l)) problems.push(`${q.where}: ${u.series} has no label ${l}`);
        }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(40);
  });

  test("the platform dashboard charts the GenAI semconv series, the vLLM one vLLM's own", () => {
    const used = (f: string) => new Set(queries(f).flatMap((q) => seriesIn(q.expr).map((u) => u.series)));
    const platform = used("infera.json");
    for (const s of [
      "gen_ai_server_request_duration_seconds_bucket",
      "gen_ai_server_time_to_first_token_seconds_bucket",
      "gen_ai_server_time_per_output_token_seconds_bucket",
      "gen_ai_client_token_usage_sum",
      "scheduler_queue_depth",
    ])
      expect(platform, s).toContain(s);
    expect([...used("vllm.json")].every((s) => s.startsWith("vllm:"))).toBe(true);
    expect(used("vllm.json").size).toBeGreaterThanOrEqual(10);
  });

  test("the check itself: a series or label nobody exports is found", async () => {
    expect(seriesIn('sum by (model) (rate(gateway_tokens_total{model=~"$model"}[5m])) / clamp_min(sum(agent_engine_healthy), 1e-9)')).toEqual([
      { series: "gateway_tokens_total", labels: ["model"] },
      { series: "agent_engine_healthy", labels: [] },
    ]);
    const have = await exported();
    expect(have.has("gateway_tokens_total")).toBe(true);
    expect(have.has("gateway_tokens")).toBe(false);
    expect(have.get("gen_ai_client_token_usage_sum")?.has("gen_ai_token_type")).toBe(true);
    expect(have.get("gen_ai_client_token_usage_sum")?.has("key_id")).toBe(false);
  });
});
