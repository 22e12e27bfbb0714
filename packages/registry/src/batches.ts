/**
 * Batches (the Batch API) and their lines. Postgres is the source of truth: a batch's status
 * and timestamps, and one `batch_lines` row per answered line, inserted once (primary key
 * (batch_id, line_no), `ON CONFLICT DO NOTHING`) and only while the batch is in progress
 * (the insert takes a share lock on the batch row, so a line can never land after the batch
 * row was locked to finish it). Request counts are counted from the lines. Another tenant's
 * batch reads as absent.
 */
import { createHash } from "node:crypto";
import { sql } from "kysely";
import type { Db } from "./db.ts";
import { newId } from "./ids.ts";
import type { Batch, BatchLine, BatchStatus } from "./schema.ts";

/** A batch with its request counts (derived from its lines). */
export interface BatchWithCounts extends Batch {
  completed: number;
  failed: number;
}

/** Statuses a batch still has work in (the reconcile sweep looks at these). */
export const OPEN_BATCH_STATUSES: readonly BatchStatus[] = ["validating", "in_progress", "finalizing", "cancelling"];

export interface NewBatch {
  tenantId: string;
  keyId: string;
  endpoint: string;
  inputFileId: string;
  completionWindow: string;
  total: number;
  metadata: Record<string, string> | null;
  expiresAt: Date;
  createdAt?: Date;
  /** The output and error files expire this long (s) after they are written (`output_expires_after`); null: never. */
  outputExpiresAfterS?: number | null;
}

