// Landed migrations never change. They import nothing from the application.
import type { Kysely } from "kysely";

/**
 * Stored responses (the Responses API with `store: true`): per tenant, the response object as
 * answered, its input items, and the conversation the model saw (for `previous_response_id`),
 * until `expires_at` (the retention setting).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("stored_responses")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull())
    .addColumn("expires_at", "timestamptz", (c) => c.notNull())
    .addColumn("response", "jsonb", (c) => c.notNull())
    .addColumn("input_items", "jsonb", (c) => c.notNull())
    .addColumn("conversation", "jsonb", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("stored_responses_tenant").on("stored_responses").columns(["tenant_id", "id"]).execute();
  await db.schema.createIndex("stored_responses_expiry").on("stored_responses").column("expires_at").execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("stored_responses").execute();
}
