/**
 * The Responses API as the popular SDKs use it by default, changing nothing but the base URL
 * and key: the Vercel AI SDK's `@ai-sdk/openai` provider (generateText, streamText, a tool
 * round trip over steps, structured output), the OpenAI Agents SDK (an agent with a function
 * tool run to completion, and streamed) and LangChain's `ChatOpenAI({ useResponsesApi: true })`
 * (invoke, stream). Each client's fetch records what it sent and the status it got, so a test
 * can say which request the platform refused, and that the tool's result went back to it.
 */
import { createOpenAI } from "@ai-sdk/openai";
import { Agent, OpenAIProvider, run, setDefaultModelProvider, setTracingDisabled, tool as agentTool } from "@openai/agents";
import { HumanMessage } from "@langchain/core/messages";
import { ChatOpenAI } from "@langchain/openai";
import { generateObject, generateText, stepCountIs, streamText } from "ai";
import OpenAI from "openai";
import { describe, expect } from "vitest";
import { z } from "zod";
import type { Platform } from "@infera/testkit";
import { platformTest } from "@infera/testkit/fixtures";
import { aiWeather, lcWeather, readText } from "./client-tools.ts";

const MODEL = "meta-llama/Meta-Llama-3-8B-Instruct";

let platform: Platform;

interface Exchange {
  path: string;
  method: string;
  body: Record<string, unknown> | undefined;
  status: number;
  answer: string;
}
const sent: Exchange[] = [];

/** A fetch that hands the client the response untouched and records the request and the answer. */
const recordingFetch: typeof fetch = async (input, init) => {
  const res = await fetch(input, init);
  const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
  const body = typeof init?.body === "string" ? (JSON.parse(init.body) as Record<string, unknown>) : undefined;
  const answer = res.status === 200 ? "" : await res.clone().text();
  sent.push({ path: url.pathname, method: init?.method ?? "GET", body, status: res.status, answer });
  return res;
};

/** The Responses requests sent since `from`, every one answered 200. */
function responsesSince(from: number): Exchange[] {
  const mine = sent.slice(from).filter((e) => e.path.endsWith("/responses"));
  expect(mine.length).toBeGreaterThan(0);
  expect(
    mine.filter((e) => e.status !== 200),
    "refused",
  ).toEqual([]);
  return mine;
}

/** The function_call_output items a request carried. */
const toolOutputs = (e: Exchange) => ((e.body?.input as Record<string, unknown>[] | undefined) ?? []).filter((i) => i.type === "function_call_output");

const test = platformTest({ label: "clients-responses", catalog: ["chat"], readyTimeoutMs: 240_000 });

test.beforeAll(async ({ platform: started }) => {
  platform = started;
}, 300_000);

