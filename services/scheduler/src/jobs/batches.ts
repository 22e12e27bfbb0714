/**
 * Batch orchestration, as BullMQ job handlers in the scheduler: start (validating →
 * in_progress, the lines fanned out as `batch.lines` chunks for the gateways), finalize
 * (every line answered: the output and error files, → completed), cancel and expire (the
 * lines left unanswered recorded as such, files written, → cancelled / expired) and the
 * reconcile sweep, which re-creates whatever jobs an open batch is owed — after Redis lost
 * them, or a job failed for good — from Postgres, the source of truth.
 *
 * A batch ends inside one transaction that holds its row locked: no line can be recorded
 * while the files are written (recordLine share-locks the row), so the files hold exactly
 * the lines recorded, each once.
 */
import type { Kysely } from "kysely";
import type { Logger } from "@infera/core";
import { type JobQueues, readBatchLines } from "@infera/jobs";
import {
  answeredLines,
  answeredPerChunk,
  type Batch,
  batchLineRequestId,
  batchLines,
  type BatchStatus,
  createFile,
  type DB,
  type Db,
  fileStorageKey,
  findBatch,
  getFile,
  lockBatch,
  markInProgress,
  newFileId,
  openBatches,
  recordUnanswered,
  setBatchStatus,
} from "@infera/registry";
import type { BlobStore } from "@infera/storage";

export interface BatchChoresDeps {
  db: Kysely<DB>;
  blobs: BlobStore;
  jobs: JobQueues;
  logger: Logger;
  /** Lines per `batch.lines` job. */
  chunkLines: number;
  now?: () => Date;
}

const EXPIRED = { code: "batch_expired", message: "This request could not be executed before the completion window expired." };
const CANCELLED = { code: "batch_cancelled", message: "This request was not executed: the batch was cancelled." };

export class BatchChores {
  private readonly now: () => Date;

  constructor(private readonly d: BatchChoresDeps) {
    this.now = d.now ?? (() => new Date());
  }

  async start(batchId: string): Promise<void> {
    const b = await findBatch(this.d.db, batchId);
    if (!b) return;
    if (b.status === "validating") {
      if (b.expires_at <= this.now()) return this.expire(batchId);
      await markInProgress(this.d.db, batchId, this.now());
    } else if (b.status !== "in_progress") return;
    await this.fanOut(b);
  }

  /** A chunk job for every chunk with lines unanswered (idempotent: job ids are the chunk's); finalize when none is left. */
  private async fanOut(b: Batch): Promise<void> {
    const { chunkLines } = this.d;
    const answered = await answeredPerChunk(this.d.db, b.id, chunkLines);
    const owed: { data: { batchId: string; from: number; to: number }; jobId: string }[] = [];
    for (let c = 0; c * chunkLines < b.total; c++) {
      const from = c * chunkLines;
      const to = Math.min(b.total, from + chunkLines);
      if ((answered.get(c) ?? 0) < to - from) owed.push({ data: { batchId: b.id, from, to }, jobId: `lines-${b.id}-${c}` });
    }
    if (owed.length === 0) {
      await this.d.jobs.add("batch.finalize", { batchId: b.id }, { jobId: `finalize-${b.id}`, revive: true });
      return;
    }
    await this.d.jobs.addMany("batch.lines", owed);
  }

  async finalize(batchId: string): Promise<void> {
    const b = await findBatch(this.d.db, batchId);
    if (!b || (b.status !== "in_progress" && b.status !== "finalizing")) return;
    if (b.completed + b.failed < b.total) return;
    if (b.status === "in_progress") await setBatchStatus(this.d.db, batchId, "finalizing", { now: this.now() });
    await this.end(batchId, ["finalizing"], "completed");
  }

  async cancel(batchId: string): Promise<void> {
    await this.end(batchId, ["cancelling"], "cancelled", CANCELLED);
  }

  async expire(batchId: string): Promise<void> {
    await this.end(batchId, ["validating", "in_progress"], "expired", EXPIRED);
  }

