/**
 * Following one request end to end, as an operator would: the platform exports its traces
 * over OTLP/HTTP to a real receiver (the protobuf the SDK's exporter sends, decoded), one
 * trace per request continuing the client's `traceparent`, with the gateway, queue,
 * scheduler (or, on a leased slot, the gateway's own placement), agent and engine spans in
 * order under the right parents and the GenAI
 * attributes; the engine receives that trace context and the client's id as X-Request-Id;
 * `/metrics` has the GenAI semantic-convention series after traffic; the access log has one
 * line per request and nothing secret in it.
 */
import { randomBytes } from "node:crypto";
import OpenAI from "openai";
import { describe, expect } from "vitest";
import { engineUrls, jsonLines, metricSum, parseMetrics, type Platform, waitFor } from "@infera/testkit";
import { platformTest } from "@infera/testkit/fixtures";
import { OtlpReceiver, type ReceivedSpan } from "@infera/telemetry";

const MODEL = "meta-llama/Meta-Llama-3-8B-Instruct";
const PROMPT = "a prompt that must never leave the request";

const receiver = new OtlpReceiver();
await receiver.start();

let platform: Platform;
const test = platformTest({
  label: "telemetry",
  env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: "100", ACCESS_LOG_SAMPLE: "1" },
});

test.beforeAll(async ({ platform: started }) => {
  platform = started;
});
test.afterAll(() => receiver.stop());

function openai(): OpenAI {
  return new OpenAI({ apiKey: platform.adminKey, baseURL: platform.openaiURL, maxRetries: 0 });
}

const accessLines = () => jsonLines(platform.output()).filter((l) => l.component === "access" && l.msg === "request");

