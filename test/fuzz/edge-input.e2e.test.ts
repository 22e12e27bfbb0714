/**
 * The classes of hostile input the random fuzz did not reach, over the tenant, admin and
 * deploy APIs, each case built from the routes' own valid requests: nesting 10,000 deep in
 * every field that holds an object or array, NUL and unpaired surrogates in every string
 * field, path segment and query value, percent-encoded path tricks, and path ids far past any
 * limit; request ids shared across tenants and across retries. Every answer comes within its deadline, is never a 5xx, is OpenAI's error JSON when it
 * is an error, and a refusal changes nothing (no row in Postgres, no job on a queue).
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engineUrls, metricSum, startPlatform, type Platform } from "@infera/testkit";
import { gatewayMetrics, isOpenAIError, MODEL, RESPONSES_INPUT } from "../faults/harness.ts";

const DEADLINE_MS = 10_000;
const DEEP = 10_000;

let platform: Platform;
let db: pg.Client;
let deploymentId = "";

beforeAll(async () => {
  platform = await startPlatform({ label: "edge-input", catalog: ["chat", "embeddings", "images"] });
  db = new pg.Client({ connectionString: platform.databaseUrl });
  await db.connect();
  deploymentId = (
    await db.query("select d.id from deployments d join model_versions v on v.id = d.model_version_id join models m on m.id = v.model_id where m.name = $1", [
      MODEL,
    ])
  ).rows[0].id as string;
}, 300_000);
afterAll(async () => {
  await db?.end();
  await platform?.stop();
});

interface Answer {
  status: number;
  text: string;
  json: unknown;
  ms: number;
}

async function send(method: string, path: string, body?: string, contentType = "application/json"): Promise<Answer> {
  const t0 = Date.now();
  const res = await fetch(`${platform.baseURL}${path}`, {
    method,
    headers: { authorization: `Bearer ${platform.adminKey}`, ...(body === undefined ? {} : { "content-type": contentType }) },
    body,
    signal: AbortSignal.timeout(DEADLINE_MS),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, ms: Date.now() - t0 };
}

/** Answered, not a 5xx, and OpenAI's error JSON when it is an error. */
function expectClean(a: Answer, what: string): void {
  expect(a.status, `${what}: ${a.text.slice(0, 300)}`).toBeLessThan(500);
  if (a.status >= 400) expect(isOpenAIError(a.json), `${what}: ${a.status} ${a.text.slice(0, 300)}`).toBe(true);
}

/** Row counts of every table (after the usage a previous test caused has been flushed). */
async function stateCounts(): Promise<Record<string, number>> {
  await new Promise((r) => setTimeout(r, 1000));
  const out: Record<string, number> = {};
  for (const t of [
    "tenants",
    "api_keys",
    "models",
    "model_versions",
    "deployments",
    "deployment_events",
    "deployment_secrets",
    "usage_records",
    "stored_responses",
  ]) {
    out[t] = Number((await db.query(`select count(*)::int as n from ${t}`)).rows[0].n);
  }
  return out;
}

const deepArray = (n: number) => `${"[".repeat(n)}1${"]".repeat(n)}`;
const deepObject = (n: number) => `${'{"a":'.repeat(n)}1${"}".repeat(n)}`;

interface Route {
  method: string;
  path: () => string;
  body?: () => Record<string, unknown>;
}

/** Every route that takes a body, with a valid one (the hostile cases change one field of it). */
const BODY_ROUTES: Route[] = [
  {
    method: "POST",
    path: () => "/v1/openai/chat/completions",
    body: () => ({
      model: MODEL,
      messages: [{ role: "user", content: [{ type: "text", text: "hi" }] }],
      max_tokens: 2,
      stop: ["x"],
      seed: 1,
      metadata: { a: "b" },
      user: "u",
      logit_bias: { "1": 1 },
      tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: {} } } }],
      response_format: { type: "json_schema", json_schema: { name: "n", schema: { type: "object" } } },
      chat_template_kwargs: { a: 1 },
      guided_json: { type: "object" },
    }),
  },
  { method: "POST", path: () => "/v1/openai/completions", body: () => ({ model: MODEL, prompt: ["hi"], max_tokens: 2, stop: "x", user: "u" }) },
  { method: "POST", path: () => "/v1/openai/embeddings", body: () => ({ model: "BAAI/bge-large-en-v1.5", input: ["hi"], user: "u" }) },
  { method: "POST", path: () => "/v1/openai/images/generations", body: () => ({ prompt: "a cat", n: 1, size: "256x256", user: "u" }) },
  {
    method: "POST",
    path: () => "/v1/openai/responses",
    body: () => ({
      model: MODEL,
      input: structuredClone(RESPONSES_INPUT),
      instructions: "be brief",
      max_output_tokens: 2,
      metadata: { a: "b" },
      user: "u",
      tools: [{ type: "function", name: "f", parameters: { type: "object", properties: {} } }],
      text: { format: { type: "json_schema", name: "n", schema: { type: "object" } } },
    }),
  },
  { method: "POST", path: () => "/admin/tenants", body: () => ({ name: "fuzz-tenant" }) },
  { method: "POST", path: () => "/admin/api-keys", body: () => ({ tenant_id: "ten_x", name: "k", scopes: ["inference"] }) },
  {
    method: "POST",
    path: () => "/deploy/llm",
    body: () => ({
      model_name: "fuzz-model",
      gpu: "A100-80GB",
      hf: { repo: "org/fuzz", revision: "main" },
      container_image: "img:1",
      extra_args: ["--x"],
      settings: { min_instances: 0, max_instances: 1 },
    }),
  },
  { method: "PUT", path: () => `/deploy/${deploymentId}`, body: () => ({ settings: { min_instances: 1, max_instances: 1 } }) },
];