describe("Vercel AI SDK (@ai-sdk/openai, the Responses API)", () => {
  const provider = () => createOpenAI({ baseURL: platform.openaiURL, apiKey: platform.adminKey, fetch: recordingFetch });

  test("generateText: the text, the finish reason and the usage", async () => {
    const from = sent.length;
    const r = await generateText({ model: provider().responses(MODEL), system: "Be brief.", prompt: "Hello", maxOutputTokens: 10, maxRetries: 0 });
    expect(r.text.length).toBeGreaterThan(0);
    expect(r.finishReason).toBe("length");
    expect(r.usage.inputTokens).toBeGreaterThan(5);
    expect(r.usage.outputTokens).toBe(10);
    expect(r.usage.totalTokens).toBe(r.usage.inputTokens! + 10);
    expect(r.response.id).toMatch(/^resp_/);
    responsesSince(from);
  });

  test("streamText: the deltas add up to the text; usage from the stream", async () => {
    const from = sent.length;
    const r = streamText({ model: provider()(MODEL), prompt: "Tell me about the sea.", maxOutputTokens: 12, maxRetries: 0 });
    const { text, parts } = await readText(r.textStream);
    expect(parts).toBeGreaterThan(1);
    expect(text.length).toBeGreaterThan(0);
    expect(await r.text).toBe(text);
    const usage = await r.usage;
    expect(usage.outputTokens).toBe(12);
    expect(usage.inputTokens).toBeGreaterThan(0);
    expect(await r.finishReason).toBe("length");
    const [req] = responsesSince(from);
    expect(req!.body?.stream).toBe(true);
  });

  test("a tool round trip over steps: the tool runs, its result goes back, the last step answers in text", async () => {
    const from = sent.length;
    let called = "";
    const r = await generateText({
      model: provider().responses(MODEL),
      prompt: "Please use the get_weather tool for Rome.",
      tools: { get_weather: aiWeather("sunny", (city) => (called = city)) },
      stopWhen: stepCountIs(3),
      maxOutputTokens: 30,
      maxRetries: 0,
    });
    expect(r.steps.length).toBe(2);
    expect(r.steps[0]!.toolCalls[0]?.toolName).toBe("get_weather");
    expect(called.length).toBeGreaterThan(0);
    expect(r.steps[0]!.toolResults[0]?.output).toBe(`sunny in ${called}`);
    expect(r.text.length).toBeGreaterThan(0);
    expect(r.finishReason).not.toBe("tool-calls");
    expect(r.totalUsage.inputTokens).toBeGreaterThan(r.steps[1]!.usage.inputTokens! - 1);
    const reqs = responsesSince(from);
    expect(reqs).toHaveLength(2);
    const outputs = toolOutputs(reqs[1]!);
    expect(outputs).toHaveLength(1);
    expect(JSON.stringify(outputs[0]!.output)).toContain(`sunny in ${called}`);
  });

  test("streamText with a tool over steps: the streamed answer follows the tool's result", async () => {
    const from = sent.length;
    const r = streamText({
      model: provider()(MODEL),
      prompt: "Please call the get_weather tool for Oslo",
      tools: { get_weather: aiWeather("rainy") },
      stopWhen: stepCountIs(3),
      maxOutputTokens: 20,
      maxRetries: 0,
    });
    const { text } = await readText(r.textStream);
    const steps = await r.steps;
    expect(steps).toHaveLength(2);
    expect(steps[0]!.toolResults[0]?.output).toMatch(/^rainy in /);
    expect(text.length).toBeGreaterThan(0);
    expect(toolOutputs(responsesSince(from)[1]!)).toHaveLength(1);
  });

  test("a second turn over the first one's messages: its assistant text goes back as an item_reference to the stored item", async () => {
    const from = sent.length;
    const first = await generateText({ model: provider()(MODEL), prompt: "Tell me a story.", maxOutputTokens: 8, maxRetries: 0 });
    const second = await generateText({
      model: provider()(MODEL),
      messages: [{ role: "user", content: "Tell me a story." }, ...first.response.messages, { role: "user", content: "And then?" }],
      maxOutputTokens: 8,
      maxRetries: 0,
    });
    expect(second.text.length).toBeGreaterThan(0);
    const reqs = responsesSince(from);
    const refs = ((reqs[1]!.body?.input as Record<string, unknown>[]) ?? []).filter((i) => i.type === "item_reference");
    expect(refs).toHaveLength(1);
    // The referenced answer was in the prompt: more input tokens than the first turn's prompt and answer.
    expect(second.usage.inputTokens).toBeGreaterThan(first.usage.inputTokens! + 4);
  });

  test("provider options OpenAI documents pass: store, user, parallel tool calls, service tier, cache key, truncation, max tool calls, logprobs", async () => {
    const from = sent.length;
    const r = await generateText({
      model: provider().responses(MODEL),
      prompt: "Hello",
      maxOutputTokens: 6,
      maxRetries: 0,
      providerOptions: {
        openai: {
          store: false,
          user: "u-1",
          safetyIdentifier: "s-1",
          parallelToolCalls: false,
          serviceTier: "auto",
          promptCacheKey: "k-1",
          truncation: "auto",
          maxToolCalls: 3,
          metadata: { app: "demo" },
          logprobs: 2,
          textVerbosity: "low",
        },
      },
    });
    expect(r.text.length).toBeGreaterThan(0);
    const [req] = responsesSince(from);
    expect(req!.body).toMatchObject({ store: false, max_tool_calls: 3, top_logprobs: 2 });
    const logprobs = (r.providerMetadata?.openai as { logprobs?: { token: string; top_logprobs: unknown[] }[][] } | undefined)?.logprobs;
    expect(logprobs?.[0]?.length).toBeGreaterThan(0);
    expect(logprobs![0]!.map((l) => l.token).join("")).toBe(r.text);
    expect(logprobs![0]![0]!.top_logprobs).toHaveLength(2);
  });

  test("streamed logprobs: one per token, the tokens adding up to the streamed text", async () => {
    const r = streamText({ model: provider()(MODEL), prompt: "Hello", maxOutputTokens: 6, maxRetries: 0, providerOptions: { openai: { logprobs: 1 } } });
    const { text } = await readText(r.textStream);
    const logprobs = ((await r.providerMetadata)?.openai as { logprobs?: { token: string }[][] } | undefined)?.logprobs;
    expect(
      logprobs
        ?.flat()
        .map((l) => l.token)
        .join(""),
    ).toBe(text);
    expect(logprobs?.flat()).toHaveLength(6);
  });

  test("generateObject: an object matching the zod schema, sent as text.format json_schema", async () => {
    const from = sent.length;
    const schema = z.object({ city: z.string(), days: z.number().int() });
    const r = await generateObject({ model: provider().responses(MODEL), schema, prompt: "Plan a trip.", maxRetries: 0 });
    expect(schema.safeParse(r.object).success).toBe(true);
    expect(r.usage.outputTokens).toBeGreaterThan(0);
    const [req] = responsesSince(from);
    expect(req!.body).toMatchObject({ text: { format: { type: "json_schema" } } });
  });
});

