/**
 * Stored responses (the Responses API): per tenant, read only by their tenant (another
 * tenant's id reads as absent), kept until `expires_at`; what is past it reads as absent and
 * is deleted by `purgeExpiredResponses`.
 */
import { sql } from "kysely";
import type { Db } from "./db.ts";

export interface StoredResponse {
  id: string;
  tenantId: string;
  createdAt: Date;
  expiresAt: Date;
  response: Record<string, unknown>;
  inputItems: Record<string, unknown>[];
  conversation: Record<string, unknown>[];
}

export async function saveResponse(db: Db, r: StoredResponse): Promise<void> {
  await db
    .insertInto("stored_responses")
    .values({
      id: r.id,
      tenant_id: r.tenantId,
      created_at: r.createdAt,
      expires_at: r.expiresAt,
      response: JSON.stringify(r.response),
      input_items: JSON.stringify(r.inputItems),
      conversation: JSON.stringify(r.conversation),
    })
    .execute();
}

/** The tenant's response `id`, unless it is another tenant's, absent or expired. */
export async function findResponse(db: Db, tenantId: string, id: string): Promise<StoredResponse | undefined> {
  const row = await db
    .selectFrom("stored_responses")
    .selectAll()
    .where("id", "=", id)
    .where("tenant_id", "=", tenantId)
    .where("expires_at", ">", new Date())
    .executeTakeFirst();
  if (!row) return undefined;
  return {
    id: row.id,
    tenantId: row.tenant_id,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    response: row.response,
    inputItems: row.input_items,
    conversation: row.conversation,
  };
}

/**
 * The tenant's stored items by id (output items of its responses, and their input items), for
 * `item_reference` inputs: the newest unexpired response holding each; ids not found are absent.
 */
export async function findItems(db: Db, tenantId: string, ids: string[]): Promise<Map<string, Record<string, unknown>>> {
  const found = new Map<string, Record<string, unknown>>();
  for (const id of new Set(ids)) {
    const probe = JSON.stringify([{ id }]);
    const row = await db
      .selectFrom("stored_responses")
      .select(["response", "input_items"])
      .where("tenant_id", "=", tenantId)
      .where("expires_at", ">", new Date())
      .where((eb) => eb.or([sql<boolean>`response -> 'output' @> ${probe}::jsonb`, sql<boolean>`input_items @> ${probe}::jsonb`]))
      .orderBy("created_at", "desc")
      .limit(1)
      .executeTakeFirst();
    const items = row ? [...((row.response.output as Record<string, unknown>[] | undefined) ?? []), ...row.input_items] : [];
    const item = items.find((x) => x.id === id);
    if (item) found.set(id, item);
  }
  return found;
}

/** Whether the tenant had that response (and now has not). */
export async function deleteResponse(db: Db, tenantId: string, id: string): Promise<boolean> {
  const r = await db
    .deleteFrom("stored_responses")
    .where("id", "=", id)
    .where("tenant_id", "=", tenantId)
    .where("expires_at", ">", new Date())
    .executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

/** Deletes every response past its retention; how many. */
export async function purgeExpiredResponses(db: Db, now = new Date()): Promise<number> {
  const r = await db.deleteFrom("stored_responses").where("expires_at", "<=", now).executeTakeFirst();
  return Number(r.numDeletedRows);
}
