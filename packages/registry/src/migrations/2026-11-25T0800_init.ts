// Landed migrations never change. They import nothing from the application.
import { sql, type Kysely } from "kysely";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("tenants")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull().unique())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable("api_keys")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("prefix", "text", (c) => c.notNull())
    .addColumn("hash", "text", (c) => c.notNull().unique())
    .addColumn("scopes", sql`text[]`, (c) => c.notNull())
    .addColumn("tier", "text", (c) => c.notNull().defaultTo("standard").check(sql`tier in ('priority','standard','batch')`))
    .addColumn("rpm", "integer")
    .addColumn("tpm", "integer")
    .addColumn("max_concurrent", "integer")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("revoked_at", "timestamptz")
    .execute();
  await db.schema.createIndex("api_keys_tenant_idx").on("api_keys").column("tenant_id").execute();

  await db.schema
    .createTable("models")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("tenant_id", "text", (c) => c.references("tenants.id"))
    .addColumn("name", "text", (c) => c.notNull().unique())
    .addColumn("task", "text", (c) => c.notNull().check(sql`task in ('chat','embeddings','images')`))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable("model_versions")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("model_id", "text", (c) => c.notNull().references("models.id"))
    .addColumn("version", "text", (c) => c.notNull())
    .addColumn("uploaded_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("price_input_per_m", sql`numeric(12,6)`, (c) => c.notNull().defaultTo(0))
    .addColumn("price_output_per_m", sql`numeric(12,6)`, (c) => c.notNull().defaultTo(0))
    .addColumn("price_per_image", sql`numeric(12,6)`, (c) => c.notNull().defaultTo(0))
    .addUniqueConstraint("model_versions_model_version_uq", ["model_id", "version"])
    .execute();

  await db.schema
    .createTable("deployments")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("tenant_id", "text", (c) => c.references("tenants.id"))
    .addColumn("model_version_id", "text", (c) => c.notNull().references("model_versions.id"))
    .addColumn("status", "text", (c) => c.notNull().check(sql`status in ('initializing','downloading','deploying','running','stopped','failed','deleted')`))
    .addColumn("fail_reason", "text")
    .addColumn("config", "jsonb", (c) => c.notNull())
    .addColumn("settings", "jsonb", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex("deployments_tenant_idx").on("deployments").column("tenant_id").execute();
  await db.schema.createIndex("deployments_version_idx").on("deployments").column("model_version_id").execute();

  await db.schema
    .createTable("deployment_events")
    .addColumn("id", "bigserial", (c) => c.primaryKey())
    .addColumn("deployment_id", "text", (c) => c.notNull().references("deployments.id"))
    .addColumn("from_status", "text")
    .addColumn("to_status", "text", (c) => c.notNull())
    .addColumn("reason", "text")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`clock_timestamp()`))
    .execute();
  await db.schema.createIndex("deployment_events_deployment_idx").on("deployment_events").columns(["deployment_id", "id"]).execute();

  await db.schema
    .createTable("usage_records")
    .addColumn("id", "bigserial", (c) => c.primaryKey())
    .addColumn("request_id", "text", (c) => c.notNull().unique())
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("key_id", "text", (c) => c.notNull())
    .addColumn("deployment_id", "text", (c) => c.notNull())
    .addColumn("model", "text", (c) => c.notNull())
    .addColumn("endpoint", "text", (c) => c.notNull())
    .addColumn("prompt_tokens", "integer", (c) => c.notNull())
    .addColumn("completion_tokens", "integer", (c) => c.notNull())
    .addColumn("images", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("ttft_ms", "double precision")
    .addColumn("duration_ms", "double precision", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("cost_usd", sql`numeric(18,9)`, (c) => c.notNull().defaultTo(0))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex("usage_tenant_time_idx").on("usage_records").columns(["tenant_id", "created_at"]).execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ["usage_records", "deployment_events", "deployments", "model_versions", "models", "api_keys", "tenants"]) {
    await db.schema.dropTable(t).execute();
  }
}
