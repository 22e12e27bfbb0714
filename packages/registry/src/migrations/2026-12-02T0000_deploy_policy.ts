// Landed migrations never change. They import nothing from the application.
import { sql, type Kysely } from "kysely";

/**
 * Deploy policy owned by operators: the engine profiles tenants choose among (engine,
 * image by digest, the `extra_args` flags and value patterns allowed, GPU types, limits
 * per deployment), and per tenant what an admin granted beyond them (its own image, free
 * arguments) and its GPU quota (sum of num_gpus × max_instances over its deployments).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("engine_profiles")
    .addColumn("name", "text", (c) => c.primaryKey())
    .addColumn("engine", "text", (c) => c.notNull())
    .addColumn("image", "text")
    .addColumn("allowed_args", "jsonb", (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn("gpu_types", sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn("max_num_gpus", "integer", (c) => c.notNull())
    .addColumn("max_instances", "integer", (c) => c.notNull())
    .addColumn("description", "text")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createTable("tenant_deploy_grants")
    .addColumn("tenant_id", "text", (c) => c.primaryKey().references("tenants.id"))
    .addColumn("container_image", "boolean", (c) => c.notNull().defaultTo(false))
    .addColumn("extra_args", "boolean", (c) => c.notNull().defaultTo(false))
    .addColumn("gpu_quota", "integer")
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ["tenant_deploy_grants", "engine_profiles"]) await db.schema.dropTable(table).execute();
}
