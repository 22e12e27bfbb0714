/**
 * The deploy policy operators own: engine profiles (what tenants may deploy), per-tenant
 * grants beyond them, and the per-tenant GPU quota, enforced under a lock on the tenant's
 * row in the same transaction that creates or rescales a deployment — two concurrent
 * creates of one tenant queue on the lock, and the second sees the first's GPUs.
 */
import { sql, type Kysely } from "kysely";
import { PlatformError } from "@infera/core";
import type { AllowedArg, DB, EngineProfile, TenantDeployGrant } from "./schema.ts";
import type { Db } from "./db.ts";

export interface ProfileInput {
  name: string;
  engine: EngineProfile["engine"];
  image: string | null;
  allowed_args: AllowedArg[];
  gpu_types: string[];
  max_num_gpus: number;
  max_instances: number;
  description: string | null;
}

function row(p: ProfileInput) {
  return { ...p, allowed_args: JSON.stringify(p.allowed_args) };
}

export async function listEngineProfiles(db: Db): Promise<EngineProfile[]> {
  return db.selectFrom("engine_profiles").selectAll().orderBy("name").execute();
}

export async function getEngineProfile(db: Db, name: string): Promise<EngineProfile | undefined> {
  return db.selectFrom("engine_profiles").selectAll().where("name", "=", name).executeTakeFirst();
}

/** Creates a profile; a taken name is Postgres' unique violation (23505). */
export async function createEngineProfile(db: Db, p: ProfileInput): Promise<EngineProfile> {
  return db.insertInto("engine_profiles").values(row(p)).returningAll().executeTakeFirstOrThrow();
}

export async function replaceEngineProfile(db: Db, p: ProfileInput): Promise<EngineProfile | undefined> {
  const { name, ...rest } = row(p);
  return db
    .updateTable("engine_profiles")
    .set({ ...rest, updated_at: new Date() })
    .where("name", "=", name)
    .returningAll()
    .executeTakeFirst();
}

export async function deleteEngineProfile(db: Db, name: string): Promise<boolean> {
  const r = await db.deleteFrom("engine_profiles").where("name", "=", name).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

/**
 * The profiles from configuration (Helm's `deployPolicy.profiles`), written at start: a
 * profile named there is what the values say (they are its source); others are the API's.
 */
export async function seedEngineProfiles(db: Kysely<DB>, profiles: readonly ProfileInput[]): Promise<void> {
  for (const p of profiles) {
    const { name: _name, ...rest } = row(p);
    await db
      .insertInto("engine_profiles")
      .values(row(p))
      .onConflict((oc) => oc.column("name").doUpdateSet({ ...rest, updated_at: new Date() }))
      .execute();
  }
}

export async function getDeployGrant(db: Db, tenantId: string): Promise<TenantDeployGrant | undefined> {
  return db.selectFrom("tenant_deploy_grants").selectAll().where("tenant_id", "=", tenantId).executeTakeFirst();
}

export interface GrantInput {
  container_image: boolean;
  extra_args: boolean;
  gpu_quota: number | null;
}

export async function putDeployGrant(db: Db, tenantId: string, g: GrantInput): Promise<TenantDeployGrant> {
  return db
    .insertInto("tenant_deploy_grants")
    .values({ tenant_id: tenantId, ...g })
    .onConflict((oc) => oc.column("tenant_id").doUpdateSet({ ...g, updated_at: new Date() }))
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** GPUs a tenant's deployments hold (num_gpus × max_instances, every deployment not deleted), optionally leaving one out. */
export async function tenantGpuUse(db: Db, tenantId: string, except?: string): Promise<number> {
  let q = db
    .selectFrom("deployments")
    .select(sql<string>`coalesce(sum((config->>'num_gpus')::int * (settings->>'max_instances')::int), 0)`.as("gpus"))
    .where("tenant_id", "=", tenantId)
    .where("status", "!=", "deleted");
  if (except !== undefined) q = q.where("id", "!=", except);
  return Number((await q.executeTakeFirstOrThrow()).gpus);
}

export interface GpuQuotaCheck {
  /** Most GPUs the tenant may hold; null: no quota. */
  quota: number | null;
  /** The field the refusal names (`num_gpus` on create, `settings.max_instances` on a rescale). */
  param: string;
}

/**
 * Inside a transaction: locks the tenant's row (so concurrent creates and rescales of one
 * tenant are serialised) and refuses, naming the field, when `adding` more GPUs would pass
 * the quota.
 */
export async function assertGpuQuota(trx: Db, tenantId: string, adding: number, check: GpuQuotaCheck, except?: string): Promise<void> {
  if (check.quota === null) return;
  await trx.selectFrom("tenants").select("id").where("id", "=", tenantId).forUpdate().executeTakeFirst();
  const used = await tenantGpuUse(trx, tenantId, except);
  if (used + adding > check.quota) {
    throw new PlatformError(
      "permission_denied",
      `Invalid value for '${check.param}': this deployment would hold ${adding} GPUs (num_gpus × settings.max_instances) and your tenant's deployments already hold ${used}; its GPU quota is ${check.quota}.`,
      { param: check.param },
    );
  }
}
