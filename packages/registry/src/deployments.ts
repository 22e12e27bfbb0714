import type { Kysely } from "kysely";
import type { Modality, Task } from "@infera/contracts";
import type { DB, Deployment, DeploymentConfig, DeploymentSettings, DeploymentState } from "./schema.ts";
import type { Db } from "./db.ts";
import { PlatformError } from "@infera/core";
import { newId } from "./ids.ts";
import { assertGpuQuota, type GpuQuotaCheck } from "./deploy-policy.ts";

/** A deployment with what the API and the scheduler show of its model. */
export interface DeploymentView extends Deployment {
  model_name: string;
  version: string;
  task: Task;
  modalities: Modality[];
}

function viewQuery(db: Db) {
  return db
    .selectFrom("deployments as d")
    .innerJoin("model_versions as v", "v.id", "d.model_version_id")
    .innerJoin("models as m", "m.id", "v.model_id")
    .selectAll("d")
    .select(["m.name as model_name", "v.version as version", "m.task as task", "m.modalities as modalities"]);
}

export async function getDeployment(db: Db, id: string): Promise<DeploymentView | undefined> {
  return viewQuery(db).where("d.id", "=", id).executeTakeFirst();
}

export interface ListDeploymentsFilter {
  /** undefined: every tenant (operators, the reconciler); null: the public catalog only. */
  tenantId?: string | null;
  statuses?: readonly DeploymentState[];
}

export async function listDeployments(db: Db, filter: ListDeploymentsFilter = {}): Promise<DeploymentView[]> {
  let q = viewQuery(db).orderBy("d.created_at");
  if (filter.tenantId === null) q = q.where("d.tenant_id", "is", null);
  else if (filter.tenantId !== undefined) q = q.where("d.tenant_id", "=", filter.tenantId);
  if (filter.statuses?.length) q = q.where("d.status", "in", [...filter.statuses]);
  return q.execute();
}

export interface CreateDeploymentInput {
  tenantId: string | null;
  modelVersionId: string;
  config: DeploymentConfig;
  settings: DeploymentSettings;
}

