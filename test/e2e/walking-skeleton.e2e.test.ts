/**
 * The walking skeleton, end to end: the platform started as `pnpm start` does, driven
 * by the official `openai` package with the hosted provider's examples, and proof that
 * each request crossed every hop (gateway → Redis queue → scheduler → gRPC agent →
 * engine) from the metrics each process exports.
 */
import { readdirSync, readFileSync } from "node:fs";
import OpenAI from "openai";
import { describe, expect } from "vitest";
import { metricSum, parseMetrics, type Platform, waitFor } from "@infera/testkit";
import { platformTest } from "@infera/testkit/fixtures";

const MODEL = "meta-llama/Meta-Llama-3-8B-Instruct";
const CHEF = [
  { role: "system" as const, content: "Respond like a michelin starred chef." },
  { role: "user" as const, content: "Can you name at least two different techniques to cook lamb?" },
  {
    role: "assistant" as const,
    content:
      'Bonjour! Let me tell you, my friend, cooking lamb is an art form, and I\'m more than happy to share with you not two, but three of my favorite techniques to coax out the rich, unctuous flavors and tender textures of this majestic protein. First, we have the classic "Sous Vide" method. Next, we have the ancient art of "Sous le Sable". And finally, we have the more modern technique of "Hot Smoking."',
  },
  { role: "user" as const, content: "Tell me more about the second method." },
];
const RAW_PROMPT = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";

let platform: Platform;
let openai: OpenAI;

const test = platformTest({ label: "skeleton" });

test.beforeAll(async ({ platform: started }) => {
  platform = started;
  openai = new OpenAI({ apiKey: platform.adminKey, baseURL: platform.openaiURL, maxRetries: 0 });
});

async function metricsAt(url: string): Promise<Map<string, number>> {
  return parseMetrics(await (await fetch(url)).text());
}

function logLine(text: string, msg: string): Record<string, unknown> | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    const j = JSON.parse(line) as Record<string, unknown>;
    if (j.msg === msg) return j;
  }
  return undefined;
}

describe("chat completions with the official client", () => {
  test("answers the hosted provider's chat example, non-streaming, with usage", async () => {
    const completion = await openai.chat.completions.create({ messages: [{ role: "user", content: "Hello" }], model: MODEL });
    expect(completion.object).toBe("chat.completion");
    expect(completion.choices[0]?.message.role).toBe("assistant");
    expect(completion.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(["stop", "length"]).toContain(completion.choices[0]?.finish_reason);
    expect(completion.usage?.prompt_tokens).toBeGreaterThan(0);
    expect(completion.usage?.completion_tokens).toBeGreaterThan(0);
    expect(completion.usage?.total_tokens).toBe(completion.usage!.prompt_tokens + completion.usage!.completion_tokens);
  });

  test("streams the chat example; the finish_reason chunk carries usage, and nothing follows [DONE]", async () => {
    const stream = await openai.chat.completions.create({ messages: [{ role: "user", content: "Hello" }], model: MODEL, stream: true });
    let text = "";
    let finish: { reason: string; prompt: number; completion: number } | undefined;
    let chunks = 0;
    let usageOnly = 0;
    for await (const chunk of stream) {
      chunks++;
      if (chunk.choices.length === 0) usageOnly++;
      const c = chunk.choices[0];
      if (c?.finish_reason) {
        const u = chunk.usage as { prompt_tokens: number; completion_tokens: number };
        finish = { reason: c.finish_reason, prompt: u.prompt_tokens, completion: u.completion_tokens };
      } else text += c?.delta.content ?? "";
    }
    expect(chunks).toBeGreaterThan(2);
    expect(text.length).toBeGreaterThan(0);
    expect(finish?.prompt).toBeGreaterThan(0);
    expect(finish?.completion).toBeGreaterThan(0);
    // Without stream_options.include_usage, no usage-only chunk (OpenAI's convention).
    expect(usageOnly).toBe(0);
  });

  test("with stream_options.include_usage, ends with a choices: [] chunk holding the usage, which no other chunk carries", async () => {
    const stream = await openai.chat.completions.create({
      messages: [{ role: "user", content: "Hello" }],
      model: MODEL,
      stream: true,
      max_tokens: 7,
      stream_options: { include_usage: true },
    });
    const all = [];
    for await (const chunk of stream) all.push(chunk);
    const last = all.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage?.completion_tokens).toBe(7);
    const finishChunk = all.find((c) => c.choices[0]?.finish_reason);
    expect(finishChunk?.choices[0]?.finish_reason).toBe("length");
    expect(finishChunk?.usage).toBeUndefined();
    expect(all.filter((c) => c.usage)).toHaveLength(1);
  });

  test("carries a multi-turn conversation with a system message, streaming and not", async () => {
    const single = await openai.chat.completions.create({ messages: [{ role: "user", content: "Tell me more about the second method." }], model: MODEL });
    const completion = await openai.chat.completions.create({ messages: CHEF, model: MODEL });
    expect(completion.choices[0]?.message.content?.length).toBeGreaterThan(0);
    // The whole conversation is the prompt: many more tokens than the last turn alone.
    expect(completion.usage!.prompt_tokens).toBeGreaterThan(single.usage!.prompt_tokens + 50);

    const stream = await openai.chat.completions.create({ messages: CHEF, model: MODEL, stream: true });
    let sawUsage = false;
    for await (const chunk of stream) if (chunk.choices[0]?.finish_reason) sawUsage = (chunk.usage?.prompt_tokens ?? 0) === completion.usage!.prompt_tokens;
    expect(sawUsage).toBe(true);
  });

  test("is deterministic for the same prompt and seed", async () => {
    const a = await openai.chat.completions.create({ messages: [{ role: "user", content: "Say something" }], model: MODEL, seed: 7, max_tokens: 20 });
    const b = await openai.chat.completions.create({ messages: [{ role: "user", content: "Say something" }], model: MODEL, seed: 7, max_tokens: 20 });
    expect(a.choices[0]?.message.content).toBe(b.choices[0]?.message.content);
  });
});

