/**
 * The platform as the popular frameworks see it, changing nothing but the base URL and key:
 * LangChain's `@langchain/openai` (chat invoke, stream, tools; embeddings) and the Vercel
 * AI SDK with `@ai-sdk/openai-compatible` (generateText, streamText, tools, embed). Each
 * client is given a fetch that checks every response body it receives (JSON or each SSE
 * chunk) against OpenAI's published response schema.
 */
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { ChatOpenAI, OpenAIEmbeddings } from "@langchain/openai";
import { embed, embedMany, generateText, stepCountIs, streamText } from "ai";
import { describe, expect } from "vitest";
import type { Platform } from "@infera/testkit";
import { platformTest } from "@infera/testkit/fixtures";
import { schemaErrors, type SchemaName } from "../openapi/validate.ts";
import { aiWeather, lcWeather, readText } from "./client-tools.ts";

const CHAT = "meta-llama/Meta-Llama-3-8B-Instruct";
const EMBED = "BAAI/bge-large-en-v1.5";

let platform: Platform;
/** Every body the clients received, with what its schema check found. */
const checked: { path: string; schema: SchemaName; errors: string[] }[] = [];

function schemaFor(path: string, requestBody: Record<string, unknown>, status: number, sse: boolean, body: Record<string, unknown>): SchemaName {
  if (status !== 200) return "ErrorResponse";
  if (path.endsWith("/chat/completions")) return sse ? "CreateChatCompletionStreamResponse" : "CreateChatCompletionResponse";
  if (path.endsWith("/completions"))
    return sse && Array.isArray(body.choices) && body.choices.length ? "CreateCompletionStreamResponse" : "CreateCompletionResponse";
  if (path.endsWith("/embeddings")) return requestBody.encoding_format === "base64" ? "CreateEmbeddingResponseBase64" : "CreateEmbeddingResponse";
  if (path.endsWith("/models")) return "ListModelsResponse";
  throw new Error(`no schema for ${path}`);
}

/** A fetch that hands the client the response untouched and checks a copy of its body. */
const checkingFetch: typeof fetch = async (input, init) => {
  const res = await fetch(input, init);
  const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
  const requestBody = typeof init?.body === "string" ? (JSON.parse(init.body) as Record<string, unknown>) : {};
  const text = await res.clone().text();
  const sse = (res.headers.get("content-type") ?? "").startsWith("text/event-stream");
  const bodies = sse
    ? text
        .split("\n\n")
        .filter((f) => f.startsWith("data: ") && f !== "data: [DONE]")
        .map((f) => JSON.parse(f.slice(6)) as Record<string, unknown>)
    : [JSON.parse(text) as Record<string, unknown>];
  for (const b of bodies) {
    const schema = schemaFor(url.pathname, requestBody, res.status, sse && !("error" in b), b);
    checked.push({ path: url.pathname, schema, errors: schemaErrors("error" in b ? "ErrorResponse" : schema, b) });
  }
  return res;
};

function expectAllConform(path: string, schema: SchemaName): void {
  const seen = checked.filter((c) => c.path.endsWith(path) && c.schema === schema);
  expect(seen.length, `${schema} bodies seen`).toBeGreaterThan(0);
  const bad = checked.filter((c) => c.errors.length > 0);
  expect(bad, JSON.stringify(bad.slice(0, 3))).toEqual([]);
}

const test = platformTest({ label: "clients-frameworks", catalog: ["chat", "embeddings"], readyTimeoutMs: 240_000 });

test.beforeAll(async ({ platform: started }) => {
  platform = started;
}, 300_000);

