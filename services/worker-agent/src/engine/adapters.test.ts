/**
 * The engine adapters against engine-sim speaking each engine's real API (real HTTP on
 * ephemeral ports): TGI's native stream without [DONE] and its Messages API, TEI's /embed,
 * the image server, and the embedding coalescer on both embedding engines.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngineSim, type EngineSim, type EngineSimOptions } from "@infera/engine-sim";
import type { EndpointKind, EngineAdapter, EngineSink, EngineUsage, NormalizedError } from "./adapter.ts";
import { EmbeddingCoalescer } from "./coalescer.ts";
import { ImageAdapter } from "./image.ts";
import { TeiAdapter } from "./tei.ts";
import { StopHoldback, TgiAdapter } from "./tgi.ts";
import { VllmAdapter } from "./vllm.ts";

async function startSim(options: EngineSimOptions): Promise<EngineSim> {
  const sim = createEngineSim({ ttftMs: 0, itlMs: 0, prefillUsPerToken: 0, jitter: 0, logLevel: "silent", imageMs: 0, ...options });
  await sim.start(0, "127.0.0.1");
  return sim;
}

interface Captured {
  chunks: Record<string, unknown>[];
  body?: Record<string, unknown>;
  usage?: EngineUsage;
  error?: NormalizedError;
}

function capture(): { sink: EngineSink; out: Captured } {
  const out: Captured = { chunks: [] };
  return {
    out,
    sink: {
      chunk: (json) => out.chunks.push(JSON.parse(typeof json === "string" ? json : Buffer.from(json).toString()) as Record<string, unknown>),
      body: (json) => (out.body = JSON.parse(json) as Record<string, unknown>),
      usage: (u) => (out.usage = u),
      error: (e) => (out.error = e),
    },
  };
}

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

async function run(adapter: EngineAdapter, endpoint: EndpointKind, body: unknown, stream = false): Promise<Captured> {
  const { sink, out } = capture();
  await adapter.run({ endpoint, body: enc(body), stream, signal: new AbortController().signal }, sink);
  return out;
}

async function stats(sim: EngineSim): Promise<{ requests: number; embeddings: { calls: number; inputs: number; promptTokens: number } }> {
  return (await (await fetch(`${sim.url}/sim/stats`)).json()) as { requests: number; embeddings: { calls: number; inputs: number; promptTokens: number } };
}

type Choice = { text: string; finish_reason: string | null };

describe("StopHoldback", () => {
  it("holds back a possible stop prefix and drops the stop that matched", () => {
    const h = new StopHoldback(["END!"]);
    expect(h.push("hello E")).toBe("hello ");
    expect(h.push("N")).toBe("");
    expect(h.push("x")).toBe("ENx");
    expect(h.push(" END!")).toBe(" ");
    expect(h.end(true)).toBe("");
    expect(new StopHoldback([]).push("abc")).toBe("abc");
  });
});

describe("TGI adapter", () => {
  let sim: EngineSim;
  let tgi: TgiAdapter;
  beforeAll(async () => {
    sim = await startSim({ mode: "tgi" });
    tgi = new TgiAdapter(sim.url);
  });
  afterAll(async () => {
    await tgi.close();
    await sim.stop();
  });

  it("streams /generate_stream (no [DONE]) as text_completion chunks, the last with finish_reason, and usage from details", async () => {
    const out = await run(tgi, "completion", { model: "m", prompt: "Once upon a time", max_tokens: 9 }, true);
    expect(out.error).toBeUndefined();
    expect(out.usage).toMatchObject({ completionTokens: 9 });
    expect(out.usage!.promptTokens).toBeGreaterThan(3);
    const last = out.chunks.at(-1)!;
    expect(last.object).toBe("text_completion");
    expect((last.choices as Choice[])[0]?.finish_reason).toBe("length");
    expect(out.chunks.slice(0, -1).every((c) => (c.choices as Choice[])[0]?.finish_reason === null)).toBe(true);
    const streamed = out.chunks.map((c) => (c.choices as Choice[])[0]?.text).join("");
    const whole = await run(tgi, "completion", { model: "m", prompt: "Once upon a time", max_tokens: 9, temperature: 0 });
    const greedy = await run(tgi, "completion", { model: "m", prompt: "Once upon a time", max_tokens: 9, temperature: 0 }, true);
    expect(greedy.chunks.map((c) => (c.choices as Choice[])[0]?.text).join("")).toBe((whole.body!.choices as Choice[])[0]?.text);
    expect(streamed.length).toBeGreaterThan(0);
    expect(whole.body!.usage).toMatchObject({ completion_tokens: 9, prompt_tokens: out.usage!.promptTokens });
  });

  it("strips a matched stop sequence (TGI keeps it, OpenAI does not), streamed and not; echo prepends the prompt", async () => {
    const base = await run(tgi, "completion", { model: "m", prompt: "Tell me", max_tokens: 40, temperature: 0 });
    const text = (base.body!.choices as Choice[])[0]!.text;
    const stop = text.split(" ").filter(Boolean)[3]!; // a word from the middle of the answer
    const before = text.slice(0, text.indexOf(stop));
    const plain = await run(tgi, "completion", { model: "m", prompt: "Tell me", max_tokens: 40, temperature: 0, stop: [stop] });
    expect((plain.body!.choices as Choice[])[0]).toMatchObject({ text: before, finish_reason: "stop" });
    const streamed = await run(tgi, "completion", { model: "m", prompt: "Tell me", max_tokens: 40, temperature: 0, stop }, true);
    expect(streamed.chunks.map((c) => (c.choices as Choice[])[0]?.text).join("")).toBe(before);
    const echoed = await run(tgi, "completion", { model: "m", prompt: "Tell me", max_tokens: 40, temperature: 0, stop, echo: true });
    expect((echoed.body!.choices as Choice[])[0]?.text).toBe(`Tell me${before}`);
  });

  it("refuses what /generate_stream cannot do by name (n, logprobs), and normalises TGI's {error, error_type}", async () => {
    expect((await run(tgi, "completion", { model: "m", prompt: "x", n: 2 }, true)).error).toMatchObject({ status: 400, param: "n" });
    expect((await run(tgi, "completion", { model: "m", prompt: "x", logprobs: 1 })).error).toMatchObject({ status: 400, param: "logprobs" });
    const invalid = await run(tgi, "completion", { model: "m", prompt: "x", max_tokens: 100_000 });
    expect(invalid.error).toMatchObject({ status: 422, code: "validation" });
    await fetch(`${sim.url}/sim/faults`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ rate: 1, kinds: ["stream_error"] }),
    });
    const broken = await run(tgi, "completion", { model: "m", prompt: "x", max_tokens: 30 }, true);
    expect(broken.error).toMatchObject({ code: "generation" });
    expect(broken.usage).toBeUndefined();
    await fetch(`${sim.url}/sim/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ rate: 0, kinds: [] }) });
  });

  it("sends chat to the Messages API (max_completion_tokens as max_tokens), streamed with usage", async () => {
    const out = await run(
      tgi,
      "chat",
      { model: "m", messages: [{ role: "user", content: "Hi" }], max_completion_tokens: 5, stream: true, stream_options: { include_usage: true }, user: "u1" },
      true,
    );
    expect(out.error).toBeUndefined();
    expect(out.usage?.completionTokens).toBe(5);
    expect(out.chunks[0]?.object).toBe("chat.completion.chunk");
    const whole = await run(tgi, "chat", { model: "m", messages: [{ role: "user", content: "Hi" }], max_tokens: 4 });
    expect(whole.body?.object).toBe("chat.completion");
    expect(whole.usage?.completionTokens).toBe(4);
  });
});

describe("TEI adapter", () => {
  let sim: EngineSim;
  let tei: TeiAdapter;
  beforeAll(async () => {
    sim = await startSim({ mode: "tei", maxClientBatchSize: 4 });
    tei = new TeiAdapter(sim.url, 4);
  });
  afterAll(async () => {
    await tei.close();
    await sim.stop();
  });

  it("answers in OpenAI's shape, slices batches beyond TEI's client batch size, counts x-compute-tokens, encodes base64", async () => {
    const input = Array.from({ length: 10 }, (_, i) => `text number ${i}`);
    const before = await stats(sim);
    const out = await run(tei, "embedding", { model: "mxbai", input });
    expect(out.error).toBeUndefined();
    const data = out.body!.data as { index: number; embedding: number[] }[];
    expect(data.map((d) => d.index)).toEqual(input.map((_, i) => i));
    expect(data[0]?.embedding).toHaveLength(1024);
    const after = await stats(sim);
    expect(after.embeddings.calls - before.embeddings.calls).toBe(3); // 4 + 4 + 2
    expect(out.usage?.promptTokens).toBe(after.embeddings.promptTokens - before.embeddings.promptTokens);
    const b64 = await run(tei, "embedding", { model: "mxbai", input: input[0], encoding_format: "base64", dimensions: 256 });
    const buf = Buffer.from((b64.body!.data as { embedding: string }[])[0]!.embedding, "base64");
    const floats = Array.from({ length: buf.length / 4 }, (_, i) => buf.readFloatLE(i * 4));
    expect(floats).toHaveLength(256);
    const short = await run(tei, "embedding", { model: "mxbai", input: input[0], dimensions: 256 });
    expect(floats).toEqual((short.body!.data as { embedding: number[] }[])[0]!.embedding.map((x) => Math.fround(x)));
    const ids = await run(tei, "embedding", { model: "mxbai", input: [[128000, 13347]] });
    expect(ids.usage?.promptTokens).toBe(2);
  });
});

describe("image adapter", () => {
  it("passes the Images API through and counts the images", async () => {
    const sim = await startSim({ mode: "image" });
    const img = new ImageAdapter(sim.url);
    const out = await run(img, "image", { prompt: "a red fox", n: 2, size: "256x256", response_format: "b64_json" });
    expect(out.usage).toEqual({ promptTokens: 0, completionTokens: 0, images: 2 });
    const png = Buffer.from((out.body!.data as { b64_json: string }[])[0]!.b64_json, "base64");
    expect(png.readUInt32BE(16)).toBe(256);
    expect((await run(img, "image", { prompt: "x", size: "13x13" })).error).toMatchObject({ status: 400, param: "size" });
    await img.close();
    await sim.stop();
  });
});

describe("embedding coalescer", () => {
  for (const mode of ["vllm", "tei"] as const) {
    it(`${mode}: concurrent requests share engine calls; each gets its own vectors, encoding and token share`, async () => {
      const sim = await startSim(mode === "vllm" ? { mode, task: "embeddings" } : { mode });
      const adapter = mode === "vllm" ? new VllmAdapter(sim.url) : new TeiAdapter(sim.url);
      const model = "BAAI/bge-large-en-v1.5";
      const coalescer = new EmbeddingCoalescer({ adapter, maxBatch: 64, maxInflight: 1 });
      const texts = Array.from({ length: 24 }, (_, i) => `request ${i} says hello`);
      const alone = await run(adapter, "embedding", { model, input: texts[5] });
      const before = await stats(sim);
      const results = await Promise.all(
        texts.map(async (t, i) => {
          const { sink, out } = capture();
          await coalescer.run(enc({ model, input: i % 3 === 0 ? [t, t] : t, encoding_format: i % 2 ? "base64" : "float" }), new AbortController().signal, sink);
          return out;
        }),
      );
      const after = await stats(sim);
      const calls = after.embeddings.calls - before.embeddings.calls;
      expect(calls).toBeLessThan(texts.length);
      expect(calls).toBeGreaterThan(0);
      const r5 = results[5]!;
      const v5 = Buffer.from((r5.body!.data as { embedding: string }[])[0]!.embedding, "base64");
      const expected = (alone.body!.data as { embedding: number[] }[])[0]!.embedding;
      expect(Array.from({ length: v5.length / 4 }, (_, i) => v5.readFloatLE(i * 4))).toEqual(expected.map((x) => Math.fround(x)));
      expect((results[0]!.body!.data as unknown[]).length).toBe(2);
      expect((results[4]!.body!.data as { embedding: number[] }[])[0]!.embedding).toHaveLength(1024);
      const total = results.reduce((n, r) => n + (r.usage?.promptTokens ?? 0), 0);
      expect(total).toBe(after.embeddings.promptTokens - before.embeddings.promptTokens);
      await adapter.close();
      await sim.stop();
    });
  }

  it("a batch spoiled by one bad input is retried one by one: only that request fails", async () => {
    const sim = await startSim({ mode: "vllm", task: "embeddings" });
    const adapter = new VllmAdapter(sim.url);
    const coalescer = new EmbeddingCoalescer({ adapter, maxBatch: 64 });
    const bodies = [{ input: "fine" }, { input: "word ".repeat(600) }, { input: "also fine" }];
    const results = await Promise.all(
      bodies.map(async (b) => {
        const { sink, out } = capture();
        await coalescer.run(enc({ model: "BAAI/bge-large-en-v1.5", ...b }), new AbortController().signal, sink);
        return out;
      }),
    );
    expect(results[0]?.usage?.promptTokens).toBeGreaterThan(0);
    expect(results[1]?.error).toMatchObject({ status: 400 });
    expect(results[2]?.body).toBeDefined();
    await adapter.close();
    await sim.stop();
  });
});

describe("rerank, score, tokenize and detokenize", () => {
  let vllmEmbed: EngineSim;
  let vllmChat: EngineSim;
  let tei: EngineSim;
  let tgi: EngineSim;
  beforeAll(async () => {
    vllmEmbed = await startSim({ mode: "vllm", task: "embeddings", models: ["BAAI/bge-reranker-v2-m3"] });
    vllmChat = await startSim({ mode: "vllm" });
    tei = await startSim({ mode: "tei", models: ["BAAI/bge-reranker-base"], maxClientBatchSize: 2 });
    tgi = await startSim({ mode: "tgi" });
  });
  afterAll(async () => {
    for (const s of [vllmEmbed, vllmChat, tei, tgi]) await s?.stop();
  });

  const docs = ["Paris is the capital of France.", "Bananas are yellow.", "France's capital city is Paris."];

  it("vLLM: /v1/rerank and /v1/score, answered whole with the engine's token count", async () => {
    const a = new VllmAdapter(vllmEmbed.url);
    const r = await run(a, "rerank", { model: "BAAI/bge-reranker-v2-m3", query: "capital of France", documents: docs, top_n: 2 });
    expect(r.error).toBeUndefined();
    const results = r.body!.results as { index: number; relevance_score: number; document: { text: string } }[];
    expect(results).toHaveLength(2);
    expect(results[0]!.relevance_score).toBeGreaterThanOrEqual(results[1]!.relevance_score);
    expect(r.usage!.promptTokens).toBe((r.body!.usage as { total_tokens: number }).total_tokens);
    const s = await run(a, "score", { model: "BAAI/bge-reranker-v2-m3", text_1: "capital of France", text_2: docs });
    expect((s.body!.data as { index: number }[]).map((d) => d.index)).toEqual([0, 1, 2]);
    expect(s.usage!.promptTokens).toBeGreaterThan(0);
    await a.close();
  });

  it("TEI: rerank and one-to-many score through /rerank in slices of its batch size, in vLLM's shapes", async () => {
    const a = new TeiAdapter(tei.url, 2);
    const r = await run(a, "rerank", { model: "BAAI/bge-reranker-base", query: "capital of France", documents: docs });
    expect(r.error).toBeUndefined();
    expect((r.body!.results as unknown[]).length).toBe(3);
    const v = new VllmAdapter(vllmEmbed.url);
    const fromVllm = await run(v, "score", { model: "BAAI/bge-reranker-v2-m3", text_1: "capital of France", text_2: docs });
    const s = await run(a, "score", { model: "BAAI/bge-reranker-base", text_1: "capital of France", text_2: docs });
    // The same deterministic scores from either engine.
    expect((s.body!.data as { score: number }[]).map((d) => d.score)).toEqual((fromVllm.body!.data as { score: number }[]).map((d) => d.score));
    const many = await run(a, "score", { model: "BAAI/bge-reranker-base", text_1: ["a", "b"], text_2: ["c", "d"] });
    expect(many.error).toMatchObject({ status: 400, param: "text_1" });
    await a.close();
    await v.close();
  });

  it("tokenize and detokenize: vLLM's own, TGI's /tokenize in vLLM's shape", async () => {
    const v = new VllmAdapter(vllmChat.url);
    const t = await run(v, "tokenize", { model: "meta-llama/Meta-Llama-3-8B-Instruct", prompt: "Hello world", return_token_strs: true });
    expect(t.body).toMatchObject({ count: 3, tokens: [128000, 9906, 1917], token_strs: ["<|begin_of_text|>", "Hello", " world"] });
    const d = await run(v, "detokenize", { model: "meta-llama/Meta-Llama-3-8B-Instruct", tokens: [9906, 1917] });
    expect(d.body).toEqual({ prompt: "Hello world" });
    const g = new TgiAdapter(tgi.url);
    const gt = await run(g, "tokenize", { model: "tgi", prompt: "Hello world" });
    expect(gt.body).toMatchObject({ count: 3, tokens: [128000, 9906, 1917] });
    await v.close();
    await g.close();
  });
});
