import type { Kysely } from "kysely";
import { describe, expect } from "vitest";
import {
  changeDeploymentSettings,
  createCustomDeployment,
  createTenant,
  ensureModelVersion,
  getHfToken,
  listDeploymentEvents,
  listModelVersions,
  openSecret,
  sealSecret,
  secretsKeyFrom,
  transition,
  type DB,
  type DeploymentConfig,
} from "./index.ts";
import { test } from "@infera/testkit/fixtures";

let db: Kysely<DB>;

const config: DeploymentConfig = {
  gpu: "A100-80GB",
  num_gpus: 1,
  max_batch_size: 8,
  engine: "vllm",
  hf: { repo: "org/model", revision: null, has_token: false },
  container_image: null,
  extra_args: [],
  placement: "prefix-affinity",
};
const settings = { min_instances: 1, max_instances: 1 };

test.beforeAll(({ database }) => {
  db = database.db;
});

async function count(table: "deployments" | "models" | "model_versions" | "deployment_events" | "deployment_secrets"): Promise<number> {
  return Number(
    (
      await db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll().as("n"))
        .executeTakeFirstOrThrow()
    ).n,
  );
}

describe("custom deployments", () => {
  test("gives each deploy of a model the next version, concurrent deploys included", async () => {
    const t = await createTenant(db, "acme");
    const first = await createCustomDeployment(db, { tenantId: t.id, modelName: "acme/llm", task: "chat", config, settings });
    expect(first).toMatchObject({ model_name: "acme/llm", version: "1", status: "initializing", tenant_id: t.id });
    const more = await Promise.all(
      Array.from({ length: 5 }, () => createCustomDeployment(db, { tenantId: t.id, modelName: "acme/llm", task: "chat", config, settings })),
    );
    expect(more.map((d) => d.version).sort((a, b) => Number(a) - Number(b))).toEqual(["2", "3", "4", "5", "6"]);
    expect(new Set([first.id, ...more.map((d) => d.id)]).size).toBe(6);
    expect((await listModelVersions(db, t.id, "acme/llm")).map((v) => v.version)).toHaveLength(6);
    expect((await listDeploymentEvents(db, first.id)).map((e) => e.to_status)).toEqual(["initializing"]);
  });

  test("refuses a name another owner holds, writing nothing", async () => {
    const t = await createTenant(db, "meta-llama");
    await ensureModelVersion(db, { tenantId: null, name: "meta-llama/Llama", task: "chat", version: "1" });
    const before = await Promise.all((["deployments", "models", "model_versions", "deployment_events"] as const).map(count));
    await expect(createCustomDeployment(db, { tenantId: t.id, modelName: "meta-llama/Llama", task: "chat", config, settings })).rejects.toMatchObject({
      code: "conflict",
      param: "model_name",
    });
    expect(await Promise.all((["deployments", "models", "model_versions", "deployment_events"] as const).map(count))).toEqual(before);
  });

  test("records a settings change as an event; a deleted deployment's settings cannot change", async () => {
    const t = await createTenant(db, "settings-co");
    const d = await createCustomDeployment(db, { tenantId: t.id, modelName: "settings-co/m", task: "chat", config, settings });
    const changed = await changeDeploymentSettings(db, d.id, { min_instances: 0, max_instances: 3 });
    expect(changed.settings).toEqual({ min_instances: 0, max_instances: 3 });
    const events = await listDeploymentEvents(db, d.id);
    expect(events.at(-1)).toMatchObject({ from_status: "initializing", to_status: "initializing", reason: "settings: min_instances 1→0, max_instances 1→3" });
    await transition(db, d.id, "deleted");
    const eventsBefore = await count("deployment_events");
    await expect(changeDeploymentSettings(db, d.id, settings)).rejects.toMatchObject({ code: "conflict", param: "status" });
    expect(await count("deployment_events")).toBe(eventsBefore);
  });
});

describe("deployment secrets", () => {
  test("seals the HF token apart from the deployment and opens it only with the key", async () => {
    const key = secretsKeyFrom("operator key");
    const sealed = sealSecret("hf_plaintext", key);
    expect(sealed).not.toContain("hf_plaintext");
    expect(sealSecret("hf_plaintext", key)).not.toBe(sealed); // a fresh IV each time
    expect(openSecret(sealed, key)).toBe("hf_plaintext");
    expect(() => openSecret(sealed, secretsKeyFrom("another key"))).toThrow();

    const t = await createTenant(db, "secret-co");
    const d = await createCustomDeployment(db, {
      tenantId: t.id,
      modelName: "secret-co/m",
      task: "chat",
      config: { ...config, hf: { repo: "o/m", revision: null, has_token: true } },
      settings,
      hfTokenSealed: sealed,
    });
    expect(JSON.stringify(d)).not.toContain("hf_plaintext");
    expect(await getHfToken(db, d.id, key)).toBe("hf_plaintext");
  });
});
