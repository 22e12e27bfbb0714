/**
 * The scheduler's BullMQ side: a worker on `platform-chores` (batch orchestration, the
 * reconcile sweep, stored-response retention, file expiry) and the repeatable jobs it declares. The
 * repeatable jobs live in Redis, so they are declared again every reconcile interval (5 s to a
 * minute): a Redis that came back empty has them again soon.
 */
import type { Kysely } from "kysely";
import type { Logger, Stoppable } from "@infera/core";
import { JobQueues, type JobsConnection, startJobWorker } from "@infera/jobs";
import { type DB, expiredFiles, markFilesDeleted, purgeExpiredResponses } from "@infera/registry";
import type { BlobStore } from "@infera/storage";
import { BatchChores } from "./batches.ts";

export interface ChoresOptions {
  db: Kysely<DB>;
  blobs: BlobStore;
  connection: JobsConnection;
  logger: Logger;
  chunkLines: number;
  reconcileMs: number;
  responsesPurgeMs: number;
  concurrency?: number;
}

export async function startChores(o: ChoresOptions): Promise<Stoppable> {
  const logger = o.logger.child({ component: "jobs" });
  const jobs = new JobQueues(o.connection, logger);
  const batches = new BatchChores({ db: o.db, blobs: o.blobs, jobs, logger, chunkLines: o.chunkLines });
  const worker = startJobWorker(
    o.connection,
    "platform-chores",
    {
      "batch.start": ({ batchId }) => batches.start(batchId),
      "batch.finalize": ({ batchId }) => batches.finalize(batchId),
      "batch.cancel": ({ batchId }) => batches.cancel(batchId),
      "batch.expire": ({ batchId }) => batches.expire(batchId),
      "batches.reconcile": () => batches.reconcile(),
      "responses.purge": async () => {
        const n = await purgeExpiredResponses(o.db);
        if (n > 0) logger.info({ deleted: n }, "purged stored responses past their retention");
      },
      "files.expire": async () => {
        const n = await expireFiles(o.db, o.blobs);
        if (n > 0) logger.info({ deleted: n }, "deleted files past their expiry");
      },
    },
    { concurrency: o.concurrency ?? 4, logger },
  );
  const declare = async () => {
    await jobs.every("batches.reconcile", o.reconcileMs, {});
    await jobs.every("responses.purge", o.responsesPurgeMs, {});
    // Retention, like the purge: an expired file is already invisible to the API; this frees its body.
    await jobs.every("files.expire", o.responsesPurgeMs, {});
  };
  await declare().catch((err: unknown) => logger.warn({ err }, "could not declare the repeatable jobs; retrying"));
  const timer = setInterval(
    () => void declare().catch((err: unknown) => logger.warn({ err }, "could not declare the repeatable jobs")),
    Math.min(60_000, Math.max(5_000, o.reconcileMs)),
  );
  return {
    name: "jobs",
    stop: async () => {
      clearInterval(timer);
      await worker.stop();
      await jobs.close();
    },
  };
}

/**
 * Deletes the files past their `expires_at` (already invisible to the Files API): each body
 * from the blob store, then the rows marked deleted, 500 at a time. A body already gone counts
 * as deleted; one that cannot be deleted now is left for the next run. Returns how many.
 */
export async function expireFiles(db: Kysely<DB>, blobs: BlobStore, now = new Date()): Promise<number> {
  let total = 0;
  for (;;) {
    const files = await expiredFiles(db, now);
    const gone: string[] = [];
    for (const f of files) {
      try {
        await blobs.delete(f.storageKey);
        gone.push(f.id);
      } catch {
        // the store is away: the next run tries again
      }
    }
    total += await markFilesDeleted(db, gone, now);
    if (files.length < 500 || gone.length === 0) return total;
  }
}
