/**
 * Hostile input against the admin and deploy APIs, from a seeded PRNG (FUZZ_SEED to replay,
 * FUZZ_CASES for more), through a real gateway on real Postgres and Redis (no scheduler: a
 * deployment that gets through is a row, nothing starts): valid requests mutated field by
 * field, random bodies, raw broken JSON, hostile path ids (traversal, SQL, huge, other
 * tenants' objects), random query strings, and every kind of key (admin, a tenant's deploy
 * key, an inference-only key, a bogus one, none). Every answer is below 500 and OpenAI's
 * error JSON when it is an error; every refusal leaves the registry and the keys' Redis
 * state exactly as they were (the audit trail alone records a refusal).
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@infera/core";
import { createApiKey, createDb, createTenant } from "@infera/registry";
import { createTestDatabase, flushPrefix, TEST_REDIS_URL, testRedisPrefix, type TestDatabase } from "@infera/testkit";
import { createRng } from "../../services/engine-sim/src/random.ts";
import { startGateway, type RunningGateway } from "../../services/gateway/src/app.ts";
import { loadConfig } from "../../services/gateway/src/config.ts";
import { isOpenAIError } from "../faults/harness.ts";

const SEED = Number(process.env.FUZZ_SEED ?? 20261202);
const CASES = Number(process.env.FUZZ_CASES ?? 400);
const ADMIN = "sk-fuzz-admin-000000000000000000";
const prefix = testRedisPrefix("admin-fuzz");

let tdb: TestDatabase;
let db: ReturnType<typeof createDb>;
let redis: Redis;
let gateway: RunningGateway;
const ids = { tenant: "", otherTenant: "", victimKey: "", deployment: "", otherDeployment: "" };
const keys = { deploy: "", inference: "" };

beforeAll(async () => {
  tdb = await createTestDatabase("admin-fuzz");
  const config = loadConfig({
    DATABASE_URL: tdb.url,
    REDIS_URL: TEST_REDIS_URL,
    REDIS_PREFIX: prefix,
    PORT: "0",
    HOST: "127.0.0.1",
    BOOTSTRAP_ADMIN_KEY: ADMIN,
    DEPLOY_POLICY: JSON.stringify({ tenantGpuQuota: 8 }),
    SECRETS_KEY: "fuzz-secrets-key",
  });
  gateway = await startGateway(config, createLogger({ service: "test", level: "silent" }));
  db = createDb(tdb.url, { max: 2 });
  redis = new Redis(TEST_REDIS_URL);
  const t = await createTenant(db, "fuzz-co");
  const other = await createTenant(db, "other-co");
  ids.tenant = t.id;
  ids.otherTenant = other.id;
  keys.deploy = (await createApiKey(db, { tenantId: t.id, name: "deployer", scopes: ["deploy"] })).secret;
  keys.inference = (await createApiKey(db, { tenantId: t.id, name: "inference", scopes: ["inference"] })).secret;
  ids.victimKey = (await createApiKey(db, { tenantId: t.id, name: "victim", scopes: ["inference"] })).key.id;
  const mine = await send({ method: "POST", path: "/deploy/llm", body: JSON.stringify({ model_name: "mine", gpu: "L4" }), key: keys.deploy });
  ids.deployment = (mine.json as { deploy_id: string }).deploy_id;
  const otherKey = (await createApiKey(db, { tenantId: other.id, name: "other", scopes: ["deploy"] })).secret;
  const theirs = await send({ method: "POST", path: "/deploy/llm", body: JSON.stringify({ model_name: "theirs", gpu: "L4" }), key: otherKey });
  ids.otherDeployment = (theirs.json as { deploy_id: string }).deploy_id;
  expect([ids.deployment, ids.otherDeployment]).toEqual([expect.stringMatching(/^dep_/), expect.stringMatching(/^dep_/)]);
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  redis?.disconnect();
  await db?.destroy();
  await flushPrefix(prefix);
  await tdb?.drop();
});

interface Case {
  method: string;
  path: string;
  body?: string;
  key: string | null;
}
interface Answer {
  status: number;
  json: unknown;
  text: string;
}

async function send(c: Case): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (c.key !== null) headers.authorization = `Bearer ${c.key}`;
  if (c.body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(`http://127.0.0.1:${gateway.port}${c.path}`, { method: c.method, headers, body: c.body, signal: AbortSignal.timeout(10_000) });
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, text };
}

/** Everything a refused request must leave as it was: the registry's rows and the keys' Redis state. */
async function snapshot(): Promise<string> {
  const [tenants, apiKeys, profiles, grants, deployments, events, versions] = await Promise.all([
    db.selectFrom("tenants").selectAll().orderBy("id").execute(),
    db.selectFrom("api_keys").selectAll().orderBy("id").execute(),
    db.selectFrom("engine_profiles").selectAll().orderBy("name").execute(),
    db.selectFrom("tenant_deploy_grants").selectAll().orderBy("tenant_id").execute(),
    db.selectFrom("deployments").selectAll().orderBy("id").execute(),
    db.selectFrom("deployment_events").select("id").orderBy("id").execute(),
    db.selectFrom("model_versions").select("id").orderBy("id").execute(),
  ]);
  const revoked = (await redis.smembers(`${prefix}:keys:revoked`)).sort();
  const states = (await redis.keys(`${prefix}:keys:state:*`)).sort();
  return JSON.stringify({ tenants, apiKeys, profiles, grants, deployments, events: events.length, versions: versions.length, revoked, states });
}

