/**
 * The deployment state machine. `transition` is the only way a deployment's status
 * changes: it rejects moves the machine does not allow and writes the new state and
 * its deployment_events row in one transaction.
 */
import type { Kysely, Transaction } from "kysely";
import { PlatformError } from "@infera/core";
import type { DB, Deployment, DeploymentState } from "./schema.ts";

export const ALLOWED_TRANSITIONS: Record<DeploymentState, readonly DeploymentState[]> = {
  initializing: ["downloading", "failed", "deleted"],
  downloading: ["deploying", "failed", "deleted"],
  deploying: ["running", "failed", "deleted"],
  running: ["stopped", "failed", "deleted"],
  // Starting a stopped (or failed) deployment brings replicas up again: it deploys, then runs.
  stopped: ["deploying", "deleted"],
  failed: ["deploying", "deleted"],
  deleted: [],
};

export function canTransition(from: DeploymentState, to: DeploymentState): boolean {
  return ALLOWED_TRANSITIONS[from].includes(to);
}

export interface TransitionOptions {
  reason?: string;
  /** Set with `failed`; cleared on any other state. */
  failReason?: string;
  /** Only move if the deployment is in one of these states (a compare-and-set). */
  expectFrom?: readonly DeploymentState[];
  /** More writes that belong to the same change (e.g. dropping a deleted deployment's secrets), in its transaction. */
  within?: (trx: Transaction<DB>) => Promise<void>;
}

export async function transition(db: Kysely<DB>, deploymentId: string, to: DeploymentState, options: TransitionOptions = {}): Promise<Deployment> {
  return db.transaction().execute(async (trx) => {
    const current = await trx.selectFrom("deployments").selectAll().where("id", "=", deploymentId).forUpdate().executeTakeFirst();
    if (!current) throw new PlatformError("not_found", `deployment ${deploymentId} does not exist`, { param: "deploy_id" });
    if (options.expectFrom && !options.expectFrom.includes(current.status)) {
      throw new PlatformError("conflict", `deployment ${deploymentId} is ${current.status}, not ${options.expectFrom.join(" or ")}`);
    }
    if (!canTransition(current.status, to)) {
      throw new PlatformError("conflict", `deployment ${deploymentId} cannot go from ${current.status} to ${to}`, { param: "status" });
    }
    const updated = await trx
      .updateTable("deployments")
      .set({ status: to, fail_reason: to === "failed" ? (options.failReason ?? "unknown") : null, updated_at: new Date() })
      .where("id", "=", deploymentId)
      .returningAll()
      .executeTakeFirstOrThrow();
    await trx
      .insertInto("deployment_events")
      .values({ deployment_id: deploymentId, from_status: current.status, to_status: to, reason: options.reason ?? options.failReason ?? null })
      .execute();
    if (options.within) await options.within(trx);
    return updated;
  });
}
