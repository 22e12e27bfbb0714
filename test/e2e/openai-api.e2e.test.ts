/**
 * The whole OpenAI-compatible surface, driven by the official `openai` package against the
 * running platform (vLLM-, TGI-, TEI- and image-server-backed models, all engine-sim):
 * every endpoint streaming and not, every request attribute, addressing, errors. Every
 * response body is also checked against OpenAI's published response schema
 * (services/gateway/src/openai-responses.json).
 */
import { readdirSync, readFileSync } from "node:fs";
import OpenAI from "openai";
import { describe, expect } from "vitest";
import { metricSum, parseMetrics, type Platform } from "@infera/testkit";
import { platformTest } from "@infera/testkit/fixtures";
import { expectSchema } from "../openapi/validate.ts";

const CHAT = "meta-llama/Meta-Llama-3-8B-Instruct";
const TGI = "meta-llama/Llama-3.1-8B-Instruct";
const EMBED = "BAAI/bge-large-en-v1.5";
const TEI = "mixedbread-ai/mxbai-embed-large-v1";
const IMAGE = "black-forest-labs/FLUX-1-schnell";
const BODY_LIMIT = 256 * 1024;
const WEATHER_TOOL = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "Weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

let platform: Platform;
let openai: OpenAI;
/** model name → { engineUrl, deploymentId } of its one replica. */
const engines = new Map<string, { url: string; deploymentId: string }>();

const test = platformTest({
  label: "openai-api",
  catalog: ["chat", "embeddings", "images", "tgi", "tei"],
  readyTimeoutMs: 240_000,
  // Embedding calls take a little while and the agent runs one at a time: concurrent requests must coalesce.
  env: { SIM_TTFT_MS: "15", EMBEDDING_MAX_INFLIGHT: "1", BODY_LIMIT_BYTES: String(BODY_LIMIT) },
});

test.beforeAll(async ({ platform: started }) => {
  platform = started;
  openai = new OpenAI({ apiKey: platform.adminKey, baseURL: platform.openaiURL, maxRetries: 0 });
  const logDir = `/tmp/infera-test-logs/${platform.redisPrefix}`;
  for (const f of readdirSync(logDir).filter((x) => x.endsWith("-agent.log"))) {
    // The newest start of this replica's agent (a replica restarted under load logs again).
    const line = readFileSync(`${logDir}/${f}`, "utf8")
      .split("\n")
      .filter((l) => l.includes('"agent listening"'))
      .at(-1);
    if (!line) continue;
    const url = (JSON.parse(line) as { engineUrl: string }).engineUrl;
    const res = await fetch(`${url}/sim/stats`).catch(() => undefined);
    if (res?.status !== 200) continue;
    const stats = (await res.json()) as { model: string };
    engines.set(stats.model, { url, deploymentId: f.replace(/-r\d+-agent\.log$/, "") });
  }
}, 300_000);

function engine(model: string): { url: string; deploymentId: string } {
  const e = engines.get(model);
  if (!e) throw new Error(`no engine found for ${model} (have ${[...engines.keys()].join(", ")})`);
  return e;
}

async function simStats(model: string): Promise<{ requests: number; embeddings: { calls: number; inputs: number } }> {
  return (await (await fetch(`${engine(model).url}/sim/stats`)).json()) as { requests: number; embeddings: { calls: number; inputs: number } };
}

async function setFaults(model: string, rate: number, kinds: string[]): Promise<void> {
  const r = await fetch(`${engine(model).url}/sim/faults`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ rate, kinds }),
  });
  expect(r.status).toBe(200);
}

