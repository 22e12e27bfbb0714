// Landed migrations never change. They import nothing from the application.
import { sql, type Kysely } from "kysely";

/**
 * A deployment's secrets (the Hugging Face token), sealed (AES-256-GCM) and kept out
 * of the `deployments` row so no query the API answers from can carry them.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("deployment_secrets")
    .addColumn("deployment_id", "text", (c) => c.primaryKey().references("deployments.id"))
    .addColumn("hf_token_sealed", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("deployment_secrets").execute();
}
