/**
 * The scheduler's BullMQ side: a worker on `platform-chores` (batch orchestration, the
 * reconcile sweep, stored-response retention) and the repeatable jobs it declares. The
 * repeatable jobs live in Redis, so they are declared again every reconcile interval (5 s to a
 * minute): a Redis that came back empty has them again soon.
 */
import type { Kysely } from "kysely";
import type { Logger, Stoppable } from "@infera/core";
import { JobQueues, type JobsConnection, startJobWorker } from "@infera/jobs";
import { type DB, purgeExpiredResponses } from "@infera/registry";
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
    },
    { concurrency: o.concurrency ?? 4, logger },
  );
  const declare = async () => {
    await jobs.every("batches.reconcile", o.reconcileMs, {});
    await jobs.every("responses.purge", o.responsesPurgeMs, {});
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
