/**
 * Answers gateways' log requests (contracts' runtime-view.ts): the reconciler leader —
 * the scheduler whose runtime driver runs the replicas — reads the driver's logs and
 * appends them, in batches, to the request's own Redis stream. It stops when every line
 * asked for is sent, or, following, when the gateway stops renewing the request's lease
 * (its client went away). Claimed with SET NX, so one scheduler answers a request even
 * while the lease moves between two.
 */
import type { Redis } from "ioredis";
import { isPlatformError, type Logger } from "@infera/core";
import { LOG_FIELD, type LogEntry, type LogRequest, type RedisKeys } from "@infera/contracts";
import type { LogLine, RuntimeDriver } from "./runtime/driver.ts";

export interface LogRelayOptions {
  redis: Redis;
  keys: RedisKeys;
  driver: RuntimeDriver;
  /** Only the reconciler leader answers. */
  isLeader: () => boolean;
  schedulerId: string;
  logger: Logger;
}

/** Lines are sent at most this long after they are read, in one pipeline. */
const FLUSH_MS = 100;
const BATCH = 500;
/** While following with nothing new, a beat this often tells the gateway someone is there. */
const BEAT_MS = 5_000;
/** How often the lease is checked while following. */
const LEASE_CHECK_MS = 2_000;
/** The stream is capped (a reader far behind loses the oldest lines) and expires once idle. */
const STREAM_MAXLEN = 10_000;
const STREAM_TTL_MS = 60_000;

export class LogRelay {
  private readonly open = new Map<string, AbortController>();

  constructor(private readonly o: LogRelayOptions) {}

  /** A message on `keys.logRequests`. */
  onRequest(message: string): void {
    let req: LogRequest;
    try {
      req = JSON.parse(message) as LogRequest;
    } catch {
      return;
    }
    if (!this.o.isLeader() || typeof req.sid !== "string" || typeof req.deploymentId !== "string") return;
    void this.serve(req).catch((err: unknown) => this.o.logger.warn({ err, deploymentId: req.deploymentId }, "log request failed"));
  }

  private async serve(req: LogRequest): Promise<void> {
    const { redis, keys } = this.o;
    const claimed = await redis.set(`${keys.logStream(req.sid)}:owner`, this.o.schedulerId, "PX", STREAM_TTL_MS, "NX");
    if (claimed !== "OK") return;
    const stream = keys.logStream(req.sid);
    const send = async (entries: readonly LogEntry[]) => {
      if (entries.length === 0) return;
      const pipe = redis.pipeline();
      for (const e of entries) pipe.xadd(stream, "MAXLEN", "~", STREAM_MAXLEN, "*", LOG_FIELD, JSON.stringify(e));
      pipe.pexpire(stream, STREAM_TTL_MS);
      await pipe.exec();
    };
    // First a beat: the gateway knows the request is being answered.
    await send([{ t: "beat" }]);
    if (!this.o.driver.logs) {
      await send([{ t: "error", code: "unavailable", message: `The ${this.o.driver.name} runtime cannot read replica logs.` }]);
      return;
    }
    const abort = new AbortController();
    this.open.set(req.sid, abort);
    let batch: LogEntry[] = [];
    let flushedAt = Date.now();
    let sentAt = Date.now();
    const flush = async () => {
      const out = batch;
      batch = [];
      flushedAt = Date.now();
      if (out.length > 0) sentAt = flushedAt;
      await send(out);
    };
    // While following, a timer flushes what waits, beats, and checks the lease.
    let ticking = Promise.resolve();
    let checkedAt = Date.now();
    const timer = setInterval(() => {
      ticking = ticking.then(async () => {
        if (Date.now() - checkedAt >= LEASE_CHECK_MS) {
          checkedAt = Date.now();
          if ((await redis.exists(keys.logLease(req.sid))) === 0) abort.abort();
        }
        if (batch.length > 0) await flush();
        else if (Date.now() - sentAt >= BEAT_MS) {
          sentAt = Date.now();
          await send([{ t: "beat" }]);
        }
      });
      ticking.catch(() => abort.abort());
    }, FLUSH_MS);
    try {
      const lines: AsyncIterable<LogLine> = this.o.driver.logs(req.deploymentId, {
        replicaId: req.replicaId,
        tail: req.tail,
        follow: req.follow,
        signal: abort.signal,
      });
      for await (const l of lines) {
        batch.push({ t: "line", replicaId: l.replicaId, source: l.source, line: l.line });
        if (batch.length >= BATCH || Date.now() - flushedAt >= FLUSH_MS) {
          await ticking;
          await flush();
        }
        if (abort.signal.aborted) break;
      }
      clearInterval(timer);
      await ticking;
      await flush();
      if (!abort.signal.aborted) await send([{ t: "end" }]);
    } catch (err) {
      clearInterval(timer);
      await ticking.catch(() => {});
      await flush().catch(() => {});
      if (isPlatformError(err) && (err.code === "not_found" || err.code === "unavailable")) await send([{ t: "error", code: err.code, message: err.message }]);
      else {
        this.o.logger.warn({ err, deploymentId: req.deploymentId }, "could not read replica logs");
        await send([{ t: "error", code: "unavailable", message: "The replica logs could not be read." }]);
      }
    } finally {
      clearInterval(timer);
      this.open.delete(req.sid);
    }
  }

  /** Ends every open log request (the scheduler stops). */
  stop(): void {
    for (const a of this.open.values()) a.abort();
  }
}
