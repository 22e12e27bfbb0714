import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineSim } from "./server.ts";
import { parseSse, postJson, readSse, startSim } from "./test-client.ts";
import { applyChatTemplate, encode } from "./tokenizer.ts";

interface ChatResponse {
  id: string;
  object: string;
  model: string;
  choices: {
    index: number;
    message: { role: string; content: string | null; tool_calls: { id: string; type: string; function: { name: string; arguments: string } }[] };
    logprobs: { content: { token: string; logprob: number; bytes: number[]; top_logprobs: { token: string; logprob: number }[] }[] } | null;
    finish_reason: string;
  }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

interface Chunk {
  id: string;
  object: string;
  choices: {
    index: number;
    delta: { role?: string; content?: string; tool_calls?: { index: number; id?: string; type?: string; function: { name?: string; arguments: string } }[] };
    logprobs: unknown;
    finish_reason: string | null;
  }[];
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

interface CompletionResponse {
  id: string;
  object: string;
  choices: {
    index: number;
    text: string;
    finish_reason: string;
    logprobs: { tokens: string[]; token_logprobs: (number | null)[]; top_logprobs: (Record<string, number> | null)[]; text_offset: number[] } | null;
  }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: number };
}

const MODEL = "meta-llama/Meta-Llama-3-8B-Instruct";
const messages = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "Tell me about rivers." },
];

let sim: EngineSim;
beforeAll(async () => {
  sim = await startSim();
});
afterAll(async () => {
  await sim.stop();
});

async function chat(body: Record<string, unknown>): Promise<ChatResponse> {
  const res = await postJson(`${sim.url}/v1/chat/completions`, { model: MODEL, messages, ...body });
  expect(res.status).toBe(200);
  return (await res.json()) as ChatResponse;
}

async function chatStream(body: Record<string, unknown>): Promise<string[]> {
  const res = await postJson(`${sim.url}/v1/chat/completions`, { model: MODEL, messages, stream: true, ...body });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/event-stream");
  return readSse(res);
}