/** JSON paths of a value's members (objects and arrays: `nested`; strings: `strings`). */
function paths(v: unknown, at: (string | number)[] = [], out = { nested: [] as (string | number)[][], strings: [] as (string | number)[][] }) {
  if (typeof v === "string") out.strings.push(at);
  else if (Array.isArray(v)) for (const [i, x] of v.entries()) paths(x, [...at, i], out);
  else if (v !== null && typeof v === "object") for (const [k, x] of Object.entries(v)) paths(x, [...at, k], out);
  if (at.length > 0 && (typeof v !== "string" || at.length <= 1)) out.nested.push(at);
  return out;
}

/** The body's JSON with the value at `at` replaced by raw JSON text. */
function withRawAt(body: Record<string, unknown>, at: (string | number)[], raw: string): string {
  const marker = "\u0001MARK\u0001";
  const copy = structuredClone(body) as Record<string, unknown>;
  let o: Record<string | number, unknown> = copy;
  for (const k of at.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
  o[at.at(-1)!] = marker;
  return JSON.stringify(copy).replace(JSON.stringify(marker), raw);
}

describe("deep nesting, in every field of every route", () => {
  it(`answers ${DEEP}-deep arrays and objects in any field with a 400 naming the limit, within the deadline; nothing changes`, async () => {
    const before = await stateCounts();
    const metrics0 = await gatewayMetrics(platform);
    let cases = 0;
    for (const r of BODY_ROUTES) {
      const body = r.body!();
      for (const at of paths(body).nested) {
        for (const raw of [deepArray(DEEP), deepObject(DEEP)]) {
          const a = await send(r.method, r.path(), withRawAt(body, at, raw));
          const what = `${r.method} ${r.path()} ${at.join(".")}`;
          expectClean(a, what);
          // The admin API's small body limit (413) comes first for some; otherwise the depth bound.
          if (a.status !== 413) {
            expect(a.status, what).toBe(400);
            expect((a.json as { error: { message: string } }).error.message, what).toContain("nested more than 64 levels");
          }
          cases++;
        }
      }
    }
    console.log(`[edge-input] ${cases} nesting cases`);
    expect(cases).toBeGreaterThan(60);
    expect(await stateCounts()).toEqual(before);
    expect(metricSum(await gatewayMetrics(platform), "gateway_placements_total")).toBe(metricSum(metrics0, "gateway_placements_total"));
  }, 300_000);

  it("finding 2: tools[].function.parameters and response_format.json_schema.schema 10,000 deep are answered (they used to hang)", async () => {
    const messages = [{ role: "user", content: "hi" }];
    const tools = { model: MODEL, messages, tools: [{ type: "function", function: { name: "f", parameters: { deep: "MARK" } } }] };
    const rf = { model: MODEL, messages, response_format: { type: "json_schema", json_schema: { name: "n", schema: { deep: "MARK" } } } };
    for (const body of [tools, rf]) {
      const a = await send("POST", "/v1/openai/chat/completions", JSON.stringify(body).replace('"MARK"', deepObject(DEEP)));
      expect(a.status).toBe(400);
      expectClean(a, Object.keys(body).join(","));
    }
  });

  it("finding 3: model, seed or stop as a 10,000-deep array is a 400 in OpenAI's shape, not Fastify's 500", async () => {
    for (const field of ["model", "seed", "stop"]) {
      const a = await send(
        "POST",
        "/v1/openai/chat/completions",
        `{"model":"${MODEL}","messages":[{"role":"user","content":"hi"}],"${field}":${deepArray(DEEP)}}`,
      );
      expect(a.status, field).toBe(400);
      expectClean(a, field);
    }
  });

  it("nesting within the limit still works", async () => {
    // A JSON schema 15 objects deep: 30 levels of JSON, well inside 64.
    let schema: Record<string, unknown> = { type: "integer" };
    for (let i = 0; i < 15; i++) schema = { type: "object", properties: { a: schema }, required: ["a"] };
    const a = await send("POST", "/v1/openai/chat/completions", JSON.stringify({ ...BODY_ROUTES[0]!.body!(), guided_json: schema, tools: undefined }));
    expect(a.status, a.text).toBe(200);
  });
});

describe("NUL and unpaired surrogates in every string field, path segment and query value", () => {
  const BAD = ["a\u0000b", "\ud800", "x\udc00y"];

  it("every string field of every route: a 400 naming the field; nothing changes", async () => {
    const before = await stateCounts();
    const metrics0 = await gatewayMetrics(platform);
    let cases = 0;
    for (const r of BODY_ROUTES) {
      const body = r.body!();
      for (const at of paths(body).strings) {
        for (const bad of BAD) {
          const a = await send(r.method, r.path(), withRawAt(body, at, JSON.stringify(bad)));
          const what = `${r.method} ${r.path()} ${at.join(".")} ${JSON.stringify(bad)}`;
          expectClean(a, what);
          expect(a.status, what).toBe(400);
          const param = at.map((k, i) => (typeof k === "number" ? `[${k}]` : i === 0 ? k : `.${k}`)).join("");
          expect((a.json as { error: { param: string } }).error.param, what).toBe(param);
          cases++;
        }
      }
    }
    console.log(`[edge-input] ${cases} bad-text cases`);
    expect(cases).toBeGreaterThan(60);
    expect(await stateCounts()).toEqual(before);
    expect(metricSum(await gatewayMetrics(platform), "gateway_placements_total")).toBe(metricSum(metrics0, "gateway_placements_total"));
  }, 300_000);

  it("finding 4: model with NUL (plain, NAME:VERSION, deploy_id:) is a 400, not 503 'temporarily unavailable'", async () => {
    for (const model of [`${MODEL}\u0000`, `${MODEL}:\u00001`, "deploy_id:\u0000", `${MODEL}\ud800`]) {
      for (const [path, rest] of [
        ["/v1/openai/chat/completions", { messages: [{ role: "user", content: "hi" }] }],
        ["/v1/openai/completions", { prompt: "x" }],
        ["/v1/openai/embeddings", { input: "x" }],
      ] as const) {
        const a = await send("POST", path, JSON.stringify({ model, ...rest }));
        expect(a.status, `${path} ${JSON.stringify(model)}`).toBe(400);
        expect((a.json as { error: { param: string } }).error.param).toBe("model");
      }
    }
  });

  it("finding 4: path ids, names and query values with %00 or an encoded surrogate: a 4xx (%00: a 400), nothing changes", async () => {
    const before = await stateCounts();
    const segs = ["%00", "a%00b", "x%ED%A0%80", "%ED%B0%80"];
    const urls: [string, string][] = [];
    for (const s of segs) {
      urls.push(
        ["GET", `/deploy/${s}`],
        ["PUT", `/deploy/${s}`],
        ["DELETE", `/deploy/${s}`],
        ["POST", `/deploy/${s}/stop`],
        ["POST", `/deploy/${s}/start`],
        ["GET", `/models/${s}/versions`],
        ["GET", `/v1/openai/models/${s}`],
        ["GET", `/v1/openai/responses/${s}`],
        ["DELETE", `/v1/openai/responses/${s}`],
        ["GET", `/v1/openai/responses/${s}/input_items`],
        ["GET", `/v1/openai/responses/resp_x/input_items?after=${s}`],
        ["DELETE", `/admin/api-keys/${s}`],
        ["GET", `/admin/api-keys?tenant_id=${s}`],
        ["GET", `/v1/usage?tenant_id=${s}`],
        ["GET", `/v1/usage?from=${s}`],
        ["GET", `/deploy/list?status=${s}`],
      );
    }
    for (const [method, url] of urls) {
      const a = await send(method, url, method === "PUT" ? JSON.stringify({ settings: { min_instances: 1 } }) : undefined);
      expectClean(a, `${method} ${url}`);
      if (url.includes("%00")) expect(a.status, `${method} ${url}: ${a.text}`).toBe(400);
      else expect(a.status, `${method} ${url}: ${a.text}`).toBeGreaterThanOrEqual(400);
    }
    expect(await stateCounts()).toEqual(before);
  });
});

describe("path encoding and limits", () => {
  it("finding 5: path parameters are decoded exactly once (`%25` is a literal %, `%2F` a slash)", async () => {
    const a = await send("GET", "/models/%25/versions");
    expect(a.status, a.text).toBe(404);
    expectClean(a, "%25");
    const b = await send("GET", `/models/${encodeURIComponent(MODEL)}/versions`);
    expect(b.status, b.text).toBe(200);
    expect((b.json as { model_name: string }[])[0]?.model_name).toBe(MODEL);
    const c = await send("GET", `/models/${MODEL}/versions`);
    expect(c.status).toBe(200);
  });

  it("percent-encoded tricks are answered cleanly: bad escapes, dot segments, overlong UTF-8", async () => {
    for (const seg of ["%", "%zz", "%2e%2e", "..%2F..%2Fadmin", "%C0%AF", "%E0%80%AF", "%FF", "%25252525"]) {
      for (const [method, url] of [
        ["GET", `/deploy/${seg}`],
        ["GET", `/models/${seg}/versions`],
        ["DELETE", `/admin/api-keys/${seg}`],
        ["GET", `/v1/openai/models/${seg}`],
      ] as const) {
        const a = await send(method, url);
        expectClean(a, `${method} ${url}`);
        expect(a.status, `${method} ${url}`).toBeGreaterThanOrEqual(400);
      }
    }
  });

  it("finding 6: a 10 kB path id is a 414 in OpenAI's error shape", async () => {
    for (const [method, url] of [
      ["GET", `/deploy/${"x".repeat(10_000)}`],
      ["DELETE", `/admin/api-keys/${"k".repeat(10_000)}`],
      ["POST", `/deploy/${"x".repeat(10_000)}/stop`],
    ] as const) {
      const a = await send(method, url);
      expect(a.status, url.slice(0, 40)).toBe(414);
      expectClean(a, url.slice(0, 40));
    }
    const q = await send("GET", `/v1/usage?tenant_id=${"t".repeat(10_000)}`);
    expect(q.status).toBe(400);
    expectClean(q, "long query");
  });
});

describe("request ids: the platform's own; the client's is only a correlation field", () => {
  async function tenantKey(name: string): Promise<{ key: string; tenantId: string }> {
    const t = await send("POST", "/admin/tenants", JSON.stringify({ name }));
    expect(t.status).toBe(201);
    const tenantId = (t.json as { id: string }).id;
    const k = await send("POST", "/admin/api-keys", JSON.stringify({ tenant_id: tenantId, name: "k", scopes: ["inference"] }));
    expect(k.status).toBe(201);
    return { key: (k.json as { secret: string }).secret, tenantId };
  }

  async function chat(key: string, headers: Record<string, string>) {
    const t0 = Date.now();
    const res = await fetch(`${platform.openaiURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}`, ...headers },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 3 }),
      signal: AbortSignal.timeout(DEADLINE_MS),
    });
    await res.text();
    return { status: res.status, id: res.headers.get("x-request-id") ?? "", client: res.headers.get("x-client-request-id"), ms: Date.now() - t0 };
  }

  it("finding 1: tenants sharing an x-request-id, at once or one after the other, and a client retrying with its id, are all answered", async () => {
    const a = await tenantKey("ids-a");
    const b = await tenantKey("ids-b");
    const answered: { status: number; id: string; client: string | null }[] = [];
    // One after the other: B, then A with B's id (A used to wait 30 s and more, re-queued again and again).
    answered.push(await chat(b.key, { "x-request-id": "shared-id-0001" }));
    answered.push(await chat(a.key, { "x-request-id": "shared-id-0001" }));
    // At once.
    answered.push(...(await Promise.all([chat(a.key, { "x-request-id": "shared-id-0002" }), chat(b.key, { "x-request-id": "shared-id-0002" })])));
    // A retry with the id sent before; OpenAI's own header too.
    answered.push(await chat(a.key, { "x-request-id": "shared-id-0001" }));
    answered.push(await chat(a.key, { "x-client-request-id": "shared-id-0001" }));
    for (const r of answered) {
      expect(r.status).toBe(200);
      expect(r.id).toMatch(/^req_[0-9a-f]{24}$/);
      expect(r.client).toMatch(/^shared-id-000[12]$/);
    }
    expect(new Set(answered.map((r) => r.id)).size).toBe(answered.length);
    // Usage counts each request once, under the platform's id.
    await new Promise((r) => setTimeout(r, 1000));
    const rows = (await db.query("select request_id from usage_records where request_id = any($1)", [answered.map((r) => r.id)])).rows;
    expect(rows).toHaveLength(answered.length);
    // The engine gets the client's id namespaced by tenant, for its logs and traces.
    const engine = (await engineUrls(platform)).get(MODEL)!;
    const received = ((await (await fetch(`${engine.url}/sim/requests`)).json()) as { data: { headers: Record<string, string> }[] }).data.map(
      (x) => x.headers["x-request-id"],
    );
    expect(received).toContain(`${a.tenantId}:shared-id-0001`);
    expect(received).toContain(`${b.tenantId}:shared-id-0001`);
  });
});