describe("text completions with the official client", () => {
  test("answers the raw-prompt example with stop ['<|eot_id|>'], non-streaming", async () => {
    const completion = await openai.completions.create({ model: MODEL, prompt: RAW_PROMPT, stop: ["<|eot_id|>"] });
    expect(completion.object).toBe("text_completion");
    expect(completion.choices[0]?.text.length).toBeGreaterThan(0);
    expect(completion.choices[0]?.text).not.toContain("<|eot_id|>");
    expect(["stop", "length"]).toContain(completion.choices[0]?.finish_reason);
    expect(completion.usage?.prompt_tokens).toBeGreaterThan(10);
  });

  test("streams the raw-prompt example; the finish chunk carries usage", async () => {
    const stream = await openai.completions.create({ model: MODEL, prompt: RAW_PROMPT, stop: ["<|eot_id|>"], stream: true, max_tokens: 9 });
    let text = "";
    let usage: { prompt_tokens: number; completion_tokens: number } | undefined;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (c?.finish_reason) usage = chunk.usage as typeof usage;
      else text += c?.text ?? "";
    }
    expect(text.length).toBeGreaterThan(0);
    expect(text).not.toContain("<|eot_id|>");
    expect(usage?.completion_tokens).toBeGreaterThan(0);
    expect(usage?.completion_tokens).toBeLessThanOrEqual(9);
  });
});