export async function createBatch(db: Db, b: NewBatch): Promise<BatchWithCounts> {
  const row = await db
    .insertInto("batches")
    .values({
      id: newId("batch"),
      tenant_id: b.tenantId,
      key_id: b.keyId,
      endpoint: b.endpoint,
      input_file_id: b.inputFileId,
      completion_window: b.completionWindow,
      status: "validating",
      total: b.total,
      metadata: b.metadata ? JSON.stringify(b.metadata) : null,
      created_at: b.createdAt ?? new Date(),
      expires_at: b.expiresAt,
      output_expires_after_s: b.outputExpiresAfterS ?? null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return { ...row, completed: 0, failed: 0 };
}

function withCounts(db: Db) {
  return db
    .selectFrom("batches as b")
    .selectAll("b")
    .select((eb) => [
      eb
        .selectFrom("batch_lines as l")
        .select(sql<number>`count(*)::int`.as("n"))
        .whereRef("l.batch_id", "=", "b.id")
        .where("l.status", "=", "completed")
        .as("completed"),
      eb
        .selectFrom("batch_lines as l")
        .select(sql<number>`count(*)::int`.as("n"))
        .whereRef("l.batch_id", "=", "b.id")
        .where("l.status", "=", "failed")
        .as("failed"),
    ]);
}

function counted<T extends { completed: number | null; failed: number | null }>(r: T): T & { completed: number; failed: number } {
  return { ...r, completed: r.completed ?? 0, failed: r.failed ?? 0 };
}

/** The tenant's batch; undefined for an unknown id or another tenant's. */
export async function getBatch(db: Db, tenantId: string, id: string): Promise<BatchWithCounts | undefined> {
  const r = await withCounts(db).where("b.id", "=", id).where("b.tenant_id", "=", tenantId).executeTakeFirst();
  return r && counted(r);
}

/** A batch by id alone (the platform's jobs, never the tenant API). */
export async function findBatch(db: Db, id: string): Promise<BatchWithCounts | undefined> {
  const r = await withCounts(db).where("b.id", "=", id).executeTakeFirst();
  return r && counted(r);
}

/** The tenant's batches, newest first; `after` is a batch id: those created before it. */
export async function listBatches(db: Db, tenantId: string, page: { after?: string; limit: number }): Promise<BatchWithCounts[]> {
  let q = withCounts(db).where("b.tenant_id", "=", tenantId);
  if (page.after !== undefined) {
    const at = await db.selectFrom("batches").select(["created_at", "id"]).where("id", "=", page.after).where("tenant_id", "=", tenantId).executeTakeFirst();
    if (!at) return [];
    q = q.where((eb) => eb.or([eb("b.created_at", "<", at.created_at), eb.and([eb("b.created_at", "=", at.created_at), eb("b.id", "<", at.id)])]));
  }
  const rows = await q.orderBy("b.created_at", "desc").orderBy("b.id", "desc").limit(page.limit).execute();
  return rows.map(counted);
}

/** Batches that still have work (validating, in progress, finalizing, cancelling). */
export async function openBatches(db: Db): Promise<Batch[]> {
  return db
    .selectFrom("batches")
    .selectAll()
    .where("status", "in", [...OPEN_BATCH_STATUSES])
    .execute();
}

/** validating → in_progress; false when the batch was not validating. */
export async function markInProgress(db: Db, id: string, now = new Date()): Promise<boolean> {
  const r = await db
    .updateTable("batches")
    .set({ status: "in_progress", in_progress_at: now })
    .where("id", "=", id)
    .where("status", "=", "validating")
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/** validating | in_progress → cancelling. The batch as it is after (undefined: not the tenant's). */
export async function requestCancel(db: Db, tenantId: string, id: string, now = new Date()): Promise<BatchWithCounts | undefined> {
  await db
    .updateTable("batches")
    .set({ status: "cancelling", cancelling_at: now })
    .where("id", "=", id)
    .where("tenant_id", "=", tenantId)
    .where("status", "in", ["validating", "in_progress"])
    .execute();
  return getBatch(db, tenantId, id);
}

export interface LineAnswer {
  batchId: string;
  lineNo: number;
  customId: string;
  status: "completed" | "failed";
  statusCode: number | null;
  requestId: string;
  response: unknown;
  error: { code: string; message: string } | null;
}

/**
 * Records a line's answer, once: only while its batch is in progress (share-locking the batch
 * row), and not if the line has one already. Whether this call recorded it.
 */
export async function recordLine(db: Db, a: LineAnswer): Promise<boolean> {
  const r = await sql`
    insert into batch_lines (batch_id, line_no, custom_id, status, status_code, request_id, response, error)
    select ${a.batchId}, ${a.lineNo}, ${a.customId}, ${a.status}, ${a.statusCode}, ${a.requestId},
           ${a.response === undefined || a.response === null ? null : JSON.stringify(a.response)}::jsonb,
           ${a.error ? JSON.stringify(a.error) : null}::jsonb
    where exists (select 1 from batches where id = ${a.batchId} and status = 'in_progress' for share)
    on conflict (batch_id, line_no) do nothing`.execute(db);
  return Number(r.numAffectedRows ?? 0) > 0;
}

/** Line numbers in [from, to) that have an answer. */
export async function answeredLines(db: Db, batchId: string, from: number, to: number): Promise<Set<number>> {
  const rows = await db
    .selectFrom("batch_lines")
    .select("line_no")
    .where("batch_id", "=", batchId)
    .where("line_no", ">=", from)
    .where("line_no", "<", to)
    .execute();
  return new Set(rows.map((r) => r.line_no));
}

/** Answered lines per chunk of `chunkLines` (chunk index → count). */
export async function answeredPerChunk(db: Db, batchId: string, chunkLines: number): Promise<Map<number, number>> {
  const rows = await db
    .selectFrom("batch_lines")
    .select([sql<number>`(line_no / ${sql.lit(Math.trunc(chunkLines))})::int`.as("chunk"), sql<number>`count(*)::int`.as("n")])
    .where("batch_id", "=", batchId)
    .groupBy(sql`line_no / ${sql.lit(Math.trunc(chunkLines))}`)
    .execute();
  return new Map(rows.map((r) => [r.chunk, r.n]));
}

/** A batch's answered lines in line order, `pageLines` at a time. */
export async function* batchLines(db: Db, batchId: string, pageLines = 1000): AsyncGenerator<BatchLine> {
  let after = -1;
  for (;;) {
    const rows = await db
      .selectFrom("batch_lines")
      .selectAll()
      .where("batch_id", "=", batchId)
      .where("line_no", ">", after)
      .orderBy("line_no")
      .limit(pageLines)
      .execute();
    yield* rows;
    if (rows.length < pageLines) return;
    after = rows.at(-1)!.line_no;
  }
}

/** The lines a batch ended without answering (expired, cancelled): recorded as failed with `code`, whatever the batch's status. */
export async function recordUnanswered(
  db: Db,
  batchId: string,
  lines: readonly { lineNo: number; customId: string; requestId: string }[],
  error: { code: string; message: string },
): Promise<void> {
  if (lines.length === 0) return;
  await db
    .insertInto("batch_lines")
    .values(
      lines.map((l) => ({
        batch_id: batchId,
        line_no: l.lineNo,
        custom_id: l.customId,
        status: "failed" as const,
        status_code: null,
        request_id: l.requestId,
        response: null,
        error: JSON.stringify(error),
      })),
    )
    .onConflict((oc) => oc.columns(["batch_id", "line_no"]).doNothing())
    .execute();
}

/** The batch row, locked for the rest of the transaction (no line can be recorded meanwhile). */
export async function lockBatch(db: Db, id: string): Promise<Batch | undefined> {
  return db.selectFrom("batches").selectAll().where("id", "=", id).forUpdate().executeTakeFirst();
}

const AT: Partial<Record<BatchStatus, "finalizing_at" | "completed_at" | "failed_at" | "expired_at" | "cancelled_at">> = {
  finalizing: "finalizing_at",
  completed: "completed_at",
  failed: "failed_at",
  expired: "expired_at",
  cancelled: "cancelled_at",
};

/** Moves a batch to `status` (stamping its timestamp) with whatever else changes with it. */
export async function setBatchStatus(
  db: Db,
  id: string,
  status: BatchStatus,
  change: { outputFileId?: string | null; errorFileId?: string | null; errors?: Record<string, unknown>; now?: Date } = {},
): Promise<void> {
  const at = AT[status];
  await db
    .updateTable("batches")
    .set({
      status,
      ...(at ? { [at]: change.now ?? new Date() } : {}),
      ...(change.outputFileId !== undefined ? { output_file_id: change.outputFileId } : {}),
      ...(change.errorFileId !== undefined ? { error_file_id: change.errorFileId } : {}),
      ...(change.errors !== undefined ? { errors: JSON.stringify(change.errors) } : {}),
    })
    .where("id", "=", id)
    .execute();
}

/**
 * A line's request id, the same every time the line runs (`req_` + 96 bits of a hash of
 * batch and line): its usage record's `request_id` is unique, so a line that runs again
 * after a crash is counted once.
 */
export function batchLineRequestId(batchId: string, lineNo: number): string {
  return `req_${createHash("sha256").update(`${batchId}:${lineNo}`).digest("hex").slice(0, 24)}`;
}
