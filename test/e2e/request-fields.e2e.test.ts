/**
 * Every request field the gateway accepts, driven through the official `openai` client and
 * raw HTTP against the running platform, with what reached engine-sim asserted from its
 * `/sim/last-request`: fields the table (services/gateway/src/request-fields.ts) sends to
 * the engine arrive as sent; fields the gateway applies or ignores do not arrive, and do
 * what the table says (usage records, priority, translations). Also: multimodal input by
 * the model's modalities, TGI's mapping and refusals, include_usage exactly once, body-less
 * routes with a JSON content type, error codes, the prompt token count reservations use, and
 * vLLM's rerank, score, tokenize and detokenize through the gateway.
 */
import OpenAI from "openai";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engineUrls, startPlatform, type Platform } from "@infera/testkit";
import { CHAT_FIELDS, COMPLETION_FIELDS, EMBEDDING_FIELDS } from "../../services/gateway/src/request-fields.ts";
import { expectSchema } from "../openapi/validate.ts";

const CHAT = "meta-llama/Meta-Llama-3-8B-Instruct";
const TGI = "meta-llama/Llama-3.1-8B-Instruct";
const VISION = "Qwen/Qwen2.5-Omni-7B";
const EMBED = "BAAI/bge-large-en-v1.5";
const TEI = "mixedbread-ai/mxbai-embed-large-v1";
const PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
const WAV = Buffer.concat([Buffer.from("RIFF$\u0000\u0000\u0000WAVEfmt "), Buffer.alloc(28)]).toString("base64");
const WEATHER = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "Weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
const CLOCK = { type: "function" as const, function: { name: "get_time", parameters: { type: "object", properties: {} } } };

let platform: Platform;
let openai: OpenAI;
let engines: Map<string, { url: string; deploymentId: string }>;
let db: pg.Client;

beforeAll(async () => {
  platform = await startPlatform({ label: "request-fields", catalog: ["chat", "tgi", "vision", "embeddings", "tei"], env: { USAGE_FLUSH_MS: "50" } });
  openai = new OpenAI({ apiKey: platform.adminKey, baseURL: platform.openaiURL, maxRetries: 0 });
  engines = await engineUrls(platform);
  db = new pg.Client({ connectionString: platform.databaseUrl });
  await db.connect();
}, 300_000);
afterAll(async () => {
  await db?.end();
  await platform?.stop();
});

interface Received {
  path: string;
  body: Record<string, unknown>;
  headers: Record<string, string>;
}

async function lastRequest(model: string): Promise<Received> {
  const e = engines.get(model);
  if (!e) throw new Error(`no engine for ${model} (have ${[...engines.keys()].join(", ")})`);
  const r = await fetch(`${e.url}/sim/last-request`);
  expect(r.status).toBe(200);
  return (await r.json()) as Received;
}

