/**
 * The scheduler's side of the queue, for one deployment: a member of the schedulers'
 * consumer group on its streams. While its host (the deployment's dispatcher) is active it
 * reads as many entries as the host has room for, keeps its claim on what the host holds
 * (so no other member takes it over) and takes over what a dead member held; it dispatches
 * (`take`: the entry leaves its stream in the script that publishes its assignment) and
 * hands entries back to the front stream for the next holder (`handBack`).
 *
 * Every entry read is parsed with the `InferJob` schema; one that is not a job is removed
 * (it would otherwise come back from the pending list forever).
 */
import type { Logger } from "@infera/core";
import type { Redis } from "ioredis";
import { PRIORITY, QUEUE_FIELD, QUEUE_GROUP, type QueueKeys } from "./keys.ts";
import { type InferJob, parseJob } from "./messages.ts";
import { scripts } from "./scripts.ts";

/** A queued request as a scheduler holds it: the job and where it is in Redis. */
export interface QueueEntry {
  stream: string;
  entryId: string;
  job: InferJob;
}

/** Entry ids are unique within a stream only (two classes' streams can both have `<ms>-0`). */
export const entryKey = (stream: string, entryId: string) => `${stream}\u0000${entryId}`;

/** An entry to take off its stream, and what to publish to its gateway if it was still there. */
export interface TakeEntry {
  stream: string;
  entryId: string;
  channel: string;
  message: string;
}

type StreamEntries = ([id: string, fields: string[] | null] | null)[];

/** Most entries one XREADGROUP or XAUTOCLAIM takes per stream. */
const FETCH_MAX = 1_000;
/** Longest a blocking read waits before it returns empty (ms). */
const BLOCK_MS = 1_000;
/** Most ids one XCLAIM renews. */
const CLAIM_CHUNK = 500;

/** Runs the take script over a batch: 1 for each entry taken (its message published), 0 for one already gone. */
export function takeEntries(redis: Redis, entries: readonly TakeEntry[]): Promise<number[]> {
  const args: string[] = entries.map((e) => e.stream);
  args.push(QUEUE_GROUP);
  for (const e of entries) args.push(e.entryId, e.channel, e.message);
  return scripts(redis).queueTake(entries.length, ...args);
}

/** Creates the consumer group on each stream (and the streams), from their start. */
export async function ensureQueueGroups(redis: Redis, streams: readonly string[]): Promise<void> {
  for (const s of streams) {
    try {
      await redis.xgroup("CREATE", s, QUEUE_GROUP, "0", "MKSTREAM");
    } catch (err) {
      if (!String((err as Error).message).includes("BUSYGROUP")) throw err;
    }
  }
}

/** Requests queued for a deployment (waiting in Redis or held by a scheduler), across its streams. */
export async function queuedCount(redis: Redis, keys: QueueKeys, deploymentId: string): Promise<number> {
  const pipe = redis.pipeline();
  for (const s of keys.queues(deploymentId)) pipe.xlen(s);
  const results = (await pipe.exec()) ?? [];
  return results.reduce((n, [err, len]) => n + (err ? 0 : Number(len)), 0);
}

/** What the consumer reads for and claims for: the deployment's dispatcher. */
export interface ConsumerHost {
  /** Whether to read and keep claims at all now (it holds the dispatch lease). */
  active(): boolean;
  /** How many more entries it takes now. */
  room(): number;
  /** Entries read or taken over, not held before. */
  accept(entries: QueueEntry[]): Promise<void> | void;
  /** What it holds: their claims are renewed. */
  held(): Iterable<QueueEntry>;
  /** Entries it held that have left their streams (their gateway withdrew them), by `entryKey`. */
  gone(keys: ReadonlySet<string>): void;
}

export interface StreamConsumerOptions {
  /** Commands (scripts, claims). */
  redis: Redis;
  /** A connection of this consumer's own for the blocking reads (maxRetriesPerRequest: null); closed by close(). */
  blocking: Redis;
  keys: QueueKeys;
  deploymentId: string;
  /** This consumer's name in the group (the scheduler id). */
  consumer: string;
  /** An entry held this long without its holder renewing the claim may be taken over by another (ms). */
  lockMs: number;
  logger: Logger;
}

export class StreamConsumer {
  /** The deployment's streams, in the order they are read (the front, re-queued class, first). */
  readonly streams: readonly string[];
  private readonly front: string;
  private nudge: (() => void) | undefined;
  private closed = false;
  private host: ConsumerHost | undefined;

  constructor(private readonly o: StreamConsumerOptions) {
    this.streams = o.keys.queues(o.deploymentId);
    this.front = o.keys.queue(o.deploymentId, PRIORITY.requeued);
  }

  /** Whether an entry came from the front stream (re-queued or handed back: it goes first). */
  isFront(e: QueueEntry): boolean {
    return e.stream === this.front;
  }

  /** Creates the group on every stream (idempotent). `blocking`: on the read connection. */
  ensureGroups(blocking = false): Promise<void> {
    return ensureQueueGroups(blocking ? this.o.blocking : this.o.redis, this.streams);
  }

  /**
   * One read of up to `count` new entries across the streams (classes in order), blocking
   * up to a second while there are none. Throws when the streams or the group are gone
   * (NOGROUP) or Redis is away.
   */
  private async fetch(count: number): Promise<QueueEntry[] | null> {
    const n = Math.min(count, FETCH_MAX);
    const ids = this.streams.map(() => ">");
    const res = (await this.o.blocking.xreadgroup("GROUP", QUEUE_GROUP, this.o.consumer, "COUNT", n, "BLOCK", BLOCK_MS, "STREAMS", ...this.streams, ...ids)) as
      | [stream: string, entries: StreamEntries][]
      | null;
    if (!res) return null;
    return res.flatMap(([stream, entries]) => this.parse(stream, entries));
  }

