/**
 * The BullMQ job catalog: every background job the platform runs, by name — the queue it
 * goes on, its data's schema and its options — so the producer and the consumer share one
 * type. `platform-chores` is worked by schedulers (batch orchestration, sweeps, retention);
 * `batch-lines` by gateways (only a gateway holds request bodies and talks to agents).
 */
import Type, { type Static, type TSchema } from "typebox";

export const JOB_QUEUES = ["platform-chores", "batch-lines"] as const;
export type JobQueueName = (typeof JOB_QUEUES)[number];

const BatchRef = Type.Object({ batchId: Type.String({ minLength: 1 }) });
const Nothing = Type.Object({});

/** What BullMQ is told for a job (a subset of its JobsOptions, declared here without importing it). */
export interface JobDefaults {
  attempts: number;
  /** `capped`: exponential from `delay`, never longer than CAPPED_BACKOFF_MAX_MS (`cappedBackoffMs`). */
  backoff?: { type: "exponential" | "fixed" | "capped"; delay: number };
  removeOnComplete: boolean | { age: number; count?: number };
  removeOnFail: boolean | { age: number; count?: number };
}

/** The longest a `capped` backoff waits: a job refused through an outage runs again within seconds of its end. */
export const CAPPED_BACKOFF_MAX_MS = 5_000;

/** The `capped` backoff before try `attemptsMade + 1`: delay·2^(n−1), at most CAPPED_BACKOFF_MAX_MS, less up to a fifth at random (jobs failed together spread out). */
export function cappedBackoffMs(attemptsMade: number, delay: number, random: () => number = Math.random): number {
  const ms = Math.min(CAPPED_BACKOFF_MAX_MS, delay * 2 ** Math.min(30, Math.max(0, attemptsMade - 1)));
  return Math.round(ms * (1 - 0.2 * random()));
}

interface JobSpec<S extends TSchema> {
  queue: JobQueueName;
  data: S;
  defaults: JobDefaults;
}

const chore = <S extends TSchema>(data: S, attempts = 20): JobSpec<S> => ({
  queue: "platform-chores",
  data,
  // Kept a while when failed (visible to operators); the reconcile sweep re-creates what is still owed.
  defaults: { attempts, backoff: { type: "exponential", delay: 500 }, removeOnComplete: true, removeOnFail: { age: 86_400, count: 1000 } },
});

export const JOBS = {
  /** validating → in_progress: count the lines, fan them out as `batch.lines` chunks. */
  "batch.start": chore(BatchRef),
  /** Every line answered: write the output and error files, → completed. */
  "batch.finalize": chore(BatchRef),
  /** cancelling → cancelled: unanswered lines recorded as cancelled, files written. */
  "batch.cancel": chore(BatchRef),
  /** Past expires_at: unanswered lines recorded as expired, files written, → expired. */
  "batch.expire": chore(BatchRef),
  /** Repeatable: re-creates the jobs open batches are owed (after Redis lost them), expires what is past its window. */
  "batches.reconcile": chore(Nothing, 1),
  /** Repeatable: deletes stored responses past their retention. */
  "responses.purge": chore(Nothing, 3),
  /** Repeatable: deletes files past their `expires_at` (body first, then the row marked deleted). */
  "files.expire": chore(Nothing, 3),
  /** A chunk of a batch's lines [from, to), run through the gateway's inference pipeline. */
  "batch.lines": {
    queue: "batch-lines",
    data: Type.Object({ batchId: Type.String({ minLength: 1 }), from: Type.Integer({ minimum: 0 }), to: Type.Integer({ minimum: 1 }) }),
    // A line refused for now (rate limit, no replica, Redis away) fails the chunk: it runs again within
    // seconds (capped backoff), its answered lines skipped, for as long as the batch is open — its
    // expiry, not a count of tries, ends it (the attempts are only a bound BullMQ needs).
    defaults: { attempts: 1_000_000, backoff: { type: "capped", delay: 1_000 }, removeOnComplete: true, removeOnFail: { age: 86_400, count: 1000 } },
  } satisfies JobSpec<TSchema>,
} as const;

export type JobName = keyof typeof JOBS;
export type JobData<N extends JobName> = Static<(typeof JOBS)[N]["data"]>;
/** The jobs one queue carries. */
export type JobsOn<Q extends JobQueueName> = { [N in JobName]: (typeof JOBS)[N]["queue"] extends Q ? N : never }[JobName];