async function raw(
  path: string,
  body?: unknown,
  init: { base?: string; rawBody?: string } = {},
): Promise<{ status: number; json: Record<string, unknown>; text: string; headers: Headers }> {
  const r = await fetch(`${init.base ?? platform.openaiURL}${path}`, {
    method: body === undefined && init.rawBody === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${platform.adminKey}` },
    body: init.rawBody ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await r.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // SSE or empty
  }
  return { status: r.status, json, text, headers: r.headers };
}

/** The `data:` payloads of an SSE body. */
function sseData(text: string): string[] {
  return text
    .split("\n\n")
    .filter((f) => f.startsWith("data: "))
    .map((f) => f.slice(6));
}

/** Requests that reached placement (a leased slot or the queue): a refused one never does. */
async function enqueued(): Promise<number> {
  return metricSum(parseMetrics(await (await fetch(`${platform.baseURL}/metrics`)).text()), "gateway_placements_total");
}

function decodeBase64Floats(b64: string): number[] {
  const buf = Buffer.from(b64, "base64");
  return Array.from({ length: buf.length / 4 }, (_, i) => buf.readFloatLE(i * 4));
}

const norm = (v: readonly number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

/** OpenAI-compatible servers take extra sampling knobs; the official client passes unknown keys through. */
const EXTRA_SAMPLING = { top_k: 40, min_p: 0.05, repetition_penalty: 1.1 };

describe("chat completions (vLLM)", () => {
  test("honours every attribute, non-streaming: n, logprobs/top_logprobs, stop, penalties, seed, user, max_completion_tokens and the extra knobs", async () => {
    const params = {
      model: CHAT,
      messages: [
        { role: "system" as const, content: "Be brief." },
        { role: "user" as const, content: [{ type: "text" as const, text: "Tell me about lamb." }] },
      ],
      max_completion_tokens: 12,
      temperature: 0.7,
      top_p: 0.9,
      stop: ["\n\n", "END"],
      n: 2,
      presence_penalty: 0.5,
      frequency_penalty: 0.5,
      seed: 42,
      user: "user-1234",
      logprobs: true,
      top_logprobs: 3,
      ...EXTRA_SAMPLING,
    };
    const c = await openai.chat.completions.create(params);
    expectSchema("CreateChatCompletionResponse", c);
    expect(c.choices).toHaveLength(2);
    for (const choice of c.choices) {
      expect(choice.message.content?.length).toBeGreaterThan(0);
      expect(choice.logprobs?.content?.length).toBeGreaterThan(0);
      expect(choice.logprobs?.content?.[0]?.top_logprobs).toHaveLength(3);
    }
    expect(c.usage!.completion_tokens).toBeLessThanOrEqual(24);
    const again = await openai.chat.completions.create(params);
    expect(again.choices.map((x) => x.message.content)).toEqual(c.choices.map((x) => x.message.content));
  });

  test("answers response_format json_object and json_schema with JSON (the schema's required properties)", async () => {
    const obj = await openai.chat.completions.create({
      model: CHAT,
      messages: [{ role: "user", content: "a person as JSON" }],
      response_format: { type: "json_object" },
    });
    expectSchema("CreateChatCompletionResponse", obj);
    expect(() => JSON.parse(obj.choices[0]!.message.content!)).not.toThrow();
    const schema = await openai.chat.completions.create({
      model: CHAT,
      messages: [{ role: "user", content: "a person" }],
      response_format: {
        type: "json_schema",
        json_schema: {
          name: "person",
          strict: true,
          schema: { type: "object", properties: { name: { type: "string" }, age: { type: "integer", minimum: 3 } }, required: ["name", "age"] },
        },
      },
    });
    expectSchema("CreateChatCompletionResponse", schema);
    const person = JSON.parse(schema.choices[0]!.message.content!) as { name: unknown; age: number };
    expect(typeof person.name).toBe("string");
    expect(person.age).toBeGreaterThanOrEqual(3);
  });

  test("answers tools with tool_calls (tool_choice required and by name), non-streaming", async () => {
    const c = await openai.chat.completions.create({
      model: CHAT,
      messages: [{ role: "user", content: "Weather in Paris?" }],
      tools: [WEATHER_TOOL],
      tool_choice: "required",
    });
    expectSchema("CreateChatCompletionResponse", c);
    expect(c.choices[0]!.finish_reason).toBe("tool_calls");
    const call = c.choices[0]!.message.tool_calls![0]!;
    expect(call.type === "function" && call.function.name).toBe("get_weather");
    expect(call.type === "function" && (JSON.parse(call.function.arguments) as Record<string, unknown>)).toHaveProperty("city");
    const named = await openai.chat.completions.create({
      model: CHAT,
      messages: [{ role: "user", content: "hello" }],
      tools: [WEATHER_TOOL],
      tool_choice: { type: "function", function: { name: "get_weather" } },
    });
    expect(named.choices[0]!.finish_reason).toBe("tool_calls");
  });

  test("streams n=2 with tool calls: tool-call deltas pass through; with include_usage the usage is only on the choices: [] chunk", async () => {
    const stream = await openai.chat.completions.create({
      model: CHAT,
      messages: [{ role: "user", content: "Please call the weather tool for Rome" }],
      tools: [WEATHER_TOOL],
      tool_choice: "auto",
      n: 2,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) {
      expectSchema("CreateChatCompletionStreamResponse", chunk);
      chunks.push(chunk);
    }
    const args = new Map<number, string>();
    const names = new Map<number, string>();
    for (const ch of chunks) {
      for (const choice of ch.choices) {
        for (const tc of choice.delta.tool_calls ?? []) {
          if (tc.function?.name) names.set(choice.index, tc.function.name);
          args.set(choice.index, (args.get(choice.index) ?? "") + (tc.function?.arguments ?? ""));
        }
      }
    }
    expect([...names.values()]).toEqual(["get_weather", "get_weather"]);
    for (const a of args.values()) expect(() => JSON.parse(a)).not.toThrow();
    const finishes = chunks.filter((c) => c.choices[0]?.finish_reason);
    expect(finishes.map((c) => c.choices[0]!.index).sort()).toEqual([0, 1]);
    expect(finishes.every((c) => c.choices[0]!.finish_reason === "tool_calls")).toBe(true);
    // OpenAI's convention with include_usage: usage once, on the usage-only chunk (SDKs that add usage up count it once).
    expect(finishes.filter((c) => c.usage)).toHaveLength(0);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage?.completion_tokens).toBeGreaterThan(0);
    expect(chunks.filter((c) => c.usage)).toHaveLength(1);
    expect(chunks.filter((c) => c.choices.length === 0)).toHaveLength(1);
  });

  test("streams logprobs in OpenAI's shape, and n=2 text with usage on the last finish chunk (no usage-only chunk without include_usage)", async () => {
    const stream = await openai.chat.completions.create({
      model: CHAT,
      messages: [{ role: "user", content: "hi" }],
      n: 2,
      max_tokens: 5,
      logprobs: true,
      top_logprobs: 2,
      stream: true,
    });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) {
      expectSchema("CreateChatCompletionStreamResponse", chunk);
      chunks.push(chunk);
    }
    expect(chunks.some((c) => (c.choices[0]?.logprobs?.content?.[0]?.top_logprobs.length ?? 0) === 2)).toBe(true);
    const finishes = chunks.filter((c) => c.choices[0]?.finish_reason);
    expect(finishes).toHaveLength(2);
    expect(finishes[0]!.usage ?? null).toBeNull();
    expect(finishes[1]!.usage?.completion_tokens).toBe(10);
    expect(chunks.some((c) => c.choices.length === 0)).toBe(false);
  });
});

describe("text completions (vLLM)", () => {
  test("echo + logprobs, n, stop, penalties and extra knobs, non-streaming", async () => {
    const c = await openai.completions.create({
      model: CHAT,
      prompt: "Once upon a time",
      max_tokens: 6,
      echo: true,
      logprobs: 2,
      n: 2,
      stop: "END",
      seed: 3,
      presence_penalty: 0.1,
      frequency_penalty: 0.1,
      user: "u",
      ...EXTRA_SAMPLING,
    });
    expectSchema("CreateCompletionResponse", c);
    expect(c.choices).toHaveLength(2);
    expect(c.choices[0]!.text.startsWith("Once upon a time")).toBe(true);
    expect(c.choices[0]!.logprobs?.tokens?.length).toBeGreaterThan(6);
    expect(c.usage!.completion_tokens).toBe(12);
  });

  test("streams with include_usage: the choices: [] chunk carries the usage, and only it", async () => {
    const stream = await openai.completions.create({ model: CHAT, prompt: "Hello", max_tokens: 5, stream: true, stream_options: { include_usage: true } });
    const chunks: OpenAI.Completions.Completion[] = [];
    for await (const chunk of stream) {
      expectSchema(chunk.choices.length ? "CreateCompletionStreamResponse" : "CreateCompletionResponse", chunk);
      chunks.push(chunk);
    }
    const finish = chunks.find((c) => c.choices[0]?.finish_reason);
    expect(finish?.usage).toBeUndefined();
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage?.completion_tokens).toBe(5);
    expect(chunks.filter((c) => c.usage)).toHaveLength(1);
  });
});

describe("TGI-backed model", () => {
  test("chat through TGI's Messages API, streaming and not, in OpenAI's shapes", async () => {
    const c = await openai.chat.completions.create({ model: TGI, messages: [{ role: "user", content: "Hello" }], max_tokens: 8, temperature: 0.5, seed: 1 });
    expectSchema("CreateChatCompletionResponse", c);
    expect(c.usage?.completion_tokens).toBe(8);
    const stream = await openai.chat.completions.create({
      model: TGI,
      messages: [{ role: "user", content: "Hello" }],
      max_tokens: 8,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    const usages: number[] = [];
    for await (const chunk of stream) {
      expectSchema("CreateChatCompletionStreamResponse", chunk);
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.usage) usages.push(chunk.usage.completion_tokens);
    }
    expect(text.length).toBeGreaterThan(0);
    expect(usages).toEqual([8]);
  });

  test("text completions through /generate_stream (no [DONE] from TGI, one from the gateway) and /generate; a matched stop is not in the text", async () => {
    const whole = await openai.completions.create({ model: TGI, prompt: "The story begins", max_tokens: 30, temperature: 0 });
    expectSchema("CreateCompletionResponse", whole);
    const text = whole.choices[0]!.text;
    const stop = text.trim().split(" ")[2]!;
    const res = await raw("/completions", { model: TGI, prompt: "The story begins", max_tokens: 30, temperature: 0, stop: [stop], stream: true });
    const frames = sseData(res.text);
    expect(frames.at(-1)).toBe("[DONE]");
    const chunks = frames.slice(0, -1).map((f) => JSON.parse(f) as OpenAI.Completions.Completion);
    for (const ch of chunks) expectSchema("CreateCompletionStreamResponse", ch);
    const streamed = chunks.map((c) => c.choices[0]?.text ?? "").join("");
    expect(streamed).toBe(text.slice(0, text.indexOf(stop)));
    expect(chunks.at(-1)!.choices[0]).toMatchObject({ finish_reason: "stop" });
    expect(chunks.at(-1)!.usage?.prompt_tokens).toBe(whole.usage?.prompt_tokens);
  });

  test("refuses what TGI cannot do with a 400 naming the attribute, before the queue", async () => {
    const before = await enqueued();
    const cases: [string, Record<string, unknown>, string][] = [
      ["/chat/completions", { model: TGI, messages: [{ role: "user", content: "hi" }], n: 2 }, "n"],
      ["/chat/completions", { model: TGI, messages: [{ role: "user", content: "hi" }], top_k: 5 }, "top_k"],
      ["/chat/completions", { model: TGI, messages: [{ role: "user", content: "hi" }], stop: ["a", "b", "c", "d", "e"] }, "stop"],
      ["/completions", { model: TGI, prompt: "hi", logprobs: 1 }, "logprobs"],
      ["/completions", { model: TGI, prompt: "hi", n: 2, stream: true }, "n"],
      ["/completions", { model: TGI, prompt: [1, 2, 3] }, "prompt"],
    ];
    for (const [path, body, param] of cases) {
      const r = await raw(path, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expectSchema("ErrorResponse", r.json);
      expect((r.json.error as { param: string }).param).toBe(param);
    }
    expect(await enqueued()).toBe(before);
  });

  test("normalises TGI's {error, error_type} into OpenAI's error JSON", async () => {
    const err = (await openai.completions.create({ model: TGI, prompt: "hi", max_tokens: 100_000 }).catch((e: unknown) => e)) as InstanceType<
      typeof OpenAI.APIError
    >;
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.message).toContain("max_new_tokens");
    expectSchema("ErrorResponse", { error: err.error });
  });
});

describe("embeddings", () => {
  for (const model of [EMBED, TEI]) {
    test(`${model}: string, strings, token ids and lists of token ids; float and base64 (the client's default); dimensions`, async () => {
      const one = await raw("/embeddings", { model, input: "The food was delicious and the waiter...", encoding_format: "float" });
      expect(one.status).toBe(200);
      expectSchema("CreateEmbeddingResponse", one.json);
      const floats = (one.json.data as { embedding: number[] }[])[0]!.embedding;
      expect(floats).toHaveLength(1024);
      expect(norm(floats)).toBeCloseTo(1, 4);

      const b64 = await raw("/embeddings", { model, input: "The food was delicious and the waiter...", encoding_format: "base64" });
      expectSchema("CreateEmbeddingResponseBase64", b64.json);
      expect(decodeBase64Floats((b64.json.data as { embedding: string }[])[0]!.embedding)).toEqual(floats.map((x) => Math.fround(x)));

      // The official client asks for base64 when the caller does not say, and decodes it.
      const viaClient = await openai.embeddings.create({ model, input: "The food was delicious and the waiter..." });
      expectSchema("CreateEmbeddingResponse", viaClient);
      expect(viaClient.data[0]!.embedding).toEqual(floats.map((x) => Math.fround(x)));
      expect(viaClient.usage.prompt_tokens).toBeGreaterThan(5);

      const many = await openai.embeddings.create({ model, input: ["hello", "world"], encoding_format: "float" });
      expect(many.data.map((d) => d.index)).toEqual([0, 1]);
      const ids = await openai.embeddings.create({ model, input: [9906, 1917], encoding_format: "float" });
      expect(ids.data).toHaveLength(1);
      expect(ids.usage.prompt_tokens).toBe(2);
      const idLists = await openai.embeddings.create({ model, input: [[9906], [1917, 0]], encoding_format: "float" });
      expect(idLists.data).toHaveLength(2);
      expect(idLists.usage.prompt_tokens).toBe(3);

      const short = await openai.embeddings.create({ model, input: "hello", dimensions: 256, encoding_format: "float" });
      expect(short.data[0]!.embedding).toHaveLength(256);
      expect(norm(short.data[0]!.embedding)).toBeCloseTo(1, 4);
      const tooMany = await raw("/embeddings", { model, input: "hello", dimensions: 4096 });
      expect(tooMany.status).toBe(400);
      expectSchema("ErrorResponse", tooMany.json);
    });

    test(`${model}: concurrent requests are coalesced into fewer engine calls, each answered with its own vectors`, async () => {
      const before = await simStats(model);
      const texts = Array.from({ length: 32 }, (_, i) => `concurrent text number ${i}`);
      const results = await Promise.all(
        texts.map((t, i) => openai.embeddings.create({ model, input: t, ...(i % 2 ? { encoding_format: "float" as const } : {}) })),
      );
      const after = await simStats(model);
      expect(after.embeddings.inputs - before.embeddings.inputs).toBe(32);
      expect(after.embeddings.calls - before.embeddings.calls).toBeLessThan(32);
      const alone = await openai.embeddings.create({ model, input: texts[7]!, encoding_format: "float" });
      expect(results[7]!.data[0]!.embedding).toEqual(alone.data[0]!.embedding);
      expect(results[8]!.data[0]!.embedding).toEqual((await openai.embeddings.create({ model, input: texts[8]! })).data[0]!.embedding);
    });
  }
});

