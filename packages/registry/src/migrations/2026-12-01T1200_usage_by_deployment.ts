// Landed migrations never change. They import nothing from the application.
import type { Kysely } from "kysely";

/** `GET /deploy/{id}/stats` sums a deployment's usage records over a window. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex("usage_deployment_time_idx").on("usage_records").columns(["deployment_id", "created_at"]).execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex("usage_deployment_time_idx").execute();
}
