/**
 * Keys with a lifetime end to end, across TWO gateway processes sharing Postgres and Redis:
 * an expired key, a key whose expiry an admin moved to now, a spent monthly budget and a
 * rotated-out secret past its grace are refused on the other gateway within a second, with
 * OpenAI's codes (401 invalid_api_key, 429 insufficient_quota); a key's model allow-list
 * makes every other model a 404 model_not_found.
 */
import { afterAll, describe, expect } from "vitest";
import { callJson, startExtraGateway, type ExtraGateway, type JsonAnswer, type Platform } from "@infera/testkit";
import { platformTest } from "@infera/testkit/fixtures";

const MODEL = "meta-llama/Meta-Llama-3-8B-Instruct";

let platform: Platform;
let gw2: ExtraGateway;
let tenantId = "";

interface Body extends Record<string, unknown> {
  usage?: { total_tokens: number };
  data?: { id: string }[];
  id?: string;
  secret?: string;
}
type Answer = JsonAnswer<Body>;

const call = (base: string, method: string, path: string, key: string, body?: unknown): Promise<Answer> => callJson<Body>(`${base}${path}`, method, key, body);

const admin = (method: string, path: string, body?: unknown) => call(platform.baseURL, method, path, platform.adminKey, body);
const chat = (base: string, key: string, model = MODEL) =>
  call(base, "POST", "/v1/chat/completions", key, { model, messages: [{ role: "user", content: "hi" }], max_tokens: 2 });

async function newKey(fields: Record<string, unknown> = {}): Promise<{ id: string; secret: string }> {
  const r = await admin("POST", "/admin/api-keys", { tenant_id: tenantId, name: "lifetime", scopes: ["inference"], ...fields });
  expect(r.status, JSON.stringify(r.json)).toBe(201);
  return { id: r.json.id!, secret: r.json.secret! };
}