const HOSTILE = [
  "",
  " ",
  "../../etc/passwd",
  "..%2f..%2f",
  "' OR 1=1 --",
  '"; DROP TABLE tenants; --',
  "a".repeat(3000),
  "🤖".repeat(40),
  "__proto__",
  "constructor",
  "-1",
  "1e309",
  "0x10",
  "$(id)",
  "\\",
  "\u202e",
  "<script>alert(1)</script>",
  "*",
  "%",
  "null",
  "ten_" + "z".repeat(200),
];

type Rng = () => number;
const pick = <T>(rnd: Rng, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;

function randomValue(rnd: Rng, depth = 0): unknown {
  switch (Math.floor(rnd() * (depth > 2 ? 6 : 8))) {
    case 0:
      return null;
    case 1:
      return rnd() < 0.5;
    case 2:
      return pick(rnd, [0, -1, 1, 8, 65, 2 ** 31, 2 ** 53 + 1, 1e308, -1e308, 3.5, 1e-300]);
    case 3:
    case 4:
      return pick(rnd, HOSTILE);
    case 5:
      return pick(rnd, ["vllm", "tgi", "L4", "admin", "deploy", "inference", "--trust-remote-code", "img@sha256:" + "a".repeat(64)]);
    case 6: {
      const items: unknown[] = [];
      while (items.length < 4 && rnd() < 0.6) items.push(randomValue(rnd, depth + 1));
      return items;
    }
    default: {
      // `__proto__` as an own key, as JSON.parse makes it (an assignment would set the prototype).
      const keys = ["name", "flag", "pattern", "repo", "token", "min_instances", "x", "__proto__"].filter(() => rnd() < 0.3);
      return JSON.parse(JSON.stringify(Object.fromEntries(keys.map((k) => [k, randomValue(rnd, depth + 1)]))));
    }
  }
}

/** One field of the body (or of an object in it), replaced or removed; `__proto__` becomes an own key, as JSON.parse makes it. */
function mutateAt(rnd: Rng, o: Record<string, unknown>): void {
  const fields = Object.keys(o);
  const f =
    rnd() < 0.2 || fields.length === 0
      ? pick(rnd, ["extra", "config", "__proto__", "tenant_id", "scopes", "container_image", "extra_args", "profile"])
      : pick(rnd, fields);
  const v = Object.hasOwn(o, f) ? o[f] : undefined;
  if (v !== null && typeof v === "object" && !Array.isArray(v) && rnd() < 0.5) mutateAt(rnd, v as Record<string, unknown>);
  else if (rnd() < 0.25) delete o[f];
  else Object.defineProperty(o, f, { value: randomValue(rnd), enumerable: true, writable: true, configurable: true });
}

const PROFILE = {
  engine: "vllm",
  image: null,
  allowed_args: [{ flag: "--max-model-len", pattern: "[0-9]+" }],
  gpu_types: ["L4"],
  max_num_gpus: 1,
  max_instances: 2,
};

/** The routes, each with a valid request to start from. */
function routes(rnd: Rng): { method: string; path: (id: string) => string; ids: () => string[]; body?: () => Record<string, unknown>; query?: string[] }[] {
  const hostileIds = () => [...HOSTILE.map(encodeURIComponent), ids.tenant, ids.otherTenant, ids.victimKey, ids.deployment, ids.otherDeployment, "vllm", "tgi"];
  const tenantIds = () => [ids.tenant, ids.otherTenant, ...hostileIds()];
  return [
    { method: "POST", path: () => "/admin/tenants", ids: () => [""], body: () => ({ name: `t${Math.floor(rnd() * 1e6)}` }) },
    { method: "GET", path: () => "/admin/api-keys", ids: () => [""], query: ["tenant_id"] },
    {
      method: "POST",
      path: () => "/admin/api-keys",
      ids: () => [""],
      body: () => ({ tenant_id: ids.tenant, name: "k", scopes: ["inference"], expires_at: 4_000_000_000, models: ["a/b"], monthly_token_budget: 10 }),
    },
    {
      method: "PATCH",
      path: (id) => `/admin/api-keys/${id}`,
      ids: () => [ids.victimKey, ...hostileIds()],
      body: () => ({ name: "v", expires_at: 4_000_000_000, monthly_token_budget: 5 }),
    },
    { method: "POST", path: (id) => `/admin/api-keys/${id}/rotate`, ids: () => [ids.victimKey, ...hostileIds()], body: () => ({ grace_seconds: 60 }) },
    { method: "DELETE", path: (id) => `/admin/api-keys/${id}`, ids: hostileIds },
    { method: "POST", path: () => "/admin/engine-profiles", ids: () => [""], body: () => ({ name: `p${Math.floor(rnd() * 1e6)}`, ...PROFILE }) },
    {
      method: "PUT",
      path: (id) => `/admin/engine-profiles/${id}`,
      ids: () => ["vllm", "tgi", ...hostileIds()],
      body: () => ({ ...PROFILE, max_instances: 64, max_num_gpus: 8, gpu_types: [] }),
    },
    { method: "DELETE", path: (id) => `/admin/engine-profiles/${id}`, ids: hostileIds },
    { method: "GET", path: (id) => `/admin/tenants/${id}/deploy-grant`, ids: tenantIds },
    {
      method: "PUT",
      path: (id) => `/admin/tenants/${id}/deploy-grant`,
      ids: tenantIds,
      body: () => ({ container_image: false, extra_args: false, gpu_quota: 8 }),
    },
    {
      method: "GET",
      path: () => "/admin/audit",
      ids: () => [""],
      query: ["actor_key_id", "tenant_id", "action", "target_id", "outcome", "since", "until", "after", "limit"],
    },
    {
      method: "POST",
      path: () => "/deploy/llm",
      ids: () => [""],
      body: () => ({
        model_name: `m${Math.floor(rnd() * 1e6)}`,
        gpu: "L4",
        profile: "vllm",
        extra_args: ["--max-model-len=4096"],
        settings: { min_instances: 0, max_instances: 1 },
        hf: { repo: "org/m", token: "hf_fuzzSecret" },
      }),
    },
    {
      method: "PUT",
      path: (id) => `/deploy/${id}`,
      ids: () => [ids.deployment, ...hostileIds()],
      body: () => ({ settings: { min_instances: 0, max_instances: 1 } }),
    },
    { method: "POST", path: (id) => `/deploy/${id}/stop`, ids: () => [ids.deployment, ...hostileIds()] },
    { method: "POST", path: (id) => `/deploy/${id}/start`, ids: () => [ids.deployment, ...hostileIds()] },
    { method: "DELETE", path: (id) => `/deploy/${id}`, ids: () => [ids.otherDeployment, ...hostileIds()] },
    { method: "GET", path: () => "/deploy/list", ids: () => [""], query: ["status"] },
    { method: "GET", path: () => "/deploy/llm/profiles", ids: () => [""] },
  ];
}

function makeCase(rnd: Rng): Case {
  const r = pick(rnd, routes(rnd));
  const id = rnd() < 0.4 ? r.ids()[0]! : pick(rnd, r.ids());
  let path = r.path(id);
  if (r.query || rnd() < 0.2) {
    const params: string[] = [];
    for (let i = Math.floor(rnd() * 4); i > 0; i--) {
      const k = rnd() < 0.8 && r.query ? pick(rnd, r.query) : pick(rnd, ["x", "__proto__", "limit[]", "a".repeat(300)]);
      const v = rnd() < 0.3 ? pick(rnd, ["1", "20", "ok", "denied", "running", "0", ids.tenant]) : String(randomValue(rnd));
      params.push(`${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
    }
    if (params.length) path += `?${params.join("&")}`;
  }
  let body: string | undefined;
  if (r.body) {
    const kind = rnd();
    if (kind < 0.1) body = JSON.stringify(randomValue(rnd));
    else if (kind < 0.15) body = pick(rnd, ["{", "[1,", '{"name":', "nul", '{"a":1}}', "\u00ff\u00fe"]);
    else {
      const o = structuredClone(r.body());
      if (kind < 0.85) for (let i = 1 + Math.floor(rnd() * 2); i > 0; i--) mutateAt(rnd, o);
      body = JSON.stringify(o);
    }
  } else if (r.method !== "GET" && rnd() < 0.1) body = JSON.stringify(randomValue(rnd));
  const key = pick(rnd, [ADMIN, ADMIN, keys.deploy, keys.deploy, keys.inference, "sk-bogus-0000000000000000", null]);
  return { method: r.method, path, body, key };
}

describe("hostile input: the admin and deploy APIs", () => {
  it("answers every case below 500 in OpenAI's error shape, and a refusal changes nothing", async () => {
    const rnd = createRng(SEED);
    const statuses: Record<number, number> = {};
    let state = await snapshot();
    for (let i = 0; i < CASES; i++) {
      const c = makeCase(rnd);
      const a = await send(c);
      const what = `case ${i} (${c.key === ADMIN ? "admin" : c.key === keys.deploy ? "deploy" : c.key === keys.inference ? "inference" : String(c.key).slice(0, 8)}): ${c.method} ${c.path.slice(0, 120)} ${c.body?.slice(0, 200) ?? ""} → ${a.status} ${a.text.slice(0, 200)}`;
      statuses[a.status] = (statuses[a.status] ?? 0) + 1;
      if (process.env.FUZZ_TRACE) console.log(what);
      expect(a.status, what).toBeLessThan(500);
      const next = await snapshot();
      if (a.status >= 400) {
        expect(isOpenAIError(a.json), what).toBe(true);
        expect(next === state, `${what}: the refusal changed the registry`).toBe(true);
      }
      state = next;
    }
    console.log(`admin/deploy fuzz (seed ${SEED}, ${CASES} cases): ${JSON.stringify(statuses)}`);
    // The test process hosts the gateway: nothing it was sent reached Object.prototype.
    expect(Object.keys(Object.prototype)).toEqual([]);
    // The mix reaches successes, refusals of every kind, and the policy's 403s.
    for (const s of [200, 400, 401, 403, 404]) expect(statuses[s] ?? 0, `status ${s}`).toBeGreaterThan(0);
    // No secret from a body ever reached the audit trail.
    const audit = await db.selectFrom("audit_log").select("details").execute();
    expect(JSON.stringify(audit)).not.toContain("hf_fuzzSecret");
    expect(audit.length).toBeGreaterThan(0);
  }, 240_000);
});
