import { Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { TokenGapHistogram } from "./metrics.ts";

const BUCKETS = [0.0005, 0.001, 0.005, 0.01, 1];

function pair() {
  const a = new Registry();
  const b = new Registry();
  a.setDefaultLabels({ service: "gateway" });
  b.setDefaultLabels({ service: "gateway" });
  const reference = new Histogram({ name: "itl_seconds", help: "Time between tokens.", labelNames: ["model"], buckets: BUCKETS, registers: [a] });
  const fast = new TokenGapHistogram("itl_seconds", "Time between tokens.", BUCKETS, b);
  const observe = (model: string, v: number) => {
    reference.labels({ model }).observe(v);
    fast.labels({ model }).observe(v);
  };
  return { a, b, observe };
}

describe("TokenGapHistogram", () => {
  it("scrapes exactly as prom-client's Histogram: buckets, +Inf, sum, count, default labels, escaping, reset", async () => {
    const { a, b, observe } = pair();
    expect(await b.metrics()).toBe(await a.metrics());
    for (const [m, v] of [
      ["meta-llama/Meta-Llama-3-8B-Instruct", 0.0003],
      ["meta-llama/Meta-Llama-3-8B-Instruct", 0.002],
      ['a "quoted" \\ model', 0.005],
      ['a "quoted" \\ model', 3],
      ["meta-llama/Meta-Llama-3-8B-Instruct", 1],
    ] as const)
      observe(m, v);
    expect(await b.metrics()).toBe(await a.metrics());
    a.resetMetrics();
    b.resetMetrics();
    expect(await b.metrics()).toBe(await a.metrics());
    observe('a "quoted" \\ model', 0.01);
    expect(await b.metrics()).toBe(await a.metrics());
  });
});