async function raw(method: string, path: string, body?: unknown, init: { rawBody?: string; key?: string; base?: string } = {}) {
  const r = await fetch(`${init.base ?? platform.openaiURL}${path}`, {
    method,
    headers: { "content-type": "application/json", authorization: `Bearer ${init.key ?? platform.adminKey}` },
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

function sseData(text: string): Record<string, unknown>[] {
  return text
    .split("\n\n")
    .filter((f) => f.startsWith("data: ") && f !== "data: [DONE]")
    .map((f) => JSON.parse(f.slice(6)) as Record<string, unknown>);
}

const USER = [{ role: "user" as const, content: "Say hello." }];

/**
 * One valid value for every chat field, with what it needs beside it (companions). The
 * test fails if the table has a field this list lacks, so a new field must be exercised.
 */
const CHAT_EXAMPLES: Record<string, { value: unknown; with?: Record<string, unknown> }> = {
  model: { value: CHAT },
  messages: { value: USER },
  stream: { value: true },
  stream_options: { value: { include_usage: true }, with: { stream: true } },
  max_tokens: { value: 5 },
  max_completion_tokens: { value: 6 },
  temperature: { value: 0.5 },
  top_p: { value: 0.9 },
  n: { value: 2 },
  stop: { value: ["\n\n", "END"] },
  presence_penalty: { value: 0.3 },
  frequency_penalty: { value: 0.4 },
  logit_bias: { value: { "1234": -50 } },
  seed: { value: 7 },
  user: { value: "end-user-42" },
  top_k: { value: 40 },
  min_p: { value: 0.05 },
  repetition_penalty: { value: 1.1 },
  length_penalty: { value: 1.0 },
  use_beam_search: { value: false },
  stop_token_ids: { value: [128009] },
  include_stop_str_in_output: { value: true },
  ignore_eos: { value: true },
  min_tokens: { value: 2 },
  skip_special_tokens: { value: false },
  spaces_between_special_tokens: { value: false },
  truncate_prompt_tokens: { value: 100 },
  prompt_logprobs: { value: 1 },
  allowed_token_ids: { value: [15339, 1917] },
  bad_words: { value: ["badword"] },
  return_tokens_as_token_ids: { value: true },
  return_token_ids: { value: true },
  add_special_tokens: { value: false },
  guided_json: { value: { type: "object", properties: { a: { type: "integer" } }, required: ["a"] } },
  guided_regex: { value: "[a-z]+" },
  guided_choice: { value: ["yes", "no"] },
  guided_grammar: { value: 'root ::= "a" | "b"' },
  guided_decoding_backend: { value: "xgrammar" },
  guided_whitespace_pattern: { value: "[ ]?" },
  structured_outputs: { value: { choice: ["red", "green"] } },
  service_tier: { value: "priority" },
  response_format: { value: { type: "json_schema", json_schema: { name: "answer", schema: { type: "object", properties: { ok: { type: "boolean" } } } } } },
  tools: { value: [WEATHER] },
  tool_choice: { value: "auto", with: { tools: [WEATHER] } },
  parallel_tool_calls: { value: false, with: { tools: [WEATHER] } },
  functions: { value: [WEATHER.function] },
  function_call: { value: { name: "get_weather" }, with: { functions: [WEATHER.function] } },
  logprobs: { value: true },
  top_logprobs: { value: 2, with: { logprobs: true } },
  audio: { value: { format: "mp3", voice: "alloy" } },
  modalities: { value: ["text"] },
  prediction: { value: { type: "content", content: "Hello there." } },
  metadata: { value: { team: "search", run: "7" } },
  store: { value: true },
  safety_identifier: { value: "hashed-user-1" },
  prompt_cache_key: { value: "conversation-123" },
  prompt_cache_retention: { value: "24h" },
  reasoning_effort: { value: "low" },
  verbosity: { value: "low" },
  web_search_options: { value: { search_context_size: "low" } },
  chat_template_kwargs: { value: { enable_thinking: false } },
  add_generation_prompt: { value: true },
  continue_final_message: { value: false },
  echo: { value: false },
  documents: { value: [{ title: "Doc", text: "Some text." }] },
  mm_processor_kwargs: { value: { num_crops: 4 } },
};

/** Fields that are refused by design (the table says why): a 400 naming them. */
const REFUSED = new Set(["web_search_options"]);

async function viaClient(body: Record<string, unknown>): Promise<void> {
  if (body.stream === true) {
    const stream = await openai.chat.completions.create(body as unknown as OpenAI.ChatCompletionCreateParamsStreaming);
    for await (const _ of stream) void _;
  } else {
    const c = await openai.chat.completions.create(body as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expectSchema("CreateChatCompletionResponse", c);
  }
}

describe("chat completions: every field, as the table says", () => {
  it("has an example for every field of the table", () => {
    expect(Object.keys(CHAT_FIELDS).filter((f) => !(f in CHAT_EXAMPLES))).toEqual([]);
  });

  for (const [field, rule] of Object.entries(CHAT_FIELDS)) {
    // model: resolution (every test); messages: below; stream_options: the platform's own, below.
    if (field === "model" || field === "messages" || field === "stream_options") continue;
    it(`${field}: ${rule.to}`, async () => {
      const ex = CHAT_EXAMPLES[field];
      if (!ex) throw new Error(`no example for ${field}`);
      const body: Record<string, unknown> = { model: CHAT, messages: USER, max_tokens: 5, ...ex.with, [field]: ex.value };
      if (REFUSED.has(field)) {
        const r = await raw("POST", "/chat/completions", body);
        expect(r.status).toBe(400);
        expect(r.json).toMatchObject({ error: { type: "invalid_request_error", param: field } });
        await expect(viaClient(body)).rejects.toMatchObject({ status: 400 });
        return;
      }
      for (const send of ["client", "http"] as const) {
        if (send === "client") await viaClient(body);
        else expect((await raw("POST", "/chat/completions", body)).status).toBe(200);
        const got = await lastRequest(CHAT);
        expect(got.path).toBe("/v1/chat/completions");
        if (rule.to === "engine") expect(got.body[field], `${field} via ${send}`).toEqual(ex.value);
        else expect(got.body, `${field} via ${send}`).not.toHaveProperty(field);
      }
    });
  }

  it("stream_options: the engine is asked for usage on every stream, and the client's include_usage is not forwarded as such", async () => {
    await raw("POST", "/chat/completions", { model: CHAT, messages: USER, max_tokens: 3, stream: true });
    expect((await lastRequest(CHAT)).body.stream_options).toEqual({ include_usage: true, continuous_usage_stats: true });
  });

  it("functions / function_call reach the engine as the equivalent tools / tool_choice; allowed_tools cuts the tools", async () => {
    await viaClient({ model: CHAT, messages: USER, functions: [WEATHER.function], function_call: { name: "get_weather" } });
    let got = await lastRequest(CHAT);
    expect(got.body.tools).toEqual([WEATHER]);
    expect(got.body.tool_choice).toEqual({ type: "function", function: { name: "get_weather" } });
    const c = await openai.chat.completions.create({
      model: CHAT,
      messages: [{ role: "user", content: "What time is it? Use a tool." }],
      tools: [WEATHER, CLOCK],
      tool_choice: { type: "allowed_tools", allowed_tools: { mode: "required", tools: [{ type: "function", function: { name: "get_time" } }] } },
    });
    got = await lastRequest(CHAT);
    expect(got.body.tools).toEqual([CLOCK]);
    expect(got.body.tool_choice).toBe("required");
    expect(c.choices[0]?.message.tool_calls?.[0]).toMatchObject({ type: "function", function: { name: "get_time" } });
    // A deprecated function message is a tool result to the engine.
    await raw("POST", "/chat/completions", {
      model: CHAT,
      messages: [
        ...USER,
        { role: "assistant", content: null, function_call: { name: "get_weather", arguments: "{}" } },
        { role: "function", name: "get_weather", content: "sunny" },
      ],
    });
    expect(((await lastRequest(CHAT)).body.messages as unknown[]).at(-1)).toEqual({ role: "tool", content: "sunny", tool_call_id: "get_weather" });
  });

  it("guided_choice and structured_outputs.choice make the answer one of the choices", async () => {
    const a = await openai.chat.completions.create({
      model: CHAT,
      messages: USER,
      guided_choice: ["yes", "no"],
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(["yes", "no"]).toContain(a.choices[0]?.message.content);
    const b = await openai.chat.completions.create({
      model: CHAT,
      messages: USER,
      structured_outputs: { choice: ["red"] },
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(b.choices[0]?.message.content).toBe("red");
  });

  it("user, safety_identifier, metadata and service_tier are kept on the usage record", async () => {
    const c = await openai.chat.completions.create({
      model: CHAT,
      messages: USER,
      max_tokens: 3,
      user: "u-77",
      safety_identifier: "sid-77",
      metadata: { experiment: "a/b", cohort: "3" },
      service_tier: "priority",
    });
    let row: Record<string, unknown> | undefined;
    for (let i = 0; i < 100 && !row; i++) {
      row = (await db.query("select end_user, safety_identifier, metadata, service_tier from usage_records where end_user = 'u-77'")).rows[0];
      if (!row) await new Promise((r) => setTimeout(r, 50));
    }
    expect(c.usage?.prompt_tokens).toBeGreaterThan(0);
    expect(row).toEqual({ end_user: "u-77", safety_identifier: "sid-77", metadata: { experiment: "a/b", cohort: "3" }, service_tier: "priority" });
  });

  it("bad values are a 400 in OpenAI's shape naming the field; an undocumented field is refused by name", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, "v"])) }, "metadata"],
      [{ metadata: { k: "x".repeat(513) } }, "metadata.k"],
      [{ reasoning_effort: "extreme" }, "reasoning_effort"],
      [{ top_k: -5 }, "top_k"],
      [{ safety_identifier: "x".repeat(65) }, "safety_identifier"],
      [{ service_tier: "gold" }, "service_tier"],
      [{ modalities: ["audio"] }, "modalities"],
      [{ tools: [{ type: "custom", custom: { name: "shell" } }] }, "tools"],
      [{ guided_choice: [] }, "guided_choice"],
      [{ not_a_field: 1 }, "not_a_field"],
    ];
    for (const [extra, param] of cases) {
      const r = await raw("POST", "/chat/completions", { model: CHAT, messages: USER, ...extra });
      expect(r.status, JSON.stringify(extra)).toBe(400);
      expectSchema("ErrorResponse", r.json);
      expect(r.json.error, JSON.stringify(extra)).toMatchObject({ type: "invalid_request_error", param });
    }
    const unknown = await raw("POST", "/chat/completions", { model: CHAT, messages: USER, not_a_field: 1 });
    expect((unknown.json.error as { message: string }).message).toBe("Unrecognized request argument supplied: not_a_field");
  });
});

describe("completions and embeddings: every field, as the table says", () => {
  const COMPLETION_EXAMPLES: Record<string, unknown> = {
    ...Object.fromEntries(Object.entries(CHAT_EXAMPLES).map(([k, v]) => [k, v.value])),
    prompt: "Once upon a time",
    echo: true,
    logprobs: 2,
    best_of: 2,
    suffix: null,
    response_format: { type: "json_object" },
  };

  it("sends each engine field on and keeps the others", async () => {
    for (const [field, rule] of Object.entries(COMPLETION_FIELDS)) {
      if (field === "model" || field === "stream_options") continue;
      const value = COMPLETION_EXAMPLES[field];
      expect(value, `example for ${field}`).not.toBeUndefined();
      const body: Record<string, unknown> = { model: CHAT, prompt: "Once upon a time", max_tokens: 4, [field]: value };
      if (field === "best_of") body.n = 1;
      if (body.stream === true) {
        for await (const _ of await openai.completions.create(body as unknown as OpenAI.CompletionCreateParamsStreaming)) void _;
      } else expectSchema("CreateCompletionResponse", await openai.completions.create(body as unknown as OpenAI.CompletionCreateParamsNonStreaming));
      const got = await lastRequest(CHAT);
      expect(got.path).toBe("/v1/completions");
      if (rule.to === "engine") expect(got.body[field], field).toEqual(value);
      else expect(got.body, field).not.toHaveProperty(field);
    }
  });

  it("prompt: null starts from nothing; several prompts are one batch", async () => {
    const r = await raw("POST", "/completions", { model: CHAT, prompt: null, max_tokens: 3 });
    expect(r.status).toBe(200);
    expect((await lastRequest(CHAT)).body.prompt).toBe("");
    const many = await openai.completions.create({ model: CHAT, prompt: ["one", "two", "three"], max_tokens: 3 });
    expect(many.choices.map((c) => c.index).sort()).toEqual([0, 1, 2]);
  });

  it("embeddings: each field reaches the engine or not as the table says", async () => {
    const examples: Record<string, unknown> = {
      input: ["a", "b"],
      encoding_format: "float",
      dimensions: 256,
      user: "e-1",
      truncate_prompt_tokens: 64,
      add_special_tokens: true,
    };
    for (const [field, rule] of Object.entries(EMBEDDING_FIELDS)) {
      if (field === "model") continue;
      const body: Record<string, unknown> = { model: EMBED, input: "hello", encoding_format: "float", [field]: examples[field] };
      const e = await openai.embeddings.create(body as unknown as OpenAI.EmbeddingCreateParams);
      expect(e.data.length).toBeGreaterThan(0);
      const got = await lastRequest(EMBED);
      if (rule.to === "engine") expect(got.body[field], field).toEqual(examples[field]);
      else expect(got.body, field).not.toHaveProperty(field);
    }
  });
});

describe("multimodal input", () => {
  const parts = [
    { type: "text" as const, text: "What is in these?" },
    { type: "image_url" as const, image_url: { url: `data:image/png;base64,${PNG_1PX}`, detail: "low" as const } },
    { type: "image_url" as const, image_url: { url: "https://example.com/cat.jpg" } },
    { type: "input_audio" as const, input_audio: { data: WAV, format: "wav" as const } },
    { type: "file" as const, file: { filename: "notes.txt", file_data: `data:text/plain;base64,${Buffer.from("meeting at noon").toString("base64")}` } },
  ];

  it("image, audio and file parts reach a model registered with those modalities, and count in its prompt", async () => {
    const plain = await openai.chat.completions.create({ model: VISION, messages: [{ role: "user", content: [parts[0]!] }], max_tokens: 3 });
    const c = await openai.chat.completions.create({ model: VISION, messages: [{ role: "user", content: parts }], max_tokens: 3 });
    expectSchema("CreateChatCompletionResponse", c);
    const got = await lastRequest(VISION);
    expect((got.body.messages as { content: unknown }[])[0]?.content).toEqual(parts);
    // engine-sim counts 576 placeholder tokens per image and 300 per clip, as vLLM expands them.
    expect(c.usage!.prompt_tokens - plain.usage!.prompt_tokens).toBeGreaterThanOrEqual(2 * 576 + 300);
    const streamed = await raw("POST", "/chat/completions", { model: VISION, messages: [{ role: "user", content: parts }], max_tokens: 3, stream: true });
    expect(streamed.status).toBe(200);
  });

  it("a model without a modality answers a 400 that says so, naming the part; nothing reaches the engine", async () => {
    const before = (await lastRequest(CHAT)).body;
    for (const [i, part] of parts.entries()) {
      if (i === 0) continue;
      const r = await raw("POST", "/chat/completions", { model: CHAT, messages: [{ role: "user", content: [parts[0], part] }] });
      expect(r.status).toBe(400);
      expect(r.json.error).toMatchObject({ type: "invalid_request_error", param: "messages[0].content[1]" });
      expect((r.json.error as { message: string }).message).toContain(`does not accept`);
    }
    await expect(openai.chat.completions.create({ model: CHAT, messages: [{ role: "user", content: [parts[0]!, parts[1]!] }] })).rejects.toMatchObject({
      status: 400,
    });
    expect((await lastRequest(CHAT)).body).toEqual(before);
    const fileId = await raw("POST", "/chat/completions", {
      model: VISION,
      messages: [{ role: "user", content: [{ type: "file", file: { file_id: "file-1" } }] }],
    });
    expect(fileId.status).toBe(400);
    expect(fileId.json.error).toMatchObject({ param: "messages[0].content[0].file" });
  });

  it("GET /v1/models says what each model takes and answers", async () => {
    const list = await openai.models.list();
    const byId = new Map(list.data.map((m) => [m.id, m as unknown as { input_modalities: string[]; output_modalities: string[] }]));
    expect(byId.get(VISION)).toMatchObject({ input_modalities: ["text", "image", "audio", "file"], output_modalities: ["text"] });
    expect(byId.get(CHAT)).toMatchObject({ input_modalities: ["text"], output_modalities: ["text"] });
    expect(byId.get(EMBED)).toMatchObject({ output_modalities: ["embedding"] });
  });
});

describe("TGI: what it has is mapped, what it has not is a 400", () => {
  it("guided_json, guided_regex and guided_choice become TGI's grammar", async () => {
    const schema = { type: "object", properties: { a: { type: "integer" } }, required: ["a"] };
    const c = await openai.chat.completions.create({ model: TGI, messages: USER, guided_json: schema } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(JSON.parse(c.choices[0]?.message.content ?? "")).toHaveProperty("a");
    expect((await lastRequest(TGI)).body.response_format).toEqual({ type: "json", value: schema });
    await raw("POST", "/chat/completions", { model: TGI, messages: USER, guided_choice: ["a.b", "c"] });
    expect((await lastRequest(TGI)).body.response_format).toEqual({ type: "regex", value: "(a\\.b|c)" });
    await raw("POST", "/completions", { model: TGI, prompt: "x", max_tokens: 3, guided_regex: "[0-9]+" });
    const gen = await lastRequest(TGI);
    expect(gen.path).toBe("/generate");
    expect((gen.body.parameters as Record<string, unknown>).grammar).toEqual({ type: "regex", value: "[0-9]+" });
  });

  it("refuses what TGI has not, naming the field", async () => {
    for (const [field, value] of [
      ["guided_grammar", "root ::= x"],
      ["chat_template_kwargs", { a: 1 }],
      ["reasoning_effort", "low"],
      ["min_tokens", 3],
      ["top_k", 5],
    ] as const) {
      const r = await raw("POST", "/chat/completions", { model: TGI, messages: USER, [field]: value });
      expect(r.status, field).toBe(400);
      expect(r.json.error, field).toMatchObject({ param: field });
    }
  });
});

describe("streams carry usage exactly once", () => {
  it("with include_usage: only OpenAI's usage-only chunk has usage", async () => {
    for (const model of [CHAT, TGI]) {
      const stream = await openai.chat.completions.create({ model, messages: USER, max_tokens: 8, stream: true, stream_options: { include_usage: true } });
      const chunks: OpenAI.ChatCompletionChunk[] = [];
      for await (const c of stream) chunks.push(c);
      const withUsage = chunks.filter((c) => c.usage);
      expect(withUsage, model).toHaveLength(1);
      expect(withUsage[0]?.choices).toEqual([]);
      expect(chunks.at(-1)).toBe(withUsage[0]);
      expect(chunks.some((c) => c.choices[0]?.finish_reason)).toBe(true);
    }
    const r = await raw("POST", "/completions", { model: CHAT, prompt: "x", max_tokens: 4, stream: true, stream_options: { include_usage: true } });
    expect(sseData(r.text).filter((c) => c.usage)).toHaveLength(1);
  });

  it("without include_usage: the finish_reason chunk carries it (the provider's convention), once", async () => {
    const r = await raw("POST", "/chat/completions", { model: CHAT, messages: USER, max_tokens: 8, stream: true });
    const chunks = sseData(r.text);
    const withUsage = chunks.filter((c) => c.usage);
    expect(withUsage).toHaveLength(1);
    expect((withUsage[0]!.choices as { finish_reason: string }[])[0]?.finish_reason).toBeTruthy();
  });
});

describe("prompt token counts for reservations", () => {
  async function keyWithTpm(tpm: number): Promise<string> {
    const tenants = (await (await fetch(`${platform.baseURL}/admin/tenants`, { headers: { authorization: `Bearer ${platform.adminKey}` } })).json()) as {
      data: { id: string; name: string }[];
    };
    const admin = tenants.data.find((t) => t.name === "admin")!;
    const r = await raw("POST", "/admin/api-keys", { tenant_id: admin.id, name: `tpm-${tpm}`, scopes: ["inference"], tpm }, { base: platform.baseURL });
    expect(r.status).toBe(201);
    return r.json.secret as string;
  }

  it("a long prompt is reserved as the model's tokenizer counts it (not chars/4 of the first 8k)", async () => {
    const key = await keyWithTpm(10_000_000);
    const prompt = "The platform counts every token of a long prompt, 12345 and ünïcödé too. ".repeat(300); // ~22k characters
    const r = await raw("POST", "/chat/completions", { model: CHAT, messages: [{ role: "user", content: prompt }], max_tokens: 4 }, { key });
    expect(r.status).toBe(200);
    const reserved = 10_000_000 - Number(r.headers.get("x-ratelimit-remaining-tokens"));
    const promptTokens = (r.json.usage as { prompt_tokens: number }).prompt_tokens;
    expect(promptTokens).toBeGreaterThan(4_000);
    // Exact (Llama 3's tokenizer.json) plus the template allowance: never under, within a few tokens over.
    expect(reserved - 4).toBeGreaterThanOrEqual(promptTokens);
    expect(reserved - 4).toBeLessThanOrEqual(promptTokens * 1.1 + 32);
  });

  it("a model without a known tokenizer is reserved by a bound that never undercounts", async () => {
    for (const prompt of ["plain English words ".repeat(1500), "数字与符号 12 34 56 !? ".repeat(400), "a b c d e f g ".repeat(900)]) {
      const key = await keyWithTpm(10_000_000);
      const r = await raw("POST", "/chat/completions", { model: VISION, messages: [{ role: "user", content: prompt }], max_tokens: 4 }, { key });
      expect(r.status).toBe(200);
      const reserved = 10_000_000 - Number(r.headers.get("x-ratelimit-remaining-tokens"));
      expect(reserved - 4).toBeGreaterThanOrEqual((r.json.usage as { prompt_tokens: number }).prompt_tokens);
    }
  });
});

describe("routes without a body, error codes", () => {
  it("a body-less POST/DELETE with content-type: application/json is served", async () => {
    const tenants = await raw("GET", "/admin/tenants", undefined, { base: platform.baseURL });
    const admin = (tenants.json.data as { id: string; name: string }[]).find((t) => t.name === "admin")!;
    const created = await raw("POST", "/admin/api-keys", { tenant_id: admin.id, name: "to-revoke", scopes: ["inference"] }, { base: platform.baseURL });
    const del = await raw("DELETE", `/admin/api-keys/${created.json.id as string}`, undefined, { base: platform.baseURL });
    expect(del.status).toBe(200);
    expect(del.json).toMatchObject({ deleted: true });
    const deployed = await raw(
      "POST",
      "/deploy/llm",
      { model_name: "stoppable", gpu: "A100-80GB", num_gpus: 1, max_batch_size: 8, hf: { repo: "org/stoppable" } },
      { base: platform.baseURL },
    );
    expect(deployed.status).toBe(200);
    const id = deployed.json.deploy_id as string;
    let status = "";
    for (let i = 0; i < 300 && status !== "running"; i++) {
      status = (await raw("GET", `/deploy/${id}`, undefined, { base: platform.baseURL })).json.status as string;
      if (status !== "running") await new Promise((r) => setTimeout(r, 200));
    }
    expect(status).toBe("running");
    const stop = await raw("POST", `/deploy/${id}/stop`, undefined, { base: platform.baseURL });
    expect(stop.status, stop.text).toBe(200);
    const start = await raw("POST", `/deploy/${id}/start`, undefined, { base: platform.baseURL });
    expect(start.status, start.text).toBe(200);
    const gone = await raw("DELETE", `/deploy/${id}`, undefined, { base: platform.baseURL });
    expect(gone.status, gone.text).toBe(200);
    // A route that needs a body still says so.
    const empty = await raw("POST", "/chat/completions", undefined, {});
    expect(empty.status).toBe(400);
    expect(empty.json.error).toMatchObject({ type: "invalid_request_error" });
  });

  it("an unknown key or tenant is `not_found`, an unknown model `model_not_found`", async () => {
    const key = await raw("DELETE", "/admin/api-keys/key_doesnotexist", undefined, { base: platform.baseURL });
    expect(key.status).toBe(404);
    expect(key.json.error).toMatchObject({ code: "not_found", param: "id" });
    const tenant = await raw("GET", "/admin/api-keys?tenant_id=ten_doesnotexist", undefined, { base: platform.baseURL });
    expect(tenant.status).toBe(404);
    expect(tenant.json.error).toMatchObject({ code: "not_found", param: "tenant_id" });
    const usage = await raw("GET", "/v1/usage?tenant_id=ten_doesnotexist", undefined, { base: platform.baseURL });
    expect(usage.json.error).toMatchObject({ code: "not_found" });
    const model = await raw("POST", "/chat/completions", { model: "no/such-model", messages: USER });
    expect(model.json.error).toMatchObject({ code: "model_not_found", param: "model" });
  });
});

describe("rerank, score, tokenize and detokenize through the gateway", () => {
  const docs = ["Paris is the capital of France.", "Bananas are yellow.", "The capital of France is Paris."];

  it("rerank: the official client's post() and raw HTTP; the engine gets vLLM's body; usage is metered", async () => {
    const viaClient = (await openai.post("/rerank", { body: { model: EMBED, query: "capital of France", documents: docs, top_n: 2, user: "rr-1" } })) as {
      results: { index: number; relevance_score: number; document: { text: string } }[];
      usage: { total_tokens: number; estimated_cost: number };
    };
    expect(viaClient.results).toHaveLength(2);
    expect(viaClient.results[0]!.relevance_score).toBeGreaterThanOrEqual(viaClient.results[1]!.relevance_score);
    expect(viaClient.usage.total_tokens).toBeGreaterThan(0);
    const got = await lastRequest(EMBED);
    expect(got.path).toBe("/v1/rerank");
    expect(got.body).toEqual({ model: EMBED, query: "capital of France", documents: docs, top_n: 2 });
    const r = await raw("POST", "/rerank", { model: EMBED, query: "capital of France", documents: docs.map((text) => ({ text })) });
    expect(r.status).toBe(200);
    expect((r.json.results as unknown[]).length).toBe(3);
    expect(r.headers.get("x-ratelimit-limit-requests") ?? r.headers.get("x-request-id")).toBeTruthy();
    let row: Record<string, unknown> | undefined;
    for (let i = 0; i < 100 && !row; i++) {
      row = (await db.query("select endpoint, prompt_tokens from usage_records where end_user = 'rr-1'")).rows[0];
      if (!row) await new Promise((res) => setTimeout(res, 50));
    }
    expect(row).toEqual({ endpoint: "rerank", prompt_tokens: viaClient.usage.total_tokens });
  });

  it("score: one text against many, and pairs; TEI scores one against many and refuses pairs", async () => {
    const one = await raw("POST", "/score", { model: EMBED, text_1: "capital of France", text_2: docs });
    expect(one.status).toBe(200);
    expect((one.json.data as { index: number; object: string }[]).map((d) => [d.index, d.object])).toEqual([
      [0, "score"],
      [1, "score"],
      [2, "score"],
    ]);
    expect((await lastRequest(EMBED)).path).toBe("/v1/score");
    const pairs = await raw("POST", "/score", { model: EMBED, text_1: ["a", "b"], text_2: ["c", "d"] });
    expect(pairs.status).toBe(200);
    const tei = await raw("POST", "/score", { model: TEI, text_1: "capital of France", text_2: docs });
    expect(tei.status).toBe(200);
    // The same deterministic scores whichever engine serves them (engine-sim's embedding similarity).
    expect((tei.json.data as { score: number }[]).map((d) => d.score)).toEqual((one.json.data as { score: number }[]).map((d) => d.score));
    expect((await lastRequest(TEI)).path).toBe("/rerank");
    const teiPairs = await raw("POST", "/score", { model: TEI, text_1: ["a", "b"], text_2: ["c", "d"] });
    expect(teiPairs.status).toBe(400);
    expect(teiPairs.json.error).toMatchObject({ param: "text_1" });
    const teiRerank = await raw("POST", "/rerank", { model: TEI, query: "q", documents: docs });
    expect(teiRerank.status).toBe(200);
    const mismatch = await raw("POST", "/score", { model: EMBED, text_1: ["a", "b"], text_2: ["c", "d", "e"] });
    expect(mismatch.status).toBe(400);
  });

  it("tokenize and detokenize: vLLM's shapes, TGI's tokenize mapped, the rest a 400", async () => {
    const t = await raw("POST", "/tokenize", { model: CHAT, prompt: "Hello world", return_token_strs: true });
    expect(t.status).toBe(200);
    expect(t.json).toMatchObject({ count: 3, tokens: [128000, 9906, 1917], token_strs: ["<|begin_of_text|>", "Hello", " world"] });
    expect((await lastRequest(CHAT)).path).toBe("/tokenize");
    const m = (await openai.post("/tokenize", { body: { model: CHAT, messages: USER } })) as { count: number };
    expect(m.count).toBeGreaterThan(5);
    const d = await raw("POST", "/detokenize", { model: CHAT, tokens: [9906, 1917] });
    expect(d.json).toEqual({ prompt: "Hello world" });
    const tgi = await raw("POST", "/tokenize", { model: TGI, prompt: "Hello world" });
    expect(tgi.json).toMatchObject({ count: 3, tokens: [128000, 9906, 1917] });
    for (const [path, body, param] of [
      ["/detokenize", { model: TGI, tokens: [1] }, "detokenize"],
      ["/tokenize", { model: TGI, messages: USER }, "messages"],
      ["/tokenize", { model: CHAT }, "prompt"],
      ["/tokenize", { model: TEI, prompt: "x" }, "tokenize"],
      ["/rerank", { model: CHAT, query: "q", documents: ["d"] }, "model"],
    ] as const) {
      const r = await raw("POST", path, body);
      expect(r.status, `${path} ${JSON.stringify(body)}`).toBe(400);
      expect(r.json.error, path).toMatchObject({ param });
    }
  });

  it("is authenticated and rate-limited like the OpenAI routes", async () => {
    const anon = await fetch(`${platform.openaiURL}/tokenize`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(anon.status).toBe(401);
    const tenants = await raw("GET", "/admin/tenants", undefined, { base: platform.baseURL });
    const admin = (tenants.json.data as { id: string; name: string }[]).find((x) => x.name === "admin")!;
    const k = await raw("POST", "/admin/api-keys", { tenant_id: admin.id, name: "rpm-2", scopes: ["inference"], rpm: 2 }, { base: platform.baseURL });
    const key = k.json.secret as string;
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await raw("POST", "/tokenize", { model: CHAT, prompt: "x" }, { key })).status);
    expect(statuses).toEqual([200, 200, 429]);
  });
});
