/**
 * What an operator sees: after an end-to-end run, every service exports the metrics
 * the dashboards are built on, with label values from small closed sets, and one
 * request id (returned to the client as x-request-id) appears on the log lines of that
 * request in every service, with no secret in any line.
 */
import { readdirSync, readFileSync } from "node:fs";
import OpenAI from "openai";
import { describe, expect } from "vitest";
import { jsonLines, parseMetrics, waitFor, type Platform } from "@infera/testkit";
import { platformTest } from "@infera/testkit/fixtures";

const MODEL = "meta-llama/Meta-Llama-3-8B-Instruct";
let platform: Platform;

const test = platformTest({ label: "observability", env: { LOG_LEVEL: "debug" } });

test.beforeAll(async ({ platform: started }) => {
  platform = started;
});

function replicaLogs(): { agent: string; engine: string } {
  const dir = `/tmp/infera-test-logs/${platform.redisPrefix}`;
  const files = readdirSync(dir);
  return {
    agent: readFileSync(`${dir}/${files.find((f) => f.endsWith("-agent.log"))!}`, "utf8"),
    engine: readFileSync(`${dir}/${files.find((f) => f.endsWith("-engine.log"))!}`, "utf8"),
  };
}

async function metricNames(url: string): Promise<Set<string>> {
  const m = parseMetrics(await (await fetch(url)).text());
  return new Set([...m.keys()].map((k) => k.split("{")[0]!.replace(/_(bucket|sum|count)$/, "")));
}

describe("observability after an end-to-end run", () => {
  test("every service exports the dashboard's metrics", async () => {
    const openai = new OpenAI({ apiKey: platform.adminKey, baseURL: platform.openaiURL, maxRetries: 0 });
    const stream = await openai.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "metrics please" }], stream: true, max_tokens: 5 });
    for await (const _ of stream) void _;
    await openai.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "again" }], max_tokens: 3 });
    await openai.chat.completions.create({ model: "no/such-model", messages: [{ role: "user", content: "x" }] }).catch(() => {});

    const gateway = await metricNames(`${platform.baseURL}/metrics`);
    for (const name of [
      "gateway_requests_total",
      "gateway_request_duration_seconds",
      "gateway_time_to_first_token_seconds",
      "gateway_inter_token_latency_seconds",
      "gateway_tokens_total",
      "gateway_errors_total",
      "gateway_placements_total",
    ])
      expect(gateway, name).toContain(name);

    const started = jsonLines(platform.output()).find((l) => l.msg === "scheduler started");
    const scheduler = await metricNames(`http://127.0.0.1:${started!.metricsPort as number}/metrics`);
    for (const name of [
      "scheduler_queue_depth",
      "scheduler_queue_time_seconds",
      "scheduler_dispatched_total",
      "scheduler_granted_slots",
      "scheduler_replicas",
      "scheduler_autoscaler_decisions_total",
    ]) {
      expect(scheduler, name).toContain(name);
    }

    const listening = jsonLines(replicaLogs().agent).find((l) => l.msg === "agent listening")!;
    const agent = await metricNames(`http://127.0.0.1:${listening.metricsPort as number}/metrics`);
    for (const name of [
      "agent_engine_healthy",
      "agent_engine_requests_running",
      "agent_engine_requests_waiting",
      "agent_engine_kv_cache_usage_ratio",
      "agent_requests_total",
    ]) {
      expect(agent, name).toContain(name);
    }
  });

  test("labels come from small closed sets: no prompt, key or request id in any label", async () => {
    const text = await (await fetch(`${platform.baseURL}/metrics`)).text();
    expect(text).not.toContain("metrics please");
    expect(text).not.toContain(platform.adminKey);
    expect(text).not.toMatch(/req_[0-9a-f]{24}/);
  });

  test("one request id is on the request's log lines in the gateway, the scheduler (or, on a leased slot, the gateway's placement) and the agent, and is returned to the client", async () => {
    const clientId = `req-trace-${Date.now()}`;
    const res = await fetch(`${platform.openaiURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${platform.adminKey}`, "x-request-id": clientId },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "trace me" }], max_tokens: 3 }),
    });
    expect(res.status).toBe(200);
    // The platform's own id, and the client's echoed beside it as a correlation field.
    const requestId = res.headers.get("x-request-id")!;
    expect(requestId).toMatch(/^req_[0-9a-f]{24}$/);
    expect(res.headers.get("x-client-request-id")).toBe(clientId);
    await res.json();
    // The processes' log lines reach the test through pipes and files: wait until all three have written theirs.
    const lines = () => [...jsonLines(platform.output()), ...jsonLines(replicaLogs().agent)].filter((l) => l.requestId === requestId);
    // Placed by the gateway on a slot the scheduler lent it (the fast path), the scheduler never sees it.
    const fast = () => lines().some((l) => l.service === "gateway" && l.msg === "placed on a leased slot");
    const servicesLogging = () => new Set(lines().map((l) => l.service));
    await waitFor("the request's lines in every service's log", () => servicesLogging().size >= (fast() ? 2 : 3), { timeoutMs: 10_000 }).catch(() => {});
    const services = servicesLogging();
    expect(services).toContain("gateway");
    if (!fast()) expect(services).toContain("scheduler");
    expect(services).toContain("worker-agent");
  });

  test("no secret and no prompt text in any log line", () => {
    const all = platform.output() + replicaLogs().agent + replicaLogs().engine;
    expect(all).not.toContain(platform.adminKey);
    expect(all).not.toContain("trace me");
    expect(all).not.toContain("metrics please");
  });
});
