/**
 * What the platform answers matches what its OpenAPI document (`/openapi.json`) says, against
 * the platform as `pnpm start` runs it: every answer below — successes and refusals, JSON and
 * streams — is validated against the response the document declares for its operation, status
 * and content type, and at the end every documented operation must have been checked.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPlatform, type Platform } from "@infera/testkit";
import { OpenApiChecker, type OpenApiDocument } from "../openapi/platform-openapi.ts";

let platform: Platform;
let checker: OpenApiChecker;
let deployId = "";

beforeAll(async () => {
  platform = await startPlatform({
    label: "openapi",
    catalog: ["chat", "embeddings", "images"],
    env: { SIM_STARTUP_DELAY_MS: "500" },
    readyTimeoutMs: 120_000,
  });
  const doc = (await (await fetch(`${platform.baseURL}/openapi.json`)).json()) as OpenApiDocument;
  checker = new OpenApiChecker(doc);
}, 180_000);

afterAll(async () => {
  await platform?.stop();
});

/** One request; its answer is checked against the document before it is returned. */
async function call<T = unknown>(
  method: string,
  path: string,
  body?: unknown,
  options: { key?: string | null; accept?: string } = {},
): Promise<{ status: number; json: T; text: string; type: string }> {
  const headers: Record<string, string> = {};
  const key = options.key === undefined ? platform.adminKey : options.key;
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(`${platform.baseURL}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  const type = r.headers.get("content-type") ?? "";
  let parsed: unknown = text;
  if (type.startsWith("application/json")) parsed = JSON.parse(text);
  if (type.startsWith("text/event-stream")) {
    // Each `data:` event against the documented chunk schema; a chunk stream ends with [DONE],
    // the Responses API's typed events (each `event:` naming the `data:`'s type) do not.
    const events = text
      .split("\n")
      .filter((l) => l.startsWith("data: "))
      .map((l) => l.slice(6));
    const typed = text.startsWith("event: ");
    if (typed) expect(events).not.toContain("[DONE]");
    else expect(events.at(-1)).toBe("[DONE]");
    for (const e of typed ? events : events.slice(0, -1)) checker.expect(method, path, r.status, type, JSON.parse(e));
  } else if (type.startsWith("application/x-ndjson")) {
    // Each line of the stream against the documented line schema.
    for (const line of text.split("\n").filter((l) => l.trim())) checker.expect(method, path, r.status, type, JSON.parse(line));
  } else checker.expect(method, path, r.status, type, parsed);
  return { status: r.status, json: parsed as T, text, type };
}

/** A file upload (multipart/form-data), its answer checked like call's. */
async function upload(path: string, text: string): Promise<{ status: number; json: { id: string } }> {
  const form = new FormData();
  form.set("purpose", "batch");
  form.set("file", new Blob([text]), "input.jsonl");
  const r = await fetch(`${platform.baseURL}${path}`, { method: "POST", headers: { authorization: `Bearer ${platform.adminKey}` }, body: form });
  const json = (await r.json()) as { id: string };
  checker.expect("POST", path, r.status, r.headers.get("content-type") ?? "", json);
  return { status: r.status, json };
}

async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const CHAT = "meta-llama/Meta-Llama-3-8B-Instruct";
const EMBED = "BAAI/bge-large-en-v1.5";

describe("the platform's answers match /openapi.json", () => {
  it("the OpenAI API under both prefixes: JSON, streams and errors", async () => {
    for (const prefix of ["/v1/openai", "/v1"]) {
      const messages = [{ role: "user", content: "Hello" }];
      expect((await call("POST", `${prefix}/chat/completions`, { model: CHAT, messages, max_tokens: 4 })).status).toBe(200);
      const stream = await call("POST", `${prefix}/chat/completions`, {
        model: CHAT,
        messages,
        max_tokens: 4,
        stream: true,
        stream_options: { include_usage: true },
      });
      expect(stream.type).toContain("text/event-stream");
      expect((await call("POST", `${prefix}/completions`, { model: CHAT, prompt: "Once upon", max_tokens: 4 })).status).toBe(200);
      expect((await call("POST", `${prefix}/completions`, { model: CHAT, prompt: "Once upon", max_tokens: 4, stream: true })).type).toContain(
        "text/event-stream",
      );
      expect((await call("POST", `${prefix}/embeddings`, { model: EMBED, input: ["a", "b"], encoding_format: "float" })).status).toBe(200);
      expect((await call("POST", `${prefix}/embeddings`, { model: EMBED, input: "a", encoding_format: "base64" })).status).toBe(200);
      expect((await call("POST", `${prefix}/images/generations`, { prompt: "A lamb", n: 1, size: "256x256" })).status).toBe(200);
      expect((await call("GET", `${prefix}/models`)).status).toBe(200);
      expect((await call("GET", `${prefix}/models/${CHAT}`)).status).toBe(200);
      // vLLM's serving API beside OpenAI's.
      expect((await call("POST", `${prefix}/rerank`, { model: EMBED, query: "q", documents: ["a", { text: "b" }] })).status).toBe(200);
      expect((await call("POST", `${prefix}/score`, { model: EMBED, text_1: "q", text_2: ["a", "b"] })).status).toBe(200);
      expect((await call("POST", `${prefix}/tokenize`, { model: CHAT, prompt: "Hello", return_token_strs: true })).status).toBe(200);
      expect((await call("POST", `${prefix}/detokenize`, { model: CHAT, tokens: [9906] })).status).toBe(200);
      expect((await call("POST", `${prefix}/tokenize`, { model: CHAT })).status).toBe(400);
      const bad = await call<{ error: { param: string } }>("POST", `${prefix}/chat/completions`, { model: CHAT, messages: [{ role: "robot", content: "x" }] });
      expect(bad.status).toBe(400);
      expect((await call("POST", `${prefix}/chat/completions`, { model: "no/such-model", messages })).status).toBe(404);
      expect((await call("GET", `${prefix}/models`, undefined, { key: null })).status).toBe(401);
      // The Responses API: whole, streamed (a tool call too), stored, its input items, deleted.
      const tool = { type: "function", name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } };
      const resp = await call<{ id: string }>("POST", `${prefix}/responses`, { model: CHAT, input: "Hello", max_output_tokens: 4 });
      expect(resp.status).toBe(200);
      expect((await call("POST", `${prefix}/responses`, { model: CHAT, input: "Hello", max_output_tokens: 4, stream: true })).type).toContain(
        "text/event-stream",
      );
      expect((await call("POST", `${prefix}/responses`, { model: CHAT, input: "use the get_weather tool", tools: [tool], stream: true })).status).toBe(200);
      expect((await call("POST", `${prefix}/responses`, { model: CHAT, input: "x", tools: [{ type: "web_search" }] })).status).toBe(400);
      expect((await call("GET", `${prefix}/responses/${resp.json.id}`)).status).toBe(200);
      expect((await call("GET", `${prefix}/responses/${resp.json.id}/input_items?limit=5&order=asc`)).status).toBe(200);
      expect((await call("DELETE", `${prefix}/responses/${resp.json.id}`)).status).toBe(200);
      expect((await call("GET", `${prefix}/responses/${resp.json.id}`)).status).toBe(404);
      expect((await call("DELETE", `${prefix}/responses/${resp.json.id}`)).status).toBe(404);
      expect((await call("GET", `${prefix}/responses/${resp.json.id}/input_items`)).status).toBe(404);
      // The Files API: an upload (multipart) and a refused one, list, retrieve, content, delete.
      const line = JSON.stringify({ custom_id: "a", method: "POST", url: "/v1/chat/completions", body: { model: CHAT, messages } });
      const file = await upload(`${prefix}/files`, `${line}\n`);
      expect(file.status).toBe(200);
      expect((await upload(`${prefix}/files`, `${line}\n${line}\n`)).status).toBe(400);
      expect((await call("GET", `${prefix}/files?purpose=batch&limit=5`)).status).toBe(200);
      expect((await call("GET", `${prefix}/files/${file.json.id}`)).status).toBe(200);
      expect((await call("GET", `${prefix}/files/${file.json.id}/content`)).text).toBe(`${line}\n`);
      expect((await call("DELETE", `${prefix}/files/${file.json.id}`)).status).toBe(200);
      expect((await call("GET", `${prefix}/files/${file.json.id}/content`)).status).toBe(404);
      // The Batch API: a refused batch, one created, retrieved, listed and cancelled.
      // Enough lines that the batch is still running when it is cancelled.
      const lines = Array.from({ length: 20 }, (_, n) =>
        JSON.stringify({ custom_id: `b${n}`, method: "POST", url: "/v1/chat/completions", body: { model: CHAT, messages, max_tokens: 200 } }),
      );
      const input = await upload(`${prefix}/files`, `${lines.join("\n")}\n`);
      expect(
        (await call("POST", `${prefix}/batches`, { input_file_id: input.json.id, endpoint: "/v1/chat/completions", completion_window: "1h" })).status,
      ).toBe(400);
      const batch = await call<{ id: string }>("POST", `${prefix}/batches`, {
        input_file_id: input.json.id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      });
      expect(batch.status).toBe(200);
      expect((await call("GET", `${prefix}/batches/${batch.json.id}`)).status).toBe(200);
      expect((await call("GET", `${prefix}/batches?limit=5`)).status).toBe(200);
      expect((await call("POST", `${prefix}/batches/${batch.json.id}/cancel`)).status).toBe(200);
      expect((await call("GET", `${prefix}/batches/batch_nope`)).status).toBe(404);
    }
  }, 120_000);

  it("ops: health, readiness, metrics and the document itself", async () => {
    expect((await call("GET", "/healthz", undefined, { key: null })).status).toBe(200);
    expect((await call("GET", "/readyz", undefined, { key: null })).status).toBe(200);
    expect((await call("GET", "/metrics", undefined, { key: null })).text).toContain("gateway_requests_total");
    expect((await call("GET", "/openapi.json", undefined, { key: null })).status).toBe(200);
    // The check can fail: an answer of the wrong shape, an undocumented status or content type.
    expect(checker.problems("GET", "/deploy/dep_x", 200, "application/json", { deploy_id: 7 })).not.toEqual([]);
    expect(checker.problems("GET", "/healthz", 302, "application/json", {})).not.toEqual([]);
    expect(checker.problems("GET", "/deploy/dep_x/logs", 200, "application/json", {})).not.toEqual([]);
  });

  it("the deploy API through a deployment's life, with its events, stats, replicas and logs", async () => {
    expect((await call("GET", "/deploy/llm/gpu_availability")).status).toBe(200);
    expect((await call("GET", "/deploy/llm/engines")).status).toBe(200);
    const created = await call<{ deploy_id: string }>("POST", "/deploy/llm", { model_name: "documented", gpu: "L4", max_batch_size: 4 });
    expect(created.status).toBe(200);
    deployId = created.json.deploy_id;
    await until("running", async () => (await call<{ status: string }>("GET", `/deploy/${deployId}`)).json.status === "running");
    expect((await call("GET", "/deploy/list")).status).toBe(200);
    expect((await call("GET", `/deploy/${deployId}/events?limit=2`)).status).toBe(200);
    expect((await call("GET", `/deploy/${deployId}/stats?from=now-1h`)).status).toBe(200);
    expect((await call("GET", `/deploy/${deployId}/replicas`)).status).toBe(200);
    const logs = await call("GET", `/deploy/${deployId}/logs?tail=3`);
    expect(logs.type).toContain("application/x-ndjson");
    expect((await call("GET", `/deploy/${deployId}/logs?tail=3&format=text`)).type).toContain("text/plain");
    expect((await call("GET", `/models/${encodeURIComponent("admin/documented")}/versions`)).status).toBe(200);
    expect((await call("PUT", `/deploy/${deployId}`, { settings: { max_instances: 2 } })).status).toBe(200);
    expect((await call("POST", `/deploy/${deployId}/stop`)).status).toBe(200);
    expect((await call("POST", `/deploy/${deployId}/start`)).status).toBe(200);
    expect((await call("DELETE", `/deploy/${deployId}`)).status).toBe(200);
  }, 120_000);

  it("the deploy API's refusals: OpenAI's error JSON naming the field", async () => {
    const bad = await call<{ error: { param: string } }>("POST", "/deploy/llm", { model_name: "x", gpu: "TPU" });
    expect([bad.status, bad.json.error.param]).toEqual([400, "gpu"]);
    expect((await call("GET", "/deploy/dep_nope")).status).toBe(404);
    expect((await call("GET", `/deploy/${deployId}/events?limit=0`)).status).toBe(400);
    expect((await call("GET", "/deploy/list", undefined, { key: "sk-not-a-key-00000000" })).status).toBe(401);
  });

  it("the admin API and usage", async () => {
    const tenant = await call<{ id: string }>("POST", "/admin/tenants", { name: "documented-co" });
    expect(tenant.status).toBe(201);
    expect((await call("GET", "/admin/tenants")).status).toBe(200);
    const key = await call<{ id: string; secret: string }>("POST", "/admin/api-keys", { tenant_id: tenant.json.id, name: "doc", scopes: ["inference"] });
    expect(key.status).toBe(201);
    expect((await call("GET", `/admin/api-keys?tenant_id=${tenant.json.id}`)).status).toBe(200);
    // A key without the admin scope is refused with the same error shape.
    expect((await call("GET", "/admin/tenants", undefined, { key: key.json.secret })).status).toBe(403);
    expect((await call("DELETE", `/admin/api-keys/${key.json.id}`)).status).toBe(200);
    for (const g of ["model", "day", "key"]) expect((await call("GET", `/v1/usage?group_by=${g}`)).status).toBe(200);
    expect((await call("GET", "/v1/usage?group_by=week")).status).toBe(400);
  });

  it("deploy policy, keys with a lifetime and the audit trail", async () => {
    expect((await call("GET", "/deploy/llm/profiles")).status).toBe(200);
    const profile = {
      name: "doc-profile",
      engine: "vllm",
      image: null,
      allowed_args: [{ flag: "--max-model-len", pattern: "[0-9]+" }],
      gpu_types: ["L4"],
      max_num_gpus: 1,
      max_instances: 2,
    };
    expect((await call("POST", "/admin/engine-profiles", profile)).status).toBe(201);
    expect((await call("POST", "/admin/engine-profiles", profile)).status).toBe(409);
    expect((await call("GET", "/admin/engine-profiles")).status).toBe(200);
    expect((await call("GET", "/admin/engine-profiles/doc-profile")).status).toBe(200);
    const { name: _name, ...rest } = profile;
    expect((await call("PUT", "/admin/engine-profiles/doc-profile", { ...rest, max_instances: 3 })).status).toBe(200);
    expect((await call("DELETE", "/admin/engine-profiles/doc-profile")).status).toBe(200);
    const tenant = await call<{ id: string }>("POST", "/admin/tenants", { name: "policy-doc-co" });
    expect((await call("GET", `/admin/tenants/${tenant.json.id}/deploy-grant`)).status).toBe(200);
    expect((await call("PUT", `/admin/tenants/${tenant.json.id}/deploy-grant`, { container_image: true, gpu_quota: 4 })).status).toBe(200);
    const key = await call<{ id: string; secret: string }>("POST", "/admin/api-keys", {
      tenant_id: tenant.json.id,
      name: "lifetime",
      scopes: ["deploy"],
      expires_at: Math.floor(Date.now() / 1000) + 3600,
      models: [CHAT],
      monthly_token_budget: 1000,
    });
    expect(key.status).toBe(201);
    expect((await call("PATCH", `/admin/api-keys/${key.json.id}`, { monthly_token_budget: null })).status).toBe(200);
    expect((await call("POST", `/admin/api-keys/${key.json.id}/rotate`, { grace_seconds: 0 })).status).toBe(200);
    const denied = await call<{ error: { param: string } }>(
      "POST",
      "/deploy/llm",
      { model_name: "x", gpu: "L4", extra_args: ["--trust-remote-code"] },
      { key: key.json.secret },
    );
    expect(denied.status).toBe(401); // the rotated-out secret, grace 0
    expect((await call("GET", "/admin/audit?limit=5")).status).toBe(200);
    expect((await call("GET", "/admin/audit?limit=0")).status).toBe(400);
  });

  it("checked an answer of every operation in the document", () => {
    expect(checker.operations().filter((op) => !checker.checked.has(op))).toEqual([]);
  });
});
