/**
 * Background jobs on BullMQ, typed by the catalog in `@infera/contracts/jobs`: `JobQueues`
 * adds jobs (any process), `startJobWorker` works one queue's jobs with a handler per job
 * name, each job's data checked against its schema first (what does not match fails the
 * job without running it). Connections use the platform's Redis URL (REDIS_PASSWORD folded
 * into it by the config) and its REDIS_PREFIX as BullMQ's key prefix.
 */
import { type Job, Queue, Worker, type JobsOptions } from "bullmq";
import { Redis } from "ioredis";
import { Compile } from "typebox/compile";
import type { Logger } from "@infera/core";
import { cappedBackoffMs, type JobData, type JobName, type JobQueueName, JOBS, type JobsOn } from "@infera/contracts/jobs";

export type { Job };

export interface JobsConnection {
  redisUrl: string;
  /** REDIS_PREFIX: BullMQ's prefix, so one Redis serves several platforms (and tests) apart. */
  prefix: string;
}

const checks = new Map<JobName, ReturnType<typeof Compile>>();
function checkOf(name: JobName) {
  let c = checks.get(name);
  if (!c) {
    c = Compile(JOBS[name].data);
    checks.set(name, c);
  }
  return c;
}

/** Producers: one BullMQ Queue per queue name, made on first use. */
export class JobQueues {
  private readonly queues = new Map<JobQueueName, Queue>();
  private readonly redis: Redis;

  constructor(
    private readonly connection: JobsConnection,
    private readonly logger: Logger,
  ) {
    // A producer's commands fail rather than wait forever when Redis is gone (the caller decides).
    this.redis = new Redis(connection.redisUrl, { maxRetriesPerRequest: 2 });
    this.redis.on("error", (err) => logger.warn({ err, connection: "jobs" }, "redis error"));
  }

  queue(name: JobQueueName): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.redis, prefix: this.connection.prefix });
      q.on("error", (err) => this.logger.warn({ err, queue: name }, "job queue error"));
      this.queues.set(name, q);
    }
    return q;
  }

  /**
   * Adds a job; with `jobId`, a job of that id that still exists is left as it is
   * (idempotent). `revive`: one of that id that failed for good is retried instead.
   */
  async add<N extends JobName>(
    name: N,
    data: JobData<N>,
    options: Pick<JobsOptions, "jobId" | "delay" | "priority"> & { revive?: boolean } = {},
  ): Promise<void> {
    const spec = JOBS[name];
    const { revive, ...opts } = options;
    const q = this.queue(spec.queue);
    await q.add(name, data, { ...spec.defaults, ...opts });
    if (revive && opts.jobId) {
      const job = await q.getJob(opts.jobId);
      if (job && (await job.isFailed())) await job.retry("failed");
    }
  }

  /** Adds many jobs of one name in one round trip; each `jobId` that still exists is left as it is. */
  async addMany<N extends JobName>(name: N, jobs: readonly { data: JobData<N>; jobId: string }[]): Promise<void> {
    if (jobs.length === 0) return;
    const spec = JOBS[name];
    await this.queue(spec.queue).addBulk(jobs.map((j) => ({ name, data: j.data, opts: { ...spec.defaults, jobId: j.jobId } })));
  }

  /** A repeatable job (a BullMQ job scheduler), every `everyMs`; re-declaring it is harmless. */
  async every<N extends JobName>(name: N, everyMs: number, data: JobData<N>): Promise<void> {
    const spec = JOBS[name];
    await this.queue(spec.queue).upsertJobScheduler(name, { every: everyMs }, { name, data, opts: { ...spec.defaults } });
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => {})));
    this.redis.disconnect();
  }
}

export type JobHandlers<Q extends JobQueueName> = { [N in JobsOn<Q>]: (data: JobData<N>, job: Job) => Promise<void> };

export interface JobWorker {
  readonly worker: Worker;
  stop(): Promise<void>;
}

/** Works the jobs of one queue: each job by the handler for its name. */
export function startJobWorker<Q extends JobQueueName>(
  connection: JobsConnection,
  queue: Q,
  handlers: JobHandlers<Q>,
  options: { concurrency: number; logger: Logger; lockDurationMs?: number },
): JobWorker {
  // A worker's blocking connection waits for Redis to come back (BullMQ requires it).
  const redis = new Redis(connection.redisUrl, { maxRetriesPerRequest: null });
  redis.on("error", (err) => options.logger.warn({ err, connection: `jobs:${queue}` }, "redis error"));
  const worker = new Worker(
    queue,
    async (job) => {
      const name = job.name as JobName;
      const handler = (handlers as Record<string, ((data: unknown, job: Job) => Promise<void>) | undefined>)[name];
      if (!handler) throw new Error(`no handler for job '${job.name}' on ${queue}`);
      if (!checkOf(name).Check(job.data)) throw new Error(`job '${job.name}' ${job.id}: data does not match its schema`);
      await handler(job.data, job);
    },
    {
      connection: redis,
      prefix: connection.prefix,
      concurrency: options.concurrency,
      lockDuration: options.lockDurationMs ?? 30_000,
      // A job whose worker died is taken up again (stalled) rather than failed.
      maxStalledCount: 1_000,
      // The catalog's `capped` backoff (BullMQ calls this for the types it does not know).
      settings: {
        backoffStrategy: (attemptsMade, type, _err, job) =>
          type === "capped"
            ? cappedBackoffMs(attemptsMade, job?.opts.backoff && typeof job.opts.backoff === "object" ? (job.opts.backoff.delay ?? 1_000) : 1_000)
            : 0,
      },
    },
  );
  worker.on("error", (err) => options.logger.warn({ err, queue }, "job worker error"));
  worker.on("failed", (job, err) => options.logger.warn({ err: err.message, job: job?.name, jobId: job?.id, attempts: job?.attemptsMade }, "job failed"));
  return {
    worker,
    stop: async () => {
      await worker.close().catch(() => {});
      redis.disconnect();
    },
  };
}
export { type BatchInputLine, readBatchLines } from "./batch-input.ts";
