/** Table types: one interface per table; rows via Selectable/Insertable/Updateable. */
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from "kysely";
import type { EngineKind, Modality, Task } from "@infera/contracts";
import type { PolicyName } from "@infera/policy";

type CreatedAt = ColumnType<Date, Date | string | undefined, never>;
type UpdatedAt = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T> = ColumnType<T, string, string>;

export type Scope = "admin" | "deploy" | "inference";
export type KeyTier = "priority" | "standard" | "batch";

export const DEPLOYMENT_STATES = ["initializing", "downloading", "deploying", "running", "stopped", "failed", "deleted"] as const;
export type DeploymentState = (typeof DEPLOYMENT_STATES)[number];

export interface TenantsTable {
  id: string;
  name: string;
  created_at: CreatedAt;
}

export interface ApiKeysTable {
  id: string;
  tenant_id: string;
  name: string;
  /** The first characters of the secret, shown to humans ("sk-ab12…"). */
  prefix: string;
  /** SHA-256 of the secret, hex. The secret itself is never stored. */
  hash: string;
  scopes: ColumnType<Scope[], Scope[], Scope[]>;
  tier: ColumnType<KeyTier, KeyTier | undefined, KeyTier>;
  rpm: number | null;
  tpm: number | null;
  max_concurrent: number | null;
  created_at: CreatedAt;
  revoked_at: Date | null;
  /** After this the key is refused (401); null: never. */
  expires_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  /** The secret before the last rotation, accepted until `previous_expires_at`. */
  previous_hash: ColumnType<string | null, string | null | undefined, string | null>;
  previous_expires_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  /** Models (full names) this key may use; null: every model its tenant sees. */
  models: ColumnType<string[] | null, string[] | null | undefined, string[] | null>;
  /** Tokens (prompt + completion) per calendar month (UTC); null: no budget. bigint: read as a string. */
  monthly_token_budget: ColumnType<string | null, number | null | undefined, number | null>;
}

export interface ModelsTable {
  id: string;
  /** null: the public catalog; otherwise the owning tenant (its name prefixes the model name). */
  tenant_id: string | null;
  name: string;
  task: Task;
  /** Input modalities (always includes `text`). */
  modalities: ColumnType<Modality[], Modality[] | undefined, Modality[]>;
  created_at: CreatedAt;
}