describe("chat completions", () => {
  it("answers deterministically for the same prompt and seed, differently for another seed", async () => {
    const a = await chat({ seed: 7, temperature: 0.8, max_tokens: 40 });
    const b = await chat({ seed: 7, temperature: 0.8, max_tokens: 40 });
    const c = await chat({ seed: 8, temperature: 0.8, max_tokens: 40 });
    expect(a.id).toMatch(/^chatcmpl-/);
    expect(a.object).toBe("chat.completion");
    expect(a.model).toBe(MODEL);
    expect(a.choices[0]?.message.content).toBe(b.choices[0]?.message.content);
    expect(a.choices[0]?.message.content).not.toBe(c.choices[0]?.message.content);
    expect((a.choices[0]?.message.content ?? "").split(" ").length).toBeGreaterThan(5);
  });

  it("counts prompt tokens with Llama 3's chat template and completion tokens with the tokenizer", async () => {
    const r = await chat({ max_tokens: 2000 });
    const expectedPrompt = encode(applyChatTemplate(messages)).length;
    expect(r.usage.prompt_tokens).toBe(expectedPrompt);
    const choice = r.choices[0];
    expect(choice?.finish_reason).toBe("stop");
    // A natural end generates the text's tokens plus the <|eot_id|> token.
    expect(r.usage.completion_tokens).toBe(encode(choice?.message.content ?? "").length + 1);
    expect(r.usage.total_tokens).toBe(r.usage.prompt_tokens + r.usage.completion_tokens);
  });

  it("honours max_tokens and max_completion_tokens with finish_reason length", async () => {
    const a = await chat({ max_tokens: 7 });
    expect(a.choices[0]?.finish_reason).toBe("length");
    expect(a.usage.completion_tokens).toBe(7);
    expect(encode(a.choices[0]?.message.content ?? "").length).toBe(7);
    const b = await chat({ max_completion_tokens: 3 });
    expect(b.usage.completion_tokens).toBe(3);
  });

  it("stops at a stop string, leaving it out of the text", async () => {
    const full = (await chat({ max_tokens: 60 })).choices[0]?.message.content ?? "";
    const words = full.split(" ");
    const stopWord = ` ${words[4]}`;
    const expected = full.slice(0, full.indexOf(stopWord));
    const r = await chat({ max_tokens: 60, stop: [stopWord, "zzz-never"] });
    expect(r.choices[0]?.message.content).toBe(expected);
    expect(r.choices[0]?.finish_reason).toBe("stop");
    const single = await chat({ max_tokens: 60, stop: stopWord });
    expect(single.choices[0]?.message.content).toBe(expected);
  });

  it("streams a role chunk first, one token per content chunk, a finish chunk, and [DONE] last", async () => {
    const frames = await chatStream({ max_tokens: 12 });
    expect(frames[frames.length - 1]).toBe("[DONE]");
    const chunks = frames.slice(0, -1).map((f) => JSON.parse(f) as Chunk);
    expect(chunks.every((c) => c.object === "chat.completion.chunk" && c.id === chunks[0]?.id)).toBe(true);
    expect(chunks[0]?.choices[0]?.delta).toEqual({ role: "assistant", content: "" });
    const last = chunks[chunks.length - 1];
    expect(last?.choices[0]?.finish_reason).toBe("length");
    expect(last?.choices[0]?.delta).toEqual({});
    expect(chunks.some((c) => c.usage !== undefined)).toBe(false);
    const contents = chunks.slice(1, -1).map((c) => c.choices[0]?.delta.content ?? "");
    expect(contents).toHaveLength(12);
    const nonStream = await chat({ max_tokens: 12 });
    expect(contents.join("")).toBe(nonStream.choices[0]?.message.content);
    for (const piece of contents) expect(encode(piece).length).toBe(1);
  });

  it("sends usage in a final chunk with empty choices only when include_usage is set, and nothing after it", async () => {
    const frames = await chatStream({ max_tokens: 5, stream_options: { include_usage: true } });
    expect(frames[frames.length - 1]).toBe("[DONE]");
    const usageChunk = JSON.parse(frames[frames.length - 2] ?? "{}") as Chunk;
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage?.completion_tokens).toBe(5);
    expect(usageChunk.usage?.prompt_tokens).toBe(encode(applyChatTemplate(messages)).length);
    const finish = JSON.parse(frames[frames.length - 3] ?? "{}") as Chunk;
    expect(finish.choices[0]?.finish_reason).toBe("length");
    expect(frames.slice(0, -2).every((f) => (JSON.parse(f) as Chunk).usage === undefined)).toBe(true);
  });

  it("streams every choice index for n=2, each with its own finish chunk", async () => {
    const frames = await chatStream({ n: 2, max_tokens: 6, temperature: 1, stream_options: { include_usage: true } });
    const chunks = frames.slice(0, -1).map((f) => JSON.parse(f) as Chunk);
    const text = (i: number): string =>
      chunks
        .flatMap((c) => c.choices.filter((ch) => ch.index === i))
        .map((ch) => ch.delta.content ?? "")
        .join("");
    const finishes = chunks.flatMap((c) => c.choices).filter((ch) => ch.finish_reason !== null);
    expect(finishes.map((f) => f.index).sort()).toEqual([0, 1]);
    expect(text(0)).not.toBe(text(1));
    expect(chunks[chunks.length - 1]?.usage?.completion_tokens).toBe(12);
    const nonStream = await chat({ n: 2, max_tokens: 6, temperature: 1 });
    expect(nonStream.choices.map((c) => c.message.content)).toEqual([text(0), text(1)]);
  });

  it("streams tool calls like vLLM: id, type and name first, then argument fragments, finish tool_calls", async () => {
    const tools = [
      {
        type: "function",
        function: {
          name: "get_weather",
          parameters: {
            type: "object",
            properties: { city: { type: "string" }, days: { type: "integer", minimum: 1, maximum: 7 } },
            required: ["city", "days"],
          },
        },
      },
    ];
    const frames = await chatStream({ tools, messages: [{ role: "user", content: "Please use the get_weather tool for Paris" }] });
    const chunks = frames.slice(0, -1).map((f) => JSON.parse(f) as Chunk);
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls[0]).toMatchObject({ index: 0, type: "function", function: { name: "get_weather", arguments: "" } });
    expect(calls[0]?.id).toMatch(/^chatcmpl-tool-/);
    expect(calls.slice(1).every((c) => c.id === undefined && c.function.name === undefined)).toBe(true);
    const args = JSON.parse(calls.map((c) => c.function.arguments).join("")) as { city: string; days: number };
    expect(typeof args.city).toBe("string");
    expect(args.days).toBeGreaterThanOrEqual(1);
    expect(args.days).toBeLessThanOrEqual(7);
    expect(chunks[chunks.length - 1]?.choices[0]?.finish_reason).toBe("tool_calls");

    const r = await chat({ tools, tool_choice: { type: "function", function: { name: "get_weather" } } });
    expect(r.choices[0]?.finish_reason).toBe("tool_calls");
    expect(r.choices[0]?.message.content).toBeNull();
    expect(r.choices[0]?.message.tool_calls[0]?.function.name).toBe("get_weather");
    const plain = await chat({ tools, max_tokens: 5 });
    expect(plain.choices[0]?.message.tool_calls).toEqual([]);
  });

  it("returns chat logprobs with top_logprobs", async () => {
    const r = await chat({ max_tokens: 4, logprobs: true, top_logprobs: 3 });
    const content = r.choices[0]?.logprobs?.content ?? [];
    expect(content).toHaveLength(4);
    for (const entry of content) {
      expect(entry.logprob).toBeLessThanOrEqual(0);
      expect(entry.bytes).toEqual(Array.from(new TextEncoder().encode(entry.token)));
      expect(entry.top_logprobs).toHaveLength(3);
      expect(entry.top_logprobs[0]?.token).toBe(entry.token);
    }
    expect(content.map((e) => e.token).join("")).toBe(r.choices[0]?.message.content);
  });

  it("answers valid JSON for json_object and json_schema", async () => {
    const a = await chat({ response_format: { type: "json_object" } });
    expect(() => JSON.parse(a.choices[0]?.message.content ?? "") as unknown).not.toThrow();
    const schema = {
      type: "object",
      properties: { name: { type: "string" }, age: { type: "integer" }, ok: { type: "boolean" }, tags: { type: "array", items: { type: "string" } } },
      required: ["name", "age", "ok", "tags"],
    };
    const b = await chat({ response_format: { type: "json_schema", json_schema: { name: "person", schema } } });
    const parsed = JSON.parse(b.choices[0]?.message.content ?? "") as Record<string, unknown>;
    expect(typeof parsed.name).toBe("string");
    expect(Number.isInteger(parsed.age)).toBe(true);
    expect(typeof parsed.ok).toBe("boolean");
    expect(Array.isArray(parsed.tags)).toBe(true);
  });

  it("rejects invalid parameters, unknown models and over-long prompts like vLLM", async () => {
    const bad = await postJson(`${sim.url}/v1/chat/completions`, { model: MODEL, messages, temperature: -1 });
    expect(bad.status).toBe(400);
    const body = (await bad.json()) as ErrorBody;
    expect(body.error).toMatchObject({ type: "BadRequestError", param: "temperature", code: 400 });
    const noModel = await postJson(`${sim.url}/v1/chat/completions`, { model: "nope", messages });
    expect(noModel.status).toBe(404);
    expect(((await noModel.json()) as ErrorBody).error).toMatchObject({ type: "NotFoundError", code: 404 });
    const long = await postJson(`${sim.url}/v1/chat/completions`, { model: MODEL, messages: [{ role: "user", content: "word ".repeat(9000) }] });
    expect(long.status).toBe(400);
    expect(((await long.json()) as ErrorBody).error.message).toContain("maximum context length is 8192 tokens");
    const tooMany = await postJson(`${sim.url}/v1/chat/completions`, { model: MODEL, messages, max_tokens: 9000 });
    expect(tooMany.status).toBe(400);
    const so = await postJson(`${sim.url}/v1/chat/completions`, { model: MODEL, messages, stream_options: { include_usage: true } });
    expect(so.status).toBe(400);
  });
});

