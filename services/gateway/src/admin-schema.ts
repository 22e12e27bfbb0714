/**
 * The admin API's bodies and answers (TypeBox): Fastify validates requests with them and
 * /openapi.json documents both; tests validate real answers against the document.
 */
import Type, { type Static } from "typebox";
import { AllowedArgSchema, profileFields } from "./deploy-policy.ts";

const OrNull = <T extends Type.TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Limit = Type.Union([Type.Integer({ minimum: 1, maximum: 1_000_000_000 }), Type.Null()]);
const Scope = Type.Union([Type.Literal("admin"), Type.Literal("deploy"), Type.Literal("inference")]);
const Tier = Type.Union([Type.Literal("priority"), Type.Literal("standard"), Type.Literal("batch")]);

const lifetimeFields = {
  expires_at: Type.Optional(
    OrNull(Type.Integer({ minimum: 0, maximum: 253_402_300_799, description: "Unix seconds after which the key is refused; null: never." })),
  ),
  models: Type.Optional(
    OrNull(
      Type.Array(Type.String({ minLength: 1, maxLength: 200 }), {
        minItems: 1,
        maxItems: 100,
        uniqueItems: true,
        description: "Models (full names) the key may use; any other is, to it, a model that does not exist. null: every model.",
      }),
    ),
  ),
  monthly_token_budget: Type.Optional(
    OrNull(
      Type.Integer({
        minimum: 1,
        maximum: 1_000_000_000_000,
        description: "Tokens (prompt + completion) per calendar month, UTC; past it, 429 insufficient_quota. null: none.",
      }),
    ),
  ),
};

export const CreateTenantBody = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9][A-Za-z0-9_.-]*$" }) },
  { additionalProperties: false },
);
export type CreateTenantBody = Static<typeof CreateTenantBody>;

export const CreateKeyBody = Type.Object(
  {
    tenant_id: Type.String({ minLength: 1, maxLength: 64 }),
    name: Type.String({ minLength: 1, maxLength: 128 }),
    scopes: Type.Array(Scope, { minItems: 1, maxItems: 3, uniqueItems: true }),
    rpm: Type.Optional(Limit),
    tpm: Type.Optional(Limit),
    max_concurrent: Type.Optional(Limit),
    tier: Type.Optional(Tier),
    ...lifetimeFields,
  },
  { additionalProperties: false },
);
export type CreateKeyBody = Static<typeof CreateKeyBody>;

/** `PATCH /admin/api-keys/{id}`: fields left out keep their value; null clears one. */
export const UpdateKeyBody = Type.Object(
  { name: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })), ...lifetimeFields },
  { additionalProperties: false },
);
export type UpdateKeyBody = Static<typeof UpdateKeyBody>;

export const RotateKeyBody = Type.Object(
  {
    grace_seconds: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 30 * 86_400, description: "How long the replaced secret keeps working (default 3600; 0: it stops now)." }),
    ),
  },
  { additionalProperties: false },
);
export type RotateKeyBody = Static<typeof RotateKeyBody>;

export const ApiKeysQuery = Type.Object({ tenant_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })) });
export const ApiKeyParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });

export const Tenant = Type.Object(
  { object: Type.Literal("tenant"), id: Type.String(), name: Type.String(), created_at: Type.Integer({ description: "Unix seconds." }) },
  { $id: "Tenant" },
);
export const TenantList = Type.Object({ object: Type.Literal("list"), data: Type.Array(Type.Ref("Tenant")) }, { $id: "TenantList" });

const keyFields = {
  object: Type.Literal("api_key"),
  id: Type.String(),
  tenant_id: Type.String(),
  name: Type.String(),
  prefix: Type.String({ description: "The first characters of the secret, for people to tell keys apart." }),
  scopes: Type.Array(Scope),
  tier: Tier,
  rpm: OrNull(Type.Integer()),
  tpm: OrNull(Type.Integer()),
  max_concurrent: OrNull(Type.Integer()),
  created_at: Type.Integer({ description: "Unix seconds." }),
  revoked_at: OrNull(Type.Integer()),
  expires_at: OrNull(Type.Integer({ description: "Unix seconds; null: never." })),
  previous_secret_expires_at: OrNull(Type.Integer({ description: "Until when the secret replaced by the last rotation still works." })),
  models: OrNull(Type.Array(Type.String())),
  monthly_token_budget: OrNull(Type.Integer()),
};

