import type { EngineKind, Modality, Task } from "@infera/contracts";
import type { DeploymentState } from "./schema.ts";
import type { Db } from "./db.ts";
import { newId } from "./ids.ts";

/** What the gateway needs to route a request for a `model` string. */
export interface ResolvedModel {
  deploymentId: string;
  status: DeploymentState;
  /** The model's full name (`tenant/model` for custom models); the engine serves it under this name. */
  modelName: string;
  version: string;
  task: Task;
  /** The engine the deployment runs (from its config): decides which request attributes it can serve. */
  engine: EngineKind;
  ownerTenantId: string | null;
  priceInputPerM: number;
  priceOutputPerM: number;
  pricePerImage: number;
  /** Batch API lines are charged the prices above times this (default 0.5). */
  batchPriceFactor: number;
  /** Input modalities the model takes (content parts beyond text are refused for the others). */
  modalities: Modality[];
  /** The version's tokenizer.json (path or URL), when the registry knows it. */
  tokenizer: string | null;
}

export type ModelRef = { kind: "name"; name: string } | { kind: "version"; name: string; version: string } | { kind: "deploy_id"; id: string };

/** `name`, `name:version` or `deploy_id:ID`. */
export function parseModelRef(model: string): ModelRef {
  if (model.startsWith("deploy_id:")) return { kind: "deploy_id", id: model.slice("deploy_id:".length) };
  const i = model.lastIndexOf(":");
  if (i > 0 && i < model.length - 1) return { kind: "version", name: model.slice(0, i), version: model.slice(i + 1) };
  return { kind: "name", name: model };
}

export type Resolution = { ok: true; model: ResolvedModel } | { ok: false; reason: "unknown_model" | "unknown_version" | "no_deployment" | "deleted" };

/** Orders a version's deployments: the one serving now first, then the newest live one. */
const STATUS_RANK: Record<DeploymentState, number> = {
  running: 0,
  deploying: 1,
  downloading: 2,
  initializing: 3,
  stopped: 4,
  failed: 5,
  deleted: 6,
};

/**
 * Resolves a `model` string for a tenant: public catalog models and the tenant's own are
 * visible; anything else is unknown (never "forbidden": existence is not confirmed).
 */
export async function resolveModel(db: Db, tenantId: string, model: string): Promise<Resolution> {
  const ref = parseModelRef(model);
  let q = db
    .selectFrom("deployments as d")
    .innerJoin("model_versions as v", "v.id", "d.model_version_id")
    .innerJoin("models as m", "m.id", "v.model_id")
    .select([
      "d.id as deploymentId",
      "d.status as status",
      "d.created_at as createdAt",
      "d.config as config",
      "m.name as modelName",
      "v.version as version",
      "v.uploaded_at as uploadedAt",
      "m.task as task",
      "m.tenant_id as ownerTenantId",
      "v.price_input_per_m as priceIn",
      "v.price_output_per_m as priceOut",
      "v.price_per_image as priceImage",
      "v.batch_price_factor as batchFactor",
      "m.modalities as modalities",
      "v.tokenizer as tokenizer",
    ])
    .where((eb) => eb.or([eb("m.tenant_id", "is", null), eb("m.tenant_id", "=", tenantId)]));
  if (ref.kind === "deploy_id") {
    q = q.where("d.id", "=", ref.id).where((eb) => eb.or([eb("d.tenant_id", "is", null), eb("d.tenant_id", "=", tenantId)]));
  } else {
    q = q.where("m.name", "=", ref.name);
    if (ref.kind === "version") q = q.where("v.version", "=", ref.version);
  }
  const rows = await q.execute();
  if (rows.length === 0) {
    if (ref.kind === "version") {
      const known = await db
        .selectFrom("models")
        .select("id")
        .where("name", "=", ref.name)
        .where((eb) => eb.or([eb("tenant_id", "is", null), eb("tenant_id", "=", tenantId)]))
        .executeTakeFirst();
      if (known) return { ok: false, reason: "unknown_version" };
    }
    return { ok: false, reason: ref.kind === "deploy_id" ? "unknown_model" : await unknownOrUndeployed(db, tenantId, ref.name) };
  }
  const live = rows.filter((r) => r.status !== "deleted");
  if (live.length === 0) return { ok: false, reason: "deleted" };
  live.sort(
    (a, b) => STATUS_RANK[a.status] - STATUS_RANK[b.status] || b.uploadedAt.getTime() - a.uploadedAt.getTime() || b.createdAt.getTime() - a.createdAt.getTime(),
  );
  const r = live[0]!;
  return {
    ok: true,
    model: {
      deploymentId: r.deploymentId,
      status: r.status,
      modelName: r.modelName,
      version: r.version,
      task: r.task,
      engine: r.config.engine,
      ownerTenantId: r.ownerTenantId,
      priceInputPerM: Number(r.priceIn),
      priceOutputPerM: Number(r.priceOut),
      pricePerImage: Number(r.priceImage),
      batchPriceFactor: Number(r.batchFactor),
      modalities: r.modalities,
      tokenizer: r.tokenizer,
    },
  };
}