describe("LangChain (@langchain/openai)", () => {
  const chat = () =>
    new ChatOpenAI({
      model: CHAT,
      apiKey: platform.adminKey,
      configuration: { baseURL: platform.openaiURL, fetch: checkingFetch },
      maxRetries: 0,
      maxTokens: 12,
      temperature: 0.7,
    });

  test("invokes chat and reads the answer and its token usage", async () => {
    const msg = await chat().invoke([
      ["system", "Respond like a michelin starred chef."],
      ["human", "Can you name at least two different techniques to cook lamb?"],
    ]);
    expect(typeof msg.content).toBe("string");
    expect((msg.content as string).length).toBeGreaterThan(0);
    expect(msg.usage_metadata?.input_tokens).toBeGreaterThan(10);
    expect(msg.usage_metadata?.output_tokens).toBeGreaterThan(0);
    expectAllConform("/chat/completions", "CreateChatCompletionResponse");
  });

  test("streams chat; the aggregated chunks hold the text and the usage", async () => {
    let text = "";
    let chunks = 0;
    let output = 0;
    for await (const chunk of await chat().stream("Hello")) {
      chunks++;
      text += typeof chunk.content === "string" ? chunk.content : "";
      output += chunk.usage_metadata?.output_tokens ?? 0;
    }
    expect(chunks).toBeGreaterThan(2);
    expect(text.length).toBeGreaterThan(0);
    expect(output).toBeGreaterThan(0);
    expect(output).toBeLessThanOrEqual(12);
    expectAllConform("/chat/completions", "CreateChatCompletionStreamResponse");
  });

  test("binds a tool and gets a parsed tool call", async () => {
    const weather = lcWeather();
    const msg = await chat().bindTools([weather], { tool_choice: "required" }).invoke("What is the weather in Paris?");
    expect(msg.tool_calls?.[0]?.name).toBe("get_weather");
    expect(msg.tool_calls?.[0]?.args).toHaveProperty("city");
  });

  test("embeds a query and documents", async () => {
    const embeddings = new OpenAIEmbeddings({
      model: EMBED,
      apiKey: platform.adminKey,
      configuration: { baseURL: platform.openaiURL, fetch: checkingFetch },
      maxRetries: 0,
    });
    const q = await embeddings.embedQuery("The food was delicious and the waiter...");
    expect(q).toHaveLength(1024);
    const docs = await embeddings.embedDocuments(["hello", "world", "hello"]);
    expect(docs).toHaveLength(3);
    expect(docs[0]).toEqual(docs[2]);
    expect(docs[0]).not.toEqual(docs[1]);
    expect(checked.some((c) => c.path.endsWith("/embeddings"))).toBe(true);
    expect(checked.filter((c) => c.errors.length > 0)).toEqual([]);
  });
});

describe("Vercel AI SDK (@ai-sdk/openai-compatible)", () => {
  const provider = () =>
    createOpenAICompatible({ name: "infera", baseURL: platform.openaiURL, apiKey: platform.adminKey, fetch: checkingFetch, includeUsage: true });

  test("generateText answers with text, a finish reason and usage", async () => {
    const r = await generateText({ model: provider().chatModel(CHAT), prompt: "Hello", maxOutputTokens: 10, maxRetries: 0 });
    expect(r.text.length).toBeGreaterThan(0);
    expect(r.finishReason).toBe("length");
    expect(r.usage.inputTokens).toBeGreaterThan(0);
    expect(r.usage.outputTokens).toBe(10);
    expectAllConform("/chat/completions", "CreateChatCompletionResponse");
  });

  test("streamText streams the text and reports usage from the stream", async () => {
    const r = streamText({ model: provider().chatModel(CHAT), system: "Be brief.", prompt: "Hello", maxOutputTokens: 8, maxRetries: 0 });
    const { text, parts } = await readText(r.textStream);
    expect(parts).toBeGreaterThan(1);
    expect(text.length).toBeGreaterThan(0);
    const usage = await r.usage;
    expect(usage.outputTokens).toBe(8);
    expect(usage.inputTokens).toBeGreaterThan(0);
    expectAllConform("/chat/completions", "CreateChatCompletionStreamResponse");
  });

  test("calls a tool from a streamed answer", async () => {
    let called = "";
    const r = streamText({
      model: provider().chatModel(CHAT),
      prompt: "Please call the weather tool for Rome",
      tools: { get_weather: aiWeather("sunny", (city) => (called = city)) },
      toolChoice: "required",
      stopWhen: stepCountIs(1),
      maxRetries: 0,
    });
    const calls = await r.toolCalls;
    expect(calls[0]?.toolName).toBe("get_weather");
    expect(typeof called).toBe("string");
    expect(called.length).toBeGreaterThan(0);
  });

  test("embed and embedMany", async () => {
    const one = await embed({ model: provider().textEmbeddingModel(EMBED), value: "sunny day at the beach", maxRetries: 0 });
    expect(one.embedding).toHaveLength(1024);
    expect(one.usage.tokens).toBeGreaterThan(0);
    const many = await embedMany({ model: provider().textEmbeddingModel(EMBED), values: ["a", "b", "sunny day at the beach"], maxRetries: 0 });
    expect(many.embeddings).toHaveLength(3);
    expect(many.embeddings[2]).toEqual(one.embedding);
    expectAllConform("/embeddings", "CreateEmbeddingResponse");
  });

  test("surfaces the platform's OpenAI error JSON as an API error", async () => {
    const err = await generateText({ model: provider().chatModel(CHAT), prompt: "Hello", temperature: 7, maxRetries: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as { statusCode?: number }).statusCode).toBe(400);
    expect((err as Error).message).toContain("temperature");
    expect(checked.filter((c) => c.schema === "ErrorResponse").length).toBeGreaterThan(0);
    expect(checked.filter((c) => c.errors.length > 0)).toEqual([]);
  });
});
