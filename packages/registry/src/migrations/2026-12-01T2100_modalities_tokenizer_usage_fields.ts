// Landed migrations never change. They import nothing from the application.
import { sql, type Kysely } from "kysely";

/**
 * What a model takes as input (`modalities`: text, image, audio, file), where its
 * tokenizer is (`model_versions.tokenizer`: a tokenizer.json path or URL), and the
 * request attributes the gateway applies itself, kept on each usage record: OpenAI's
 * `user`, `safety_identifier`, `metadata` and `service_tier`, and the client's own request id
 * (`client_request_id`: a correlation field; `request_id` is always the platform's).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable("models")
    .addColumn("modalities", sql`text[]`, (c) => c.notNull().defaultTo(sql`'{text}'::text[]`))
    .execute();
  await db.schema.alterTable("model_versions").addColumn("tokenizer", "text").execute();
  await db.schema
    .alterTable("usage_records")
    .addColumn("end_user", "text")
    .addColumn("safety_identifier", "text")
    .addColumn("metadata", "jsonb")
    .addColumn("service_tier", "text")
    .addColumn("client_request_id", "text")
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable("usage_records")
    .dropColumn("end_user")
    .dropColumn("safety_identifier")
    .dropColumn("metadata")
    .dropColumn("service_tier")
    .dropColumn("client_request_id")
    .execute();
  await db.schema.alterTable("model_versions").dropColumn("tokenizer").execute();
  await db.schema.alterTable("models").dropColumn("modalities").execute();
}