async function unknownOrUndeployed(db: Db, tenantId: string, name: string): Promise<"unknown_model" | "no_deployment"> {
  const known = await db
    .selectFrom("models")
    .select("id")
    .where("name", "=", name)
    .where((eb) => eb.or([eb("tenant_id", "is", null), eb("tenant_id", "=", tenantId)]))
    .executeTakeFirst();
  return known ? "no_deployment" : "unknown_model";
}

/** Models a tenant can call: the catalog plus its own, with a live deployment. */
export async function listVisibleModels(db: Db, tenantId: string) {
  return db
    .selectFrom("models as m")
    .select(["m.name", "m.task", "m.created_at", "m.tenant_id", "m.modalities"])
    .where((eb) => eb.or([eb("m.tenant_id", "is", null), eb("m.tenant_id", "=", tenantId)]))
    .where((eb) =>
      eb.exists(
        eb
          .selectFrom("deployments as d")
          .innerJoin("model_versions as v", "v.id", "d.model_version_id")
          .select("d.id")
          .whereRef("v.model_id", "=", "m.id")
          .where("d.status", "!=", "deleted"),
      ),
    )
    .orderBy("m.name")
    .execute();
}

export async function ensureModelVersion(
  db: Db,
  input: {
    tenantId: string | null;
    name: string;
    task: Task;
    version: string;
    prices?: { inputPerM?: number; outputPerM?: number; perImage?: number };
    /** Input modalities; default text only. A model that exists keeps what it has unless this is given. */
    modalities?: Modality[];
    /** The version's tokenizer.json (path or URL). */
    tokenizer?: string | null;
  },
): Promise<{ modelId: string; versionId: string }> {
  const modalities = input.modalities;
  await db
    .insertInto("models")
    .values({ id: newId("mdl"), tenant_id: input.tenantId, name: input.name, task: input.task, ...(modalities ? { modalities } : {}) })
    .onConflict((oc) => (modalities ? oc.column("name").doUpdateSet({ modalities }) : oc.column("name").doNothing()))
    .execute();
  const model = await db.selectFrom("models").select("id").where("name", "=", input.name).executeTakeFirstOrThrow();
  await db
    .insertInto("model_versions")
    .values({
      id: newId("ver"),
      model_id: model.id,
      version: input.version,
      price_input_per_m: input.prices?.inputPerM ?? 0,
      price_output_per_m: input.prices?.outputPerM ?? 0,
      price_per_image: input.prices?.perImage ?? 0,
      tokenizer: input.tokenizer ?? null,
    })
    .onConflict((oc) =>
      input.tokenizer !== undefined
        ? oc.columns(["model_id", "version"]).doUpdateSet({ tokenizer: input.tokenizer })
        : oc.columns(["model_id", "version"]).doNothing(),
    )
    .execute();
  const version = await db
    .selectFrom("model_versions")
    .select("id")
    .where("model_id", "=", model.id)
    .where("version", "=", input.version)
    .executeTakeFirstOrThrow();
  return { modelId: model.id, versionId: version.id };
}

export async function listModelVersions(db: Db, tenantId: string, name: string) {
  return db
    .selectFrom("model_versions as v")
    .innerJoin("models as m", "m.id", "v.model_id")
    .select(["m.name as model_name", "v.version", "v.uploaded_at"])
    .where("m.name", "=", name)
    .where((eb) => eb.or([eb("m.tenant_id", "is", null), eb("m.tenant_id", "=", tenantId)]))
    .orderBy("v.uploaded_at")
    .execute();
}

/** The tokenizer.json references of versions with a live deployment (the gateway loads them at start). */
export async function liveTokenizers(db: Db): Promise<string[]> {
  const rows = await db
    .selectFrom("model_versions as v")
    .innerJoin("deployments as d", "d.model_version_id", "v.id")
    .select("v.tokenizer")
    .distinct()
    .where("v.tokenizer", "is not", null)
    .where("d.status", "!=", "deleted")
    .execute();
  return rows.map((r) => r.tokenizer).filter((t): t is string => t !== null);
}