/** Creates a deployment in `initializing` with its first event, in one transaction. */
export async function createDeployment(db: Kysely<DB>, input: CreateDeploymentInput): Promise<Deployment> {
  return db.transaction().execute(async (trx) => {
    const d = await trx
      .insertInto("deployments")
      .values({
        id: newId("dep"),
        tenant_id: input.tenantId,
        model_version_id: input.modelVersionId,
        status: "initializing",
        config: JSON.stringify(input.config),
        settings: JSON.stringify(input.settings),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await trx.insertInto("deployment_events").values({ deployment_id: d.id, from_status: null, to_status: "initializing", reason: "created" }).execute();
    return d;
  });
}

export async function updateDeploymentSettings(db: Db, id: string, settings: DeploymentSettings): Promise<Deployment | undefined> {
  return db
    .updateTable("deployments")
    .set({ settings: JSON.stringify(settings), updated_at: new Date() })
    .where("id", "=", id)
    .where("status", "!=", "deleted")
    .returningAll()
    .executeTakeFirst();
}

export async function listDeploymentEvents(db: Db, deploymentId: string) {
  return db.selectFrom("deployment_events").selectAll().where("deployment_id", "=", deploymentId).orderBy("id").execute();
}

export interface CreateCustomDeploymentInput {
  tenantId: string;
  /** The full name, `<tenant name>/<model>`. */
  modelName: string;
  task: Task;
  config: DeploymentConfig;
  settings: DeploymentSettings;
  /** The Hugging Face token, already sealed (secrets.ts); stored apart from the deployment row. */
  hfTokenSealed?: string;
  /** The tenant's GPU quota, checked under the tenant's lock in this transaction. */
  gpuQuota?: GpuQuotaCheck;
}

/**
 * A tenant's deploy: its model (created on first deploy), a new version of it (versions
 * are 1, 2, 3 … per model), the deployment in `initializing` with its first event, and
 * its sealed token, all in one transaction. The model row is locked while the version
 * number is chosen, so concurrent deploys of one model get distinct versions.
 */
export async function createCustomDeployment(db: Kysely<DB>, input: CreateCustomDeploymentInput): Promise<DeploymentView> {
  return db.transaction().execute(async (trx) => {
    if (input.gpuQuota) await assertGpuQuota(trx, input.tenantId, input.config.num_gpus * input.settings.max_instances, input.gpuQuota);
    await trx
      .insertInto("models")
      .values({ id: newId("mdl"), tenant_id: input.tenantId, name: input.modelName, task: input.task })
      .onConflict((oc) => oc.column("name").doNothing())
      .execute();
    const model = await trx.selectFrom("models").selectAll().where("name", "=", input.modelName).forUpdate().executeTakeFirstOrThrow();
    if (model.tenant_id !== input.tenantId) {
      throw new PlatformError("conflict", `The model name '${input.modelName}' is already taken; choose another model_name.`, { param: "model_name" });
    }
    if (model.task !== input.task) {
      throw new PlatformError("conflict", `The model '${input.modelName}' is a ${model.task} model, not ${input.task}.`, { param: "model_name" });
    }
    const versions = await trx.selectFrom("model_versions").select("version").where("model_id", "=", model.id).execute();
    const next = versions.reduce((n, v) => Math.max(n, Number.parseInt(v.version, 10) || 0), 0) + 1;
    const version = await trx
      .insertInto("model_versions")
      .values({ id: newId("ver"), model_id: model.id, version: String(next) })
      .returning("id")
      .executeTakeFirstOrThrow();
    const d = await trx
      .insertInto("deployments")
      .values({
        id: newId("dep"),
        tenant_id: input.tenantId,
        model_version_id: version.id,
        status: "initializing",
        config: JSON.stringify(input.config),
        settings: JSON.stringify(input.settings),
      })
      .returning("id")
      .executeTakeFirstOrThrow();
    await trx.insertInto("deployment_events").values({ deployment_id: d.id, from_status: null, to_status: "initializing", reason: "created" }).execute();
    if (input.hfTokenSealed !== undefined) {
      await trx.insertInto("deployment_secrets").values({ deployment_id: d.id, hf_token_sealed: input.hfTokenSealed }).execute();
    }
    return (await getDeployment(trx, d.id))!;
  });
}

/**
 * Changes a deployment's settings (min/max instances) and records it as an event (the
 * state stays: from_status = to_status), in one transaction. A deleted deployment's
 * settings cannot change.
 */
export async function changeDeploymentSettings(db: Kysely<DB>, id: string, settings: DeploymentSettings, gpuQuota?: GpuQuotaCheck): Promise<DeploymentView> {
  return db.transaction().execute(async (trx) => {
    // The tenant's lock first (the order every create takes too), then the deployment's.
    if (gpuQuota) {
      const d = await trx.selectFrom("deployments").select(["tenant_id", "config"]).where("id", "=", id).executeTakeFirst();
      if (d?.tenant_id) await assertGpuQuota(trx, d.tenant_id, d.config.num_gpus * settings.max_instances, gpuQuota, id);
    }
    const current = await trx.selectFrom("deployments").selectAll().where("id", "=", id).forUpdate().executeTakeFirst();
    if (!current) throw new PlatformError("not_found", `deployment ${id} does not exist`, { param: "deploy_id" });
    if (current.status === "deleted") throw new PlatformError("conflict", `deployment ${id} is deleted; its settings cannot change`, { param: "status" });
    const before = current.settings;
    await trx
      .updateTable("deployments")
      .set({ settings: JSON.stringify(settings), updated_at: new Date() })
      .where("id", "=", id)
      .execute();
    await trx
      .insertInto("deployment_events")
      .values({
        deployment_id: id,
        from_status: current.status,
        to_status: current.status,
        reason: `settings: min_instances ${before.min_instances}→${settings.min_instances}, max_instances ${before.max_instances}→${settings.max_instances}`,
      })
      .execute();
    return (await getDeployment(trx, id))!;
  });
}

/**
 * Records something that happened to a deployment without changing its state (scaled to
 * zero, woken from zero), only while it is in one of `whileIn`. False when it was not.
 */
export async function noteDeploymentEvent(db: Kysely<DB>, id: string, reason: string, whileIn: readonly DeploymentState[]): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const current = await trx.selectFrom("deployments").select("status").where("id", "=", id).forUpdate().executeTakeFirst();
    if (!current || !whileIn.includes(current.status)) return false;
    await trx.insertInto("deployment_events").values({ deployment_id: id, from_status: current.status, to_status: current.status, reason }).execute();
    return true;
  });
}