describe("bad input", () => {
  test("refuses a missing key and a wrong key with 401", async () => {
    const noKey = await fetch(`${platform.openaiURL}/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(noKey.status).toBe(401);
    expect(((await noKey.json()) as { error: { code: string } }).error.code).toBe("invalid_api_key");
    const wrong = new OpenAI({ apiKey: "sk-not-a-real-key", baseURL: platform.openaiURL, maxRetries: 0 });
    await expect(wrong.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi" }] })).rejects.toMatchObject({
      status: 401,
      error: { type: "invalid_request_error", code: "invalid_api_key" },
    });
  });

  test("answers an unknown model with 404", async () => {
    await expect(openai.chat.completions.create({ model: "nobody/no-such-model", messages: [{ role: "user", content: "hi" }] })).rejects.toMatchObject({
      status: 404,
      error: { param: "model", code: "model_not_found" },
    });
  });

  test("answers malformed JSON, missing and mistyped fields and an unknown role with 400 naming the field, and queues nothing", async () => {
    const gatewayBefore = await metricsAt(`${platform.baseURL}/metrics`);
    const post = (body: string) =>
      fetch(`${platform.openaiURL}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${platform.adminKey}` },
        body,
      });
    const cases: [string, string | null][] = [
      ['{"model": "x", "messages": [', null],
      [JSON.stringify({ model: MODEL }), "messages"],
      [JSON.stringify({ messages: [{ role: "user", content: "hi" }] }), "model"],
      [JSON.stringify({ model: MODEL, messages: [{ role: "wizard", content: "hi" }] }), "messages[0].role"],
      [JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], temperature: "hot" }), "temperature"],
      [JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], temperature: 3 }), "temperature"],
      [JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 0 }), "max_tokens"],
      [JSON.stringify({ model: MODEL, messages: "hi" }), "messages"],
      [JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], bogus: 1 }), "bogus"],
    ];
    for (const [body, param] of cases) {
      const r = await post(body);
      expect(r.status, body).toBe(400);
      const j = (await r.json()) as { error: { message: string; type: string; param: string | null; code: string | null } };
      expect(j.error.type).toBe("invalid_request_error");
      expect(j.error.message.length).toBeGreaterThan(0);
      expect(j.error.param, body).toBe(param);
    }
    const rejected = await openai.chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: "hi" }], temperature: 5 })
      .catch((e: unknown) => e);
    expect(rejected).toBeInstanceOf(OpenAI.BadRequestError);
    const gatewayAfter = await metricsAt(`${platform.baseURL}/metrics`);
    expect(metricSum(gatewayAfter, "gateway_placements_total")).toBe(metricSum(gatewayBefore, "gateway_placements_total"));
    // Still serving normally afterwards.
    const ok = await openai.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 3 });
    expect(ok.usage?.completion_tokens).toBe(3);
  });
});

describe("models", () => {
  test("lists the catalog model in OpenAI's list shape and returns it by id", async () => {
    const models = [];
    for await (const m of openai.models.list()) models.push(m);
    expect(models.map((m) => m.id)).toContain(MODEL);
    const one = await openai.models.retrieve(MODEL);
    expect(one).toMatchObject({ id: MODEL, object: "model" });
  });
});

describe("every hop is real", () => {
  test("shows the request in the gateway's, scheduler's, agent's and engine's own metrics", async () => {
    const schedulerPort = logLine(platform.output(), "scheduler started")?.metricsPort;
    expect(schedulerPort).toBeTypeOf("number");
    const schedulerAt = () => metricsAt(`http://127.0.0.1:${schedulerPort}/metrics`);
    // Until the gateway holds a slot lease for the deployment its requests go through the queue
    // (the scheduler dispatches them); then it places them itself on the slots the scheduler lent it.
    await waitFor("a request placed by the gateway on a leased slot", async () => {
      await openai.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "count me" }], max_tokens: 4 });
      return metricSum(await metricsAt(`${platform.baseURL}/metrics`), "gateway_placements_total", { path: "fast" }) > 0;
    });
    const gateway = await metricsAt(`${platform.baseURL}/metrics`);
    expect(metricSum(gateway, "gateway_enqueued_total")).toBeGreaterThan(0);
    expect(metricSum(gateway, "gateway_agent_calls_total", { outcome: "ok" })).toBeGreaterThan(0);
    const scheduler = await schedulerAt();
    // Each call was placed by the scheduler (dispatched) or on a slot it lent (fast); it is lending some now.
    expect(metricSum(scheduler, "scheduler_dispatched_total") + metricSum(gateway, "gateway_placements_total", { path: "fast" })).toBeGreaterThanOrEqual(
      metricSum(gateway, "gateway_agent_calls_total", { outcome: "ok" }),
    );
    expect(metricSum(scheduler, "scheduler_dispatched_total")).toBeGreaterThan(0);
    expect(metricSum(scheduler, "scheduler_granted_slots")).toBeGreaterThan(0);

    const logDir = `/tmp/infera-test-logs/${platform.redisPrefix}`;
    const agentLog = readdirSync(logDir).find((f) => f.endsWith("-agent.log"))!;
    const listening = logLine(readFileSync(`${logDir}/${agentLog}`, "utf8"), "agent listening")!;
    const agent = await metricsAt(`http://127.0.0.1:${listening.metricsPort as number}/metrics`);
    expect(metricSum(agent, "agent_requests_total", { status: "ok" })).toBeGreaterThan(0);

    const engine = await metricsAt(`${listening.engineUrl as string}/metrics`);
    expect(metricSum(engine, "vllm:request_success_total")).toBeGreaterThanOrEqual(metricSum(agent, "agent_requests_total", { status: "ok" }));
    expect(metricSum(engine, "vllm:generation_tokens_total")).toBeGreaterThan(0);
  });
});
