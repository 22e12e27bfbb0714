import type { Kysely, Transaction } from "kysely";
import type { DB, Deployment, DeploymentConfig, DeploymentSettings, DeploymentState, Task } from "./schema.ts";
import { newId } from "./ids.ts";

type Db = Kysely<DB> | Transaction<DB>;

/** A deployment with what the API and the scheduler show of its model. */
export interface DeploymentView extends Deployment {
  model_name: string;
  version: string;
  task: Task;
}

function viewQuery(db: Db) {
  return db
    .selectFrom("deployments as d")
    .innerJoin("model_versions as v", "v.id", "d.model_version_id")
    .innerJoin("models as m", "m.id", "v.model_id")
    .selectAll("d")
    .select(["m.name as model_name", "v.version as version", "m.task as task"]);
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
