/**
 * The deploy policy through a real gateway (HTTP, Postgres, Redis): a tenant key with the
 * `deploy` scope chooses an engine profile; `container_image`, arguments outside the profile,
 * GPU types, GPUs and instances past it are refused with a 403 naming the field and nothing
 * is created; an admin's grant opens the image or free arguments; the tenant's GPU quota
 * holds on create and on rescale; admin keys keep their old freedom. Every one of those
 * actions, done or refused, is then in the audit trail, secrets redacted.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey, createDb, createTenant, type DB } from "@infera/registry";
import { callJson } from "@infera/testkit";
import type { Kysely } from "kysely";
import type { RunningGateway } from "./app.ts";
import { startTestGateway, type TestGateway } from "./test-gateway.ts";

const ADMIN = "sk-policy-admin-0123456789";
const IMAGE = `registry.example/vllm@sha256:${"b".repeat(64)}`;
let running: TestGateway;
let db: Kysely<DB>;
let gateway: RunningGateway;
let tenantId = "";
let tenantKey = "";
let tenantKeyId = "";

const api = <T = Record<string, unknown>>(method: string, path: string, body?: unknown, key = tenantKey) =>
  callJson<T>(`http://127.0.0.1:${gateway.port}${path}`, method, key, body);

/** Deploys (200 expected) and answers the deployment's config as the API shows it. */
async function deployedConfig(body: Record<string, unknown>, key = tenantKey): Promise<Record<string, unknown>> {
  const r = await api<{ deploy_id: string }>("POST", "/deploy/llm", body, key);
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  return (await api<{ config: Record<string, unknown> }>("GET", `/deploy/${r.json.deploy_id}`)).json.config;
}

