/**
 * Tenants and keys end to end: the admin API (validation that changes nothing), keys
 * created, used and revoked — refused within a second on a second gateway process, also
 * when that gateway never hears the revocation message — and isolation: tenant A's key
 * cannot list, read, call, stop or delete tenant B's deployment or private model, or read
 * B's usage; each attempt is a 404. Last, no secret and no prompt text appears in any log.
 */
import { readdirSync, readFileSync } from "node:fs";
import OpenAI from "openai";
import { Redis } from "ioredis";
import { afterAll, describe, expect } from "vitest";
import { createDb, createDeployment, ensureModelVersion, hashSecret } from "@infera/registry";
import { startExtraGateway, waitFor, type ExtraGateway, type Platform } from "@infera/testkit";
import { platformTest } from "@infera/testkit/fixtures";

const MODEL = "meta-llama/Meta-Llama-3-8B-Instruct";
const UNIQUE_PROMPT = `zebra-quokka-${Math.random().toString(36).slice(2)} tell me a secret`;

let platform: Platform;
let gw2: ExtraGateway;
let db: ReturnType<typeof createDb>;
const secrets: string[] = [];

interface Json {
  [k: string]: unknown;
}

async function api(
  base: string,
  method: string,
  path: string,
  key: string | undefined,
  body?: unknown,
  raw?: string,
): Promise<{ status: number; json: Json; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined || raw !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(`${base}${path}`, { method, headers, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
  const text = await r.text();
  return { status: r.status, json: text ? (JSON.parse(text) as Json) : {}, headers: r.headers };
}

function errorOf(j: Json): { message: string; param: string | null; code: string | null } {
  return j.error as { message: string; param: string | null; code: string | null };
}

async function createKey(tenantId: string, scopes: string[], extra: Json = {}): Promise<{ id: string; secret: string }> {
  const r = await api(platform.baseURL, "POST", "/admin/api-keys", platform.adminKey, { tenant_id: tenantId, name: "k", scopes, ...extra });
  expect(r.status, JSON.stringify(r.json)).toBe(201);
  secrets.push(r.json.secret as string);
  return { id: r.json.id as string, secret: r.json.secret as string };
}

async function chat(base: string, key: string, model = MODEL, content = "hi"): Promise<number> {
  const r = await api(base, "POST", "/v1/chat/completions", key, { model, messages: [{ role: "user", content }], max_tokens: 3 });
  return r.status;
}

let tenantA: string;
let tenantB: string;

const test = platformTest({ label: "tenancy" });

test.beforeAll(async ({ platform: started }) => {
  platform = started;
  secrets.push(platform.adminKey);
  db = createDb(platform.databaseUrl, { max: 2 });
  gw2 = await startExtraGateway(platform);
  const a = await api(platform.baseURL, "POST", "/admin/tenants", platform.adminKey, { name: "tenant-a" });
  const b = await api(platform.baseURL, "POST", "/admin/tenants", platform.adminKey, { name: "tenant-b" });
  expect([a.status, b.status]).toEqual([201, 201]);
  tenantA = a.json.id as string;
  tenantB = b.json.id as string;
}, 120_000);

afterAll(async () => {
  await gw2?.stop();
  await db?.destroy();
});

describe("admin API", () => {
  test("creates a key whose secret is shown once, stored only as its SHA-256, listed by prefix only", async () => {
    const r = await api(platform.baseURL, "POST", "/admin/api-keys", platform.adminKey, {
      tenant_id: tenantA,
      name: "ci",
      scopes: ["inference"],
      rpm: 100,
      tpm: 10000,
      max_concurrent: 5,
    });
    expect(r.status).toBe(201);
    const secret = r.json.secret as string;
    secrets.push(secret);
    expect(secret).toMatch(/^sk-[A-Za-z0-9_-]{43}$/); // 32 random bytes
    expect(r.json).toMatchObject({ object: "api_key", tenant_id: tenantA, scopes: ["inference"], rpm: 100, tpm: 10000, max_concurrent: 5, revoked_at: null });
    expect(secret.startsWith((r.json.prefix as string).replace("…", ""))).toBe(true);
    const row = await db
      .selectFrom("api_keys")
      .selectAll()
      .where("id", "=", r.json.id as string)
      .executeTakeFirstOrThrow();
    expect(row.hash).toBe(hashSecret(secret));
    expect(JSON.stringify(row)).not.toContain(secret);

    const list = await api(platform.baseURL, "GET", `/admin/api-keys?tenant_id=${tenantA}`, platform.adminKey);
    expect(list.status).toBe(200);
    const text = JSON.stringify(list.json);
    expect(text).not.toContain(secret);
    expect(text).not.toContain(row.hash);
    const listed = (list.json.data as Json[]).find((k) => k.id === r.json.id)!;
    expect(listed.prefix).toBe(r.json.prefix);
    expect(listed.secret).toBeUndefined();
    expect((list.json.data as Json[]).every((k) => k.tenant_id === tenantA)).toBe(true);

    const tenants = await api(platform.baseURL, "GET", "/admin/tenants", platform.adminKey);
    expect((tenants.json.data as Json[]).map((t) => t.name)).toEqual(expect.arrayContaining(["tenant-a", "tenant-b"]));
  });

  test("answers malformed, invalid and oversized bodies with 400/413 naming the field, and changes nothing", async () => {
    const count = async () =>
      (await db.selectFrom("api_keys").select(db.fn.countAll<string>().as("n")).executeTakeFirstOrThrow()).n +
      "/" +
      (await db.selectFrom("tenants").select(db.fn.countAll<string>().as("n")).executeTakeFirstOrThrow()).n;
    const before = await count();
    const post = (path: string, body?: unknown, raw?: string) => api(platform.baseURL, "POST", path, platform.adminKey, body, raw);
    const cases: [string, unknown, string | undefined, number, string | null][] = [
      ["/admin/tenants", undefined, '{"name": ', 400, null],
      ["/admin/tenants", {}, undefined, 400, "name"],
      ["/admin/tenants", { name: "" }, undefined, 400, "name"],
      ["/admin/tenants", { name: "has space" }, undefined, 400, "name"],
      ["/admin/tenants", { name: "x", extra: 1 }, undefined, 400, "extra"],
      ["/admin/tenants", { name: "tenant-a" }, undefined, 409, "name"],
      ["/admin/api-keys", { tenant_id: tenantA, name: "k" }, undefined, 400, "scopes"],
      ["/admin/api-keys", { tenant_id: tenantA, name: "k", scopes: ["root"] }, undefined, 400, "scopes[0]"],
      ["/admin/api-keys", { tenant_id: tenantA, name: "k", scopes: ["inference"], rpm: -1 }, undefined, 400, "rpm"],
      ["/admin/api-keys", { tenant_id: tenantA, name: "k", scopes: ["inference"], tpm: "many" }, undefined, 400, "tpm"],
      ["/admin/api-keys", { tenant_id: tenantA, name: "k", scopes: ["inference"], max_concurrent: 1.5 }, undefined, 400, "max_concurrent"],
      ["/admin/api-keys", { tenant_id: "ten_nope", name: "k", scopes: ["inference"] }, undefined, 400, "tenant_id"],
      ["/admin/api-keys", { tenant_id: tenantA, name: "x".repeat(40_000), scopes: ["inference"] }, undefined, 413, null],
    ];
    for (const [path, body, raw, status, param] of cases) {
      const r = await post(path, body, raw);
      expect(r.status, `${path} ${raw ?? JSON.stringify(body).slice(0, 80)}`).toBe(status);
      expect(errorOf(r.json).message.length).toBeGreaterThan(0);
      if (param !== null) expect(errorOf(r.json).param, JSON.stringify(body)).toBe(param);
    }
    expect(await count()).toBe(before);
  });

  test("refuses non-admin keys (403) and requests without a valid key (401)", async () => {
    const k = await createKey(tenantA, ["inference", "deploy"]);
    for (const [method, path] of [
      ["GET", "/admin/tenants"],
      ["POST", "/admin/tenants"],
      ["GET", "/admin/api-keys"],
      ["DELETE", `/admin/api-keys/${k.id}`],
    ] as const) {
      const r = await api(platform.baseURL, method, path, k.secret, method === "POST" ? { name: "sneaky" } : undefined);
      expect(r.status, `${method} ${path}`).toBe(403);
      expect(errorOf(r.json).code).toBe("permission_denied");
    }
    expect((await api(platform.baseURL, "GET", "/admin/tenants", undefined)).status).toBe(401);
    expect((await api(platform.baseURL, "GET", "/admin/tenants", "sk-wrong")).status).toBe(401);
    expect(await chat(platform.baseURL, k.secret)).toBe(200); // the key itself works
  });
});

describe("revocation", () => {
  test("a revoked key is refused within a second on every gateway", async () => {
    const k = await createKey(tenantA, ["inference"]);
    // Both gateways know (and cache) the key.
    expect(await chat(platform.baseURL, k.secret)).toBe(200);
    expect(await chat(gw2.baseURL, k.secret)).toBe(200);
    expect((await api(gw2.baseURL, "GET", "/v1/models", k.secret)).status).toBe(200);

    const del = await api(platform.baseURL, "DELETE", `/admin/api-keys/${k.id}`, platform.adminKey);
    expect(del.status).toBe(200);
    expect(del.json).toMatchObject({ id: k.id, deleted: true });
    const at = Date.now();
    let refusedAfter = -1;
    while (Date.now() - at < 3000) {
      const [c, m] = await Promise.all([chat(gw2.baseURL, k.secret), api(gw2.baseURL, "GET", "/v1/models", k.secret).then((r) => r.status)]);
      if (c === 401 && m === 401) {
        refusedAfter = Date.now() - at;
        break;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(refusedAfter).toBeGreaterThanOrEqual(0);
    expect(refusedAfter).toBeLessThan(1000);
    expect(await chat(platform.baseURL, k.secret)).toBe(401);
    const listed = await api(platform.baseURL, "GET", `/admin/api-keys?tenant_id=${tenantA}`, platform.adminKey);
    expect((listed.json.data as Json[]).find((x) => x.id === k.id)?.revoked_at).toBeTypeOf("number");
    expect((await api(platform.baseURL, "DELETE", "/admin/api-keys/key_nope", platform.adminKey)).status).toBe(404);
  });

  test("also when a gateway misses the revocation message", async () => {
    const k = await createKey(tenantA, ["inference"]);
    expect(await chat(gw2.baseURL, k.secret)).toBe(200);
    expect((await api(gw2.baseURL, "GET", "/v1/models", k.secret)).status).toBe(200);
    // Revoke the way DELETE does, but with no message published (as if gw2 was reconnecting).
    await db.updateTable("api_keys").set({ revoked_at: new Date() }).where("id", "=", k.id).execute();
    const redis = new Redis(platform.redisUrl);
    await redis.sadd(`${platform.redisPrefix}:keys:revoked`, k.id);
    redis.disconnect();
    const at = Date.now();
    // Inference is checked in the admission script on every request: refused at once.
    expect(await chat(gw2.baseURL, k.secret)).toBe(401);
    // Other routes consult the revocation set at most a second after the last check.
    let status = 200;
    while (Date.now() - at < 3000 && status !== 401) {
      status = (await api(gw2.baseURL, "GET", "/v1/models", k.secret)).status;
      if (status !== 401) await new Promise((r) => setTimeout(r, 25));
    }
    expect(status).toBe(401);
    expect(Date.now() - at).toBeLessThan(1500);
  });
});

describe("isolation between tenants", () => {
  test("tenant A cannot list, read, call, stop or delete B's deployment or private model, or read B's usage: each a 404", async () => {
    const a = await createKey(tenantA, ["inference", "deploy"]);
    const b = await createKey(tenantB, ["inference", "deploy"]);
    const privateModel = "tenant-b/secret-model";
    const { versionId } = await ensureModelVersion(db, { tenantId: tenantB, name: privateModel, task: "chat", version: "1" });
    const dep = await createDeployment(db, {
      tenantId: tenantB,
      modelVersionId: versionId,
      config: { gpu: "A100-80GB", num_gpus: 1, max_batch_size: 8, engine: "vllm", hf: null, container_image: null, extra_args: [], placement: "least-loaded" },
      settings: { min_instances: 0, max_instances: 1 },
    });
    // B's usage exists.
    expect(await chat(platform.baseURL, b.secret, MODEL, "b's question")).toBe(200);
    // B sees its own things.
    expect((await api(platform.baseURL, "GET", `/deploy/${dep.id}`, b.secret)).status).toBe(200);

    const notFound = async (method: string, path: string, body?: unknown) => {
      const r = await api(platform.baseURL, method, path, a.secret, body);
      expect(r.status, `${method} ${path}: ${JSON.stringify(r.json)}`).toBe(404);
      // Nothing in the answer tells "exists but forbidden" from "does not exist".
      expect(JSON.stringify(r.json)).not.toMatch(/forbidden|permission|belongs/i);
    };
    // Deploy API (routes/deploy.ts).
    await notFound("GET", `/deploy/${dep.id}`);
    await notFound("POST", `/deploy/${dep.id}/stop`);
    await notFound("POST", `/deploy/${dep.id}/start`);
    await notFound("DELETE", `/deploy/${dep.id}`);
    await notFound("PUT", `/deploy/${dep.id}`, { settings: { min_instances: 1, max_instances: 1 } });
    const list = await api(platform.baseURL, "GET", "/deploy/list", a.secret);
    expect(list.status).toBe(200);
    expect(JSON.stringify(list.json)).not.toContain(dep.id);
    // Models and calls.
    const models = await api(platform.baseURL, "GET", "/v1/models", a.secret);
    expect(JSON.stringify(models.json)).not.toContain(privateModel);
    await notFound("GET", `/v1/models/${privateModel}`);
    await notFound("POST", "/v1/chat/completions", { model: privateModel, messages: [{ role: "user", content: "hi" }] });
    await notFound("POST", "/v1/chat/completions", { model: `deploy_id:${dep.id}`, messages: [{ role: "user", content: "hi" }] });
    await notFound("POST", "/v1/completions", { model: `${privateModel}:1`, prompt: "hi" });
    const sdk = new OpenAI({ apiKey: a.secret, baseURL: platform.openaiURL, maxRetries: 0 });
    await expect(sdk.chat.completions.create({ model: privateModel, messages: [{ role: "user", content: "hi" }] })).rejects.toMatchObject({ status: 404 });
    // Usage.
    await notFound("GET", `/v1/usage?tenant_id=${tenantB}`);
    await notFound("GET", "/v1/usage?tenant_id=ten_doesnotexist");
    // B still has all of it: nothing A tried changed anything.
    const bDep = await api(platform.baseURL, "GET", `/deploy/${dep.id}`, b.secret);
    expect(bDep.status).toBe(200);
    expect(bDep.json.status).not.toBe("deleted");
    const bModels = await api(platform.baseURL, "GET", "/v1/models", b.secret);
    expect(JSON.stringify(bModels.json)).toContain(privateModel);
    // The admin may read B's usage; A's own usage holds none of B's keys.
    // Usage is written in batches (250 ms): wait for B's to land.
    const usageOfB = () => api(platform.baseURL, "GET", `/v1/usage?tenant_id=${tenantB}&group_by=key`, platform.adminKey);
    await waitFor("B's usage to be recorded", async () => ((await usageOfB()).json.data as Json[] | undefined)?.some((r) => r.key_id === b.id), {
      timeoutMs: 10_000,
    }).catch(() => {});
    const bUsage = await usageOfB();
    expect(bUsage.status).toBe(200);
    expect((bUsage.json.data as Json[]).map((r) => r.key_id)).toContain(b.id);
    const aUsage = await api(platform.baseURL, "GET", "/v1/usage?group_by=key", a.secret);
    expect(aUsage.status).toBe(200);
    expect(aUsage.json.tenant_id).toBe(tenantA);
    expect(JSON.stringify(aUsage.json)).not.toContain(b.id);
  });
});

describe("logs", () => {
  test("hold no API secret and no prompt text, in any process", async () => {
    const k = await createKey(tenantA, ["inference"]);
    const sdk = new OpenAI({ apiKey: k.secret, baseURL: platform.openaiURL, maxRetries: 0 });
    await sdk.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: UNIQUE_PROMPT }], max_tokens: 4 });
    const stream = await sdk.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: UNIQUE_PROMPT }], max_tokens: 4, stream: true });
    for await (const _ of stream) void _;
    await sdk.completions.create({ model: MODEL, prompt: UNIQUE_PROMPT, max_tokens: 2 });
    // A bad request that echoes nothing of the prompt into logs either.
    await sdk.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: UNIQUE_PROMPT }], temperature: 9 }).catch(() => {});
    const dir = `/tmp/infera-test-logs/${platform.redisPrefix}`;
    const readAll = () => {
      let text = platform.output() + gw2.output();
      for (const f of readdirSync(dir)) text += readFileSync(`${dir}/${f}`, "utf8");
      return text;
    };
    // The processes' lines reach the test through pipes and files: read once nothing more arrives.
    let seen = -1;
    await waitFor(
      "the logs to stop growing",
      () => {
        const n = readAll().length;
        const settled = n === seen;
        seen = n;
        return settled;
      },
      { intervalMs: 250 },
    );
    const all = readAll();
    expect(all.length).toBeGreaterThan(1000);
    expect(all).toContain("api key created"); // the admin API does log, by id
    for (const s of secrets) expect(all.includes(s), "a secret is in the logs").toBe(false);
    expect(all.includes(UNIQUE_PROMPT.split(" ")[0]!), "the prompt is in the logs").toBe(false);
  });
});