describe("OpenAI Agents SDK (@openai/agents)", () => {
  const setup = () => {
    setTracingDisabled(true);
    const client = new OpenAI({ apiKey: platform.adminKey, baseURL: platform.openaiURL, fetch: recordingFetch, maxRetries: 0 });
    // The same `openai` package; its types are resolved once for CommonJS (the Agents SDK's) and once for ESM.
    setDefaultModelProvider(
      new OpenAIProvider({ openAIClient: client as unknown as NonNullable<ConstructorParameters<typeof OpenAIProvider>[0]>["openAIClient"] }),
    );
  };
  const agent = (calls: string[]) =>
    new Agent({
      name: "Weather agent",
      instructions: "You answer questions about the weather.",
      model: MODEL,
      modelSettings: { maxTokens: 30 },
      tools: [
        agentTool({
          name: "get_weather",
          description: "Weather in a city",
          parameters: z.object({ city: z.string() }),
          execute: async ({ city }) => {
            calls.push(city);
            return `sunny in ${city}`;
          },
        }),
      ],
    });

  test("run: the agent calls its tool, sends the result back and ends with a text answer", async () => {
    setup();
    const from = sent.length;
    const calls: string[] = [];
    const result = await run(agent(calls), "Please use the get_weather tool for Paris.");
    expect(calls).toHaveLength(1);
    expect(typeof result.finalOutput).toBe("string");
    expect((result.finalOutput as string).length).toBeGreaterThan(0);
    const reqs = responsesSince(from);
    expect(reqs).toHaveLength(2);
    expect(JSON.stringify(toolOutputs(reqs[1]!))).toContain(`sunny in ${calls[0]}`);
    const usage = result.state.usage;
    expect(usage.requests).toBe(2);
    expect(usage.inputTokens).toBeGreaterThan(10);
    expect(usage.outputTokens).toBeGreaterThan(0);
    expect(usage.totalTokens).toBe(usage.inputTokens + usage.outputTokens);
  });

  test("a second turn: with the first run's history, and with previousResponseId", async () => {
    setup();
    const from = sent.length;
    const calls: string[] = [];
    const first = await run(agent(calls), "Please use the get_weather tool for Paris.");
    const again = await run(agent(calls), [...first.history, { role: "user", content: "And tomorrow?" }]);
    expect(typeof again.finalOutput).toBe("string");
    const chained = await run(agent(calls), "And the day after?", { previousResponseId: first.lastResponseId });
    expect(typeof chained.finalOutput).toBe("string");
    const reqs = responsesSince(from);
    expect(reqs.at(-1)!.body?.previous_response_id).toBe(first.lastResponseId);
    // The chained turn saw the first run's conversation: more input tokens than the history replayed without the tool definitions' turn.
    expect(chained.state.usage.inputTokens).toBeGreaterThan(first.state.usage.inputTokens / 2);
  });

  test("an output type: the final output is an object matching the zod schema; the model settings it sends are taken", async () => {
    setup();
    const from = sent.length;
    const trip = z.object({ city: z.string(), days: z.number().int() });
    const planner = new Agent({
      name: "Planner",
      instructions: "Plan a trip.",
      model: MODEL,
      outputType: trip,
      modelSettings: { parallelToolCalls: false, truncation: "auto", store: false, reasoning: { effort: "low" }, text: { verbosity: "low" }, temperature: 0.5 },
    });
    const result = await run(planner, "Somewhere warm.");
    expect(trip.safeParse(result.finalOutput).success).toBe(true);
    const [req] = responsesSince(from);
    expect(req!.body).toMatchObject({
      store: false,
      truncation: "auto",
      text: { format: { type: "json_schema" }, verbosity: "low" },
      reasoning: { effort: "low" },
    });
  });

  test("a streamed run: the text deltas add up to the final output", async () => {
    setup();
    const from = sent.length;
    const calls: string[] = [];
    const stream = await run(agent(calls), "Please use the get_weather tool for Lima.", { stream: true });
    let text = "";
    for await (const t of stream.toTextStream()) text += t;
    await stream.completed;
    expect(calls).toHaveLength(1);
    expect(text.length).toBeGreaterThan(0);
    expect(stream.finalOutput).toBe(text);
    const reqs = responsesSince(from);
    expect(reqs.every((e) => e.body?.stream === true)).toBe(true);
    expect(toolOutputs(reqs[1]!)).toHaveLength(1);
  });
});