/** Polls until `refused` holds for an answer; returns the answer and how long after `since` it came. */
async function refusedWithin(since: number, send: () => Promise<Answer>, refused: (a: Answer) => boolean, limitMs = 5000) {
  for (;;) {
    const a = await send();
    if (refused(a)) {
      console.log(`refused ${Date.now() - since} ms after the change (${a.status} ${a.json.error?.code})`);
      return { answer: a, ms: Date.now() - since };
    }
    if (Date.now() - since > limitMs) throw new Error(`still served after ${limitMs} ms: ${a.status} ${JSON.stringify(a.json).slice(0, 200)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const test = platformTest({ label: "keylife", env: { SIM_ITL_MS: "5" } });

test.beforeAll(async ({ platform: started }) => {
  platform = started;
  gw2 = await startExtraGateway(platform);
  const t = await admin("POST", "/admin/tenants", { name: "lifetime-co" });
  tenantId = t.json.id!;
}, 120_000);

afterAll(async () => {
  await gw2?.stop();
});

describe("a key's expiry", () => {
  test("an expired key is refused 401 invalid_api_key on the other gateway within a second of expiring", async () => {
    const expiresAt = Math.ceil(Date.now() / 1000) + 3;
    const k = await newKey({ expires_at: expiresAt });
    expect((await chat(gw2.baseURL, k.secret)).status).toBe(200);
    const r = await refusedWithin(
      expiresAt * 1000,
      () => chat(gw2.baseURL, k.secret),
      (a) => a.status === 401,
      8000,
    );
    expect(r.ms).toBeLessThan(1000);
    expect(r.answer.json.error).toEqual({ message: "This API key has expired.", type: "invalid_request_error", param: null, code: "invalid_api_key" });
    expect((await admin("POST", "/admin/api-keys", { tenant_id: tenantId, name: "x", scopes: ["inference"], expires_at: 1 })).json.error?.param).toBe(
      "expires_at",
    );
  }, 30_000);

  test("an expiry an admin moves to now on one gateway holds on the other within a second", async () => {
    const k = await newKey();
    expect((await chat(gw2.baseURL, k.secret)).status).toBe(200);
    const patched = await admin("PATCH", `/admin/api-keys/${k.id}`, { expires_at: Math.floor(Date.now() / 1000) });
    expect(patched.status, JSON.stringify(patched.json)).toBe(200);
    const since = Date.now();
    const r = await refusedWithin(
      since,
      () => chat(gw2.baseURL, k.secret),
      (a) => a.status === 401,
    );
    expect(r.ms).toBeLessThan(1000);
    expect(r.answer.json.error?.code).toBe("invalid_api_key");
  }, 30_000);
});

describe("a key's monthly token budget", () => {
  test("once spent on one gateway, the other answers 429 insufficient_quota within a second", async () => {
    const k = await newKey({ monthly_token_budget: 60 });
    let used = 0;
    let spentAt = 0;
    for (let i = 0; i < 30 && used < 60; i++) {
      const a = await chat(platform.baseURL, k.secret);
      expect(a.status, JSON.stringify(a.json)).toBe(200);
      used += a.json.usage?.total_tokens ?? 0;
      spentAt = Date.now();
    }
    expect(used).toBeGreaterThanOrEqual(60);
    const r = await refusedWithin(
      spentAt,
      () => chat(gw2.baseURL, k.secret),
      (a) => a.status === 429,
    );
    expect(r.ms).toBeLessThan(1000);
    expect(r.answer.json.error).toMatchObject({ type: "insufficient_quota", code: "insufficient_quota", param: null });
    expect(r.answer.json.error?.message).toMatch(/exceeded your current quota/);
    // And the first gateway too; raising the budget lets the key through again on both.
    expect((await chat(platform.baseURL, k.secret)).json.error?.code).toBe("insufficient_quota");
    expect((await admin("PATCH", `/admin/api-keys/${k.id}`, { monthly_token_budget: 100_000 })).json.monthly_token_budget).toBe(100_000);
    expect((await chat(gw2.baseURL, k.secret)).status).toBe(200);
  }, 60_000);
});

describe("a key's model allow-list", () => {
  test("any other model is 404 model_not_found, as for a model that does not exist; /v1/models lists only its own", async () => {
    const narrow = await newKey({ models: ["acme/something-else"] });
    const a = await chat(gw2.baseURL, narrow.secret);
    expect(a.status).toBe(404);
    expect(a.json.error).toEqual({
      message: `The model '${MODEL}' does not exist or you do not have access to it.`,
      type: "invalid_request_error",
      param: "model",
      code: "model_not_found",
    });
    expect((await call(gw2.baseURL, "GET", "/v1/models", narrow.secret)).json.data).toEqual([]);
    const allowed = await newKey({ models: [MODEL] });
    expect((await chat(gw2.baseURL, allowed.secret)).status).toBe(200);
    expect((await call(gw2.baseURL, "GET", "/v1/models", allowed.secret)).json.data?.map((m) => m.id)).toEqual([MODEL]);
  }, 30_000);
});

describe("rotation", () => {
  test("answers a new secret; the old one works on every gateway for the grace period, then not", async () => {
    const k = await newKey();
    expect((await chat(gw2.baseURL, k.secret)).status).toBe(200);
    // The grace ends 2 s after the gateway rotated: no earlier than 2 s after the call was sent.
    const sentAt = Date.now();
    const rotated = await admin("POST", `/admin/api-keys/${k.id}/rotate`, { grace_seconds: 2 });
    expect(rotated.status, JSON.stringify(rotated.json)).toBe(200);
    const shown = rotated.json.previous_secret_expires_at as number;
    expect(shown).toBeGreaterThanOrEqual(Math.floor((sentAt + 2000) / 1000));
    expect(shown).toBeLessThanOrEqual(Math.ceil((Date.now() + 2000) / 1000));
    const graceEnds = sentAt + 2000;
    expect(rotated.json.id).toBe(k.id);
    expect(rotated.json.secret).not.toBe(k.secret);
    expect((await chat(gw2.baseURL, rotated.json.secret!)).status).toBe(200);
    expect((await chat(gw2.baseURL, k.secret)).status).toBe(200);
    const r = await refusedWithin(
      graceEnds,
      () => chat(gw2.baseURL, k.secret),
      (a) => a.status === 401,
      8000,
    );
    expect(r.ms).toBeLessThan(1000);
    expect((await chat(gw2.baseURL, rotated.json.secret!)).status).toBe(200);
    // A revoked key cannot be rotated back to life.
    expect((await admin("DELETE", `/admin/api-keys/${k.id}`)).status).toBe(200);
    expect((await admin("POST", `/admin/api-keys/${k.id}/rotate`)).status).toBe(409);
  }, 30_000);
});
