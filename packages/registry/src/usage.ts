import { sql } from "kysely";
import type { NewUsageRecord } from "./schema.ts";
import type { Db } from "./db.ts";

/** Writes usage records; a request id already recorded is skipped, so a retried batch counts once. */
export async function insertUsage(db: Db, records: readonly NewUsageRecord[]): Promise<number> {
  if (records.length === 0) return 0;
  const res = await db
    .insertInto("usage_records")
    .values([...records])
    .onConflict((oc) => oc.column("request_id").doNothing())
    .executeTakeFirst();
  return Number(res.numInsertedOrUpdatedRows ?? 0);
}

export type UsageGroupBy = "model" | "day" | "key";

export async function summarizeUsage(db: Db, input: { tenantId: string; from: Date; to: Date; groupBy: UsageGroupBy }) {
  const group =
    input.groupBy === "model"
      ? sql<string>`model`
      : input.groupBy === "key"
        ? sql<string>`key_id`
        : sql<string>`to_char(date_trunc('day', created_at at time zone 'UTC'), 'YYYY-MM-DD')`;
  return db
    .selectFrom("usage_records")
    .select([
      group.as("group"),
      sql<string>`count(*)`.as("requests"),
      sql<string>`coalesce(sum(prompt_tokens), 0)`.as("prompt_tokens"),
      sql<string>`coalesce(sum(completion_tokens), 0)`.as("completion_tokens"),
      sql<string>`coalesce(sum(images), 0)`.as("images"),
      sql<string>`coalesce(sum(cost_usd), 0)`.as("cost_usd"),
    ])
    .where("tenant_id", "=", input.tenantId)
    .where("created_at", ">=", input.from)
    .where("created_at", "<", input.to)
    .groupBy(sql`1`)
    .orderBy(sql`1`)
    .execute();
}

/** Sums over usage records (tests, reconciliation with engine counters). */
export async function usageTotals(db: Db, filter: { tenantId?: string; deploymentId?: string } = {}) {
  let q = db
    .selectFrom("usage_records")
    .select([
      sql<string>`count(*)`.as("requests"),
      sql<string>`coalesce(sum(prompt_tokens), 0)`.as("prompt_tokens"),
      sql<string>`coalesce(sum(completion_tokens), 0)`.as("completion_tokens"),
      sql<string>`coalesce(sum(cost_usd), 0)`.as("cost_usd"),
    ]);
  if (filter.tenantId) q = q.where("tenant_id", "=", filter.tenantId);
  if (filter.deploymentId) q = q.where("deployment_id", "=", filter.deploymentId);
  const r = await q.executeTakeFirstOrThrow();
  return { requests: Number(r.requests), promptTokens: Number(r.prompt_tokens), completionTokens: Number(r.completion_tokens), costUsd: Number(r.cost_usd) };
}
