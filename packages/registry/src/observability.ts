/**
 * What operators read about one deployment: its lifecycle history a page at a time, and
 * its traffic over a window, summed from the usage records (the deploy API's `/events`
 * and `/stats`).
 */
import { sql, type Kysely, type Transaction } from "kysely";
import type { DB, DeploymentEvent } from "./schema.ts";

type Db = Kysely<DB> | Transaction<DB>;

export interface EventsPageInput {
  /** Events after this id in the page's order (a cursor: the last id of the previous page). */
  after?: string;
  limit: number;
  order: "asc" | "desc";
}

/** One page of a deployment's events and whether more follow. */
export async function listDeploymentEventsPage(db: Db, deploymentId: string, input: EventsPageInput): Promise<{ events: DeploymentEvent[]; hasMore: boolean }> {
  let q = db.selectFrom("deployment_events").selectAll().where("deployment_id", "=", deploymentId);
  if (input.after !== undefined) q = q.where("id", input.order === "asc" ? ">" : "<", input.after);
  const rows = await q
    .orderBy("id", input.order)
    .limit(input.limit + 1)
    .execute();
  return { events: rows.slice(0, input.limit), hasMore: rows.length > input.limit };
}

/** Usage statuses that are not errors: the request finished, or its client went away. */
const NOT_ERRORS = ["ok", "cancelled"];

export interface DeploymentStats {
  requests: number;
  /** Sum of request durations, ms. */
  totalMs: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  avgMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  /** Time to first token over the requests that had one, ms. */
  avgTtftMs: number;
  p95TtftMs: number;
  errors: number;
}

/** Sums and latency percentiles of a deployment's usage records in [from, to). Zeros when there were none. */
export async function deploymentStats(db: Db, deploymentId: string, from: Date, to: Date): Promise<DeploymentStats> {
  const r = await db
    .selectFrom("usage_records")
    .select([
      sql<string>`count(*)`.as("requests"),
      sql<string>`coalesce(sum(duration_ms), 0)`.as("total_ms"),
      sql<string>`coalesce(sum(prompt_tokens), 0)`.as("input_tokens"),
      sql<string>`coalesce(sum(completion_tokens), 0)`.as("output_tokens"),
      sql<string>`coalesce(sum(cost_usd), 0)`.as("cost_usd"),
      sql<number | null>`avg(duration_ms)`.as("avg_ms"),
      sql<number | null>`percentile_cont(0.5) within group (order by duration_ms)`.as("p50_ms"),
      sql<number | null>`percentile_cont(0.95) within group (order by duration_ms)`.as("p95_ms"),
      sql<number | null>`percentile_cont(0.99) within group (order by duration_ms)`.as("p99_ms"),
      sql<number | null>`avg(ttft_ms)`.as("avg_ttft_ms"),
      sql<number | null>`percentile_cont(0.95) within group (order by ttft_ms)`.as("p95_ttft_ms"),
      sql<string>`count(*) filter (where status not in (${sql.join(NOT_ERRORS)}))`.as("errors"),
    ])
    .where("deployment_id", "=", deploymentId)
    .where("created_at", ">=", from)
    .where("created_at", "<", to)
    .executeTakeFirstOrThrow();
  return {
    requests: Number(r.requests),
    totalMs: Number(r.total_ms),
    inputTokens: Number(r.input_tokens),
    outputTokens: Number(r.output_tokens),
    costUsd: Number(r.cost_usd),
    avgMs: Number(r.avg_ms ?? 0),
    p50Ms: Number(r.p50_ms ?? 0),
    p95Ms: Number(r.p95_ms ?? 0),
    p99Ms: Number(r.p99_ms ?? 0),
    avgTtftMs: Number(r.avg_ttft_ms ?? 0),
    p95TtftMs: Number(r.p95_ttft_ms ?? 0),
    errors: Number(r.errors),
  };
}
