/**
 * Who may see a deployment through the deploy API: keys with the `deploy` scope (or
 * `admin`), for their own tenant's deployments only — another tenant's id, like an unknown
 * one, is a 404, never a 403 (existence is not confirmed).
 */
import type { FastifyRequest } from "fastify";
import type { Kysely } from "kysely";
import { PlatformError } from "@infera/core";
import { getDeployment, type DB, type DeploymentView, type Scope } from "@infera/registry";
import { requireScope, type KeyCache, type Principal } from "../auth.ts";

/** The onRequest hook of every admin or deploy API route: authenticates, checks the scope, keeps the principal on the request. */
export function scopeAuth(keys: KeyCache, scope: Scope) {
  return async (req: FastifyRequest): Promise<void> => {
    const p = await keys.authenticate(req.headers.authorization);
    // Kept before the scope check: a refusal is audited with who asked.
    (req as FastifyRequest & { principal: Principal }).principal = p;
    requireScope(p, scope);
  };
}

export const deployAuth = (keys: KeyCache) => scopeAuth(keys, "deploy");

export function principalOf(req: FastifyRequest): Principal {
  return (req as FastifyRequest & { principal: Principal }).principal;
}

/** The caller's own deployment, or a 404 (whether it does not exist or is another tenant's). */
export async function ownDeployment(db: Kysely<DB>, p: Principal, id: string): Promise<DeploymentView> {
  const d = await getDeployment(db, id);
  if (!d || d.tenant_id === null || d.tenant_id !== p.tenantId) {
    throw new PlatformError("not_found", `The deployment '${id}' does not exist or you do not have access to it.`, { param: "deploy_id" });
  }
  return d;
}