describe("completions", () => {
  const templated = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";

  it("answers a templated prompt with stop <|eot_id|>, counting special tokens as single tokens", async () => {
    const res = await postJson(`${sim.url}/v1/completions`, { model: MODEL, prompt: templated, stop: ["<|eot_id|>"], max_tokens: 300 });
    expect(res.status).toBe(200);
    const r = (await res.json()) as CompletionResponse;
    expect(r.id).toMatch(/^cmpl-/);
    expect(r.object).toBe("text_completion");
    expect(["stop", "length"]).toContain(r.choices[0]?.finish_reason);
    expect(r.choices[0]?.text).not.toContain("<|eot_id|>");
    expect(r.choices[0]?.text.length).toBeGreaterThan(0);
    expect(r.usage.prompt_tokens).toBe(12);
  });

  it("defaults to 16 tokens, streams text chunks, echoes and returns logprobs", async () => {
    const plain = (await (await postJson(`${sim.url}/v1/completions`, { model: MODEL, prompt: "Once upon a time" })).json()) as CompletionResponse;
    expect(plain.usage.completion_tokens).toBe(16);
    expect(plain.usage.prompt_tokens).toBe(encode("Once upon a time", { bos: true }).length);

    const streamed = await postJson(`${sim.url}/v1/completions`, {
      model: MODEL,
      prompt: "Once upon a time",
      stream: true,
      stream_options: { include_usage: true },
    });
    const frames = parseSse(await streamed.text());
    expect(frames[frames.length - 1]).toBe("[DONE]");
    const chunks = frames.slice(0, -1).map((f) => JSON.parse(f) as CompletionResponse);
    expect(
      chunks
        .slice(0, -1)
        .map((c) => c.choices[0]?.text ?? "")
        .join(""),
    ).toBe(plain.choices[0]?.text);
    expect(chunks[chunks.length - 1]?.usage.completion_tokens).toBe(16);

    const echo = (await (
      await postJson(`${sim.url}/v1/completions`, { model: MODEL, prompt: "Once upon a time", echo: true, max_tokens: 3, logprobs: 2 })
    ).json()) as CompletionResponse;
    const choice = echo.choices[0];
    expect(choice?.text.startsWith("Once upon a time")).toBe(true);
    const lp = choice?.logprobs;
    expect(lp?.tokens.length).toBe(lp?.token_logprobs.length);
    expect(lp?.token_logprobs[0]).toBeNull();
    expect(lp?.text_offset[0]).toBe(0);
    expect(Object.keys(lp?.top_logprobs[lp.top_logprobs.length - 1] ?? {}).length).toBe(2);
  });
});
