import { describe, expect } from "vitest";
import { createDeployment, ensureModelVersion, listDeploymentEvents, transition, getDeployment, resolveModel, createTenant, type DB } from "./index.ts";
import type { Kysely } from "kysely";
import { test } from "@infera/testkit/fixtures";

let db: Kysely<DB>;

test.beforeAll(({ database }) => {
  db = database.db;
});

async function newDeployment(tenantId: string | null = null) {
  const { versionId } = await ensureModelVersion(db, { tenantId, name: `m-${Math.random()}`, task: "chat", version: "1" });
  return createDeployment(db, {
    tenantId,
    modelVersionId: versionId,
    config: { gpu: "A100-80GB", num_gpus: 1, max_batch_size: 8, engine: "vllm", hf: null, container_image: null, extra_args: [], placement: "least-loaded" },
    settings: { min_instances: 1, max_instances: 1 },
  });
}

describe("deployment lifecycle", () => {
  test("walks initializing → running → stopped → deploying → running → deleted, one event per step", async () => {
    const d = await newDeployment();
    for (const s of ["downloading", "deploying", "running", "stopped", "deploying", "running", "deleted"] as const) {
      await transition(db, d.id, s);
    }
    const events = await listDeploymentEvents(db, d.id);
    expect(events.map((e) => `${e.from_status ?? "-"}>${e.to_status}`)).toEqual([
      "->initializing",
      "initializing>downloading",
      "downloading>deploying",
      "deploying>running",
      "running>stopped",
      "stopped>deploying",
      "deploying>running",
      "running>deleted",
    ]);
  });

  test("rejects an illegal transition and changes nothing", async () => {
    const d = await newDeployment();
    await transition(db, d.id, "deleted");
    await expect(transition(db, d.id, "deploying")).rejects.toMatchObject({ code: "conflict" });
    expect((await getDeployment(db, d.id))?.status).toBe("deleted");
    expect(await listDeploymentEvents(db, d.id)).toHaveLength(2);
  });

  test("records fail_reason with failed and clears it when started again", async () => {
    const d = await newDeployment();
    const failed = await transition(db, d.id, "failed", { failReason: "image pull error" });
    expect(failed.fail_reason).toBe("image pull error");
    const again = await transition(db, d.id, "deploying");
    expect(again.fail_reason).toBeNull();
  });

  test("resolves by name, name:version and deploy_id, hiding other tenants' models", async () => {
    const a = await createTenant(db, `a-${Math.random()}`);
    const b = await createTenant(db, `b-${Math.random()}`);
    const d = await newDeployment(a.id);
    const view = await getDeployment(db, d.id);
    expect((await resolveModel(db, a.id, view!.model_name)).ok).toBe(true);
    expect(await resolveModel(db, a.id, `${view!.model_name}:1`)).toMatchObject({ ok: true, model: { deploymentId: d.id } });
    expect(await resolveModel(db, a.id, `${view!.model_name}:9`)).toEqual({ ok: false, reason: "unknown_version" });
    expect(await resolveModel(db, a.id, `deploy_id:${d.id}`)).toMatchObject({ ok: true });
    expect(await resolveModel(db, b.id, `deploy_id:${d.id}`)).toEqual({ ok: false, reason: "unknown_model" });
    expect(await resolveModel(db, b.id, view!.model_name)).toEqual({ ok: false, reason: "unknown_model" });
  });
});
