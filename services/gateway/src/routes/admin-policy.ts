/**
 * The admin API's deploy policy: engine profiles (list, read, create, replace, delete) and
 * each tenant's grant (its own image, free arguments, its GPU quota). Admin keys only.
 * Deployments keep the image and arguments they were made with: changing or deleting a
 * profile changes what the next deploy may ask, not what runs.
 */
import type { FastifyInstance } from "fastify";
import type { Kysely } from "kysely";
import { PlatformError, type Logger } from "@infera/core";
import {
  createEngineProfile,
  deleteEngineProfile,
  getDeployGrant,
  getEngineProfile,
  getTenant,
  listEngineProfiles,
  putDeployGrant,
  replaceEngineProfile,
  tenantGpuUse,
  type DB,
  type EngineProfile,
  type ProfileInput,
} from "@infera/registry";
import type { KeyCache } from "../auth.ts";
import {
  DeployGrant,
  EngineProfile as ProfileOut,
  EngineProfileDeleted,
  EngineProfileList,
  GrantBody,
  ProfileParams,
  ReplaceProfileBody,
  TenantParams,
} from "../admin-schema.ts";
import { patternProblem, ProfileBody, toProfileInput } from "../deploy-policy.ts";
import { errorResponses } from "../error-schema.ts";
import { scopeAuth } from "./deploy-access.ts";

export interface AdminPolicyRouteDeps {
  db: Kysely<DB>;
  keys: KeyCache;
  /** The quota of a tenant whose grant sets none. */
  defaultGpuQuota: number | null;
  logger: Logger;
}

const BODY_LIMIT = 64 * 1024;
const unix = (d: Date) => Math.floor(d.getTime() / 1000);

export function profileOut(p: EngineProfile) {
  return {
    object: "engine_profile" as const,
    name: p.name,
    engine: p.engine as "vllm" | "tgi",
    image: p.image,
    allowed_args: p.allowed_args,
    gpu_types: p.gpu_types,
    max_num_gpus: p.max_num_gpus,
    max_instances: p.max_instances,
    description: p.description,
    created_at: unix(p.created_at),
    updated_at: unix(p.updated_at),
  };
}

function checkPatterns(p: ProfileInput): void {
  const bad = patternProblem(p.allowed_args);
  if (bad) {
    throw new PlatformError("invalid_request", `Invalid value for 'allowed_args[${bad.index}].pattern': not a regular expression (${bad.message}).`, {
      param: `allowed_args[${bad.index}].pattern`,
    });
  }
}

export function registerAdminPolicyRoutes(app: FastifyInstance, deps: AdminPolicyRouteDeps): void {
  const { db } = deps;

  app.register(
    async (scope) => {
      scope.addHook("onRequest", scopeAuth(deps.keys, "admin"));

      scope.get(
        "/engine-profiles",
        { schema: { tags: ["admin"], summary: "List engine profiles", response: { 200: EngineProfileList, ...errorResponses } } },
        async () => ({ object: "list", data: (await listEngineProfiles(db)).map(profileOut) }),
      );

      scope.post(
        "/engine-profiles",
        {
          bodyLimit: BODY_LIMIT,
          schema: { tags: ["admin"], summary: "Create an engine profile", body: ProfileBody, response: { 201: ProfileOut, ...errorResponses } },
        },
        async (req, reply) => {
          const p = toProfileInput(req.body as ProfileBody);
          checkPatterns(p);
          if (await getEngineProfile(db, p.name)) throw new PlatformError("conflict", `An engine profile named '${p.name}' already exists.`, { param: "name" });
          try {
            return reply.code(201).send(profileOut(await createEngineProfile(db, p)));
          } catch (err) {
            if ((err as { code?: string }).code === "23505")
              throw new PlatformError("conflict", `An engine profile named '${p.name}' already exists.`, { param: "name" });
            throw err;
          }
        },
      );

      scope.get(
        "/engine-profiles/:name",
        { schema: { tags: ["admin"], summary: "One engine profile", params: ProfileParams, response: { 200: ProfileOut, ...errorResponses } } },
        async (req) => {
          const { name } = req.params as { name: string };
          const p = await getEngineProfile(db, name);
          if (!p) throw new PlatformError("not_found", `No engine profile named '${name}'.`, { param: "name" });
          return profileOut(p);
        },
      );

      scope.put(
        "/engine-profiles/:name",
        {
          bodyLimit: BODY_LIMIT,
          schema: {
            tags: ["admin"],
            summary: "Replace an engine profile (running deployments keep what they were made with)",
            params: ProfileParams,
            body: ReplaceProfileBody,
            response: { 200: ProfileOut, ...errorResponses },
          },
        },
        async (req) => {
          const { name } = req.params as { name: string };
          const p = toProfileInput({ ...(req.body as ReplaceProfileBody), name });
          checkPatterns(p);
          const updated = await replaceEngineProfile(db, p);
          if (!updated) throw new PlatformError("not_found", `No engine profile named '${name}'.`, { param: "name" });
          return profileOut(updated);
        },
      );

      scope.delete(
        "/engine-profiles/:name",
        { schema: { tags: ["admin"], summary: "Delete an engine profile", params: ProfileParams, response: { 200: EngineProfileDeleted, ...errorResponses } } },
        async (req) => {
          const { name } = req.params as { name: string };
          if (!(await deleteEngineProfile(db, name))) throw new PlatformError("not_found", `No engine profile named '${name}'.`, { param: "name" });
          return { object: "engine_profile", name, deleted: true };
        },
      );

      async function grantOut(tenantId: string) {
        const g = await getDeployGrant(db, tenantId);
        const own = g?.gpu_quota ?? null;
        return {
          object: "deploy_grant" as const,
          tenant_id: tenantId,
          container_image: g?.container_image ?? false,
          extra_args: g?.extra_args ?? false,
          gpu_quota: own,
          effective_gpu_quota: own ?? deps.defaultGpuQuota,
          gpus_in_use: await tenantGpuUse(db, tenantId),
        };
      }

      async function tenantOrThrow(id: string): Promise<void> {
        if (!(await getTenant(db, id))) throw new PlatformError("not_found", `No tenant with id '${id}'.`, { param: "id" });
      }

      scope.get(
        "/tenants/:id/deploy-grant",
        {
          schema: {
            tags: ["admin"],
            summary: "What a tenant may deploy beyond its profiles, and its GPU quota",
            params: TenantParams,
            response: { 200: DeployGrant, ...errorResponses },
          },
        },
        async (req) => {
          const { id } = req.params as { id: string };
          await tenantOrThrow(id);
          return grantOut(id);
        },
      );

      scope.put(
        "/tenants/:id/deploy-grant",
        {
          bodyLimit: BODY_LIMIT,
          schema: {
            tags: ["admin"],
            summary: "Grant a tenant its own image or free arguments, or set its GPU quota (fields left out keep their value)",
            params: TenantParams,
            body: GrantBody,
            response: { 200: DeployGrant, ...errorResponses },
          },
        },
        async (req) => {
          const { id } = req.params as { id: string };
          await tenantOrThrow(id);
          const body = req.body as GrantBody;
          const current = await getDeployGrant(db, id);
          await putDeployGrant(db, id, {
            container_image: body.container_image ?? current?.container_image ?? false,
            extra_args: body.extra_args ?? current?.extra_args ?? false,
            gpu_quota: body.gpu_quota !== undefined ? body.gpu_quota : (current?.gpu_quota ?? null),
          });
          deps.logger.info({ tenantId: id, grant: body }, "deploy grant changed");
          return grantOut(id);
        },
      );
    },
    { prefix: "/admin" },
  );
}
