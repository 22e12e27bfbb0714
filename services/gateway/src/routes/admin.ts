/**
 * The admin API (keys with the `admin` scope only; any other key gets 403): tenants and
 * their API keys. A key's secret is answered once, at creation; afterwards only its display
 * prefix is shown, never the secret or its hash. Revoking a key records it in Postgres and in
 * Redis' revocation set and tells every gateway at once (auth.ts). Bodies are validated
 * against a schema before anything changes; an oversized body is a 413.
 */
import type { FastifyInstance } from "fastify";
import type { Kysely } from "kysely";
import { PlatformError, type Logger } from "@infera/core";
import {
  createApiKey,
  createTenant,
  getApiKey,
  getTenant,
  listApiKeys,
  listTenants,
  revokeApiKey,
  rotateApiKey,
  updateApiKey,
  type ApiKey,
  type DB,
  type Tenant,
} from "@infera/registry";
import type { KeyCache, Revocations } from "../auth.ts";
import { scopeAuth } from "./deploy-access.ts";
import {
  ApiKey as ApiKeyOut,
  ApiKeyCreated,
  ApiKeyDeleted,
  ApiKeyList,
  ApiKeyParams,
  ApiKeysQuery,
  CreateKeyBody,
  CreateTenantBody,
  RotateKeyBody,
  Tenant as TenantOut,
  TenantList,
  UpdateKeyBody,
} from "../admin-schema.ts";
import { errorResponses } from "../error-schema.ts";

export interface AdminRouteDeps {
  db: Kysely<DB>;
  keys: KeyCache;
  revocations: Revocations;
  logger: Logger;
}

/** Admin bodies are small; anything bigger is a mistake or an attack. */
const ADMIN_BODY_LIMIT = 16 * 1024;

function tenantOut(t: Tenant) {
  return { object: "tenant", id: t.id, name: t.name, created_at: Math.floor(t.created_at.getTime() / 1000) };
}

/** A key as the API shows it: the display prefix, never the secret or the hash. */
export function keyOut(k: ApiKey) {
  return {
    object: "api_key",
    id: k.id,
    tenant_id: k.tenant_id,
    name: k.name,
    prefix: k.prefix,
    scopes: k.scopes,
    tier: k.tier,
    rpm: k.rpm,
    tpm: k.tpm,
    max_concurrent: k.max_concurrent,
    created_at: unix(k.created_at),
    revoked_at: k.revoked_at ? unix(k.revoked_at) : null,
    expires_at: k.expires_at ? unix(k.expires_at) : null,
    previous_secret_expires_at: k.previous_expires_at && k.previous_expires_at > new Date() ? unix(k.previous_expires_at) : null,
    models: k.models,
    monthly_token_budget: k.monthly_token_budget === null ? null : Number(k.monthly_token_budget),
  };
}

const unix = (d: Date) => Math.floor(d.getTime() / 1000);
const fromUnix = (s: number | null | undefined) => (s === undefined ? undefined : s === null ? null : new Date(s * 1000));

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string })?.code === "23505";
}