export const ApiKey = Type.Object(keyFields, { $id: "ApiKey", description: "A key as listed: never its secret or hash." });
export const ApiKeyCreated = Type.Object(
  { ...keyFields, secret: Type.String({ description: "The key itself: shown in this answer only." }) },
  { $id: "ApiKeyCreated" },
);
export const ApiKeyList = Type.Object({ object: Type.Literal("list"), data: Type.Array(Type.Ref("ApiKey")) }, { $id: "ApiKeyList" });
export const ApiKeyDeleted = Type.Object({ object: Type.Literal("api_key"), id: Type.String(), deleted: Type.Literal(true) }, { $id: "ApiKeyDeleted" });

export const UsageQuery = Type.Object({
  from: Type.Optional(Type.String({ description: "Unix seconds or an ISO 8601 date; default 30 days before `to`." })),
  to: Type.Optional(Type.String({ description: "Unix seconds or an ISO 8601 date; default now. The window is [from, to)." })),
  group_by: Type.Optional(Type.Enum(["model", "day", "key"], { default: "model" })),
  tenant_id: Type.Optional(Type.String({ description: "Admin keys: another tenant's usage." })),
});

const usageSums = {
  requests: Type.Integer(),
  prompt_tokens: Type.Integer(),
  completion_tokens: Type.Integer(),
  total_tokens: Type.Integer(),
  images: Type.Integer(),
  cost_usd: Type.Number(),
};

export const UsageReport = Type.Object(
  {
    object: Type.Literal("list"),
    tenant_id: Type.String(),
    from: Type.String({ format: "date-time" }),
    to: Type.String({ format: "date-time" }),
    group_by: Type.Enum(["model", "day", "key"]),
    data: Type.Array(
      Type.Object({
        ...usageSums,
        model: Type.Optional(Type.String()),
        day: Type.Optional(Type.String({ description: "YYYY-MM-DD (UTC)." })),
        key_id: Type.Optional(Type.String()),
      }),
    ),
    total: Type.Object(usageSums),
  },
  { $id: "UsageReport" },
);

// ---- Deploy policy: engine profiles and tenant grants ----

export const ProfileParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }) });
export const TenantParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });
export const ReplaceProfileBody = Type.Object(profileFields, { additionalProperties: false });
export type ReplaceProfileBody = Static<typeof ReplaceProfileBody>;

export const EngineProfile = Type.Object(
  {
    object: Type.Literal("engine_profile"),
    name: Type.String(),
    engine: Type.Enum(["vllm", "tgi"]),
    image: OrNull(Type.String({ description: "By digest; null: the runtime's configured image for the engine." })),
    allowed_args: Type.Array(AllowedArgSchema),
    gpu_types: Type.Array(Type.String(), { description: "Empty: any GPU type the cluster offers." }),
    max_num_gpus: Type.Integer(),
    max_instances: Type.Integer(),
    description: OrNull(Type.String()),
    created_at: Type.Integer({ description: "Unix seconds." }),
    updated_at: Type.Integer({ description: "Unix seconds." }),
  },
  { $id: "EngineProfile", description: "What tenants may deploy: they choose a profile by name on POST /deploy/llm." },
);
export const EngineProfileList = Type.Object({ object: Type.Literal("list"), data: Type.Array(Type.Ref("EngineProfile")) }, { $id: "EngineProfileList" });
export const EngineProfileDeleted = Type.Object(
  { object: Type.Literal("engine_profile"), name: Type.String(), deleted: Type.Literal(true) },
  { $id: "EngineProfileDeleted" },
);

export const GrantBody = Type.Object(
  {
    container_image: Type.Optional(Type.Boolean({ description: "The tenant may set `container_image` (any image)." })),
    extra_args: Type.Optional(Type.Boolean({ description: "The tenant may set `extra_args` its profile does not list." })),
    gpu_quota: Type.Optional(
      Type.Union([Type.Integer({ minimum: 0, maximum: 1_000_000 }), Type.Null()], {
        description: "Most GPUs (num_gpus × max_instances, summed); null: the default.",
      }),
    ),
  },
  { additionalProperties: false },
);
export type GrantBody = Static<typeof GrantBody>;

export const DeployGrant = Type.Object(
  {
    object: Type.Literal("deploy_grant"),
    tenant_id: Type.String(),
    container_image: Type.Boolean(),
    extra_args: Type.Boolean(),
    gpu_quota: OrNull(Type.Integer({ description: "This tenant's own quota; null: the default applies." })),
    effective_gpu_quota: OrNull(Type.Integer({ description: "The quota in force; null: none." })),
    gpus_in_use: Type.Integer({ description: "num_gpus × max_instances over its deployments not deleted." }),
  },
  { $id: "DeployGrant" },
);
