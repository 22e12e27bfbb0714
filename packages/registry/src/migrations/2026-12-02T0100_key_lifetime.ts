// Landed migrations never change. They import nothing from the application.
import { sql, type Kysely } from "kysely";

/**
 * Keys with a lifetime: an optional expiry, rotation (the previous secret's hash works
 * until `previous_expires_at`), an allow-list of models (null: every model the tenant
 * sees), and a monthly token budget (null: none).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable("api_keys")
    .addColumn("expires_at", "timestamptz")
    .addColumn("previous_hash", "text")
    .addColumn("previous_expires_at", "timestamptz")
    .addColumn("models", sql`text[]`)
    .addColumn("monthly_token_budget", "bigint")
    .execute();
  await db.schema.createIndex("api_keys_previous_hash").on("api_keys").column("previous_hash").execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex("api_keys_previous_hash").execute();
  await db.schema
    .alterTable("api_keys")
    .dropColumn("expires_at")
    .dropColumn("previous_hash")
    .dropColumn("previous_expires_at")
    .dropColumn("models")
    .dropColumn("monthly_token_budget")
    .execute();
}
