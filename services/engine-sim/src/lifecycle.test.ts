import { afterEach, describe, expect, it } from "vitest";
import type { EngineSim } from "./server.ts";
import { keepsHolding, waitFor } from "@infera/testkit";
import { metricValue, postJson, simStats, sseReader, startSim } from "./test-client.ts";

const messages = [{ role: "user", content: "Write a long story." }];
let sim: EngineSim | null = null;
afterEach(async () => {
  await sim?.stop();
  sim = null;
});

async function metrics(s: EngineSim): Promise<string> {
  return (await fetch(`${s.url}/metrics`)).text();
}

describe("engine lifecycle", () => {
  it("exposes vLLM's metrics labelled by model_name, with requests running while a stream is open", async () => {
    sim = await startSim({ itlMs: 5 });
    const s = sim;
    const res = await postJson(`${s.url}/v1/chat/completions`, { messages, stream: true, max_tokens: 400, ignore_eos: true });
    const reader = sseReader(res);
    await reader.next();
    const open = await metrics(s);
    for (const name of [
      "vllm:num_requests_running",
      "vllm:num_requests_waiting",
      "vllm:kv_cache_usage_perc",
      "vllm:prompt_tokens_total",
      "vllm:generation_tokens_total",
      "vllm:request_success_total",
      "vllm:prefix_cache_queries_total",
      "vllm:prefix_cache_hits_total",
      "vllm:time_to_first_token_seconds_bucket",
      "vllm:inter_token_latency_seconds_bucket",
      "vllm:e2e_request_latency_seconds_bucket",
      "vllm:request_queue_time_seconds_bucket",
    ]) {
      const lines = open.split("\n").filter((l) => l.startsWith(`${name}{`));
      expect(lines.length, name).toBeGreaterThan(0);
      for (const line of lines) expect(line).toContain('model_name="meta-llama/Meta-Llama-3-8B-Instruct"');
    }
    expect(metricValue(open, "vllm:num_requests_running{")).toBe(1);
    expect(metricValue(open, "vllm:kv_cache_usage_perc{")).toBeGreaterThan(0);
    await reader.cancel();
    await waitFor("nothing running", async () => metricValue(await metrics(s), "vllm:num_requests_running{") === 0);
  });

  it("stops generating at once when the client goes away, counting the request as aborted", async () => {
    sim = await startSim({ itlMs: 5 });
    const s = sim;
    const controller = new AbortController();
    const res = await postJson(`${s.url}/v1/chat/completions`, { messages, stream: true, max_tokens: 2000, ignore_eos: true }, { signal: controller.signal });
    const reader = sseReader(res);
    for (let i = 0; i < 4; i++) await reader.next();
    controller.abort();
    await waitFor("the request aborted", async () => (await simStats(s)).aborted === 1);
    const stats = await simStats(s);
    expect(stats.running).toBe(0);
    const generated = stats.completionTokens as number;
    expect(generated).toBeLessThan(2000);
    await keepsHolding("no token generated after the abort", async () => (await simStats(s)).completionTokens === generated, { forMs: 50 });
    expect(await metrics(s)).toMatch(/vllm:request_success_total\{[^}]*finished_reason="abort"\} 1/);
  });

  it("counts prompt and completion tokens the way the responses report them", async () => {
    sim = await startSim();
    let prompt = 0;
    let completion = 0;
    for (let i = 0; i < 3; i++) {
      const r = (await (await postJson(`${sim.url}/v1/chat/completions`, { messages: [{ role: "user", content: `q${i}` }], max_tokens: 10 + i })).json()) as {
        usage: { prompt_tokens: number; completion_tokens: number };
      };
      prompt += r.usage.prompt_tokens;
      completion += r.usage.completion_tokens;
    }
    const stats = await simStats(sim);
    expect(stats).toMatchObject({ requests: 3, completed: 3, promptTokens: prompt, completionTokens: completion });
  });

  it("answers 503 on /health during the startup delay, then 200", async () => {
    sim = await startSim({ startupDelayMs: 150 });
    const early = await fetch(`${sim.url}/health`);
    expect(early.status).toBe(503);
    const chat = await postJson(`${sim.url}/v1/chat/completions`, { messages });
    expect(chat.status).toBe(503);
    const url = sim.url;
    const late = await waitFor("/health to answer 200", async () => {
      const r = await fetch(`${url}/health`);
      return r.status === 200 ? r : undefined;
    });
    expect(await late.text()).toBe("");
  });

  it("takes TTFT plus ITL per token, and queues beyond max-num-seqs", async () => {
    sim = await startSim({ ttftMs: 150, itlMs: 4, maxNumSeqs: 1 });
    const s = sim;
    const t0 = performance.now();
    const first = postJson(`${s.url}/v1/chat/completions`, { messages, max_tokens: 20 });
    const second = postJson(`${s.url}/v1/chat/completions`, { messages, max_tokens: 20 });
    await waitFor("the second request waiting", async () => metricValue(await metrics(s), "vllm:num_requests_waiting{") === 1);
    await first;
    const t1 = performance.now() - t0;
    expect(t1).toBeGreaterThanOrEqual(150 + 19 * 4 - 5);
    await second;
    const t2 = performance.now() - t0;
    expect(t2).toBeGreaterThanOrEqual(2 * (150 + 19 * 4) - 10);
    const m = await metrics(s);
    expect(metricValue(m, "vllm:request_queue_time_seconds_sum{")).toBeGreaterThan(0.2);
  });

  it("rejects with 503 when the waiting queue is full", async () => {
    sim = await startSim({ ttftMs: 200, maxNumSeqs: 1, maxWaiting: 1 });
    const a = postJson(`${sim.url}/v1/chat/completions`, { messages, max_tokens: 2 });
    const b = postJson(`${sim.url}/v1/chat/completions`, { messages, max_tokens: 2 });
    const s = sim;
    await waitFor("one running and one waiting", async () => {
      const m = await metrics(s);
      return metricValue(m, "vllm:num_requests_running{") === 1 && metricValue(m, "vllm:num_requests_waiting{") === 1;
    });
    const c = await postJson(`${sim.url}/v1/chat/completions`, { messages, max_tokens: 2 });
    expect(c.status).toBe(503);
    expect(((await c.json()) as { error: { code: number } }).error.code).toBe(503);
    expect((await a).status).toBe(200);
    expect((await b).status).toBe(200);
  });

  it("hits the prefix cache for a repeated long prompt", async () => {
    sim = await startSim();
    const long = [{ role: "user", content: "shared context ".repeat(100) }];
    await postJson(`${sim.url}/v1/chat/completions`, { messages: long, max_tokens: 1 });
    await postJson(`${sim.url}/v1/chat/completions`, { messages: long, max_tokens: 1 });
    const m = await metrics(sim);
    expect(metricValue(m, "vllm:prefix_cache_hits_total{")).toBeGreaterThanOrEqual(192);
  });
});

