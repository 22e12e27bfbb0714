/**
 * The Responses API end to end with the official `openai` client against the running platform
 * (engine-sim behind it, served on the chat path): `responses.create` whole and streamed (the
 * typed event sequence, in order, its deltas adding up to the final text), a function tool round
 * trip, `previous_response_id`, retrieve / input items / delete, another tenant's 404, an
 * unsupported tool type's 400, retention, and one usage row per request, as for chat.
 */
import { readdirSync, readFileSync } from "node:fs";
import OpenAI, { type APIError } from "openai";
import { afterAll, describe, expect } from "vitest";
import { createDb } from "@infera/registry";
import { newTenantKey, waitFor, type Platform } from "@infera/testkit";
import { platformTest } from "@infera/testkit/fixtures";

const MODEL = "meta-llama/Meta-Llama-3-8B-Instruct";
const WEATHER = {
  type: "function" as const,
  name: "get_weather",
  description: "Weather in a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false },
  strict: true,
};

let platform: Platform;
let client: OpenAI;
let db: ReturnType<typeof createDb>;

// 15 ms a token: a client that leaves after the first delta leaves well before the answer ends.
const test = platformTest({ label: "responses-api", env: { SIM_TTFT_MS: "10", SIM_ITL_MS: "15" } });

test.beforeAll(async ({ platform: started }) => {
  platform = started;
  client = new OpenAI({ apiKey: platform.adminKey, baseURL: platform.openaiURL, maxRetries: 0 });
  db = createDb(platform.databaseUrl, { max: 2 });
}, 120_000);

afterAll(async () => {
  await db?.destroy();
});

async function usageRows(requestId: string) {
  return db.selectFrom("usage_records").selectAll().where("request_id", "=", requestId).execute();
}

/** The chat model's engine-sim (its agent's log names it). */
async function chatEngineUrl(): Promise<string> {
  const dir = `/tmp/infera-test-logs/${platform.redisPrefix}`;
  for (const f of readdirSync(dir).filter((x) => x.endsWith("-agent.log"))) {
    const line = readFileSync(`${dir}/${f}`, "utf8")
      .split("\n")
      .filter((l) => l.includes('"agent listening"'))
      .at(-1);
    const url = line && (JSON.parse(line) as { engineUrl: string }).engineUrl;
    const stats = url
      ? await fetch(`${url}/sim/stats`).then(
          (r) => (r.ok ? (r.json() as Promise<{ model: string }>) : undefined),
          () => undefined,
        )
      : undefined;
    if (url && stats?.model === MODEL) return url;
  }
  throw new Error(`no engine for ${MODEL}`);
}

async function setFaults(rate: number, kinds: string[]): Promise<void> {
  const r = await fetch(`${await chatEngineUrl()}/sim/faults`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ rate, kinds }),
  });
  expect(r.status).toBe(200);
}

const otherTenantKey = () => newTenantKey(platform);