describe("one trace per request", () => {
  // The gateway's first request for the model: it holds no slot lease for it yet, so the request
  // goes through the queue and the scheduler (a leased slot's trace is the last test's).
  test("a streamed chat with the client's traceparent, through the queue: gateway, queue, scheduler, agent and engine spans in order, and the engine got the context", async () => {
    const traceId = randomBytes(16).toString("hex");
    const clientSpan = randomBytes(8).toString("hex");
    const traceparent = `00-${traceId}-${clientSpan}-01`;
    const clientId = `slow-request-${randomBytes(4).toString("hex")}`;
    const res = await openai()
      .chat.completions.create(
        { model: MODEL, messages: [{ role: "user", content: PROMPT }], stream: true, max_tokens: 6, stream_options: { include_usage: true } },
        { headers: { traceparent, "x-request-id": clientId } },
      )
      .withResponse();
    const stream = res.data;
    let text = "";
    let finish: string | null = null;
    let usage: { prompt_tokens: number; completion_tokens: number } | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(usage).toBeDefined();

    const named = (spans: ReceivedSpan[]) => new Map(spans.map((s) => [s.name, s]));
    const names = ["chat " + MODEL, "infera.gateway.admission", "infera.queue.wait", "infera.scheduler.place", "infera.engine.call"];
    await waitFor("the request's spans from the gateway, the scheduler and the agent", () => {
      const spans = receiver.trace(traceId);
      return names.every((n) => named(spans).has(n)) && spans.filter((s) => s.name === "infera.agent.v1.AgentService/Generate").length === 2;
    });
    const spans = receiver.trace(traceId);
    const by = named(spans);
    const root = by.get(`chat ${MODEL}`)!;
    const admission = by.get("infera.gateway.admission")!;
    const queue = by.get("infera.queue.wait")!;
    const place = by.get("infera.scheduler.place")!;
    const agentCall = spans.find((s) => s.name === "infera.agent.v1.AgentService/Generate" && s.kind === 3)!;
    const agentServe = spans.find((s) => s.name === "infera.agent.v1.AgentService/Generate" && s.kind === 2)!;
    const engine = by.get("infera.engine.call")!;

    // One trace, each process its own service, every span under the right parent.
    expect(spans).toHaveLength(7);
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([traceId]));
    expect(root).toMatchObject({ service: "infera-gateway", kind: 2, parentSpanId: clientSpan });
    expect(admission).toMatchObject({ service: "infera-gateway", parentSpanId: root.spanId });
    expect(queue).toMatchObject({ service: "infera-gateway", kind: 4, parentSpanId: root.spanId });
    expect(place).toMatchObject({ service: "infera-scheduler", kind: 5, parentSpanId: queue.spanId });
    expect(agentCall).toMatchObject({ service: "infera-gateway", parentSpanId: root.spanId });
    expect(agentServe).toMatchObject({ service: "infera-worker-agent", parentSpanId: agentCall.spanId });
    expect(engine).toMatchObject({ service: "infera-worker-agent", kind: 3, parentSpanId: agentServe.spanId });

    // In order: arrival → limits → queued → placed → agent called → engine called; children inside their parents.
    const ordered = [root, admission, queue, place, agentCall, agentServe, engine];
    for (let i = 1; i < ordered.length; i++) expect(ordered[i]!.startNs, ordered[i]!.name).toBeGreaterThanOrEqual(ordered[i - 1]!.startNs);
    expect(admission.endNs).toBeLessThanOrEqual(queue.startNs);
    // The placement is decided and published before the gateway hears of it.
    expect(place.endNs).toBeLessThanOrEqual(queue.endNs);
    expect(queue.endNs).toBeLessThanOrEqual(agentCall.startNs);
    expect(engine.endNs).toBeLessThanOrEqual(agentServe.endNs);
    expect(agentCall.endNs).toBeLessThanOrEqual(root.endNs);

    // GenAI attributes, equal to what the client was told; the queue's deployment and priority; the placement's replica.
    expect(root.attributes).toMatchObject({
      "gen_ai.operation.name": "chat",
      "gen_ai.request.model": MODEL,
      "gen_ai.usage.input_tokens": usage!.prompt_tokens,
      "gen_ai.usage.output_tokens": usage!.completion_tokens,
      "gen_ai.response.finish_reasons": [finish],
      "http.response.status_code": 200,
    });
    expect(queue.attributes["infera.deployment.id"]).toMatch(/^dep_/);
    expect(queue.attributes["infera.queue.priority"]).toBe("priority"); // the admin key's tier
    expect(place.attributes["infera.replica.id"]).toBe(queue.attributes["infera.replica.id"]);
    expect(place.attributes["infera.deployment.id"]).toBe(queue.attributes["infera.deployment.id"]);
    expect(engine.attributes["gen_ai.usage.output_tokens"]).toBe(usage!.completion_tokens);
    // Never the prompt or the completion.
    const exported = JSON.stringify(spans, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
    expect(exported).not.toContain(PROMPT);
    expect(text.length).toBeGreaterThan(0);
    expect(exported).not.toContain(text);
    expect(exported).not.toContain(platform.adminKey);

    // What reached engine-sim: the engine span's context (vLLM continues it) and the client's id, namespaced by tenant.
    const engines = await engineUrls(platform);
    const sim = engines.get(MODEL)!;
    const received = ((await (await fetch(`${sim.url}/sim/requests`)).json()) as { data: { headers: Record<string, string> }[] }).data;
    const mine = received.filter((r) => r.headers.traceparent?.includes(traceId));
    expect(mine).toHaveLength(1);
    expect(mine[0]!.headers.traceparent).toBe(`00-${traceId}-${engine.spanId}-01`);
    expect(mine[0]!.headers["x-request-id"]).toBe(`${root.attributes["infera.tenant.id"]}:${clientId}`);
    // The client can find its trace: the gateway's span, as a W3C traceresponse.
    expect(res.response.headers.get("traceresponse")).toBe(`00-${traceId}-${root.spanId}-01`);
  });

  test("a request without a traceparent starts a trace of its own; its access line names it", async () => {
    const before = new Set(receiver.spans().map((s) => s.traceId));
    const res = await openai()
      .chat.completions.create({ model: MODEL, messages: [{ role: "user", content: PROMPT }], max_tokens: 3 })
      .withResponse();
    const requestId = res.response.headers.get("x-request-id")!;
    await waitFor("the request's access line", () => accessLines().some((l) => l.requestId === requestId));
    const line = accessLines().find((l) => l.requestId === requestId)!;
    expect(line.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(before.has(line.traceId as string)).toBe(false);
    // The gateway's and the agent's exporters send on their own schedules: wait for both.
    const spans = () => receiver.trace(line.traceId as string);
    await waitFor("its spans", () => spans().some((s) => s.name === "infera.engine.call") && spans().some((s) => s.name === `chat ${MODEL}`));
    const root = spans().find((s) => s.name === `chat ${MODEL}`)!;
    expect(root.parentSpanId).toBe("");
    expect(root.attributes["gen_ai.usage.output_tokens"]).toBe(res.data.usage!.completion_tokens);
    expect(root.attributes["gen_ai.response.finish_reasons"]).toEqual([res.data.choices[0]!.finish_reason]);
  });
});

describe("GenAI semantic-convention metrics", () => {
  test("after traffic, /metrics has the semconv series by model and tenant tier, beside the platform's own", async () => {
    const text = await (await fetch(`${platform.baseURL}/metrics`)).text();
    const m = parseMetrics(text);
    const labels = { gen_ai_operation_name: "chat", gen_ai_request_model: MODEL, tenant_tier: "priority" };
    const count = (name: string, more: Record<string, string> = {}) => metricSum(m, name, { ...labels, ...more });
    // Two chat requests so far in this file (the tests above), both successful.
    expect(count("gen_ai_server_request_duration_seconds_count", { error_type: "" })).toBe(2);
    expect(count("gen_ai_server_time_to_first_token_seconds_count")).toBe(2);
    // Per output token: only the streamed one (a whole answer has no first token of its own).
    expect(count("gen_ai_server_time_per_output_token_seconds_count")).toBe(1);
    expect(count("gen_ai_client_token_usage_count", { gen_ai_token_type: "input" })).toBe(2);
    expect(count("gen_ai_client_token_usage_count", { gen_ai_token_type: "output" })).toBe(2);
    expect(count("gen_ai_client_token_usage_sum", { gen_ai_token_type: "output" })).toBeGreaterThan(0);
    // The platform's metrics stay, request duration now by model too.
    expect(metricSum(m, "gateway_request_duration_seconds_count", { route: "/v1/openai/chat/completions", model: MODEL })).toBe(2);
    expect(text).toContain("gateway_time_to_first_token_seconds_bucket");
    // No key, request id or prompt in any label.
    expect(text).not.toContain(platform.adminKey);
    expect(text).not.toMatch(/req_[0-9a-f]{24}/);
    expect(text).not.toContain(PROMPT);
  });
});

describe("the access log", () => {
  test("one line per request, streamed, whole or refused, with the fields an operator joins on and no secret or prompt", async () => {
    const client = openai();
    const ids: string[] = [];
    const s = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: PROMPT }], stream: true, max_tokens: 4 }).withResponse();
    for await (const _ of s.data) void _;
    ids.push(s.response.headers.get("x-request-id")!);
    const w = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: PROMPT }], max_tokens: 2 }).withResponse();
    ids.push(w.response.headers.get("x-request-id")!);
    // Refused by validation (with a trace context: traced too), and by the key.
    const refusedTrace = randomBytes(16).toString("hex");
    const bad = await fetch(`${platform.openaiURL}/chat/completions`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${platform.adminKey}`,
        traceparent: `00-${refusedTrace}-${randomBytes(8).toString("hex")}-01`,
      },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: PROMPT }], temperature: "hot" }),
    });
    expect(bad.status).toBe(400);
    ids.push(bad.headers.get("x-request-id")!);
    const wrongKey = `sk-wrong-${randomBytes(8).toString("hex")}`;
    const denied = await fetch(`${platform.openaiURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${wrongKey}` },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: PROMPT }] }),
    });
    expect(denied.status).toBe(401);
    ids.push(denied.headers.get("x-request-id")!);

    await waitFor("an access line for each request", () => ids.every((id) => accessLines().some((l) => l.requestId === id)));
    for (const id of ids)
      expect(
        accessLines().filter((l) => l.requestId === id),
        id,
      ).toHaveLength(1);
    const [streamed, whole, invalid, unauthorised] = ids.map((id) => accessLines().find((l) => l.requestId === id)!);
    for (const l of [streamed, whole])
      expect(l).toMatchObject({
        tenantId: expect.stringMatching(/^ten_/),
        keyId: expect.stringMatching(/^key_/),
        model: MODEL,
        deploymentId: expect.stringMatching(/^dep_/),
        replicaId: expect.any(String),
        status: 200,
        tokensIn: expect.any(Number),
        tokensOut: expect.any(Number),
        queueMs: expect.any(Number),
        ttftMs: expect.any(Number),
        totalMs: expect.any(Number),
        finishReason: expect.stringMatching(/^(stop|length)$/),
        traceId: expect.stringMatching(/^[0-9a-f]{32}$/),
      });
    expect(streamed!.tokensOut).toBeGreaterThan(0);
    expect(whole!.tokensOut).toBe(w.data.usage!.completion_tokens);
    expect(invalid).toMatchObject({ status: 400, errorCode: "invalid_request", keyId: expect.stringMatching(/^key_/), traceId: refusedTrace });
    await waitFor("the refused request's span", () => receiver.trace(refusedTrace).length > 0);
    expect(receiver.trace(refusedTrace)).toMatchObject([
      { name: "POST /v1/openai/chat/completions", statusCode: 2, attributes: { "error.type": "invalid_request", "http.response.status_code": 400 } },
    ]);
    expect(unauthorised).toMatchObject({ status: 401, errorCode: expect.any(String) });
    expect(unauthorised!.keyId).toBeUndefined();
    const all = JSON.stringify(accessLines());
    expect(all).not.toContain(PROMPT);
    expect(all).not.toContain(platform.adminKey);
    expect(all).not.toContain(wrongKey);
  });
});

describe("the fast path's trace", () => {
  test("once the gateway holds a slot lease, its own placement span stands where the queue wait and the scheduler's were", async () => {
    let traceId = "";
    const spansOf = () => receiver.trace(traceId);
    await waitFor("a request placed on a leased slot", async () => {
      traceId = randomBytes(16).toString("hex");
      await openai().chat.completions.create(
        { model: MODEL, messages: [{ role: "user", content: PROMPT }], max_tokens: 2 },
        { headers: { traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` } },
      );
      await waitFor("its spans", () => spansOf().some((s) => s.name === "infera.engine.call") && spansOf().some((s) => s.name === `chat ${MODEL}`));
      return spansOf().some((s) => s.name === "infera.gateway.place");
    });
    const spans = spansOf();
    const names = spans.map((s) => s.name).sort();
    expect(names).toEqual(
      [
        `chat ${MODEL}`,
        "infera.gateway.admission",
        "infera.gateway.place",
        "infera.agent.v1.AgentService/Generate",
        "infera.agent.v1.AgentService/Generate",
        "infera.engine.call",
      ].sort(),
    );
    const root = spans.find((s) => s.name === `chat ${MODEL}`)!;
    const place = spans.find((s) => s.name === "infera.gateway.place")!;
    const agentCall = spans.find((s) => s.name === "infera.agent.v1.AgentService/Generate" && s.kind === 3)!;
    expect(place).toMatchObject({ service: "infera-gateway", parentSpanId: root.spanId });
    expect(place.attributes["infera.placement.path"]).toBe("fast");
    expect(place.attributes["infera.deployment.id"]).toMatch(/^dep_/);
    expect(place.attributes["infera.replica.id"]).toBe(agentCall.attributes["infera.replica.id"]);
    expect(place.endNs).toBeLessThanOrEqual(agentCall.startNs);
    const m = parseMetrics(await (await fetch(`${platform.baseURL}/metrics`)).text());
    expect(metricSum(m, "gateway_placements_total", { path: "fast" })).toBeGreaterThan(0);
    expect(metricSum(m, "gateway_placements_total", { path: "queue" })).toBeGreaterThan(0);
  });
});