export function registerAdminRoutes(app: FastifyInstance, deps: AdminRouteDeps): void {
  const { db } = deps;

  async function tenantOrThrow(id: string, param: string): Promise<Tenant> {
    const t = await getTenant(db, id);
    if (!t) throw new PlatformError("not_found", `No tenant with id '${id}'.`, { param });
    return t;
  }

  app.register(
    async (scope) => {
      scope.addHook("onRequest", scopeAuth(deps.keys, "admin"));

      scope.post(
        "/tenants",
        {
          bodyLimit: ADMIN_BODY_LIMIT,
          schema: { tags: ["admin"], summary: "Create a tenant", body: CreateTenantBody, response: { 201: TenantOut, ...errorResponses } },
        },
        async (req, reply) => {
          const body = req.body as CreateTenantBody;
          try {
            const t = await createTenant(db, body.name);
            return reply.code(201).send(tenantOut(t));
          } catch (err) {
            if (isUniqueViolation(err)) throw new PlatformError("conflict", `A tenant named '${body.name}' already exists.`, { param: "name" });
            throw err;
          }
        },
      );

      scope.get("/tenants", { schema: { tags: ["admin"], summary: "List tenants", response: { 200: TenantList, ...errorResponses } } }, async () => ({
        object: "list",
        data: (await listTenants(db)).map(tenantOut),
      }));

      scope.post(
        "/api-keys",
        {
          bodyLimit: ADMIN_BODY_LIMIT,
          schema: {
            tags: ["admin"],
            summary: "Create an API key (its secret is answered this once)",
            body: CreateKeyBody,
            response: { 201: ApiKeyCreated, ...errorResponses },
          },
        },
        async (req, reply) => {
          const body = req.body as CreateKeyBody;
          if (!(await getTenant(db, body.tenant_id)))
            throw new PlatformError("invalid_request", `No tenant with id '${body.tenant_id}'.`, { param: "tenant_id" });
          if (body.expires_at != null && body.expires_at * 1000 <= Date.now())
            throw new PlatformError("invalid_request", "Invalid value for 'expires_at': it is in the past.", { param: "expires_at" });
          const { key, secret } = await createApiKey(db, {
            tenantId: body.tenant_id,
            name: body.name,
            scopes: body.scopes,
            tier: body.tier,
            rpm: body.rpm ?? null,
            tpm: body.tpm ?? null,
            maxConcurrent: body.max_concurrent ?? null,
            expiresAt: fromUnix(body.expires_at) ?? null,
            models: body.models ?? null,
            monthlyTokenBudget: body.monthly_token_budget ?? null,
          });
          deps.logger.info({ keyId: key.id, tenantId: key.tenant_id, scopes: key.scopes }, "api key created");
          // The only time the secret is ever shown.
          return reply.code(201).send({ ...keyOut(key), secret });
        },
      );

      scope.get(
        "/api-keys",
        // The query is checked by hand (the messages below); the schema documents it.
        { schema: { tags: ["admin"], summary: "List API keys", querystring: ApiKeysQuery, response: { 200: ApiKeyList, ...errorResponses } } },
        async (req) => {
          const q = req.query as Record<string, unknown>;
          for (const k of Object.keys(q)) if (k !== "tenant_id") throw new PlatformError("invalid_request", `Unrecognized query parameter: ${k}`, { param: k });
          const tenantId = q.tenant_id;
          if (tenantId !== undefined && (typeof tenantId !== "string" || tenantId.length === 0)) {
            throw new PlatformError("invalid_request", "tenant_id must be one tenant id.", { param: "tenant_id" });
          }
          if (tenantId) await tenantOrThrow(tenantId, "tenant_id");
          return { object: "list", data: (await listApiKeys(db, tenantId)).map(keyOut) };
        },
      );

      /** Every gateway learns of a key's change: the admission script's state and the caches. */
      async function announceChange(key: ApiKey): Promise<void> {
        deps.keys.revoke(key.id);
        try {
          await deps.revocations.changed(key.id, {
            expiresAt: key.expires_at?.getTime() ?? null,
            monthlyTokenBudget: key.monthly_token_budget === null ? null : Number(key.monthly_token_budget),
            hash: key.hash,
            previousHash: key.previous_hash,
            previousUntil: key.previous_expires_at?.getTime() ?? null,
          });
        } catch (err) {
          throw new PlatformError("unavailable", "The key is changed, but not every gateway could be told yet; repeat the request.", {
            cause: err,
            retryAfterS: 1,
          });
        }
      }

      scope.patch(
        "/api-keys/:id",
        {
          bodyLimit: ADMIN_BODY_LIMIT,
          schema: {
            tags: ["admin"],
            summary: "Change a key's name, expiry, models or monthly budget (every gateway at once)",
            params: ApiKeyParams,
            body: UpdateKeyBody,
            response: { 200: ApiKeyOut, ...errorResponses },
          },
        },
        async (req) => {
          const { id } = req.params as { id: string };
          const body = req.body as UpdateKeyBody;
          const key = await updateApiKey(db, id, {
            name: body.name,
            expiresAt: fromUnix(body.expires_at),
            models: body.models,
            monthlyTokenBudget: body.monthly_token_budget,
          });
          if (!key) throw new PlatformError("not_found", `No API key with id '${id}'.`, { param: "id" });
          await announceChange(key);
          deps.logger.info({ keyId: id, tenantId: key.tenant_id }, "api key changed");
          return keyOut(key);
        },
      );

      scope.post(
        "/api-keys/:id/rotate",
        {
          bodyLimit: ADMIN_BODY_LIMIT,
          schema: {
            tags: ["admin"],
            summary: "A new secret for a key (answered this once); the replaced one works for grace_seconds",
            params: ApiKeyParams,
            body: RotateKeyBody,
            response: { 200: ApiKeyCreated, ...errorResponses },
          },
          // No body at all is the default grace.
          preValidation: async (req) => {
            if (req.body === undefined) req.body = {};
          },
        },
        async (req) => {
          const { id } = req.params as { id: string };
          const grace = (req.body as RotateKeyBody).grace_seconds ?? 3600;
          const rotated = await rotateApiKey(db, id, new Date(Date.now() + grace * 1000));
          if (!rotated) {
            const key = await getApiKey(db, id);
            if (!key) throw new PlatformError("not_found", `No API key with id '${id}'.`, { param: "id" });
            throw new PlatformError("conflict", `The API key '${id}' is revoked; create a new one.`, { param: "id" });
          }
          await announceChange(rotated.key);
          deps.logger.info({ keyId: id, tenantId: rotated.key.tenant_id, graceSeconds: grace }, "api key rotated");
          return { ...keyOut(rotated.key), secret: rotated.secret };
        },
      );

      scope.delete(
        "/api-keys/:id",
        { schema: { tags: ["admin"], summary: "Revoke an API key", params: ApiKeyParams, response: { 200: ApiKeyDeleted, ...errorResponses } } },
        async (req) => {
          const { id } = req.params as { id: string };
          const key = (await revokeApiKey(db, id)) ?? (await getApiKey(db, id));
          if (!key) throw new PlatformError("not_found", `No API key with id '${id}'.`, { param: "id" });
          deps.keys.revoke(id);
          try {
            await deps.revocations.announce(id);
          } catch (err) {
            // Revoked in Postgres; repeating the DELETE announces it again.
            throw new PlatformError("unavailable", "The key is revoked, but not every gateway could be told yet; repeat the request.", {
              cause: err,
              retryAfterS: 1,
            });
          }
          deps.logger.info({ keyId: id, tenantId: key.tenant_id }, "api key revoked");
          return { object: "api_key", id, deleted: true };
        },
      );
    },
    { prefix: "/admin" },
  );
}