describe("LangChain (ChatOpenAI with useResponsesApi)", () => {
  const chat = (maxTokens = 12) =>
    new ChatOpenAI({
      model: MODEL,
      apiKey: platform.adminKey,
      configuration: { baseURL: platform.openaiURL, fetch: recordingFetch },
      useResponsesApi: true,
      maxRetries: 0,
      maxTokens,
    });

  test("invoke: the text and its token usage", async () => {
    const from = sent.length;
    const msg = await chat().invoke([
      ["system", "Be brief."],
      ["human", "Name two ways to cook lamb."],
    ]);
    expect(msg.text.length).toBeGreaterThan(0);
    expect(msg.usage_metadata?.input_tokens).toBeGreaterThan(5);
    expect(msg.usage_metadata?.output_tokens).toBe(12);
    expect(msg.response_metadata.id).toMatch(/^resp_/);
    responsesSince(from);
  });

  test("a tool round trip: the call, its ToolMessage back, a text answer", async () => {
    const from = sent.length;
    const weather = lcWeather();
    const model = chat().bindTools([weather]);
    const question = new HumanMessage("Please use the get_weather tool for Paris.");
    const ai = await model.invoke([question]);
    expect(ai.tool_calls?.[0]?.name).toBe("get_weather");
    const result = await weather.invoke(ai.tool_calls![0]!);
    const answer = await model.invoke([question, ai, result]);
    expect(answer.text.length).toBeGreaterThan(0);
    expect(answer.tool_calls ?? []).toEqual([]);
    const reqs = responsesSince(from);
    expect(JSON.stringify(toolOutputs(reqs[1]!))).toContain("sunny in ");
  });

  test("a second turn over the first one's messages: the earlier answer goes back and is in the prompt", async () => {
    const from = sent.length;
    const question = new HumanMessage("Tell me a story.");
    const first = await chat().invoke([question]);
    const second = await chat().invoke([question, first, new HumanMessage("And then?")]);
    expect(second.text.length).toBeGreaterThan(0);
    expect(second.usage_metadata!.input_tokens).toBeGreaterThan(first.usage_metadata!.input_tokens + first.usage_metadata!.output_tokens);
    const input = (responsesSince(from)[1]!.body?.input as Record<string, unknown>[]) ?? [];
    expect(input).toHaveLength(3);
  });

  test("withStructuredOutput (json schema): an object matching the zod schema", async () => {
    const from = sent.length;
    const trip = z.object({ city: z.string(), days: z.number().int() });
    // Room for the whole object (12 tokens cut it: LangChain then has nothing to parse, as with OpenAI).
    const value = await chat(200).withStructuredOutput(trip, { method: "jsonSchema", name: "trip" }).invoke("Plan a trip.");
    expect(trip.safeParse(value).success).toBe(true);
    const [req] = responsesSince(from);
    expect(req!.body).toMatchObject({ text: { format: { type: "json_schema", name: "trip" } } });
  });

  test("stream: the chunks add up to the text, with usage", async () => {
    const from = sent.length;
    let text = "";
    let chunks = 0;
    let output = 0;
    for await (const chunk of await chat().stream("Hello")) {
      chunks++;
      text += chunk.text;
      output += chunk.usage_metadata?.output_tokens ?? 0;
    }
    expect(chunks).toBeGreaterThan(2);
    expect(text.length).toBeGreaterThan(0);
    expect(output).toBe(12);
    responsesSince(from);
  });
});