  /** In one transaction holding the batch row: lines left recorded as `unanswered`, the files written, the status set. */
  private async end(batchId: string, from: readonly BatchStatus[], to: BatchStatus, unanswered?: { code: string; message: string }): Promise<void> {
    await this.d.db.transaction().execute(async (tx) => {
      const b = await lockBatch(tx, batchId);
      if (!b || !from.includes(b.status)) return;
      if (unanswered) await this.recordLeft(tx, b, unanswered);
      const output = await this.writeFile(tx, b, "completed", "output");
      const errors = await this.writeFile(tx, b, "failed", "error");
      await setBatchStatus(tx, batchId, to, { outputFileId: output, errorFileId: errors, now: this.now() });
      this.d.logger.info({ batchId, status: to, outputFileId: output, errorFileId: errors }, "batch ended");
    });
  }

  /** Every line without an answer, recorded as failed with `error` (custom ids from the input file). */
  private async recordLeft(tx: Db, b: Batch, error: { code: string; message: string }): Promise<void> {
    const done = await answeredLines(tx, b.id, 0, b.total);
    if (done.size >= b.total) return;
    const file = await getFile(tx, b.tenant_id, b.input_file_id);
    const left: { lineNo: number; customId: string; requestId: string }[] = [];
    if (file) {
      for await (const line of readBatchLines(await this.d.blobs.get(file.storageKey), 0, b.total)) {
        if (!done.has(line.lineNo)) left.push({ lineNo: line.lineNo, customId: line.customId, requestId: batchLineRequestId(b.id, line.lineNo) });
        if (left.length >= 1000) await recordUnanswered(tx, b.id, left.splice(0), error);
      }
    }
    await recordUnanswered(tx, b.id, left, error);
  }

  /** The lines of one status as a JSONL file in OpenAI's batch output format; its id, or null when there are none. */
  private async writeFile(tx: Db, b: Batch, status: "completed" | "failed", kind: "output" | "error"): Promise<string | null> {
    const parts: Buffer[] = [];
    let lines = 0;
    for await (const l of batchLines(tx, b.id)) {
      if (l.status !== status) continue;
      lines++;
      const out = {
        id: `batch_req_${l.request_id.slice(4)}`,
        custom_id: l.custom_id,
        response: l.status_code === null ? null : { status_code: l.status_code, request_id: l.request_id, body: l.response },
        error: l.error,
      };
      parts.push(Buffer.from(`${JSON.stringify(out)}\n`));
    }
    if (lines === 0) return null;
    const id = newFileId();
    const key = fileStorageKey(b.tenant_id, id);
    const { bytes } = await this.d.blobs.put(key, Buffer.concat(parts));
    // output_expires_after: anchored at the file's creation (OpenAI's `created_at` anchor).
    const createdAt = this.now();
    const expiresAt = b.output_expires_after_s === null ? null : new Date(createdAt.getTime() + b.output_expires_after_s * 1000);
    await createFile(tx, {
      id,
      tenantId: b.tenant_id,
      purpose: "batch_output",
      filename: `${b.id}_${kind}.jsonl`,
      bytes,
      lineCount: lines,
      storageKey: key,
      createdAt,
      expiresAt,
    });
    return id;
  }

  /** The sweep: every open batch gets the job it is owed; what is past its window expires. */
  async reconcile(): Promise<void> {
    const now = this.now();
    for (const b of await openBatches(this.d.db)) {
      try {
        if ((b.status === "validating" || b.status === "in_progress") && b.expires_at <= now) {
          await this.d.jobs.add("batch.expire", { batchId: b.id }, { jobId: `expire-${b.id}`, revive: true });
        } else if (b.status === "validating") {
          await this.d.jobs.add("batch.start", { batchId: b.id }, { jobId: `start-${b.id}`, revive: true });
        } else if (b.status === "in_progress") {
          await this.fanOut(b);
        } else if (b.status === "finalizing") {
          await this.d.jobs.add("batch.finalize", { batchId: b.id }, { jobId: `finalize-${b.id}`, revive: true });
        } else if (b.status === "cancelling") {
          await this.d.jobs.add("batch.cancel", { batchId: b.id }, { jobId: `cancel-${b.id}`, revive: true });
        }
      } catch (err) {
        this.d.logger.warn({ err, batchId: b.id }, "reconciling a batch failed; the next sweep tries again");
      }
    }
  }
}
