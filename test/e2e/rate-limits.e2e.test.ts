/**
 * Rate limits end to end, across TWO gateway processes sharing Redis: requests per
 * minute and concurrent requests hold under concurrent load spread over both; every
 * inference response (JSON, stream, 429) carries the x-ratelimit-* headers; a 429 has
 * Retry-After and retry-after-ms, and the official client with its default retries
 * succeeds once the bucket has room again.
 */
import OpenAI from "openai";
import { afterAll, describe, expect } from "vitest";
import { startExtraGateway, type ExtraGateway, type Platform } from "@infera/testkit";
import { platformTest } from "@infera/testkit/fixtures";

const MODEL = "meta-llama/Meta-Llama-3-8B-Instruct";

let platform: Platform;
let gw2: ExtraGateway;
let tenantId: string;

async function newKey(limits: Record<string, number>): Promise<string> {
  const r = await fetch(`${platform.baseURL}/admin/api-keys`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${platform.adminKey}` },
    body: JSON.stringify({ tenant_id: tenantId, name: "limited", scopes: ["inference"], ...limits }),
  });
  expect(r.status).toBe(201);
  return ((await r.json()) as { secret: string }).secret;
}

interface Result {
  status: number;
  headers: Headers;
  startedAt: number;
  endedAt: number;
  body: string;
}

async function call(base: string, key: string, extra: Record<string, unknown> = {}): Promise<Result> {
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 2, ...extra }),
  });
  const startedAt = performance.now();
  const body = await r.text();
  return { status: r.status, headers: r.headers, startedAt, endedAt: performance.now(), body };
}

const test = platformTest({ label: "ratelimits", env: { SIM_ITL_MS: "10" } });

test.beforeAll(async ({ platform: started }) => {
  platform = started;
  gw2 = await startExtraGateway(platform);
  const t = await fetch(`${platform.baseURL}/admin/tenants`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${platform.adminKey}` },
    body: JSON.stringify({ name: "limited-co" }),
  });
  tenantId = ((await t.json()) as { id: string }).id;
}, 120_000);

afterAll(async () => {
  await gw2?.stop();
});

describe("headers", () => {
  test("are on JSON answers and on streams, counting down; a key without limits has none", async () => {
    // rpm 2 refills one request every 30 s: the count is the same however slow the machine is.
    const key = await newKey({ rpm: 2, tpm: 100_000 });
    const a = await call(platform.baseURL, key);
    expect(a.status).toBe(200);
    expect(a.headers.get("x-ratelimit-limit-requests")).toBe("2");
    expect(a.headers.get("x-ratelimit-remaining-requests")).toBe("1");
    expect(a.headers.get("x-ratelimit-reset-requests")).toMatch(/^(\d+ms|[\d.]+s)$/);
    expect(a.headers.get("x-ratelimit-limit-tokens")).toBe("100000");
    expect(Number(a.headers.get("x-ratelimit-remaining-tokens"))).toBeLessThan(100_000);
    expect(a.headers.get("x-ratelimit-reset-tokens")).toMatch(/^(\d+ms|[\d.]+s)$/);
    const s = await call(gw2.baseURL, key, { stream: true });
    expect(s.status).toBe(200);
    expect(s.headers.get("content-type")).toContain("text/event-stream");
    expect(s.headers.get("x-ratelimit-remaining-requests")).toBe("0"); // the other gateway, the same bucket
    expect(s.headers.get("x-ratelimit-limit-tokens")).toBe("100000");
    const unlimited = await call(platform.baseURL, platform.adminKey);
    expect(unlimited.status).toBe(200);
    expect(unlimited.headers.get("x-ratelimit-limit-requests")).toBeNull();
  });
});

describe("limits hold across two gateway processes", () => {
  test("rpm: concurrent load on both gateways admits the bucket and no more; the rest are 429s with headers", async () => {
    const key = await newKey({ rpm: 20 }); // 20 at once, then one every 3 s
    const t0 = performance.now();
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => call(i % 2 ? gw2.baseURL : platform.baseURL, key)));
    const elapsedS = (performance.now() - t0) / 1000;
    const ok = results.filter((r) => r.status === 200);
    const limited = results.filter((r) => r.status === 429);
    expect(ok.length + limited.length).toBe(60);
    expect(ok.length).toBeGreaterThanOrEqual(20);
    expect(ok.length).toBeLessThanOrEqual(20 + Math.floor(elapsedS / 3) + 1);
    for (const r of limited) {
      expect(JSON.parse(r.body)).toMatchObject({ error: { type: "rate_limit_error", code: "rate_limit_exceeded" } });
      expect(r.headers.get("x-ratelimit-limit-requests")).toBe("20");
      expect(r.headers.get("x-ratelimit-remaining-requests")).toBe("0");
      const ms = Number(r.headers.get("retry-after-ms"));
      expect(ms).toBeGreaterThan(0);
      expect(ms).toBeLessThanOrEqual(3000);
      expect(r.headers.get("retry-after")).toBe(String(Math.ceil(ms / 1000)));
    }
    // Both gateways answered both ways: the bucket is shared, not per process.
    expect(new Set(results.map((r, i) => `${i % 2}:${r.status}`)).size).toBe(4);
  });

  test("max_concurrent: streams spread over both gateways never overlap beyond the limit", async () => {
    const key = await newKey({ max_concurrent: 3 });
    // ~1.5 s each (150 tokens, 10 ms apart).
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => call(i % 2 ? gw2.baseURL : platform.baseURL, key, { stream: true, max_tokens: 150 })),
    );
    const ok = results.filter((r) => r.status === 200);
    const limited = results.filter((r) => r.status === 429);
    expect(ok.length).toBeGreaterThanOrEqual(3);
    expect(limited.length).toBeGreaterThan(0);
    for (const r of limited) expect(JSON.parse(r.body).error.message).toContain("concurrent");
    // Admitted streams, as the clients saw them: at most 3 open at any moment.
    const events = ok.flatMap((r) => [
      { t: r.startedAt, d: 1 },
      { t: r.endedAt, d: -1 },
    ]);
    events.sort((a, b) => a.t - b.t || a.d - b.d);
    let open = 0;
    let most = 0;
    for (const e of events) {
      open += e.d;
      most = Math.max(most, open);
    }
    expect(most).toBeLessThanOrEqual(3);
    for (const r of ok) expect(r.body).toContain("data: [DONE]");
  });
});

describe("the official client", () => {
  test("with its default retries, succeeds once the window frees", async () => {
    const key = await newKey({ rpm: 12 }); // one request frees every 5 s
    let first429: Result | undefined;
    for (let i = 0; i < 40 && !first429; i++) {
      const r = await call(platform.baseURL, key);
      if (r.status === 429) first429 = r;
    }
    expect(first429).toBeDefined();
    let attempts = 0;
    const counting: typeof fetch = (input, init) => {
      attempts++;
      return fetch(input, init);
    };
    const strict = new OpenAI({ apiKey: key, baseURL: gw2.openaiURL, maxRetries: 0 });
    await expect(strict.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 2 })).rejects.toBeInstanceOf(
      OpenAI.RateLimitError,
    );
    const patient = new OpenAI({ apiKey: key, baseURL: gw2.openaiURL, fetch: counting }); // default: 2 retries
    const t0 = Date.now();
    const done = await patient.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
    expect(done.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(attempts).toBeGreaterThan(1); // it was refused first, waited as told, then admitted
    expect(Date.now() - t0).toBeLessThan(15_000);
  });
});
