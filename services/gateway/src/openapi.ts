/**
 * The platform's API described as OpenAPI 3.1, from the TypeBox schemas the routes are
 * declared with (request bodies and parameters are the very schemas Fastify validates with;
 * answers are their `response` schemas): @fastify/swagger collects every route as it is
 * registered. Served at `/openapi.json`, with a reference page at `/docs` (Swagger UI, its
 * assets served from this gateway). Answers are sent as the handlers build them — a response
 * schema documents an answer and the tests check real answers against it; it never reshapes one.
 */
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, RouteOptions } from "fastify";
import type { TSchema } from "typebox";
import {
  ApiKey,
  ApiKeyCreated,
  ApiKeyDeleted,
  ApiKeyList,
  DeployGrant,
  EngineProfile,
  EngineProfileDeleted,
  EngineProfileList,
  Tenant,
  TenantList,
  UsageReport,
} from "./admin-schema.ts";
import { AuditEventOut, AuditPage } from "./audit.ts";
import {
  DeployCreated,
  Deployment,
  DeploymentEvent,
  DeploymentEventPage,
  DeploymentStats,
  EngineList,
  GpuAvailability,
  LogLine,
  ModelVersions,
  ProfileList,
  Replica,
  ReplicaList,
} from "./deploy-schema.ts";
import { OPENAI_ROUTE_DOCS, OPENAI_SCHEMAS } from "./openai-responses.ts";

/** Schemas with an `$id`: one entry each under `components.schemas`, referenced by name. */
export const SHARED_SCHEMAS: readonly TSchema[] = [
  ...OPENAI_SCHEMAS,
  DeployCreated,
  Deployment,
  DeploymentEvent,
  DeploymentEventPage,
  DeploymentStats,
  EngineList,
  GpuAvailability,
  LogLine,
  ModelVersions,
  Replica,
  ReplicaList,
  Tenant,
  TenantList,
  ApiKey,
  ApiKeyCreated,
  ApiKeyList,
  ApiKeyDeleted,
  UsageReport,
  EngineProfile,
  EngineProfileList,
  EngineProfileDeleted,
  DeployGrant,
  ProfileList,
  AuditEventOut,
  AuditPage,
];

/** Per-route documentation the route's schema cannot say (config.openapi). */
export interface OpenApiRouteConfig {
  /** The path as documented, for a wildcard route (`/models/*` → `/models/{model_name}/versions`). */
  path?: string;
  /** Its path parameters, for such a route (the wildcard itself is not validated by them). */
  params?: TSchema;
}

const DOCS_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'";

export const TAGS = [
  { name: "openai", description: "The OpenAI-compatible API, under `/v1/openai` (and the same under `/v1`)." },
  { name: "deploy", description: "Deploy models and watch them: the hosted provider's deploy API, plus events, replicas, logs and stats." },
  { name: "admin", description: "Tenants and API keys (admin keys only)." },
  { name: "usage", description: "What a tenant used." },
  { name: "ops", description: "Health, readiness, metrics and this document." },
];

/** A route as registered, for the check that the document has every one (openapi.int.test.ts). */
export interface RegisteredRoute {
  method: string;
  url: string;
  hidden: boolean;
  documentedAs: string | undefined;
}

const ROUTES = Symbol("infera.routes");

/** The routes registered on a gateway (those after registerOpenApi). */
export function registeredRoutes(app: FastifyInstance): readonly RegisteredRoute[] {
  return (app as unknown as Record<symbol, RegisteredRoute[]>)[ROUTES] ?? [];
}

export async function registerOpenApi(app: FastifyInstance, version: string): Promise<void> {
  const routes: RegisteredRoute[] = [];
  (app as unknown as Record<symbol, RegisteredRoute[]>)[ROUTES] = routes;
  app.addHook("onRoute", (r) => {
    for (const method of [r.method].flat()) {
      if (method === "HEAD") continue;
      const schema = r.schema as { hide?: boolean } | undefined;
      routes.push({
        method,
        url: r.url,
        hidden: schema?.hide === true,
        documentedAs: (r.config as { openapi?: OpenApiRouteConfig } | undefined)?.openapi?.path,
      });
    }
  });
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  for (const s of SHARED_SCHEMAS) app.addSchema(s);
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Infera",
        version,
        description:
          "An LLM inference platform: OpenAI-compatible endpoints for tenants, a deploy API for operators, admin and usage. " +
          "Every request carries an API key (`Authorization: Bearer sk-…`); errors are OpenAI's error JSON, and `param` names the field at fault.",
      },
      components: { securitySchemes: { apiKey: { type: "http", scheme: "bearer", description: "An Infera API key, `sk-…`." } } },
      security: [{ apiKey: [] }],
      tags: TAGS,
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === "string" ? json.$id : `def-${i}`) },
    transform: ({ schema, url, route }) => {
      const o = (route as RouteOptions & { config?: { openapi?: OpenApiRouteConfig } }).config?.openapi;
      const path = o?.path ?? url;
      let doc = o?.params ? { ...schema, params: o.params } : schema;
      // The OpenAI routes answer in OpenAI's shapes (openai-responses.ts), under both prefixes.
      const openai = /^\/v1(\/openai)?(\/.*)$/.exec(path);
      const sub = openai?.[2]?.replace(/:(\w+)/g, "{$1}");
      const method = typeof route.method === "string" ? route.method : "";
      const answer = sub ? (OPENAI_ROUTE_DOCS[`${method} ${sub}`] ?? OPENAI_ROUTE_DOCS[sub]) : undefined;
      if (answer)
        doc = {
          ...doc,
          tags: ["openai"],
          summary: openai![1] ? answer.summary : `${answer.summary} (the same as under /v1/openai)`,
          response: answer.response,
        };
      return { schema: doc, url: path };
    },
  });
  app.get(
    "/openapi.json",
    { schema: { tags: ["ops"], summary: "This document (OpenAPI 3.1)", security: [], response: { 200: { type: "object", additionalProperties: true } } } },
    async () => app.swagger(),
  );
  const assets = swaggerUiAssets();
  await app.register(swaggerUi, {
    routePrefix: "/docs",
    baseDir: assets,
    logo: { type: "image/svg+xml", content: readFileSync(join(assets, "logo.svg")) },
    // Everything from this gateway: no validator badge (validator.swagger.io), no fonts or styles from elsewhere.
    staticCSP: DOCS_CSP,
    uiConfig: { docExpansion: "list", deepLinking: true, defaultModelsExpandDepth: 1, validatorUrl: null },
    theme: { title: "Infera API" },
  });
}

/**
 * Swagger UI's files (its page's scripts, styles and logo), which the package reads by path
 * beside its own code: the image's bundle carries a copy in `swagger-ui/` beside it
 * (deploy/docker/bundle.mjs), a checkout reads the installed package's.
 */
function swaggerUiAssets(): string {
  const bundled = join(dirname(fileURLToPath(import.meta.url)), "swagger-ui");
  if (existsSync(join(bundled, "logo.svg"))) return bundled;
  return join(dirname(createRequire(import.meta.url).resolve("@fastify/swagger-ui")), "static");
}
