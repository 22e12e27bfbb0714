// Landed migrations never change. They import nothing from the application.
import type { Kysely } from "kysely";

/**
 * Files (the Files API): per tenant, the metadata of a body held in the blob store
 * (`storage_key`), never the body itself. Batch inputs (`batch`) carry the one endpoint every
 * line uses; batch output and error files (`batch_output`) are written by the platform.
 * Deleted files keep their row (`deleted_at`) until their body is gone.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("files")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("purpose", "text", (c) => c.notNull())
    .addColumn("filename", "text", (c) => c.notNull())
    .addColumn("bytes", "bigint", (c) => c.notNull())
    .addColumn("line_count", "integer", (c) => c.notNull())
    .addColumn("batch_endpoint", "text")
    .addColumn("storage_key", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull().defaultTo("processed"))
    .addColumn("created_at", "timestamptz", (c) => c.notNull())
    .addColumn("expires_at", "timestamptz")
    .addColumn("deleted_at", "timestamptz")
    .execute();
  await db.schema.createIndex("files_tenant_created").on("files").columns(["tenant_id", "created_at", "id"]).execute();
  await db.schema.createIndex("files_expiry").on("files").column("expires_at").execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("files").execute();
}