describe("failure injection", () => {
  it("answers server_error with 500 before any byte of the stream", async () => {
    sim = await startSim({ failureRate: 1, failureKinds: ["server_error"] });
    const res = await postJson(`${sim.url}/v1/chat/completions`, { messages, stream: true });
    expect(res.status).toBe(500);
    expect(((await res.json()) as { error: { type: string; code: number } }).error).toMatchObject({ type: "InternalServerError", code: 500 });
  });

  it("changes at runtime through POST /sim/faults: rate_limited, context_length, model_not_found", async () => {
    sim = await startSim();
    const cases: [string, number][] = [
      ["rate_limited", 429],
      ["context_length", 400],
      ["model_not_found", 404],
    ];
    for (const [kind, status] of cases) {
      const set = await postJson(`${sim.url}/sim/faults`, { rate: 1, kinds: [kind] });
      expect(await set.json()).toEqual({ rate: 1, kinds: [kind] });
      expect((await postJson(`${sim.url}/v1/chat/completions`, { messages })).status).toBe(status);
    }
    await postJson(`${sim.url}/sim/faults`, { rate: 0, kinds: [] });
    expect((await postJson(`${sim.url}/v1/chat/completions`, { messages, max_tokens: 2 })).status).toBe(200);
    expect((await postJson(`${sim.url}/sim/faults`, { rate: 2, kinds: [] })).status).toBe(400);
  });

  it("disconnect closes the connection mid-stream", async () => {
    sim = await startSim({ failureRate: 1, failureKinds: ["disconnect"] });
    const res = await postJson(`${sim.url}/v1/chat/completions`, { messages, stream: true, max_tokens: 20 });
    expect(res.status).toBe(200);
    await expect(res.text()).rejects.toThrow();
  });

  it("stall stops sending mid-stream without ending; the client's timeout notices", async () => {
    sim = await startSim({ failureRate: 1, failureKinds: ["stall"] });
    const s = sim;
    const controller = new AbortController();
    const res = await postJson(`${s.url}/v1/chat/completions`, { messages, stream: true, max_tokens: 20 }, { signal: controller.signal });
    const reader = sseReader(res);
    const frames: string[] = [];
    await expect(
      (async () => {
        for (;;) {
          const f = await reader.next(200);
          if (f === null) return;
          frames.push(f);
        }
      })(),
    ).rejects.toThrow("timeout");
    expect(frames.length).toBeGreaterThan(0);
    expect(frames).not.toContain("[DONE]");
    expect((await simStats(s)).running).toBe(1);
    controller.abort();
    await waitFor("nothing running", async () => (await simStats(s)).running === 0);
  });

  it("stream_error sends an error frame then [DONE]", async () => {
    sim = await startSim({ failureRate: 1, failureKinds: ["stream_error"] });
    const res = await postJson(`${sim.url}/v1/chat/completions`, { messages, stream: true, max_tokens: 20 });
    const text = await res.text();
    const frames = text.split("\n\n").filter((f) => f.length > 0);
    expect(frames[frames.length - 1]).toBe("data: [DONE]");
    expect(JSON.parse((frames[frames.length - 2] ?? "").slice(6)) as unknown).toMatchObject({ error: { code: 500 } });
  });
});
