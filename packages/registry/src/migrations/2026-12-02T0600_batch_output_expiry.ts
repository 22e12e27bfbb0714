// Landed migrations never change. They import nothing from the application.
import type { Kysely } from "kysely";

/**
 * A batch's `output_expires_after` (OpenAI's: anchor `created_at`, 3600..2592000 seconds): how
 * long its output and error files are kept from when they are written; null: kept until deleted.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("batches").addColumn("output_expires_after_s", "integer").execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("batches").dropColumn("output_expires_after_s").execute();
}
