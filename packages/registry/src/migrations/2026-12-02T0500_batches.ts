// Landed migrations never change. They import nothing from the application.
import { sql, type Kysely } from "kysely";

/**
 * The Batch API: a batch (OpenAI's Batch object, per tenant) and one row per answered line,
 * keyed (batch_id, line_no) so each line's answer is recorded once whatever re-runs it;
 * request counts are derived from the lines. Batch prices: a factor of the model version's
 * prices (default 0.5, the hosted provider's discount). Usage records name the batch a line
 * came from.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("batches")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("key_id", "text", (c) => c.notNull())
    .addColumn("endpoint", "text", (c) => c.notNull())
    .addColumn("input_file_id", "text", (c) => c.notNull())
    .addColumn("completion_window", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("total", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("output_file_id", "text")
    .addColumn("error_file_id", "text")
    .addColumn("errors", "jsonb")
    .addColumn("metadata", "jsonb")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("in_progress_at", "timestamptz")
    .addColumn("expires_at", "timestamptz", (c) => c.notNull())
    .addColumn("finalizing_at", "timestamptz")
    .addColumn("completed_at", "timestamptz")
    .addColumn("failed_at", "timestamptz")
    .addColumn("expired_at", "timestamptz")
    .addColumn("cancelling_at", "timestamptz")
    .addColumn("cancelled_at", "timestamptz")
    .execute();
  await db.schema.createIndex("batches_tenant").on("batches").columns(["tenant_id", "created_at", "id"]).execute();
  await db.schema.createIndex("batches_status").on("batches").column("status").execute();
  await db.schema
    .createTable("batch_lines")
    .addColumn("batch_id", "text", (c) => c.notNull())
    .addColumn("line_no", "integer", (c) => c.notNull())
    .addColumn("custom_id", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("status_code", "integer")
    .addColumn("request_id", "text", (c) => c.notNull())
    .addColumn("response", "jsonb")
    .addColumn("error", "jsonb")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("batch_lines_pk", ["batch_id", "line_no"])
    .execute();
  await db.schema
    .alterTable("model_versions")
    .addColumn("batch_price_factor", "numeric", (c) => c.notNull().defaultTo(0.5))
    .execute();
  await db.schema.alterTable("usage_records").addColumn("batch_id", "text").execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("usage_records").dropColumn("batch_id").execute();
  await db.schema.alterTable("model_versions").dropColumn("batch_price_factor").execute();
  await db.schema.dropTable("batch_lines").execute();
  await db.schema.dropTable("batches").execute();
}