async function deploymentCount(): Promise<number> {
  const r = await db
    .selectFrom("deployments")
    .select((eb) => eb.fn.countAll().as("n"))
    .where("tenant_id", "=", tenantId)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

async function refused(body: Record<string, unknown>, param: string, message: RegExp): Promise<void> {
  const before = await deploymentCount();
  const r = await api("POST", "/deploy/llm", { model_name: "m", gpu: "L4", ...body });
  expect(r.status, JSON.stringify(r.json)).toBe(403);
  expect(r.json.error).toMatchObject({ param, type: "invalid_request_error", code: "permission_denied" });
  expect(r.json.error?.message).toMatch(message);
  expect(await deploymentCount()).toBe(before);
}

beforeAll(async () => {
  running = await startTestGateway("policy", {
    BOOTSTRAP_ADMIN_KEY: ADMIN,
    DEPLOY_POLICY: JSON.stringify({ tenantGpuQuota: 6 }),
    SECRETS_KEY: "policy-test-secrets-key",
  });
  gateway = running.gateway;
  db = createDb(running.db.url, { max: 2 });
  const t = await createTenant(db, "policy-co");
  tenantId = t.id;
  const k = await createApiKey(db, { tenantId, name: "deployer", scopes: ["deploy", "inference"] });
  tenantKey = k.secret;
  tenantKeyId = k.key.id;
}, 60_000);

afterAll(async () => {
  await db?.destroy();
  await running?.stop();
});

describe("a tenant key with the deploy scope", () => {
  it("sees the seeded profiles and that it may not set an image or free arguments", async () => {
    const r = await api<{ data: { name: string }[]; grant: Record<string, unknown> }>("GET", "/deploy/llm/profiles");
    expect(r.status).toBe(200);
    expect(r.json.data.map((p) => p.name)).toEqual(["tgi", "vllm"]);
    expect(r.json.grant).toEqual({ container_image: false, extra_args: false, gpu_quota: 6, gpus_in_use: 0 });
  });

  it("is refused container_image with a 403 naming it, and nothing is created", async () => {
    await refused({ container_image: "attacker/miner:latest" }, "container_image", /'container_image' may be set by admin keys only/);
    expect((await api<unknown[]>("GET", "/deploy/list")).json).toEqual([]);
  });

  it("is refused arguments the profile does not list, or values its patterns do not match", async () => {
    await refused({ extra_args: ["--trust-remote-code"] }, "extra_args", /'--trust-remote-code' is not allowed by the engine profile 'vllm'/);
    await refused({ extra_args: ["--max-model-len", "4096 --trust-remote-code"] }, "extra_args", /must match/);
    await refused({ extra_args: ["--served-model-name=x"] }, "extra_args", /not allowed/);
  });

  it("deploys with the profile's arguments; the deployment records the profile", async () => {
    expect(await deployedConfig({ model_name: "tuned", gpu: "L4", extra_args: ["--max-model-len=4096", "--enable-prefix-caching"] })).toMatchObject({
      profile: "vllm",
      engine: "vllm",
      container_image: null,
      extra_args: ["--max-model-len=4096", "--enable-prefix-caching"],
    });
    // Quota: 1 GPU × 1 instance held now.
    expect((await api<{ grant: { gpus_in_use: number } }>("GET", "/deploy/llm/profiles")).json.grant.gpus_in_use).toBe(1);
  });

  it("is held to an operator's profile: its image, GPU types, GPUs and instances", async () => {
    const profile = {
      name: "small-l4",
      engine: "vllm",
      image: IMAGE,
      allowed_args: [{ flag: "--max-model-len", pattern: "[0-9]{1,5}" }],
      gpu_types: ["L4"],
      max_num_gpus: 1,
      max_instances: 2,
    };
    expect((await api("POST", "/admin/engine-profiles", profile)).status).toBe(403);
    const created = await api("POST", "/admin/engine-profiles", profile, ADMIN);
    expect(created.status, JSON.stringify(created.json)).toBe(201);
    expect(created.json).toMatchObject({ object: "engine_profile", name: "small-l4", image: IMAGE, description: null });
    expect((await api("POST", "/admin/engine-profiles", profile, ADMIN)).status).toBe(409);
    const badImage = await api("POST", "/admin/engine-profiles", { ...profile, name: "tagged", image: "vllm/vllm-openai:latest" }, ADMIN);
    expect(badImage.status).toBe(400);
    expect(badImage.json.error?.param).toBe("image");
    const badPattern = await api("POST", "/admin/engine-profiles", { ...profile, name: "bad", allowed_args: [{ flag: "--a", pattern: "(" }] }, ADMIN);
    expect(badPattern.json.error?.param).toBe("allowed_args[0].pattern");

    await refused({ profile: "small-l4", gpu: "A100-80GB" }, "gpu", /allows L4, not 'A100-80GB'/);
    await refused({ profile: "small-l4", num_gpus: 2 }, "num_gpus", /at most 1/);
    await refused({ profile: "small-l4", settings: { max_instances: 3 } }, "settings.max_instances", /at most 2/);
    await refused({ profile: "small-l4", extra_args: ["--enable-prefix-caching"] }, "extra_args", /not allowed/);
    const unknown = await api("POST", "/deploy/llm", { model_name: "m", gpu: "L4", profile: "nope" });
    expect(unknown.status).toBe(400);
    expect(unknown.json.error?.param).toBe("profile");

    const ok = await api<{ deploy_id: string }>("POST", "/deploy/llm", {
      model_name: "small",
      gpu: "L4",
      profile: "small-l4",
      settings: { min_instances: 0, max_instances: 2 },
    });
    expect(ok.status, JSON.stringify(ok.json)).toBe(200);
    const d = await api<{ config: Record<string, unknown> }>("GET", `/deploy/${ok.json.deploy_id}`);
    expect(d.json.config).toMatchObject({ profile: "small-l4", container_image: IMAGE });
    // A rescale past the profile is refused too, and the settings stay.
    const up = await api("PUT", `/deploy/${ok.json.deploy_id}`, { settings: { max_instances: 3 } });
    expect(up.status).toBe(403);
    expect(up.json.error?.param).toBe("settings.max_instances");
    expect((await api<{ settings: { max_instances: number } }>("GET", `/deploy/${ok.json.deploy_id}`)).json.settings.max_instances).toBe(2);

    // Admin CRUD: replace, read, delete.
    const replaced = await api("PUT", "/admin/engine-profiles/small-l4", { ...profile, name: undefined, max_instances: 4 }, ADMIN);
    expect(replaced.status, JSON.stringify(replaced.json)).toBe(200);
    expect((await api<{ max_instances: number }>("GET", "/admin/engine-profiles/small-l4", undefined, ADMIN)).json.max_instances).toBe(4);
    expect((await api("DELETE", "/admin/engine-profiles/small-l4", undefined, ADMIN)).json).toEqual({
      object: "engine_profile",
      name: "small-l4",
      deleted: true,
    });
    expect((await api("GET", "/admin/engine-profiles/small-l4", undefined, ADMIN)).status).toBe(404);
  });

  it("holds the tenant's GPU quota on create and on rescale, naming the field", async () => {
    // 1 (tuned) + 2 (small) held of 6.
    await refused({ model_name: "big", num_gpus: 4 }, "num_gpus", /already hold 3; its GPU quota is 6/);
    const three = await api<{ deploy_id: string }>("POST", "/deploy/llm", { model_name: "three", gpu: "L4", num_gpus: 3 });
    expect(three.status, JSON.stringify(three.json)).toBe(200);
    const up = await api("PUT", `/deploy/${three.json.deploy_id}`, { settings: { max_instances: 2 } });
    expect(up.status).toBe(403);
    expect(up.json.error).toMatchObject({ param: "settings.max_instances", code: "permission_denied" });
    // Deleting frees its share.
    expect((await api("DELETE", `/deploy/${three.json.deploy_id}`)).status).toBe(200);
    const grant = await api<{ gpus_in_use: number; effective_gpu_quota: number }>("GET", `/admin/tenants/${tenantId}/deploy-grant`, undefined, ADMIN);
    expect(grant.json).toMatchObject({ gpus_in_use: 3, effective_gpu_quota: 6, gpu_quota: null, container_image: false });
  });

  it("with an admin's grant, sets its own image and free arguments; a quota of its own replaces the default", async () => {
    const g = await api("PUT", `/admin/tenants/${tenantId}/deploy-grant`, { container_image: true, extra_args: true, gpu_quota: 20 }, ADMIN);
    expect(g.status, JSON.stringify(g.json)).toBe(200);
    expect(g.json).toMatchObject({ object: "deploy_grant", container_image: true, extra_args: true, gpu_quota: 20, effective_gpu_quota: 20 });
    const custom = { model_name: "custom", gpu: "L4", num_gpus: 4, container_image: "tenant.example/engine:1", extra_args: ["--trust-remote-code"] };
    expect(await deployedConfig(custom)).toMatchObject({ container_image: "tenant.example/engine:1", extra_args: ["--trust-remote-code"] });
    // Revoking the image grant (the other fields stay) refuses it again.
    const back = await api("PUT", `/admin/tenants/${tenantId}/deploy-grant`, { container_image: false }, ADMIN);
    expect(back.json).toMatchObject({ container_image: false, extra_args: true, gpu_quota: 20 });
    await refused({ container_image: "tenant.example/engine:1" }, "container_image", /admin keys only/);
    expect((await api("GET", "/admin/tenants/ten_nope/deploy-grant", undefined, ADMIN)).status).toBe(404);
  });
});

describe("an admin key", () => {
  it("still sets container_image and any arguments, past every profile limit and the default quota", async () => {
    const r = await api<{ deploy_id: string }>(
      "POST",
      "/deploy/llm",
      { model_name: "ops", gpu: "H100-80GB", num_gpus: 8, container_image: "ops/engine:2", extra_args: ["--anything", "goes"] },
      ADMIN,
    );
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    // Rescaling past the profile's instances and the default quota too.
    const up = await api<{ settings: { max_instances: number } }>("PUT", `/deploy/${r.json.deploy_id}`, { settings: { max_instances: 64 } }, ADMIN);
    expect(up.status, JSON.stringify(up.json)).toBe(200);
    expect(up.json.settings.max_instances).toBe(64);
  });
});

interface AuditEventOut {
  id: string;
  actor_key_id: string;
  action: string;
  outcome: string;
  status: number;
  target_id: string | null;
  tenant_id: string | null;
  details: { body?: Record<string, unknown> } | null;
}
type AuditPage = { data: AuditEventOut[]; has_more: boolean; last_id: string | null; first_id: string | null };

describe("the audit trail", () => {
  it("has every deploy action with who, what and the answer; refusals as denied", async () => {
    expect((await api("GET", "/admin/audit")).status).toBe(403);
    const created = await api<AuditPage>("GET", `/admin/audit?action=deployment.create&actor_key_id=${tenantKeyId}&outcome=ok`, undefined, ADMIN);
    expect(created.status, JSON.stringify(created.json)).toBe(200);
    // tuned, small, three, custom: newest first.
    expect(created.json.data.map((e) => e.details?.body?.model_name)).toEqual(["custom", "three", "small", "tuned"]);
    for (const e of created.json.data) {
      expect(e).toMatchObject({ actor_key_id: tenantKeyId, outcome: "ok", status: 200, tenant_id: tenantId });
      expect(e.target_id).toMatch(/^dep_/);
    }
    const denied = await api<AuditPage>("GET", `/admin/audit?outcome=denied&actor_key_id=${tenantKeyId}&limit=100`, undefined, ADMIN);
    const actions = denied.json.data.map((e) => e.action);
    expect(actions).toContain("deployment.create");
    expect(actions).toContain("deployment.update");
    expect(actions).toContain("engine_profile.create");
    expect(denied.json.data.find((e) => e.details?.body?.container_image === "attacker/miner:latest")).toMatchObject({ status: 403, tenant_id: tenantId });
    const admin = await api<AuditPage>("GET", "/admin/audit?action=deploy_grant.put", undefined, ADMIN);
    expect(admin.json.data[0]).toMatchObject({ target_id: tenantId, tenant_id: tenantId, outcome: "ok" });
    expect((await api<AuditPage>("GET", "/admin/audit?action=engine_profile.delete", undefined, ADMIN)).json.data[0]?.target_id).toBe("small-l4");
  });

  it("never keeps a secret: a Hugging Face token is redacted", async () => {
    const r = await api<{ deploy_id: string }>(
      "POST",
      "/deploy/llm",
      { model_name: "gated", gpu: "L4", hf: { repo: "org/gated", token: "hf_auditMustNotKeepThis" } },
      ADMIN,
    );
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const page = await api<AuditPage>("GET", `/admin/audit?target_id=${r.json.deploy_id}`, undefined, ADMIN);
    expect(page.json.data[0]?.details?.body?.hf).toEqual({ repo: "org/gated", token: "[redacted]" });
    const all = await db.selectFrom("audit_log").select("details").execute();
    expect(JSON.stringify(all)).not.toContain("hf_auditMustNotKeepThis");
  });

  it("pages newest first with a cursor, and names a bad filter", async () => {
    const first = await api<AuditPage>("GET", "/admin/audit?limit=2", undefined, ADMIN);
    expect(first.json.data).toHaveLength(2);
    expect(first.json.has_more).toBe(true);
    const next = await api<AuditPage>("GET", `/admin/audit?limit=2&after=${first.json.last_id}`, undefined, ADMIN);
    expect(Number(next.json.first_id)).toBeLessThan(Number(first.json.last_id));
    const ids = [...first.json.data, ...next.json.data].map((e) => Number(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    for (const [q, param] of [
      ["limit=0", "limit"],
      ["since=x", "since"],
      ["outcome=maybe", "outcome"],
      ["bogus=1", "bogus"],
      ["since=200&until=100", "since"],
    ]) {
      const bad = await api("GET", `/admin/audit?${q}`, undefined, ADMIN);
      expect(bad.status, q).toBe(400);
      expect(bad.json.error?.param, q).toBe(param);
    }
  });
});