function pngSize(b64: string): { width: number; height: number; signature: string } {
  const png = Buffer.from(b64, "base64");
  return { signature: png.subarray(0, 8).toString("hex"), width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

describe("images", () => {
  test("generates n real PNGs of the asked size (quality and style accepted), FLUX schnell by default", async () => {
    const r = await openai.images.generate({
      prompt: "A photo of an astronaut riding a horse on Mars.",
      size: "1024x768" as "1024x1024",
      n: 2,
      quality: "hd",
      style: "vivid",
      response_format: "b64_json",
    });
    expectSchema("ImagesResponse", r);
    expect(r.data).toHaveLength(2);
    for (const d of r.data!) expect(pngSize(d.b64_json!)).toEqual({ signature: "89504e470d0a1a0a", width: 1024, height: 768 });
    expect(r.data![0]!.b64_json).not.toBe(r.data![1]!.b64_json);
    const named = await openai.images.generate({ model: IMAGE, prompt: "A photo of an astronaut riding a horse on Mars.", size: "256x256" });
    expectSchema("ImagesResponse", named);
    expect(pngSize(named.data![0]!.b64_json!)).toMatchObject({ width: 256, height: 256 });
  });

  test("answers response_format url with a clear 400", async () => {
    const err = (await openai.images.generate({ prompt: "x", response_format: "url" }).catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.message).toMatch(/b64_json/);
    expect((err.error as { param: string }).param).toBe("response_format");
  });
});

describe("models and addressing", () => {
  test("lists and retrieves models in OpenAI's shapes", async () => {
    const list = await raw("/models");
    expectSchema("ListModelsResponse", list.json);
    const ids = (list.json.data as { id: string }[]).map((m) => m.id);
    for (const m of [CHAT, TGI, EMBED, TEI, IMAGE]) expect(ids).toContain(m);
    const one = await raw(`/models/${CHAT}`);
    expectSchema("Model", one.json);
    expect((await openai.models.retrieve(EMBED)).id).toBe(EMBED);
    const missing = await raw("/models/nobody/nothing");
    expect(missing.status).toBe(404);
    expectSchema("ErrorResponse", missing.json);
  });

  test("addresses a model by name, NAME:VERSION and deploy_id:ID; an unknown version is a 404 that says so", async () => {
    const ask = (model: string) => openai.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
    expect((await ask(`${CHAT}:1`)).usage?.completion_tokens).toBe(2);
    expect((await ask(`deploy_id:${engine(CHAT).deploymentId}`)).model).toBe(CHAT);
    const err = (await ask(`${CHAT}:999`).catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err.message).toContain("no version '999'");
    expectSchema("ErrorResponse", { error: err.error });
    await expect(ask("deploy_id:dep_nope")).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  test("serves the same routes under /v1", async () => {
    const v1 = new OpenAI({ apiKey: platform.adminKey, baseURL: `${platform.baseURL}/v1`, maxRetries: 0 });
    const c = await v1.chat.completions.create({ model: CHAT, messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
    expectSchema("CreateChatCompletionResponse", c);
    const e = await v1.embeddings.create({ model: EMBED, input: "hi" });
    expect(e.data[0]!.embedding).toHaveLength(1024);
    const list = await raw("/models", undefined, { base: `${platform.baseURL}/v1` });
    expectSchema("ListModelsResponse", list.json);
  });
});

describe("errors", () => {
  test("answers every out-of-range or ill-typed attribute with a 400 naming it, and queues none", async () => {
    const before = await enqueued();
    const msg = [{ role: "user", content: "hi" }];
    const cases: [string, Record<string, unknown>, string][] = [
      ["/chat/completions", { model: CHAT, messages: msg, temperature: 2.5 }, "temperature"],
      ["/chat/completions", { model: CHAT, messages: msg, temperature: -0.1 }, "temperature"],
      ["/chat/completions", { model: CHAT, messages: msg, top_p: 1.5 }, "top_p"],
      ["/chat/completions", { model: CHAT, messages: msg, n: 5 }, "n"],
      ["/chat/completions", { model: CHAT, messages: msg, n: 1.5 }, "n"],
      ["/chat/completions", { model: CHAT, messages: msg, stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }, "stop"],
      ["/chat/completions", { model: CHAT, messages: msg, stop: 7 }, "stop"],
      ["/chat/completions", { model: CHAT, messages: msg, presence_penalty: 3 }, "presence_penalty"],
      ["/chat/completions", { model: CHAT, messages: msg, frequency_penalty: -2.5 }, "frequency_penalty"],
      ["/chat/completions", { model: CHAT, messages: msg, seed: "x" }, "seed"],
      ["/chat/completions", { model: CHAT, messages: msg, user: 5 }, "user"],
      ["/chat/completions", { model: CHAT, messages: msg, max_tokens: -1 }, "max_tokens"],
      ["/chat/completions", { model: CHAT, messages: msg, max_completion_tokens: 0 }, "max_completion_tokens"],
      ["/chat/completions", { model: CHAT, messages: msg, logprobs: true, top_logprobs: 21 }, "top_logprobs"],
      ["/chat/completions", { model: CHAT, messages: msg, top_logprobs: 2 }, "top_logprobs"],
      ["/chat/completions", { model: CHAT, messages: msg, logprobs: "yes" }, "logprobs"],
      ["/chat/completions", { model: CHAT, messages: msg, response_format: { type: "xml" } }, "response_format.type"],
      ["/chat/completions", { model: CHAT, messages: msg, tools: [{ type: "function" }] }, "tools[0].function"],
      ["/chat/completions", { model: CHAT, messages: msg, tool_choice: "sometimes" }, "tool_choice"],
      ["/chat/completions", { model: CHAT, messages: msg, stream_options: { include_usage: true } }, "stream_options"],
      ["/chat/completions", { model: CHAT, messages: msg, stream: true, stream_options: { include_usage: "yes" } }, "stream_options.include_usage"],
      ["/chat/completions", { model: CHAT, messages: msg, top_k: -2 }, "top_k"],
      ["/chat/completions", { model: CHAT, messages: msg, min_p: 2 }, "min_p"],
      ["/chat/completions", { model: CHAT, messages: msg, repetition_penalty: 0 }, "repetition_penalty"],
      ["/completions", { model: CHAT, prompt: "hi", logprobs: 6 }, "logprobs"],
      ["/completions", { model: CHAT, prompt: "hi", echo: "yes" }, "echo"],
      ["/completions", { model: CHAT, prompt: 5 }, "prompt"],
      ["/completions", { model: CHAT, prompt: "hi", best_of: 9 }, "best_of"],
      ["/embeddings", { model: EMBED, input: "hi", encoding_format: "hex" }, "encoding_format"],
      ["/embeddings", { model: EMBED, input: "hi", dimensions: 0 }, "dimensions"],
      ["/embeddings", { model: EMBED, input: [] }, "input"],
      ["/embeddings", { model: EMBED, input: [[1, -2]] }, "input[0][1]"],
      ["/images/generations", { prompt: "x", n: 5 }, "n"],
      ["/images/generations", { prompt: "x", size: "13x13" }, "size"],
      ["/images/generations", { prompt: "x", quality: "ultra" }, "quality"],
      ["/images/generations", { prompt: "x", style: "baroque" }, "style"],
      ["/images/generations", { prompt: "" }, "prompt"],
      ["/chat/completions", { model: EMBED, messages: msg }, "model"],
    ];
    for (const [path, body, param] of cases) {
      const r = await raw(path, body);
      expect(r.status, `${path} ${JSON.stringify(body)}`).toBe(400);
      expectSchema("ErrorResponse", r.json);
      expect((r.json.error as { param: string | null }).param, `${path} ${JSON.stringify(body)}`).toBe(param);
    }
    const viaClient = await openai.chat.completions
      .create({ model: CHAT, messages: [{ role: "user", content: "hi" }], temperature: 5 })
      .catch((e: unknown) => e);
    expect(viaClient).toBeInstanceOf(OpenAI.BadRequestError);
    expect(await enqueued()).toBe(before);
  });

  test("answers a body over the limit with 413 in OpenAI's error shape, and queues nothing", async () => {
    const before = await enqueued();
    const r = await raw("/chat/completions", undefined, {
      rawBody: JSON.stringify({ model: CHAT, messages: [{ role: "user", content: "x".repeat(BODY_LIMIT + 10) }] }),
    });
    expect(r.status).toBe(413);
    expectSchema("ErrorResponse", r.json);
    const err = (await openai.embeddings.create({ model: EMBED, input: "y".repeat(BODY_LIMIT + 10) }).catch((e: unknown) => e)) as InstanceType<
      typeof OpenAI.APIError
    >;
    expect(err.status).toBe(413);
    expect(await enqueued()).toBe(before);
  });

  test("normalises vLLM's integer error code: an engine 400 reaches the client as OpenAI's error JSON", async () => {
    const r = await raw("/chat/completions", { model: CHAT, messages: [{ role: "user", content: "hi" }], max_tokens: 100_000 });
    expect(r.status).toBe(400);
    expectSchema("ErrorResponse", r.json);
    expect((r.json.error as { message: string }).message).toMatch(/maximum context length/);
  });

  test("an engine failure before the stream is a 5xx APIError; after the stream started it is one error event, then the end", async () => {
    await setFaults(CHAT, 1, ["server_error"]);
    try {
      const err = (await openai.chat.completions
        .create({ model: CHAT, messages: [{ role: "user", content: "hi" }], max_tokens: 3 })
        .catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect(err.status).toBeGreaterThanOrEqual(500);
      expectSchema("ErrorResponse", { error: err.error });
    } finally {
      await setFaults(CHAT, 0, []);
    }
    for (const model of [CHAT, TGI]) {
      await setFaults(model, 1, ["stream_error"]);
      try {
        const stream = await openai.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 40, stream: true });
        let chunks = 0;
        const err = await (async () => {
          for await (const _ of stream) chunks++;
        })().catch((e: unknown) => e);
        expect(err, model).toBeInstanceOf(OpenAI.APIError);
        expect(chunks).toBeGreaterThan(0);
        const rawStream = await raw("/completions", { model, prompt: "hi", max_tokens: 40, stream: true });
        const frames = sseData(rawStream.text);
        const last = JSON.parse(frames.at(-1)!) as Record<string, unknown>;
        expectSchema("ErrorResponse", last);
        expect(frames.filter((f) => f.startsWith('{"error"'))).toHaveLength(1);
        expect(frames).not.toContain("[DONE]");
      } finally {
        await setFaults(model, 0, []);
      }
    }
  });
});
