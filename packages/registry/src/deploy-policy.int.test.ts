/**
 * The per-tenant GPU quota against real Postgres: creates and rescales that would pass it
 * are refused naming the field and write nothing, and concurrent creates of one tenant
 * cannot both slip under it (the tenant's row is locked in the creating transaction).
 */
import type { Kysely } from "kysely";
import { describe, expect } from "vitest";
import { PlatformError } from "@infera/core";
import { test } from "@infera/testkit/fixtures";
import {
  changeDeploymentSettings,
  createCustomDeployment,
  createEngineProfile,
  createTenant,
  getEngineProfile,
  listDeployments,
  seedEngineProfiles,
  tenantGpuUse,
  type DB,
  type DeploymentConfig,
} from "./index.ts";

let db: Kysely<DB>;

const config = (numGpus: number): DeploymentConfig => ({
  gpu: "A100-80GB",
  num_gpus: numGpus,
  max_batch_size: 8,
  engine: "vllm",
  hf: { repo: "org/model", revision: null, has_token: false },
  container_image: null,
  extra_args: [],
  placement: "prefix-affinity",
  profile: "vllm",
});

test.beforeAll(({ database }) => {
  db = database.db;
});

async function refusal(p: Promise<unknown>): Promise<PlatformError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(PlatformError);
  return e as PlatformError;
}

describe("the tenant GPU quota", () => {
  test("counts num_gpus × max_instances; a create past it is refused naming num_gpus and writes nothing", async () => {
    const t = await createTenant(db, "quota-a");
    const quota = { quota: 8, param: "num_gpus" };
    await createCustomDeployment(db, {
      tenantId: t.id,
      modelName: "quota-a/m",
      task: "chat",
      config: config(2),
      settings: { min_instances: 1, max_instances: 3 },
      gpuQuota: quota,
    });
    expect(await tenantGpuUse(db, t.id)).toBe(6);
    const e = await refusal(
      createCustomDeployment(db, {
        tenantId: t.id,
        modelName: "quota-a/n",
        task: "chat",
        config: config(1),
        settings: { min_instances: 1, max_instances: 3 },
        gpuQuota: quota,
      }),
    );
    expect(e.code).toBe("permission_denied");
    expect(e.param).toBe("num_gpus");
    expect(e.message).toMatch(/already hold 6; its GPU quota is 8/);
    expect((await listDeployments(db, { tenantId: t.id })).map((d) => d.model_name)).toEqual(["quota-a/m"]);
    // Exactly to the quota is allowed.
    await createCustomDeployment(db, {
      tenantId: t.id,
      modelName: "quota-a/n",
      task: "chat",
      config: config(1),
      settings: { min_instances: 0, max_instances: 2 },
      gpuQuota: quota,
    });
    expect(await tenantGpuUse(db, t.id)).toBe(8);
  });

  test("a rescale past it is refused naming settings.max_instances; scaling down is always allowed", async () => {
    const t = await createTenant(db, "quota-b");
    const d = await createCustomDeployment(db, {
      tenantId: t.id,
      modelName: "quota-b/m",
      task: "chat",
      config: config(2),
      settings: { min_instances: 1, max_instances: 2 },
    });
    const quota = { quota: 6, param: "settings.max_instances" };
    const e = await refusal(changeDeploymentSettings(db, d.id, { min_instances: 1, max_instances: 4 }, quota));
    expect(e.param).toBe("settings.max_instances");
    expect((await listDeployments(db, { tenantId: t.id }))[0]?.settings.max_instances).toBe(2);
    expect((await changeDeploymentSettings(db, d.id, { min_instances: 1, max_instances: 3 }, quota)).settings.max_instances).toBe(3);
    expect((await changeDeploymentSettings(db, d.id, { min_instances: 0, max_instances: 1 }, quota)).settings.max_instances).toBe(1);
  });

  test("ten concurrent creates under a quota of four single-GPU deployments: exactly four pass", async () => {
    const t = await createTenant(db, "quota-c");
    const quota = { quota: 4, param: "num_gpus" };
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        createCustomDeployment(db, {
          tenantId: t.id,
          modelName: `quota-c/m${i}`,
          task: "chat",
          config: config(1),
          settings: { min_instances: 1, max_instances: 1 },
          gpuQuota: quota,
        }),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(4);
    for (const r of results) if (r.status === "rejected") expect((r.reason as PlatformError).code).toBe("permission_denied");
    expect(await tenantGpuUse(db, t.id)).toBe(4);
    expect(await listDeployments(db, { tenantId: t.id })).toHaveLength(4);
  });
});

describe("engine profiles", () => {
  test("seeding writes what configuration says over an earlier value and leaves API-made profiles alone", async () => {
    const base = {
      engine: "vllm" as const,
      image: null,
      allowed_args: [{ flag: "--max-model-len", pattern: "[0-9]+" }],
      gpu_types: [],
      max_num_gpus: 2,
      max_instances: 4,
      description: null,
    };
    await seedEngineProfiles(db, [{ name: "seeded", ...base }]);
    await createEngineProfile(db, { name: "by-api", ...base, max_instances: 1 });
    await seedEngineProfiles(db, [{ name: "seeded", ...base, max_num_gpus: 1 }]);
    expect(await getEngineProfile(db, "seeded")).toMatchObject({ max_num_gpus: 1, allowed_args: base.allowed_args });
    expect(await getEngineProfile(db, "by-api")).toMatchObject({ max_instances: 1 });
  });
});