  /** Takes over, for the host `run` serves, everything other members had read (the lease says their holder is gone). */
  takeOver(): Promise<void> {
    return this.host ? this.claimIdle(this.host, 0) : Promise.resolve();
  }

  /** Takes over the entries other members have held at least `minIdleMs` without renewing, as far as the host has room. */
  private async claimIdle(host: ConsumerHost, minIdleMs: number): Promise<void> {
    for (const stream of this.streams) {
      for (let cursor = "0-0"; ; ) {
        const n = host.active() ? host.room() : 0;
        if (n <= 0 || this.closed) return;
        const [next, entries] = (await this.o.redis.xautoclaim(stream, QUEUE_GROUP, this.o.consumer, minIdleMs, cursor, "COUNT", Math.min(n, FETCH_MAX))) as [
          string,
          StreamEntries,
        ];
        if (entries.length) {
          this.o.logger.info({ entries: entries.length, stream }, "took over entries another scheduler had read");
          await host.accept(this.parse(stream, entries));
        }
        if (next === "0-0") break;
        cursor = next;
      }
    }
  }

  /**
   * Renews this consumer's claim on entries it holds, so that no other takes them over.
   * Returns the `entryKey`s of those no longer in their stream (their gateway withdrew them).
   */
  private async renew(held: Iterable<{ stream: string; entryId: string }>): Promise<Set<string>> {
    const byStream = new Map<string, string[]>();
    for (const e of held) {
      let ids = byStream.get(e.stream);
      if (!ids) {
        ids = [];
        byStream.set(e.stream, ids);
      }
      ids.push(e.entryId);
    }
    const gone = new Set<string>();
    for (const [stream, ids] of byStream) {
      for (let i = 0; i < ids.length; i += CLAIM_CHUNK) {
        const chunk = ids.slice(i, i + CLAIM_CHUNK);
        const kept = new Set((await this.o.redis.xclaim(stream, QUEUE_GROUP, this.o.consumer, 0, ...chunk, "JUSTID")) as string[]);
        for (const id of chunk) if (!kept.has(id)) gone.add(entryKey(stream, id));
      }
    }
    return gone;
  }

  /** Dispatches a batch (see `takeEntries`): 1 per entry taken and its message published, 0 per entry already gone. */
  take(batch: readonly TakeEntry[]): Promise<number[]> {
    return takeEntries(this.o.redis, batch);
  }

  /** Moves entries this consumer holds to the front stream, for the lease's next holder to read at once. */
  async handBack(entries: readonly QueueEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const args: string[] = [this.front, ...entries.map((e) => e.stream), QUEUE_GROUP, QUEUE_FIELD];
    for (const e of entries) args.push(e.entryId, JSON.stringify(e.job));
    await scripts(this.o.redis).queueGiveBack(entries.length + 1, ...args);
  }

  /**
   * Runs for `host` until `close`: the fetch loop reads while the host is active and has
   * room (as many entries as it has room for, one read at a time) and hands each batch to
   * it; without room it waits for `wake`. A read that fails (the streams were deleted,
   * Redis is away) sets the groups up again shortly after. Every `lockMs`/3 the claims on
   * what the host holds are renewed, and entries held past `lockMs` by another member are
   * taken over (a safety net: a hand-back that failed leaves them in its pending list).
   * Resolves when the fetch loop ends.
   */
  async run(host: ConsumerHost): Promise<void> {
    this.host = host;
    const claims = setInterval(() => void this.keepClaims(host), Math.max(250, Math.floor(this.o.lockMs / 3)));
    // The groups exist (ensureGroups) until a read says otherwise.
    let groups = true;
    try {
      while (!this.closed) {
        const n = host.active() ? host.room() : 0;
        if (n <= 0) {
          await new Promise<void>((resolve) => {
            this.nudge = resolve;
          });
          continue;
        }
        try {
          if (!groups) await this.ensureGroups(true);
          groups = true;
          const entries = await this.fetch(n);
          if (entries) await host.accept(entries);
        } catch (err) {
          if (this.closed) break;
          groups = false;
          this.o.logger.warn({ err }, "could not read the queue");
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    } finally {
      clearInterval(claims);
    }
  }

  private async keepClaims(host: ConsumerHost): Promise<void> {
    if (this.closed || !host.active()) return;
    try {
      const gone = await this.renew(host.held());
      if (gone.size) host.gone(gone);
      await this.claimIdle(host, this.o.lockMs);
    } catch (err) {
      if (!this.closed) this.o.logger.warn({ err }, "could not renew queue claims");
    }
  }

  /** Room freed (or the loop should look again): a waiting fetch loop reads. */
  wake(): void {
    const wake = this.nudge;
    this.nudge = undefined;
    wake?.();
  }

  /** Ends the fetch loop and a blocked read at once (what it had read stays in this consumer's pending list). */
  close(): void {
    this.closed = true;
    this.o.blocking.disconnect();
    this.wake();
  }

  private parse(stream: string, entries: StreamEntries): QueueEntry[] {
    const out: QueueEntry[] = [];
    for (const e of entries) {
      // Entries deleted since they were read come back without fields (XAUTOCLAIM): nothing to take.
      if (!e?.[1]) continue;
      const [entryId, fields] = e;
      const job = parseJob(fields[fields.indexOf(QUEUE_FIELD) + 1]);
      if (job) out.push({ stream, entryId, job });
      else {
        this.o.logger.warn({ stream, entryId }, "dropped a queue entry that is not a job");
        void this.o.redis
          .multi()
          .xack(stream, QUEUE_GROUP, entryId)
          .xdel(stream, entryId)
          .exec()
          .catch(() => {});
      }
    }
    return out;
  }
}
