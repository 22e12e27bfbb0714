// Landed migrations never change. They import nothing from the application.
import { type Kysely, sql } from "kysely";

/**
 * Item lookups by id (the Responses API's `item_reference` input items): GIN indexes over the
 * stored responses' output items and input items, so `@> [{"id": …}]` finds the response holding
 * an item without reading every row of the tenant's.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE INDEX stored_responses_output_items ON stored_responses USING gin ((response -> 'output') jsonb_path_ops)`.execute(db);
  await sql`CREATE INDEX stored_responses_input_items ON stored_responses USING gin (input_items jsonb_path_ops)`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX stored_responses_output_items`.execute(db);
  await sql`DROP INDEX stored_responses_input_items`.execute(db);
}