describe("the Responses API, with the official client", () => {
  test("responses.create: a Response object in OpenAI's shape, stored, with usage counted once", async () => {
    const { data: r, request_id } = await client.responses
      .create({ model: MODEL, input: "Tell me about the sea.", instructions: "Be brief.", max_output_tokens: 400, metadata: { case: "whole" } })
      .withResponse();
    expect(r).toMatchObject({
      object: "response",
      status: "completed",
      model: MODEL,
      instructions: "Be brief.",
      max_output_tokens: 400,
      metadata: { case: "whole" },
      store: true,
      error: null,
      incomplete_details: null,
      previous_response_id: null,
    });
    expect(r.id).toMatch(/^resp_/);
    expect(Math.abs(r.created_at - Date.now() / 1000)).toBeLessThan(60);
    expect(r.output).toHaveLength(1);
    const msg = r.output[0]!;
    expect(msg.type).toBe("message");
    if (msg.type !== "message") throw new Error("not a message");
    expect(msg).toMatchObject({ role: "assistant", status: "completed" });
    expect(msg.id).toMatch(/^msg_/);
    expect(msg.content[0]).toMatchObject({ type: "output_text", annotations: [] });
    const text = msg.content[0]!.type === "output_text" ? msg.content[0]!.text : "";
    expect(text.length).toBeGreaterThan(0);
    // `output_text` is the SDK's convenience, not a server field.
    expect(r.output_text).toBe(text);
    const raw = (await (
      await fetch(`${platform.openaiURL}/responses/${r.id}`, { headers: { authorization: `Bearer ${platform.adminKey}` } })
    ).json()) as Record<string, unknown>;
    expect(raw).not.toHaveProperty("output_text");
    expect(r.usage).toMatchObject({ input_tokens_details: { cached_tokens: 0 }, output_tokens_details: { reasoning_tokens: 0 } });
    expect(r.usage!.input_tokens).toBeGreaterThan(5);
    expect(r.usage!.total_tokens).toBe(r.usage!.input_tokens + r.usage!.output_tokens);
    // One usage row, as for chat, with what the response reports.
    const rows = await waitFor("the usage row", async () => ((await usageRows(request_id!)).length > 0 ? usageRows(request_id!) : undefined));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ endpoint: "chat", status: "ok", prompt_tokens: r.usage!.input_tokens, completion_tokens: r.usage!.output_tokens });
    // Retrieved as answered.
    expect(await client.responses.retrieve(r.id)).toMatchObject({ id: r.id, status: "completed", output: r.output, usage: r.usage });
  });

  test("text.format json_schema: the answer is JSON with the schema's required properties; json_object: a JSON object", async () => {
    const schema = {
      type: "object",
      properties: { city: { type: "string" }, days: { type: "integer" } },
      required: ["city", "days"],
      additionalProperties: false,
    };
    const r = await client.responses.create({
      model: MODEL,
      input: "Plan a trip.",
      text: { format: { type: "json_schema", name: "trip", schema, strict: true } },
    });
    expect(r.text?.format).toMatchObject({ type: "json_schema", name: "trip" });
    const value = JSON.parse(r.output_text) as Record<string, unknown>;
    expect(typeof value.city).toBe("string");
    expect(Number.isInteger(value.days)).toBe(true);
    const o = await client.responses.create({ model: MODEL, input: "Answer in JSON.", text: { format: { type: "json_object" } } });
    expect(typeof JSON.parse(o.output_text)).toBe("object");
  });

  test("max_output_tokens cutting the answer: status incomplete with incomplete_details", async () => {
    const r = await client.responses.create({ model: MODEL, input: "Write a long story about a lighthouse.", max_output_tokens: 3 });
    expect(r.status).toBe("incomplete");
    expect(r.incomplete_details).toEqual({ reason: "max_output_tokens" });
    expect(r.usage!.output_tokens).toBe(3);
  });

  test("stream: true: OpenAI's typed events in order, sequence numbers, deltas adding up to the final text, usage once", async () => {
    const { data: stream, request_id } = await client.responses
      .create({ model: MODEL, input: [{ role: "user", content: [{ type: "input_text", text: "Say something about rivers." }] }], stream: true })
      .withResponse();
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const e of stream) events.push(e);
    const types = events.map((e) => e.type);
    const deltas = types.filter((t) => t === "response.output_text.delta").length;
    expect(deltas).toBeGreaterThan(1);
    expect(types).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      ...Array(deltas).fill("response.output_text.delta"),
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const text = events.flatMap((e) => (e.type === "response.output_text.delta" ? [e.delta] : [])).join("");
    const done = events.find((e) => e.type === "response.output_text.done");
    expect(done && "text" in done ? done.text : undefined).toBe(text);
    const completed = events.at(-1) as OpenAI.Responses.ResponseCompletedEvent;
    expect(completed.response.status).toBe("completed");
    const item = completed.response.output[0]!;
    expect(item.type === "message" && item.content[0]!.type === "output_text" ? item.content[0]!.text : undefined).toBe(text);
    expect(completed.response.usage!.output_tokens).toBeGreaterThan(1);
    const created = events[0] as OpenAI.Responses.ResponseCreatedEvent;
    expect(created.response).toMatchObject({ id: completed.response.id, status: "in_progress", output: [] });
    // The stream's response is stored before response.completed leaves.
    expect((await client.responses.retrieve(completed.response.id)).output).toEqual(completed.response.output);
    const rows = await waitFor("the usage row", async () => ((await usageRows(request_id!)).length > 0 ? usageRows(request_id!) : undefined));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ endpoint: "chat", status: "ok", completion_tokens: completed.response.usage!.output_tokens });
  });

  test("a function tool round trip, streamed and not, then previous_response_id continuing the conversation", async () => {
    const first = await client.responses.create({ model: MODEL, input: "Please use the get_weather tool for Paris.", tools: [WEATHER] });
    expect(first.status).toBe("completed");
    const call = first.output.find((o) => o.type === "function_call");
    if (call?.type !== "function_call") throw new Error(`no function call in ${JSON.stringify(first.output)}`);
    expect(call.name).toBe("get_weather");
    expect(call.call_id.length).toBeGreaterThan(0);
    expect(call.id).toMatch(/^fc_/);
    expect(JSON.parse(call.arguments)).toHaveProperty("city");

    // Streamed: the call's item and its argument deltas, adding up to the arguments.
    const stream = await client.responses.create({
      model: MODEL,
      input: "Please use the get_weather tool for Rome.",
      tools: [WEATHER],
      tool_choice: { type: "function", name: "get_weather" },
      stream: true,
    });
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const e of stream) events.push(e);
    const types = events.map((e) => e.type).filter((t) => t !== "response.function_call_arguments.delta");
    expect(types).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.function_call_arguments.done",
      "response.output_item.done",
      "response.completed",
    ]);
    const args = events.flatMap((e) => (e.type === "response.function_call_arguments.delta" ? [e.delta] : [])).join("");
    const argsDone = events.find((e) => e.type === "response.function_call_arguments.done");
    expect(argsDone && "arguments" in argsDone ? argsDone.arguments : undefined).toBe(args);
    expect(JSON.parse(args)).toHaveProperty("city");

    // The tool's output back, continuing the first response: the model answers in text.
    const second = await client.responses.create({
      model: MODEL,
      previous_response_id: first.id,
      input: [{ type: "function_call_output", call_id: call.call_id, output: JSON.stringify({ temperature_c: 21 }) }],
      tools: [WEATHER],
    });
    expect(second.status).toBe("completed");
    expect(second.previous_response_id).toBe(first.id);
    expect(second.output.map((o) => o.type)).toEqual(["message"]);
    expect(second.output_text.length).toBeGreaterThan(0);
    // The previous conversation was in the prompt: more input tokens than the tool output alone.
    expect(second.usage!.input_tokens).toBeGreaterThan(first.usage!.input_tokens);

    const third = await client.responses.create({ model: MODEL, previous_response_id: second.id, input: "And tomorrow?" });
    expect(third.usage!.input_tokens).toBeGreaterThan(second.usage!.input_tokens);

    // Its input items are this request's own, newest first by default, paged with the SDK.
    const items = await client.responses.inputItems.list(second.id);
    expect(items.data).toHaveLength(1);
    expect(items.data[0]).toMatchObject({ type: "function_call_output", call_id: call.call_id });
    const asc = await client.responses.inputItems.list(third.id, { order: "asc", limit: 1 });
    expect(asc.data).toMatchObject([{ type: "message", role: "user", content: [{ type: "input_text", text: "And tomorrow?" }] }]);
    expect(asc.has_more).toBe(false);

    // An unknown previous response: 404 naming it.
    const err = await client.responses.create({ model: MODEL, input: "x", previous_response_id: "resp_nope" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as APIError).param).toBe("previous_response_id");
  });

  test("input items paged, delete, and store: false", async () => {
    const input = [
      { role: "user" as const, content: "one" },
      { role: "assistant" as const, content: "two" },
      { role: "user" as const, content: "three" },
    ];
    const r = await client.responses.create({ model: MODEL, input, max_output_tokens: 4 });
    const all: string[] = [];
    for await (const item of client.responses.inputItems.list(r.id, { limit: 2, order: "asc" })) {
      if (item.type === "message") all.push(item.content.map((c) => ("text" in c ? c.text : "")).join(""));
    }
    expect(all).toEqual(["one", "two", "three"]);
    // The list object on the wire: newest first by default, its cursors the page's ends.
    const page = (await (
      await fetch(`${platform.openaiURL}/responses/${r.id}/input_items?limit=2`, { headers: { authorization: `Bearer ${platform.adminKey}` } })
    ).json()) as { object: string; data: { id: string; content: { text: string }[] }[]; first_id: string; last_id: string; has_more: boolean };
    expect(page).toMatchObject({ object: "list", has_more: true, first_id: page.data[0]!.id, last_id: page.data[1]!.id });
    expect(page.data.map((d) => d.content[0]!.text)).toEqual(["three", "two"]);

    // The SDK's delete resolves with what the server answers: OpenAI's deletion object.
    expect(await client.responses.delete(r.id)).toEqual({ id: r.id, object: "response", deleted: true });
    const raw = await fetch(`${platform.openaiURL}/responses/${r.id}`, { method: "DELETE", headers: { authorization: `Bearer ${platform.adminKey}` } });
    expect(raw.status).toBe(404);
    expect(await client.responses.retrieve(r.id).catch((e: unknown) => e)).toBeInstanceOf(OpenAI.NotFoundError);

    const unstored = await client.responses.create({ model: MODEL, input: "hi", store: false, max_output_tokens: 4 });
    expect((unstored as unknown as { store: boolean }).store).toBe(false);
    expect(await client.responses.retrieve(unstored.id).catch((e: unknown) => e)).toBeInstanceOf(OpenAI.NotFoundError);
  });

  test("the deletion object in OpenAI's shape", async () => {
    const r = await client.responses.create({ model: MODEL, input: "hi", max_output_tokens: 4 });
    const res = await fetch(`${platform.openaiURL}/responses/${r.id}`, { method: "DELETE", headers: { authorization: `Bearer ${platform.adminKey}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id: r.id, object: "response", deleted: true });
  });

  test("another tenant's key: every stored-response route is a 404, as for an unknown id; previous_response_id too", async () => {
    const r = await client.responses.create({ model: MODEL, input: "mine", max_output_tokens: 4 });
    const other = new OpenAI({ apiKey: await otherTenantKey(), baseURL: platform.openaiURL, maxRetries: 0 });
    for (const attempt of [
      () => other.responses.retrieve(r.id),
      () => other.responses.inputItems.list(r.id),
      () => other.responses.delete(r.id),
      () => other.responses.create({ model: MODEL, input: "x", previous_response_id: r.id }),
    ]) {
      const e = await attempt().catch((x: unknown) => x);
      expect(e).toBeInstanceOf(OpenAI.NotFoundError);
      expect((e as APIError).code).toBe("not_found");
    }
    // Still there for its owner.
    expect((await client.responses.retrieve(r.id)).id).toBe(r.id);
    // The other tenant's own response is its own.
    const theirs = await other.responses.create({ model: MODEL, input: "theirs", max_output_tokens: 4 });
    expect((await other.responses.retrieve(theirs.id)).id).toBe(theirs.id);
  });

  test("item_reference: the tenant's stored item stands in for it (input or output); another tenant's or an unknown id is a 404; reasoning items are accepted", async () => {
    const first = await client.responses.create({ model: MODEL, input: "Tell me a story.", max_output_tokens: 20 });
    const answer = first.output[0]!;
    const [question] = (await client.responses.inputItems.list(first.id)).data;
    const next = await client.responses.create({
      model: MODEL,
      input: [
        { type: "item_reference", id: question!.id },
        { type: "reasoning", id: "rs_given", summary: [{ type: "summary_text", text: "The user wants more." }] },
        { type: "item_reference", id: answer.id! },
        { role: "user", content: "And then?" },
      ],
      max_output_tokens: 4,
    });
    // The referenced question and answer were in the prompt: more than the two new words alone.
    expect(next.usage!.input_tokens).toBeGreaterThan(first.usage!.input_tokens + 10);
    const items = (await client.responses.inputItems.list(next.id, { order: "asc" })).data;
    expect(items.map((i) => i.type)).toEqual(["message", "reasoning", "message", "message"]);
    expect(items[0]).toMatchObject({ id: question!.id, role: "user", content: [{ type: "input_text", text: "Tell me a story." }] });
    expect(items[2]).toMatchObject({ id: answer.id, role: "assistant", content: [{ type: "output_text", text: first.output_text }] });
    const other = new OpenAI({ apiKey: await otherTenantKey(), baseURL: platform.openaiURL, maxRetries: 0 });
    for (const [c, id] of [
      [other, answer.id!],
      [client, "msg_unknown"],
    ] as const) {
      const e = await c.responses
        .create({
          model: MODEL,
          input: [
            { role: "user", content: "hi" },
            { type: "item_reference", id },
          ],
        })
        .catch((x: unknown) => x);
      expect(e).toBeInstanceOf(OpenAI.NotFoundError);
      expect((e as APIError).param).toBe("input[1].id");
    }
  });

  test("bad input: an unsupported tool type is a 400 naming it; a bad item names its field; nothing runs", async () => {
    // Earlier tests' usage rows are written in batches: let them land first.
    await new Promise((r) => setTimeout(r, 1000));
    const before = await db.selectFrom("usage_records").select(db.fn.countAll().as("n")).executeTakeFirstOrThrow();
    const e = await client.responses
      .create({ model: MODEL, input: "search the web", tools: [WEATHER, { type: "web_search" } as unknown as typeof WEATHER] })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect((e as APIError).param).toBe("tools[1].type");
    expect((e as APIError).message).toContain("web_search");
    const bad = await client.responses
      .create({ model: MODEL, input: [{ role: "user", content: [{ type: "input_audio" } as never] }] })
      .catch((x: unknown) => x);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as APIError).param).toBe("input[0].content[0].type");
    const zero = await fetch(`${platform.openaiURL}/responses`, {
      method: "POST",
      headers: { authorization: `Bearer ${platform.adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, input: "x", max_output_tokens: 0 }),
    });
    expect(zero.status).toBe(400);
    expect(((await zero.json()) as { error: { param: string } }).error.param).toBe("max_output_tokens");
    await new Promise((r) => setTimeout(r, 500));
    const after = await db.selectFrom("usage_records").select(db.fn.countAll().as("n")).executeTakeFirstOrThrow();
    expect(after.n).toBe(before.n);
  });

  test("faults as for chat: an engine error before the answer is OpenAI's error; mid-stream it is response.failed, then an error event", async () => {
    await setFaults(1, ["server_error"]);
    try {
      const e = await client.responses.create({ model: MODEL, input: "hi", max_output_tokens: 4 }).catch((x: unknown) => x);
      expect((e as APIError).status).toBeGreaterThanOrEqual(500);
      await setFaults(1, ["stream_error"]);
      const stream = await client.responses.create({ model: MODEL, input: "Tell me a long story.", max_output_tokens: 60, stream: true });
      const events: OpenAI.Responses.ResponseStreamEvent[] = [];
      for await (const ev of stream) events.push(ev);
      // The failed response, then the error event (the SDK hands both on), and the stream ends.
      const [failed, error] = events.slice(-2);
      expect(failed?.type).toBe("response.failed");
      expect(error).toMatchObject({ type: "error", message: expect.any(String) });
      const response = (failed as OpenAI.Responses.ResponseFailedEvent).response;
      expect(response.status).toBe("failed");
      expect(response.error?.message.length).toBeGreaterThan(0);
      expect(events.slice(0, 2).map((x) => x.type)).toEqual(["response.created", "response.in_progress"]);
      // Stored as failed.
      expect((await client.responses.retrieve(response.id)).status).toBe("failed");
    } finally {
      await setFaults(0, []);
    }
  });

  test("cancellation as for chat: a client that leaves a stream stops the engine; the usage row is the cancelled request's", async () => {
    const { data: stream, request_id } = await client.responses
      .create({ model: MODEL, input: "Write a very long story about the sea.", max_output_tokens: 3000, stream: true })
      .withResponse();
    let id = "";
    for await (const e of stream) {
      if (e.type === "response.created") id = e.response.id;
      if (e.type === "response.output_text.delta") break;
    }
    const [row] = await waitFor("the usage row", async () => ((await usageRows(request_id!)).length > 0 ? usageRows(request_id!) : undefined), {
      timeoutMs: 20_000,
    });
    expect(row!.status, JSON.stringify(row)).toBe("cancelled");
    expect(row!.completion_tokens).toBeGreaterThanOrEqual(1);
    // Nothing was stored: the response never finished.
    expect(id).toMatch(/^resp_/);
    expect(await client.responses.retrieve(id).catch((e: unknown) => e)).toBeInstanceOf(OpenAI.NotFoundError);
  });

  test("retention: a response past RESPONSES_RETENTION_DAYS reads as absent", async () => {
    const r = await client.responses.create({ model: MODEL, input: "old news", max_output_tokens: 4 });
    const row = await db.selectFrom("stored_responses").select(["created_at", "expires_at"]).where("id", "=", r.id).executeTakeFirstOrThrow();
    // The default: 30 days.
    expect(Math.round((row.expires_at.getTime() - row.created_at.getTime()) / 86_400_000)).toBe(30);
    await db
      .updateTable("stored_responses")
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where("id", "=", r.id)
      .execute();
    expect(await client.responses.retrieve(r.id).catch((e: unknown) => e)).toBeInstanceOf(OpenAI.NotFoundError);
  });
});