export interface ModelVersionsTable {
  id: string;
  model_id: string;
  version: string;
  uploaded_at: CreatedAt;
  /** USD per million tokens / per image. */
  price_input_per_m: ColumnType<string, string | number | undefined, string | number>;
  price_output_per_m: ColumnType<string, string | number | undefined, string | number>;
  price_per_image: ColumnType<string, string | number | undefined, string | number>;
  /** Batch API lines are charged these prices times this factor (default 0.5). */
  batch_price_factor: ColumnType<string, string | number | undefined, string | number>;
  /** The model's Hugging Face `tokenizer.json` (a path or an https URL); null: the gateway estimates token counts. */
  tokenizer: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface DeploymentConfig {
  gpu: string;
  num_gpus: number;
  max_batch_size: number;
  engine: EngineKind;
  hf: { repo: string; revision: string | null; has_token: boolean } | null;
  container_image: string | null;
  extra_args: string[];
  /** Placement policy for this deployment. */
  placement: PolicyName;
  /** The engine profile it was deployed with (absent on deployments made before profiles). */
  profile?: string | null;
}

export interface DeploymentSettings {
  min_instances: number;
  max_instances: number;
}

export interface DeploymentsTable {
  id: string;
  tenant_id: string | null;
  model_version_id: string;
  status: DeploymentState;
  fail_reason: string | null;
  config: Json<DeploymentConfig>;
  settings: Json<DeploymentSettings>;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface DeploymentEventsTable {
  id: Generated<string>;
  deployment_id: string;
  from_status: DeploymentState | null;
  to_status: DeploymentState;
  reason: string | null;
  created_at: CreatedAt;
}

/** A deployment's sealed secrets (never selected by the views the API answers from). */
export interface DeploymentSecretsTable {
  deployment_id: string;
  /** `v1:<iv>:<tag>:<ciphertext>` (AES-256-GCM, base64url), see secrets.ts. */
  hf_token_sealed: string;
  created_at: CreatedAt;
}

export interface UsageRecordsTable {
  id: Generated<string>;
  request_id: string;
  tenant_id: string;
  key_id: string;
  deployment_id: string;
  model: string;
  endpoint: string;
  prompt_tokens: number;
  completion_tokens: number;
  images: number;
  ttft_ms: number | null;
  duration_ms: number;
  status: string;
  cost_usd: ColumnType<string, string | number, never>;
  /** OpenAI's `user`, `safety_identifier`, `metadata` and `service_tier` as the request sent them. */
  end_user: ColumnType<string | null, string | null | undefined, never>;
  safety_identifier: ColumnType<string | null, string | null | undefined, never>;
  metadata: ColumnType<Record<string, string> | null, string | null | undefined, never>;
  service_tier: ColumnType<string | null, string | null | undefined, never>;
  /** The id the client gave the request (X-Client-Request-Id / X-Request-Id); `request_id` is the platform's. */
  client_request_id: ColumnType<string | null, string | null | undefined, never>;
  /** The batch the request was a line of (Batch API); null: an interactive request. */
  batch_id: ColumnType<string | null, string | null | undefined, never>;
  created_at: CreatedAt;
}

/** One `extra_args` flag a profile allows: `--flag` alone (pattern null) or `--flag VALUE` / `--flag=VALUE`, VALUE matching the pattern whole. */
export interface AllowedArg {
  flag: string;
  pattern: string | null;
}

/** An engine profile: what tenants may deploy (seeded from Helm values, changed through the admin API). */
export interface EngineProfilesTable {
  name: string;
  engine: EngineKind;
  /** The engine image pinned by digest (`repo@sha256:…`); null: the runtime's configured image for the engine. */
  image: string | null;
  allowed_args: Json<AllowedArg[]>;
  /** GPU types a deployment of this profile may use; empty: any the cluster offers. */
  gpu_types: ColumnType<string[], string[] | undefined, string[]>;
  max_num_gpus: number;
  max_instances: number;
  description: string | null;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

/** What an admin granted one tenant beyond its profiles, and its GPU quota. */
export interface TenantDeployGrantsTable {
  tenant_id: string;
  /** May set `container_image` (any image). */
  container_image: ColumnType<boolean, boolean | undefined, boolean>;
  /** May set `extra_args` the profile does not list. */
  extra_args: ColumnType<boolean, boolean | undefined, boolean>;
  /** Most GPUs (sum of num_gpus × max_instances over its deployments not deleted); null: the configured default. */
  gpu_quota: number | null;
  updated_at: UpdatedAt;
}

/** One admin or deploy action (append-only: inserted, never updated). */
export interface AuditLogTable {
  id: Generated<string>;
  at: CreatedAt;
  actor_key_id: string;
  actor_tenant_id: string;
  /** `deployment.create`, `api_key.rotate`, …: what was asked. */
  action: string;
  method: string;
  path: string;
  /** The HTTP status answered. */
  status: number;
  /** `ok` (done) or `denied` (refused by scope or policy). */
  outcome: "ok" | "denied";
  target_id: string | null;
  /** The tenant the action concerns. */
  tenant_id: string | null;
  request_id: string;
  /** The request's body and parameters, secrets removed. */
  details: ColumnType<Record<string, unknown> | null, string | null, never>;
}

/** A stored response (Responses API, `store: true`), kept until `expires_at`. */
export interface StoredResponsesTable {
  id: string;
  tenant_id: string;
  created_at: Date;
  expires_at: Date;
  /** The response object as answered. */
  response: Json<Record<string, unknown>>;
  /** This request's input items (with their ids). */
  input_items: Json<Record<string, unknown>[]>;
  /** The items the model saw: the previous response's conversation and output, then these input items. */
  conversation: Json<Record<string, unknown>[]>;
}

export type FilePurpose = "batch" | "batch_output";

export interface FilesTable {
  /** `file-` and 24 random characters, as OpenAI's. */
  id: string;
  tenant_id: string;
  purpose: ColumnType<FilePurpose, FilePurpose, never>;
  filename: string;
  /** bigint: read as a string (db.ts). */
  bytes: ColumnType<string, number | string, never>;
  line_count: number;
  /** The one `url` every line of a batch input uses (`/v1/chat/completions`); null for outputs. */
  batch_endpoint: string | null;
  /** Where the body is in the blob store. */
  storage_key: string;
  status: ColumnType<"processed", "processed" | undefined, "processed">;
  created_at: CreatedAt;
  expires_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  deleted_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

export const BATCH_STATUSES = ["validating", "in_progress", "finalizing", "completed", "failed", "expired", "cancelling", "cancelled"] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

/** A batch (the Batch API): OpenAI's Batch object, per tenant; its lines run as the key that created it. */
export interface BatchesTable {
  id: string;
  tenant_id: string;
  key_id: string;
  /** `/v1/chat/completions`, `/v1/completions` or `/v1/embeddings`. */
  endpoint: string;
  input_file_id: string;
  completion_window: string;
  status: BatchStatus;
  /** Lines in the input file. */
  total: ColumnType<number, number | undefined, number>;
  output_file_id: string | null;
  error_file_id: string | null;
  errors: ColumnType<Record<string, unknown> | null, string | null | undefined, string | null>;
  metadata: ColumnType<Record<string, string> | null, string | null | undefined, string | null>;
  created_at: CreatedAt;
  in_progress_at: Date | null;
  expires_at: Date;
  finalizing_at: Date | null;
  completed_at: Date | null;
  failed_at: Date | null;
  expired_at: Date | null;
  cancelling_at: Date | null;
  cancelled_at: Date | null;
  /** `output_expires_after.seconds`: the output and error files expire this long after they are written; null: never. */
  output_expires_after_s: ColumnType<number | null, number | null | undefined, number | null>;
}

/** One answered line of a batch, recorded once (primary key batch_id, line_no). */
export interface BatchLinesTable {
  batch_id: string;
  line_no: number;
  custom_id: string;
  /** `completed` (a 2xx answer) or `failed`. */
  status: "completed" | "failed";
  status_code: number | null;
  /** The line's platform request id (deterministic per line: its usage record's). */
  request_id: string;
  response: ColumnType<unknown, string | null | undefined, never>;
  error: ColumnType<{ code: string; message: string } | null, string | null | undefined, never>;
  created_at: CreatedAt;
}

export interface DB {
  tenants: TenantsTable;
  api_keys: ApiKeysTable;
  models: ModelsTable;
  model_versions: ModelVersionsTable;
  deployments: DeploymentsTable;
  deployment_events: DeploymentEventsTable;
  deployment_secrets: DeploymentSecretsTable;
  usage_records: UsageRecordsTable;
  engine_profiles: EngineProfilesTable;
  tenant_deploy_grants: TenantDeployGrantsTable;
  audit_log: AuditLogTable;
  stored_responses: StoredResponsesTable;
  files: FilesTable;
  batches: BatchesTable;
  batch_lines: BatchLinesTable;
}

export type Tenant = Selectable<TenantsTable>;
export type ApiKey = Selectable<ApiKeysTable>;
export type NewApiKey = Insertable<ApiKeysTable>;
export type Model = Selectable<ModelsTable>;
export type ModelVersion = Selectable<ModelVersionsTable>;
export type Deployment = Selectable<DeploymentsTable>;
export type DeploymentUpdate = Updateable<DeploymentsTable>;
export type DeploymentEvent = Selectable<DeploymentEventsTable>;
export type UsageRecord = Selectable<UsageRecordsTable>;
export type EngineProfile = Selectable<EngineProfilesTable>;
export type TenantDeployGrant = Selectable<TenantDeployGrantsTable>;
export type AuditEvent = Selectable<AuditLogTable>;
export type FileRow = Selectable<FilesTable>;
export type Batch = Selectable<BatchesTable>;
export type BatchLine = Selectable<BatchLinesTable>;
export type NewAuditEvent = Insertable<AuditLogTable>;
export type NewUsageRecord = Insertable<UsageRecordsTable>;
