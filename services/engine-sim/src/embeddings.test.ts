import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineSim } from "./server.ts";
import { postJson, simStats, startSim } from "./test-client.ts";
import { encode } from "./tokenizer.ts";

interface EmbeddingsResponse {
  object: string;
  model: string;
  data: { index: number; object: string; embedding: number[] | string }[];
  usage: { prompt_tokens: number; total_tokens: number };
}

const norm = (v: readonly number[]): number => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

function decodeBase64(b64: string): number[] {
  const buf = Buffer.from(b64, "base64");
  return Array.from({ length: buf.length / 4 }, (_, i) => buf.readFloatLE(i * 4));
}

describe("vLLM /v1/embeddings", () => {
  let sim: EngineSim;
  beforeAll(async () => {
    sim = await startSim({ mode: "vllm", task: "embeddings" });
  });
  afterAll(async () => {
    await sim.stop();
  });

  it("returns deterministic unit vectors of 1024 floats with token usage", async () => {
    const res = await postJson(`${sim.url}/v1/embeddings`, { model: "BAAI/bge-large-en-v1.5", input: ["hello world", "another text"] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as EmbeddingsResponse;
    expect(body.object).toBe("list");
    expect(body.data.map((d) => d.index)).toEqual([0, 1]);
    const [a, b] = body.data.map((d) => d.embedding as number[]);
    expect(a).toHaveLength(1024);
    expect(norm(a ?? [])).toBeCloseTo(1, 5);
    expect(a).not.toEqual(b);
    expect(body.usage.prompt_tokens).toBe(encode("hello world", { bos: true }).length + encode("another text", { bos: true }).length);
    const again = (await (await postJson(`${sim.url}/v1/embeddings`, { input: "hello world" })).json()) as EmbeddingsResponse;
    expect(again.data[0]?.embedding).toEqual(a);
  });

  it("encodes base64 as little-endian float32 of the same vector, and truncates to `dimensions`", async () => {
    const floats = (await (await postJson(`${sim.url}/v1/embeddings`, { input: "base64 me" })).json()) as EmbeddingsResponse;
    const b64 = (await (await postJson(`${sim.url}/v1/embeddings`, { input: "base64 me", encoding_format: "base64" })).json()) as EmbeddingsResponse;
    const decoded = decodeBase64(b64.data[0]?.embedding as string);
    expect(decoded).toEqual(floats.data[0]?.embedding);
    const short = (await (await postJson(`${sim.url}/v1/embeddings`, { input: "base64 me", dimensions: 256 })).json()) as EmbeddingsResponse;
    const v = short.data[0]?.embedding as number[];
    expect(v).toHaveLength(256);
    expect(norm(v)).toBeCloseTo(1, 5);
    const tooBig = await postJson(`${sim.url}/v1/embeddings`, { input: "x", dimensions: 2048 });
    expect(tooBig.status).toBe(400);
  });

  it("serves a batch as one engine call and reports calls and inputs", async () => {
    const before = await simStats(sim);
    const embeddingsBefore = before.embeddings as { calls: number; inputs: number };
    await postJson(`${sim.url}/v1/embeddings`, { input: Array.from({ length: 50 }, (_, i) => `text ${i}`) });
    const after = (await simStats(sim)).embeddings as { calls: number; inputs: number };
    expect(after.calls - embeddingsBefore.calls).toBe(1);
    expect(after.inputs - embeddingsBefore.inputs).toBe(50);
  });

  it("rejects inputs over the model's 512-token context and does not serve chat", async () => {
    const res = await postJson(`${sim.url}/v1/embeddings`, { input: "word ".repeat(600) });
    expect(res.status).toBe(400);
    const chat = await postJson(`${sim.url}/v1/chat/completions`, { messages: [{ role: "user", content: "hi" }] });
    expect(chat.status).toBe(404);
  });
});

describe("TEI", () => {
  let sim: EngineSim;
  beforeAll(async () => {
    sim = await startSim({ mode: "tei", maxClientBatchSize: 8 });
  });
  afterAll(async () => {
    await sim.stop();
  });

  it("/embed answers [[floats]], normalised by default", async () => {
    const res = await postJson(`${sim.url}/embed`, { inputs: ["What is Deep Learning?", "Hi"] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as number[][];
    expect(body).toHaveLength(2);
    expect(body[0]).toHaveLength(1024);
    expect(norm(body[0] ?? [])).toBeCloseTo(1, 5);
    const single = (await (await postJson(`${sim.url}/embed`, { inputs: "Hi", normalize: false })).json()) as number[][];
    expect(norm(single[0] ?? [])).toBeGreaterThan(1.5);
    const openai = (await (await postJson(`${sim.url}/v1/embeddings`, { input: "Hi" })).json()) as EmbeddingsResponse;
    expect(openai.data[0]?.embedding).toEqual(body[1]);
  });

  it("/embed takes token ids like TEI, the same vector as their text, and counts tokens in x-compute-tokens", async () => {
    const text = await postJson(`${sim.url}/embed`, { inputs: ["Hi there"] });
    expect(text.headers.get("x-compute-tokens")).toBe("3"); // BOS + "Hi" + " there"
    const [fromText] = (await text.json()) as number[][];
    const ids = [128000, 13347, 1070]; // Llama 3: <|begin_of_text|> "Hi" " there"
    const one = await postJson(`${sim.url}/embed`, { inputs: ids });
    expect(one.status).toBe(200);
    expect(one.headers.get("x-compute-tokens")).toBe("3");
    const many = await postJson(`${sim.url}/embed`, { inputs: [ids, ids.slice(1)] });
    expect(many.headers.get("x-compute-tokens")).toBe("5");
    const vectors = (await many.json()) as number[][];
    expect(vectors).toHaveLength(2);
    expect(((await one.json()) as number[][])[0]).toEqual(vectors[0]);
    expect(vectors[1]).toEqual(fromText);
  });

  it("answers TEI's errors: 413 for too many tokens or a big batch, 422 for bad input, truncate avoids 413", async () => {
    const long = await postJson(`${sim.url}/embed`, { inputs: "word ".repeat(600) });
    expect(long.status).toBe(413);
    expect(((await long.json()) as { error_type: string }).error_type).toBe("validation");
    const truncated = await postJson(`${sim.url}/embed`, { inputs: "word ".repeat(600), truncate: true });
    expect(truncated.status).toBe(200);
    const batch = await postJson(`${sim.url}/embed`, { inputs: Array.from({ length: 9 }, () => "x") });
    expect(batch.status).toBe(413);
    const bad = await postJson(`${sim.url}/embed`, { inputs: 42 });
    expect(bad.status).toBe(422);
    await postJson(`${sim.url}/sim/faults`, { rate: 1, kinds: ["rate_limited"] });
    const limited = await postJson(`${sim.url}/embed`, { inputs: "x" });
    expect(limited.status).toBe(429);
    await postJson(`${sim.url}/sim/faults`, { rate: 0, kinds: [] });
    const info = (await (await fetch(`${sim.url}/info`)).json()) as { model_id: string; max_input_length: number };
    expect(info).toMatchObject({ model_id: "BAAI/bge-large-en-v1.5", max_input_length: 512 });
  });
});
