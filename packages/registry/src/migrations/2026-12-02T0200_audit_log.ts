// Landed migrations never change. They import nothing from the application.
import { sql, type Kysely } from "kysely";

/**
 * The audit trail: every admin and deploy action (who: key and tenant; what: action,
 * target, the request as sent less secrets; when; the answer's status). Append-only: the
 * application inserts and reads, never updates or deletes.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("audit_log")
    .addColumn("id", "bigserial", (c) => c.primaryKey())
    .addColumn("at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("actor_key_id", "text", (c) => c.notNull())
    .addColumn("actor_tenant_id", "text", (c) => c.notNull())
    .addColumn("action", "text", (c) => c.notNull())
    .addColumn("method", "text", (c) => c.notNull())
    .addColumn("path", "text", (c) => c.notNull())
    .addColumn("status", "integer", (c) => c.notNull())
    .addColumn("outcome", "text", (c) => c.notNull())
    .addColumn("target_id", "text")
    .addColumn("tenant_id", "text")
    .addColumn("request_id", "text", (c) => c.notNull())
    .addColumn("details", "jsonb")
    .execute();
  await db.schema.createIndex("audit_log_actor").on("audit_log").columns(["actor_key_id", "id"]).execute();
  await db.schema.createIndex("audit_log_tenant").on("audit_log").columns(["tenant_id", "id"]).execute();
  await db.schema.createIndex("audit_log_target").on("audit_log").columns(["target_id", "id"]).execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("audit_log").execute();
}
